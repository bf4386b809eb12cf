// A VMM's passthrough setup, as QEMU performs it with the legacy VFIO path: a VM with guest
// RAM in a memslot, the device's group attached to a type1 container whose IOVA space is
// the guest's physical address space (guest RAM mapped at IOVA = GPA), and the group added
// to the VM's KVM-VFIO device. Written only against the raw/typed syscall API.

import type { UserProcess } from "../backend/backend.js";
import * as K from "../uapi/kvm.js";
import { TypedProcess } from "./typed.js";
import { type LegacySession, vfioLegacySetup, vfioLegacyTeardown } from "./vfio_legacy.js";

export interface VmOptions {
  /** the PCI device to assign (its BDF) */
  bdf: string;
  /** guest RAM in bytes, mapped at GPA 0 and IOVA 0 (default 2 MiB) */
  ramSize?: number;
}

export interface PassthroughVm {
  readonly kvm: number;
  readonly vm: number;
  /** the KVM-VFIO device fd */
  readonly kvmVfio: number;
  /** the guest RAM's address in the VMM's memory */
  readonly ram: number;
  readonly ramSize: number;
  readonly vfio: LegacySession;
}

export function startVm(p: UserProcess, o: VmOptions): PassthroughVm {
  const t = new TypedProcess(p);
  const ramSize = o.ramSize ?? 2 << 20;
  const kvm = t.open("/dev/kvm");
  if (t.ioctlInt(kvm, K.KVM_GET_API_VERSION) !== K.KVM_API_VERSION) throw new Error("KVM API version mismatch");
  const vm = t.ioctlInt(kvm, K.KVM_CREATE_VM, 0);
  const ram = p.mmap(ramSize);
  if (ram < 0) throw new Error(`mmap of guest RAM: ${ram}`);
  t.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, K.kvm_userspace_memory_region, {
    slot: 0,
    guest_phys_addr: 0n,
    memory_size: BigInt(ramSize),
    userspace_addr: BigInt(ram),
  });
  const dev = t.ioctl(vm, K.KVM_CREATE_DEVICE, K.kvm_create_device, { type: K.KVM_DEV_TYPE_VFIO });
  const vfio = vfioLegacySetup(p, { device: o.bdf, maps: [{ vaddr: ram, iova: 0n, size: BigInt(ramSize) }] });
  kvmVfioFile(t, dev.fd, K.KVM_DEV_VFIO_FILE_ADD, vfio.group);
  return { kvm, vm, kvmVfio: dev.fd, ram, ramSize, vfio };
}

/** KVM_DEV_VFIO_FILE_ADD / _DEL of a VFIO file (kvm_device_attr.addr -> an s32 fd). */
export function kvmVfioFile(t: TypedProcess, kvmVfio: number, attr: number, fd: number): void {
  const fdBytes = new Uint8Array(4);
  new DataView(fdBytes.buffer).setInt32(0, fd, true);
  const addr = t.stage(fdBytes, 0x8000);
  t.ioctl(kvmVfio, K.KVM_SET_DEVICE_ATTR, K.kvm_device_attr, {
    group: K.KVM_DEV_VFIO_FILE,
    attr: BigInt(attr),
    addr: BigInt(addr),
  });
}

/** Tear down in QEMU's order: the file leaves KVM, then VFIO closes, then the VM. */
export function stopVm(p: UserProcess, v: PassthroughVm): void {
  const t = new TypedProcess(p);
  kvmVfioFile(t, v.kvmVfio, K.KVM_DEV_VFIO_FILE_DEL, v.vfio.group);
  vfioLegacyTeardown(p, v.vfio);
  p.close(v.kvmVfio);
  p.close(v.vm);
  p.close(v.kvm);
  p.munmap(v.ram, v.ramSize);
}
