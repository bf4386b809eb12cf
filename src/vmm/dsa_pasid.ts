// A userspace driver for the DSA-shaped device (src/hw/dsa.ts) over the device cdev and
// iommufd with the PASID uAPI, and the VMM's half of guest ENQCMD (docs/pasid.md): what the
// tests, `vfio-twin designs` and the documented attack run. Every call returns the kernel's
// raw result (0 or -errno); the ENQCMD calls return the instruction's status.

import type { TwinProcess } from "../twin.js";
import * as U from "../uapi/iommufd.js";
import * as V from "../uapi/vfio.js";
import * as K from "../uapi/kvm.js";
import {
  DSA_DESC_SIZE,
  DSA_OPCODE_MEMFILL,
  DSA_OPCODE_MEMMOVE,
  DSA_REG_CMD,
  IDXD_CMD_ENABLE_DEVICE,
  IDXD_CMD_ENABLE_WQ,
  IDXD_OP_FLAG_CRAV,
  IDXD_OP_FLAG_RCR,
} from "../hw/dsa.js";
import { KVM_TWIN_PASID_CLEAR, KVM_TWIN_SET_PASID_TRANSLATION, kvm_twin_pasid_translation } from "../kvm/enqcmd.js";
import type { StructDesc } from "../uapi/struct.js";
const VFIO_PCI_OFFSET_SHIFT = V.VFIO_PCI_OFFSET_SHIFT;

const SCRATCH_LEN = 8192;

/** A DSA descriptor: memmove (src -> dst) or fill (8-byte pattern -> dst), with a completion
 * record at `comp` (0: none requested). */
export function dsaDescriptor(
  op: "memmove" | "fill",
  a: { src?: bigint; pattern?: bigint; dst: bigint; size: number; comp?: bigint },
): Uint8Array {
  const d = new Uint8Array(DSA_DESC_SIZE);
  const dv = new DataView(d.buffer);
  const flags = a.comp ? IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR : 0;
  const opcode = op === "memmove" ? DSA_OPCODE_MEMMOVE : DSA_OPCODE_MEMFILL;
  dv.setUint32(4, (flags | (opcode << 24)) >>> 0, true);
  dv.setBigUint64(8, a.comp ?? 0n, true);
  dv.setBigUint64(16, op === "memmove" ? (a.src ?? 0n) : (a.pattern ?? 0n), true);
  dv.setBigUint64(24, a.dst, true);
  dv.setUint32(32, a.size, true);
  return d;
}

export class DsaUser {
  readonly scr: number;
  iommufd = -1;
  cdev = -1;
  devid = 0;
  bar0 = 0;
  portal = 0;

  constructor(readonly p: TwinProcess) {
    this.scr = p.mmap(SCRATCH_LEN);
  }

  private call<T>(fd: number, req: number, desc: StructDesc<T>, v: Partial<T>): { rc: number; out: T } {
    this.p.write(this.scr, desc.encode(v));
    const rc = this.p.ioctl(fd, req, this.scr);
    return { rc, out: desc.decode(this.p.read(this.scr, desc.size)) };
  }

  openIommufd(): number {
    this.iommufd = this.p.open("/dev/iommu");
    return this.iommufd;
  }

  /** open the cdev and bind it to `iommufd` (this one's by default); 0 or -errno */
  bind(cdevPath: string, iommufd = this.iommufd): number {
    this.cdev = this.p.open(cdevPath);
    if (this.cdev < 0) return this.cdev;
    const r = this.call(this.cdev, V.VFIO_DEVICE_BIND_IOMMUFD, V.vfio_device_bind_iommufd, {
      argsz: V.vfio_device_bind_iommufd.size,
      iommufd,
    });
    this.devid = r.out.out_devid;
    return r.rc;
  }

  ioasAlloc(fd = this.iommufd): number {
    const r = this.call(fd, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: U.iommu_ioas_alloc.size });
    return r.rc < 0 ? r.rc : r.out.out_ioas_id;
  }

  map(ioas: number, iova: bigint, va: number, length: number, fd = this.iommufd): number {
    return this.call(fd, U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
      size: U.iommu_ioas_map.size,
      flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: ioas,
      user_va: BigInt(va),
      length: BigInt(length),
      iova,
    }).rc;
  }

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID (null: the RID) */
  attach(ptId: number, pasid: number | null, cdev = this.cdev): { rc: number; ptId: number } {
    const r = this.call(cdev, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, V.vfio_device_attach_iommufd_pt_pasid, {
      argsz: V.vfio_device_attach_iommufd_pt_pasid.size,
      flags: pasid === null ? 0 : V.VFIO_DEVICE_ATTACH_PASID,
      pt_id: ptId,
      pasid: pasid ?? 0,
    });
    return { rc: r.rc, ptId: r.out.pt_id };
  }

  detach(pasid: number | null, cdev = this.cdev): number {
    return this.call(cdev, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, V.vfio_device_detach_iommufd_pt_pasid, {
      argsz: V.vfio_device_detach_iommufd_pt_pasid.size,
      flags: pasid === null ? 0 : V.VFIO_DEVICE_DETACH_PASID,
      pasid: pasid ?? 0,
    }).rc;
  }

  /** mmap BAR0 (registers) and BAR2 (the WQ portals) of the cdev; 0 or -errno */
  mapBars(cdev = this.cdev): number {
    const b0 = this.p.mmap(16384, { fd: cdev, offset: 0 });
    if (b0 < 0) return b0;
    const b2 = this.p.mmap(16384, { fd: cdev, offset: 2 * 2 ** VFIO_PCI_OFFSET_SHIFT });
    if (b2 < 0) return b2;
    this.bar0 = b0;
    this.portal = b2;
    return 0;
  }

  /** unmap the BARs and close the cdev (the mappings hold the file: both must go for the
   * release, which unbinds and detaches every PASID) */
  closeDevice(): number {
    if (this.bar0) this.p.munmap(this.bar0, 16384);
    if (this.portal) this.p.munmap(this.portal, 16384);
    this.bar0 = this.portal = 0;
    const rc = this.p.close(this.cdev);
    this.cdev = -1;
    return rc;
  }

  /** bus mastering on (PCI_COMMAND through the config region), then the device and WQ 0
   * through BAR0's command register */
  enable(): void {
    const c = new Uint8Array([0x06, 0x00]); // MEMORY | MASTER
    this.p.write(this.scr, c);
    this.p.pwrite(this.cdev, this.scr, 2, V.VFIO_PCI_CONFIG_REGION_INDEX * 2 ** VFIO_PCI_OFFSET_SHIFT + 4);
    const cmd = (c: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, c << 20, true);
      this.p.write(this.bar0 + DSA_REG_CMD, b);
    };
    cmd(IDXD_CMD_ENABLE_DEVICE);
    cmd(IDXD_CMD_ENABLE_WQ);
  }

  /** stage `desc` in this process's scratch memory and ENQCMD it to the portal */
  submit(desc: Uint8Array, portal = this.portal): ReturnType<TwinProcess["enqcmd"]> {
    const at = this.scr + 4096;
    this.p.write(at, desc);
    return this.p.enqcmd(portal, at);
  }
}

/** The VMM's KVM calls for guest ENQCMD: a VM, a memory slot, the proposed PASID ioctl. */
export class VmmPasid {
  readonly scr: number;
  vm = -1;
  constructor(readonly p: TwinProcess) {
    this.scr = p.mmap(4096);
  }

  createVm(): number {
    const kfd = this.p.open("/dev/kvm");
    if (kfd < 0) return kfd;
    this.vm = this.p.ioctl(kfd, K.KVM_CREATE_VM, 0);
    this.p.close(kfd);
    return this.vm;
  }

  /** KVM_SET_USER_MEMORY_REGION slot `slot`: gpa -> the VMM's va */
  slot(slot: number, gpa: bigint, va: number, size: number): number {
    this.p.write(
      this.scr,
      K.kvm_userspace_memory_region.encode({
        slot,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: BigInt(size),
        userspace_addr: BigInt(va),
      }),
    );
    return this.p.ioctl(this.vm, K.KVM_SET_USER_MEMORY_REGION, this.scr);
  }

  /** KVM_TWIN_SET_PASID_TRANSLATION (the twin's proposal) */
  link(vpasid: number, ppasid: number, via: { vfioFd: number; iommufd: number } | null = null): number {
    this.p.write(
      this.scr,
      kvm_twin_pasid_translation.encode({
        flags: 0,
        vpasid,
        ppasid,
        vfio_fd: via?.vfioFd ?? -1,
        iommufd: via?.iommufd ?? -1,
      }),
    );
    return this.p.ioctl(this.vm, KVM_TWIN_SET_PASID_TRANSLATION, this.scr);
  }

  unlink(vpasid: number): number {
    this.p.write(
      this.scr,
      kvm_twin_pasid_translation.encode({ flags: KVM_TWIN_PASID_CLEAR, vpasid, ppasid: 0, vfio_fd: -1, iommufd: -1 }),
    );
    return this.p.ioctl(this.vm, KVM_TWIN_SET_PASID_TRANSLATION, this.scr);
  }
}
