// The IOMMU core (drivers/iommu/iommu.c) for one twin kernel: IOMMU groups, the devices in
// them, domain allocation and attachment, DMA ownership, and device DMA through the attached
// domain. API for the subsystems above (vfio type1, iommufd):
//
//   IommuCore.of(k)                       the core of kernel k (made on first use)
//   core.device(bdf) / core.group(id)     lookups
//   core.domainAllocPaging(dev, owner)    iommu_paging_domain_alloc(): aperture + pgsizes of dev
//   core.attachGroup(domain, group)       iommu_attach_group(): EBUSY unless the group sits
//                                         in its default or blocking domain
//   core.detachGroup(domain, group)       iommu_detach_group(): back to blocking (owned) or default
//   core.replaceGroupDomain(group, d)     iommu_group_replace_domain() (owned groups only)
//   core.claimDmaOwner(group, owner)      iommu_group_claim_dma_owner(): EPERM if owned
//   core.releaseDmaOwner(group)
//   dev.resvRegions()                     iommu_get_resv_regions(): the MSI window
//   dev.capable("cache-coherency")        device_iommu_capable()
//   domain.map / unmap / lookup           src/iommu/domain.ts
//
// A device's DMA (the DmaPort of src/hw/pci.ts) is translated through its group's current
// domain at the time of the access, page by page. A page goes through only inside a mapping
// with the needed permission; otherwise none of its bytes move and a fault (bdf, iova,
// read/write, reason) is appended to core.faults, the twin's DMAR fault log (query it with
// core.faultsOf(bdf)), and traced as the kernel's iommu:io_page_fault event.

import { EBUSY, EINVAL, EPERM } from "../uapi/errno.js";
import type { Kernel } from "../kernel/kernel.js";
import { type Page, PAGE_SIZE } from "../kernel/mm.js";
import type { DmaPort, PciDevice } from "../hw/pci.js";
import { DEFAULT_IOMMU, type IommuHwConfig, type PciFunctionConfig } from "../hw/machine.js";
import { IOMMU_READ, IOMMU_WRITE, IommuDomain } from "./domain.js";
import { pasidDomain } from "./pasid_table.js";
import { SideTable } from "../kernel/side_table.js";

/**
 * Why a DMA was refused: "not-present" (no mapping at the IOVA), "permission" (a read-only
 * mapping written, ...), "blocked" (the group sits in a blocking domain), "identity" (an
 * identity domain; the twin has no physical memory map), "bus-master-off" (the request never
 * left the device: logged by the twin, the real DMAR has no record of it).
 */
export type IommuFaultReason =
  "blocked" | "not-present" | "permission" | "identity" | "bus-master-off" | "no-pasid-domain";

export interface IommuFault {
  readonly bdf: string;
  readonly iova: bigint;
  readonly write: boolean;
  readonly reason: IommuFaultReason;
  /** the domain the access went through (0: none, a PASID without a domain) */
  readonly domain: number;
  /** the PASID a PASID-tagged access carried */
  readonly pasid?: number;
}

/** "cache-coherency" is IOMMU_CAP_ENFORCE_CACHE_COHERENCY, "dirty-tracking" IOMMU_CAP_DIRTY_TRACKING */
export type IommuCap = "cache-coherency" | "pasid" | "dirty-tracking";

export interface ResvRegion {
  readonly start: bigint;
  /** inclusive */
  readonly last: bigint;
  readonly type: "msi" | "direct" | "reserved";
}

/** See IommuCore.dmaCheck: why the page `page` reached at `iova` through `domain` is wrong, or null. */
export type DmaCheck = (
  dev: IommuDevice,
  domain: IommuDomain,
  iova: bigint,
  page: Page,
  write: boolean,
  pasid: number | undefined,
) => string | null;

/** struct device's IOMMU side (dev->iommu, dev->iommu_group) for one PCI function. */
export class IommuDevice {
  /** the bound driver's name ("vfio-pci", "host"), null when unbound */
  driver: string | null = null;

  constructor(
    readonly core: IommuCore,
    readonly bdf: string,
    readonly pci: PciDevice | null,
    readonly group: IommuGroup,
    readonly caps: { readonly coherent: boolean; readonly pasid: boolean },
  ) {}

  /** device_iommu_capable() */
  capable(cap: IommuCap): boolean {
    if (cap === "cache-coherency") return this.caps.coherent;
    return cap === "pasid" ? this.caps.pasid : false; // no dirty tracking on the emulated VT-d
  }

  /** iommu_get_resv_regions(): VT-d reports the interrupt window as IOMMU_RESV_MSI. */
  resvRegions(): ResvRegion[] {
    const hw = this.core.hw;
    return [{ start: hw.msiStart, last: hw.msiEnd, type: "msi" }];
  }
}

/** struct iommu_group */
export class IommuGroup {
  readonly devices: IommuDevice[] = [];
  /** the domain DMA goes through now */
  domain: IommuDomain;
  /** the DMA-API domain host drivers use (a paging domain owned by the kernel) */
  readonly defaultDomain: IommuDomain;
  blockingDomain: IommuDomain | null = null;
  /** group->owner_cnt: host drivers using the default domain, or 1 for a claimed owner */
  ownerCnt = 0;
  owner: unknown = null;

  constructor(
    readonly core: IommuCore,
    readonly id: number,
  ) {
    this.defaultDomain = core.newDomain("paging", "default domain");
    this.domain = this.defaultDomain;
    this.defaultDomain.groups.add(this);
  }

  /** iommu_group_dma_owner_claimed() */
  dmaOwnerClaimed(): boolean {
    return this.ownerCnt !== 0;
  }

  setDomain(d: IommuDomain): void {
    this.domain.groups.delete(this);
    this.domain = d;
    d.groups.add(this);
  }
}

/** A PCI function as the kernel's PCI core knows it after boot. */
export interface PciFunction {
  readonly config: Required<PciFunctionConfig>;
  readonly hw: PciDevice;
  readonly iommu: IommuDevice;
}

const cores = new SideTable<Kernel, IommuCore>();

export class IommuCore {
  readonly groups = new Map<number, IommuGroup>();
  readonly devices = new Map<string, IommuDevice>();
  /** the machine's PCI functions as probed at boot, in config order */
  readonly pciFunctions: PciFunction[] = [];
  /** the DMAR fault log */
  readonly faults: IommuFault[] = [];
  /** the platform IOMMU's capabilities (bootMachine sets the machine's) */
  hw: IommuHwConfig = DEFAULT_IOMMU;
  /**
   * The per-DMA detector (src/check/dma_reach.ts), null when off: asked for every page a DMA
   * reached, it returns why that translation should not exist (the domain is not one its
   * owner attached the device to, or no live mapping of the owning process holds the page),
   * or null. A reason is recorded as a kernel bug of kind "dma-reach" where the access
   * happens; the access itself goes on as the hardware would let it.
   */
  dmaCheck: DmaCheck | null = null;

  private constructor(readonly k: Kernel) {}

  static of(k: Kernel): IommuCore {
    let c = cores.get(k);
    if (!c) cores.set(k, (c = new IommuCore(k)));
    return c;
  }

  get apertureEnd(): bigint {
    return (1n << BigInt(this.hw.awBits)) - 1n;
  }

  newDomain(type: "paging" | "identity" | "blocked", owner: string): IommuDomain {
    return new IommuDomain(type, this.hw.pgsizeBitmap, 0n, this.apertureEnd, false, owner);
  }

  device(bdf: string): IommuDevice | null {
    return this.devices.get(bdf) ?? null;
  }

  group(id: number): IommuGroup | null {
    return this.groups.get(id) ?? null;
  }

  /** iommu_group_alloc() with a given id (the machine's), or the next free one. */
  allocGroup(id?: number): IommuGroup {
    let n = id;
    if (n === undefined) {
      n = 0;
      while (this.groups.has(n)) n++;
    }
    let g = this.groups.get(n);
    if (!g) this.groups.set(n, (g = new IommuGroup(this, n)));
    return g;
  }

  /** iommu_probe_device(): put a device in its group and route its DMA through the core. */
  probeDevice(
    bdf: string,
    pci: PciDevice | null,
    groupId: number,
    caps: { coherent: boolean; pasid: boolean },
  ): IommuDevice {
    const g = this.allocGroup(groupId);
    const dev = new IommuDevice(this, bdf, pci, g, caps);
    g.devices.push(dev);
    this.devices.set(bdf, dev);
    if (pci) pci.dma = this.dmaPort(dev);
    return dev;
  }

  /**
   * iommu_probe_device() of a device another IOMMU driver made (the selftest's mock bus): a
   * group of its own (generic_device_group()), with the next free id.
   */
  addDevice(dev: IommuDevice): void {
    dev.group.devices.push(dev);
    this.devices.set(dev.bdf, dev);
  }

  /** iommu_release_device(): the device leaves its group; an empty group goes with it. */
  removeDevice(dev: IommuDevice): void {
    const g = dev.group;
    g.devices.splice(g.devices.indexOf(dev), 1);
    this.devices.delete(dev.bdf);
    if (g.devices.length === 0) {
      g.setDomain(g.defaultDomain);
      this.groups.delete(g.id);
    }
  }

  /** iommu_paging_domain_alloc(dev): a paging domain with the device's IOMMU geometry. */
  domainAllocPaging(dev: IommuDevice, owner: string): IommuDomain {
    void dev;
    const d = this.newDomain("paging", owner);
    // VT-d second-stage tables honour IOMMU_CACHE only when the hardware snoops (coherent)
    d.enforceCacheCoherency = false;
    return d;
  }

  /** intel_iommu_enforce_cache_coherency(): true only if every attached device supports it. */
  enforceCacheCoherency(d: IommuDomain, group: IommuGroup): boolean {
    const ok = group.devices.every((x) => x.capable("cache-coherency"));
    if (ok) d.enforceCacheCoherency = true;
    return ok;
  }

  /** iommu_attach_group(): drivers/iommu/iommu.c __iommu_attach_group(). */
  attachGroup(d: IommuDomain, g: IommuGroup): number {
    if (g.domain !== g.defaultDomain && g.domain !== g.blockingDomain) return -EBUSY;
    g.setDomain(d);
    return 0;
  }

  /** iommu_detach_group(): __iommu_group_set_core_domain(). */
  detachGroup(d: IommuDomain, g: IommuGroup): void {
    if (g.domain !== d) throw this.k.bug("iommu", `detach of ${d.describe()} from group ${g.id} it is not attached to`);
    g.setDomain(g.owner !== null ? this.blockingDomain(g) : g.defaultDomain);
  }

  /** iommu_group_replace_domain(): only for a group with a claimed owner. */
  replaceGroupDomain(g: IommuGroup, d: IommuDomain): number {
    if (g.owner === null) return -EINVAL;
    if (d.enforceCacheCoherency && !g.devices.every((x) => x.capable("cache-coherency"))) return -EINVAL;
    g.setDomain(d);
    return 0;
  }

  private blockingDomain(g: IommuGroup): IommuDomain {
    if (!g.blockingDomain) g.blockingDomain = this.newDomain("blocked", `blocking domain of group ${g.id}`);
    return g.blockingDomain;
  }

  /** iommu_group_claim_dma_owner(): the group moves to its blocking domain. */
  claimDmaOwner(g: IommuGroup, owner: unknown): number {
    if (owner === null || owner === undefined) return -EINVAL;
    if (g.ownerCnt) return -EPERM;
    if (g.domain !== g.defaultDomain) return -EBUSY;
    g.setDomain(this.blockingDomain(g));
    g.owner = owner;
    g.ownerCnt++;
    return 0;
  }

  /** iommu_group_release_dma_owner(): back to the default domain. */
  releaseDmaOwner(g: IommuGroup): void {
    if (g.owner === null || g.ownerCnt !== 1) throw this.k.bug("iommu", `release of unowned group ${g.id}`);
    g.setDomain(g.defaultDomain);
    g.owner = null;
    g.ownerCnt = 0;
  }

  /** iommu_device_use_default_domain(): a host driver binds (what makes a group non-viable). */
  deviceUseDefaultDomain(dev: IommuDevice): number {
    const g = dev.group;
    if (g.ownerCnt && (g.domain !== g.defaultDomain || g.owner !== null)) return -EBUSY;
    g.ownerCnt++;
    return 0;
  }

  deviceUnuseDefaultDomain(dev: IommuDevice): void {
    const g = dev.group;
    if (g.ownerCnt > 0 && g.owner === null) g.ownerCnt--;
  }

  /** The DMA port of a device: every access is translated at the time it happens. */
  dmaPort(dev: IommuDevice): DmaPort {
    // a blocked page reads as zeros in `out`, whatever it held (a device's own buffer);
    // PASID-tagged DMA goes through the domain attached at the PASID (./pasid_table.ts)
    const load = (addr: bigint, out: Uint8Array, pasid?: number) =>
      this.dma(
        dev,
        addr,
        out.length,
        false,
        (pg, off, n, at) => pg.load(off, n, out, at),
        (at, n) => out.fill(0, at, at + n),
        pasid,
      );
    const write = (addr: bigint, bytes: Uint8Array, pasid?: number) =>
      this.dma(dev, addr, bytes.length, true, (pg, off, n, at) => pg.store(off, n, bytes, at), undefined, pasid);
    return {
      read: (addr, len) => {
        const out = new Uint8Array(len);
        return load(addr, out) ? out : null;
      },
      load: (addr, out) => load(addr, out),
      write: (addr, bytes) => write(addr, bytes),
      loadPasid: (pasid, addr, out) => load(addr, out, pasid),
      writePasid: (pasid, addr, bytes) => write(addr, bytes, pasid),
      blocked: (addr, len, write) => {
        void len;
        this.recordFault(dev, addr, write, "bus-master-off", dev.group.domain.id);
      },
    };
  }

  /** Faults recorded for one device (the DMAR fault log filtered by source id). */
  faultsOf(bdf: string): IommuFault[] {
    return this.faults.filter((f) => f.bdf === bdf);
  }

  private recordFault(
    dev: IommuDevice,
    iova: bigint,
    write: boolean,
    reason: IommuFaultReason,
    domain: number,
    pasid?: number,
  ): void {
    this.faults.push({ bdf: dev.bdf, iova, write, reason, domain, ...(pasid !== undefined ? { pasid } : {}) });
    // the kernel's iommu:io_page_fault tracepoint, in the syscall trace
    const k = this.k;
    if (k.trace.enabled)
      k.trace.tracepoint(k.clock.now, "io_page_fault", [
        dev.bdf,
        ...(pasid !== undefined ? [`pasid=${pasid}`] : []),
        `iova=0x${iova.toString(16)}`,
        write ? "write" : "read",
        reason,
      ]);
  }

  /**
   * Translate page by page, as QEMU's VT-d does for each access: a page without a mapping
   * with the needed permission is a fault (recorded) and none of its bytes move; the other
   * pages go through. True when no page faulted.
   */
  private dma(
    dev: IommuDevice,
    addr: bigint,
    len: number,
    write: boolean,
    copy: (page: Page, off: number, n: number, at: number) => boolean,
    /** called for each chunk [at, at + n) that faulted */
    faulted?: (at: number, n: number) => void,
    pasid?: number,
  ): boolean {
    const pd = pasid === undefined ? null : pasidDomain(dev, pasid);
    const d = pasid === undefined ? dev.group.domain : pd;
    const fault = (iova: bigint, reason: IommuFaultReason): boolean => {
      this.recordFault(dev, iova, write, reason, d?.id ?? 0, pasid);
      return false;
    };
    if (len === 0) return true;
    if (d === null || d.type === "blocked" || d.type === "identity") {
      faulted?.(0, len);
      // identity: bus addresses are host physical; the twin has no physical memory map
      return fault(addr, d === null ? "no-pasid-domain" : d.type === "blocked" ? "blocked" : "identity");
    }
    const need = write ? IOMMU_WRITE : IOMMU_READ;
    let ok = true;
    let at = 0;
    while (at < len) {
      const iova = addr + BigInt(at);
      const off = Number(iova & BigInt(PAGE_SIZE - 1));
      const n = Math.min(len - at, PAGE_SIZE - off);
      const pte = iova > 0xffffffffffffffffn ? null : d.lookup(iova);
      let why: IommuFaultReason | null = null;
      if (!pte) why = "not-present";
      else if ((pte.prot & need) !== need) why = "permission";
      // a page whose backing memory went away (a bridged process that exited) reads as a
      // bus error would: the access fails and is logged like any other
      else if (!copy(pte.page, off, n, at)) why = "not-present";
      if (why !== null) {
        faulted?.(at, n);
        ok = fault(iova, why);
      } else if (this.dmaCheck !== null) {
        const wrong = this.dmaCheck(dev, d, iova, pte!.page, write, pasid);
        if (wrong !== null) this.k.bug("dma-reach", wrong);
      }
      at += n;
    }
    return ok;
  }
}
