// `vfio-twin designs`, second part: the two designs for guest ENQCMD PASIDs (docs/pasid.md),
// side by side, from real runs on a 6.15 twin with the DSA-shaped device. Each row is one of
// the sequences where the designs can differ; a cell gives the KVM link's result, what the
// guest's ENQCMD reached, and whether the rule "a VM reaches no PASID its owner cannot"
// (src/check/pasid_invariants.ts) held after the sequence.

import { checkPasidReach } from "../check/pasid_invariants.js";
import { leakedSince } from "../check/invariants.js";
import { DSA_OP_DELAY_NS } from "../hw/dsa.js";
import { DSA_PCI, ORACLE_PCI } from "../hw/machine.js";
import { PASID_DESIGNS, type PasidDesign } from "../kernel/pasid.js";
import { kvmPasidTable } from "../kvm/enqcmd.js";
import { kvmState } from "../kvm/kvm_main.js";
import { createTwin, type Twin, type TwinProcess } from "../twin.js";
import { errnoName } from "../uapi/errno.js";
import { formatEvent } from "../kernel/trace.js";
import { DsaUser, dsaDescriptor, VmmPasid } from "../vmm/dsa_pasid.js";

const CDEV = "/dev/vfio/devices/vfio1";
const LEN = 64 * 1024;
const PORTAL_GPA = 0xf000_0000n;

export interface PasidRow {
  readonly name: string;
  readonly cells: Record<PasidDesign, string[]>;
}

const rcText = (rc: number) => (rc < 0 ? errnoName(-rc) : String(rc));

/** A world: `dev` (manager, or the VMM itself) owns the iommufd, binds the DSA, maps its
 * buffer at IOVA 0 and attaches PASID 5; `vmm` runs a VM with RAM in slot 0. */
class PasidWorld {
  readonly twin: Twin;
  readonly base: Set<unknown>;
  readonly vmmP: TwinProcess;
  readonly devP: TwinProcess;
  readonly dev: DsaUser;
  readonly vmm: VmmPasid;
  readonly buf: number;
  readonly ram: number;
  constructor(
    readonly design: PasidDesign,
    split: boolean,
    trace = false,
  ) {
    this.twin = createTwin({ kernelVersion: "6.15", pasidDesign: design, pci: [...ORACLE_PCI, DSA_PCI] });
    this.twin.kernel.trace.enabled = trace;
    this.base = new Set(this.twin.kernel.objects);
    this.vmmP = this.twin.spawn({ name: "vmm" });
    this.devP = split ? this.twin.spawn({ name: "manager" }) : this.vmmP;
    this.dev = new DsaUser(this.devP);
    this.dev.openIommufd();
    this.dev.bind(CDEV);
    const ioas = this.dev.ioasAlloc();
    this.buf = this.devP.mmap(LEN);
    this.dev.map(ioas, 0n, this.buf, LEN);
    this.dev.mapBars();
    this.dev.enable();
    this.dev.attach(ioas, 5);
    this.vmm = new VmmPasid(this.vmmP);
    this.vmm.createVm();
    this.ram = this.vmmP.mmap(LEN);
    this.vmm.slot(0, 0n, this.ram, LEN);
  }
  private portalVa = 0;
  /** the VMM maps the portal through `cdev` (its fd) into slot 1 */
  portal(cdev: number): void {
    this.portalVa = this.vmmP.mmap(16384, { fd: cdev, offset: 2 * 2 ** 40 });
    this.vmm.slot(1, PORTAL_GPA, this.portalVa, 16384);
  }
  /** the VMM drops the portal and the device user closes the device: it is released */
  closeDevice(): void {
    this.vmm.slot(1, PORTAL_GPA, 0, 0);
    this.vmmP.munmap(this.portalVa, 16384);
    this.dev.closeDevice();
  }
  /** link vPASID 1 -> 5 the design's way, with the VMM's fds */
  link(cdev: number, iommufd: number): number {
    return this.design === "process-table" ? this.vmm.link(1, 5) : this.vmm.link(1, 5, { vfioFd: cdev, iommufd });
  }
  /** the guest fills 4 bytes at IOVA 0x500 under vPASID 1: where they landed */
  guestWrite(): string {
    const vcpu = this.twin.vcpu(this.vmmP, this.vmm.vm);
    if (!vcpu) return "no vCPU";
    vcpu.guestPasid = 1;
    this.vmmP.write(this.ram + 0x800, dsaDescriptor("fill", { pattern: 0x6666666666666666n, dst: 0x500n, size: 4 }));
    const st = vcpu.enqcmd(Number(PORTAL_GPA), 0x800);
    if (st !== "accepted") return `guest ENQCMD: ${st}`;
    this.twin.advance(DSA_OP_DELAY_NS);
    const hit = !this.devP.exited && this.devP.read(this.buf + 0x500, 1)[0] === 0x66;
    return hit ? `guest wrote pid ${this.devP.pid}'s memory` : "guest ENQCMD accepted, DMA faulted";
  }
  translations(): string {
    const vms = kvmState(this.twin.kernel)?.vms;
    const kvm = vms ? [...vms][0] : undefined;
    if (!kvm) return "VM gone";
    const t = kvmPasidTable(kvm);
    return t.map.size ? `linked ${[...t.map].map(([v, p]) => `${v}->${p}`).join(", ")}` : `none (revoked ${t.revoked})`;
  }
  rule(): string {
    const v = checkPasidReach(this.twin.kernel);
    return v.length ? `rule BROKEN: ${v.length}` : "rule holds";
  }
  /** kill everything; objects left behind */
  end(): string[] {
    for (const p of [this.vmmP, this.devP]) if (!p.exited) this.twin.kill(p);
    return leakedSince(this.twin.kernel, this.base as Set<never>).map((o) => o.describe());
  }
}

type Seq = (w: PasidWorld) => string[];

const SEQUENCES: [string, boolean, Seq][] = [
  [
    "own PASID: link, guest ENQCMD",
    false,
    (w) => {
      w.portal(w.dev.cdev);
      return [`link ${rcText(w.link(w.dev.cdev, w.dev.iommufd))}`, w.guestWrite(), w.rule()];
    },
  ],
  [
    "fd passing: the manager's PASID",
    true,
    (w) => {
      const cdev = w.devP.sendFd(w.dev.cdev, w.vmmP);
      const ifd = w.devP.sendFd(w.dev.iommufd, w.vmmP);
      w.portal(cdev);
      return [`link ${rcText(w.link(cdev, ifd))}`, w.guestWrite(), w.rule()];
    },
  ],
  [
    "detach after the link",
    false,
    (w) => {
      w.portal(w.dev.cdev);
      const rc = w.link(w.dev.cdev, w.dev.iommufd);
      w.dev.detach(5);
      return [`link ${rcText(rc)}, detach`, w.translations(), w.rule()];
    },
  ],
  [
    "owner exits, VM fd held elsewhere",
    false,
    (w) => {
      w.portal(w.dev.cdev);
      const rc = w.link(w.dev.cdev, w.dev.iommufd);
      const holder = w.twin.spawn({ name: "holder" });
      w.vmmP.sendFd(w.vmm.vm, holder);
      w.twin.kill(w.vmmP);
      const out = [`link ${rcText(rc)}, owner killed`, w.translations(), w.rule()];
      w.twin.kill(holder);
      return out;
    },
  ],
  [
    "iommufd closed while the VM runs",
    false,
    (w) => {
      w.portal(w.dev.cdev);
      const rc = w.link(w.dev.cdev, w.dev.iommufd);
      w.vmmP.close(w.dev.iommufd);
      return [`link ${rcText(rc)}, iommufd closed`, w.translations(), w.rule()];
    },
  ],
  [
    "iommufd closed, then the device",
    false,
    (w) => {
      w.portal(w.dev.cdev);
      const rc = w.link(w.dev.cdev, w.dev.iommufd);
      w.vmmP.close(w.dev.iommufd);
      w.closeDevice();
      return [`link ${rcText(rc)}, both closed`, w.translations(), w.rule()];
    },
  ],
];

export function runPasidDesigns(): { rows: PasidRow[]; leaks: Record<PasidDesign, string[]> } {
  const rows: PasidRow[] = [];
  const leaks = { "process-table": [], "vfio-translate": [] } as Record<PasidDesign, string[]>;
  for (const [name, split, seq] of SEQUENCES) {
    const cells = {} as Record<PasidDesign, string[]>;
    for (const d of PASID_DESIGNS) {
      const w = new PasidWorld(d, split);
      cells[d] = seq(w);
      leaks[d].push(...w.end());
    }
    rows.push({ name, cells });
  }
  return { rows, leaks };
}

export function formatPasidDesigns(r: ReturnType<typeof runPasidDesigns>): string {
  const w = 40;
  const col = 40;
  const lines = ["guest ENQCMD PASIDs (docs/pasid.md; a 6.15 twin with the DSA-shaped device)"];
  const row = (label: string, cells: string[][], mark = "") => {
    const h = Math.max(1, ...cells.map((c) => c.length));
    for (let i = 0; i < h; i++)
      lines.push(
        (
          (mark && i === 0 ? mark : "  ") +
          " " +
          (i === 0 ? label : "").padEnd(w) +
          cells.map((c) => (c[i] ?? "").padEnd(col)).join(" ")
        ).trimEnd(),
      );
  };
  row(
    "design",
    PASID_DESIGNS.map((d) => [d]),
  );
  for (const x of r.rows) {
    const cells = PASID_DESIGNS.map((d) => x.cells[d]);
    const same = JSON.stringify(cells[0]) === JSON.stringify(cells[1]);
    row(x.name, cells, same ? "" : "!!");
  }
  row(
    "objects leaked",
    PASID_DESIGNS.map((d) => (r.leaks[d].length ? r.leaks[d] : ["none"])),
  );
  return lines.join("\n");
}

/**
 * The attack docs/pasid.md walks through, traced: a manager process owns the iommufd and the
 * DSA and attached PASID 5 for its own buffer; it passes the device and iommufd fds to the
 * VMM (as a management stack passes fds to QEMU); the VMM asks KVM to link its guest's
 * PASID 1 to host PASID 5, and the guest fills 4 bytes at IOVA 0x500. The whole trace (the
 * set-up included), and the rule's verdict.
 */
export function pasidAttackTrace(design: PasidDesign): string[] {
  const w = new PasidWorld(design, true, true);
  const tr = w.twin.kernel.trace;
  const cdev = w.devP.sendFd(w.dev.cdev, w.vmmP);
  const ifd = w.devP.sendFd(w.dev.iommufd, w.vmmP);
  w.portal(cdev);
  w.link(cdev, ifd);
  const reached = w.guestWrite();
  const lines = tr.events.map((e) => formatEvent(e));
  tr.enabled = false;
  lines.push(`# ${reached}`, `# ${w.rule()}: ${checkPasidReach(w.twin.kernel).join("; ") || "-"}`);
  w.end();
  return lines;
}
