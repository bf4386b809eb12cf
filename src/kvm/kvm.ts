// struct kvm: one virtual machine (virt/kvm/kvm_main.c). Refcounted: the VM file holds a
// reference, each KVM device holds one; the VM is destroyed when the last goes. The VM pins
// the kvm module for its whole life, as kvm_create_vm() does with __module_get.

import { EFAULT, EINVAL, EIO, ENOTTY } from "../uapi/errno.js";
import * as K from "../uapi/kvm.js";
import type { File, FileOperations } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import { RefCounted } from "../kernel/kref.js";
import { Mutex } from "../kernel/locks.js";
import type { MmStruct } from "../kernel/mm.js";
import type { Module } from "../kernel/module.js";
import type { KRet } from "../kernel/sched.js";
import { type KvmDevice, type KvmDeviceOpsTable, kvmVmIoctlCreateDevice } from "./kvm_device.js";
import { checkExtension } from "./kvm_main.js";

let nextVmId = 1;

export interface MemSlot {
  slot: number;
  flags: number;
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
}

/** What a VM needs from its kvm module instance. */
export interface KvmModuleLinks {
  readonly module: Module;
  /** kvm_device_ops_table */
  readonly deviceOps: KvmDeviceOpsTable;
  /** kvm_device_fops */
  readonly deviceFops: FileOperations;
}

export class Kvm extends RefCounted {
  readonly id = nextVmId++;
  readonly memslots = new Map<number, MemSlot>();
  /** kvm->mm: VM and device ioctls from any other address space are EIO */
  readonly mm: MmStruct;
  /** kvm->lock */
  readonly lock: Mutex;
  /** kvm->devices, newest first (list_add_rcu) */
  readonly devices: KvmDevice[] = [];
  /** struct kvm_arch, the x86 counters device assignment drives (arch/x86/kvm/x86.c) */
  readonly arch = {
    /** kvm_arch_start_assignment()/end: VFIO files added to the KVM-VFIO device */
    assignedDevices: 0,
    /** kvm_arch_register_noncoherent_dma()/unregister */
    noncoherentDmaCount: 0,
  };
  readonly module: Module;
  /** set by the kvm module to forget the VM when it is destroyed */
  onDestroy: (() => void) | null = null;
  /** hooks run at VM destruction (devices register their destroy here) */
  readonly destroyHooks: (() => void)[] = [];
  readonly vmFops: FileOperations;

  constructor(
    k: Kernel,
    private readonly links: KvmModuleLinks,
  ) {
    super(k, "kvm");
    const module = links.module;
    this.module = module;
    this.mm = k.current!.process!.mm;
    this.lock = new Mutex(k, "kvm.lock", `kvm.lock (vm ${this.id})`);
    k.modules.tryGet(module, `kvm vm ${this.id}`);
    this.vmFops = {
      owner: module,
      name: "kvm-vm",
      release: (file: File) => (file.privateData as Kvm).put("vm file"),
      unlocked_ioctl: (file, cmd, arg) => (file.privateData as Kvm).vmIoctl(cmd, arg),
    };
  }

  describe(): string {
    return `kvm vm ${this.id}`;
  }

  protected release(): void {
    // kvm_destroy_vm() -> kvm_destroy_devices(): devices without a release op end here
    for (const dev of this.devices.splice(0)) dev.ops.destroy?.(dev);
    for (const h of this.destroyHooks.splice(0)) h();
    this.onDestroy?.();
    this.k.modules.put(this.module, `kvm vm ${this.id}`);
  }

  /** kvm_vm_ioctl(): the generic VM ioctls; unknown ones fall to the arch, which says ENOTTY. */
  vmIoctl(cmd: number, arg: number): KRet<number> {
    if (this.mm !== this.k.current?.process?.mm) return -EIO;
    switch (cmd) {
      case K.KVM_CREATE_DEVICE:
        return kvmVmIoctlCreateDevice(this, this.links.deviceOps, this.links.deviceFops, arg);
      case K.KVM_CHECK_EXTENSION:
        return checkExtension(this, arg);
      case K.KVM_SET_USER_MEMORY_REGION:
        return this.setUserMemoryRegion(arg);
      default: {
        const ext = this.extraIoctl?.(cmd, arg);
        return ext ?? -ENOTTY;
      }
    }
  }

  /** VM ioctls added by other parts of kvm (the device framework): null when not theirs. */
  extraIoctl: ((cmd: number, arg: number) => number | null) | null = null;

  /** KVM_SET_USER_MEMORY_REGION as bookkeeping (kvm_set_memory_region's checks). */
  private setUserMemoryRegion(arg: number): number {
    const mm = this.k.current!.process!.mm;
    const b = mm.copyFromUser(arg, K.kvm_userspace_memory_region.size);
    if (typeof b === "number") return -EFAULT;
    const r = K.kvm_userspace_memory_region.decode(b);
    const valid = K.KVM_MEM_LOG_DIRTY_PAGES | K.KVM_MEM_READONLY;
    if (r.flags & ~valid) return -EINVAL;
    const as = r.slot >>> 16;
    const id = r.slot & 0xffff;
    if (as !== 0 || id >= KVM_USER_MEM_SLOTS_) return -EINVAL;
    const page = 4095n;
    if (r.memory_size & page || r.guest_phys_addr & page || r.userspace_addr & page) return -EINVAL;
    if (r.memory_size === 0n) {
      this.memslots.delete(id);
      return 0;
    }
    if (r.userspace_addr + r.memory_size > BigInt(2 ** 47)) return -EINVAL;
    for (const s of this.memslots.values()) {
      if (s.slot === id) continue;
      if (r.guest_phys_addr < s.guestPhysAddr + s.memorySize && s.guestPhysAddr < r.guest_phys_addr + r.memory_size) {
        return -17; // EEXIST: overlaps another slot
      }
    }
    this.memslots.set(id, {
      slot: id,
      flags: r.flags,
      guestPhysAddr: r.guest_phys_addr,
      memorySize: r.memory_size,
      userspaceAddr: r.userspace_addr,
    });
    return 0;
  }
}

const KVM_USER_MEM_SLOTS_ = 32764;
