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
import { isGen, type KGen, type KRet, runToEnd } from "../kernel/sched.js";
import { type KvmDevice, type KvmDeviceOpsTable, kvmVmIoctlCreateDevice } from "./kvm_device.js";
import { checkExtension } from "./kvm_main.js";
import { KVM_TWIN_SET_PASID_TRANSLATION, kvmVmIoctlSetPasidTranslation } from "./enqcmd.js";

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
  /** VM numbers for reports, per kvm module instance (so a twin's output is repeatable) */
  nextVmId: number;
  /** kvm_lock: the VM list's mutex */
  readonly kvmLock: Mutex;
}

export class Kvm extends RefCounted {
  readonly id: number;
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
  /** set by the kvm module to forget the VM when it is destroyed (list_del(&kvm->vm_list)) */
  onDestroy: (() => void) | null = null;
  /** the kvm module's kvm_lock (the VM list), taken by kvm_destroy_vm() */
  readonly kvmLock: Mutex;
  /** the last reference went (users_count is 0): kvm_destroy_vm() runs or ran, and
   * kvm_get_kvm_safe() fails from here on */
  destroying = false;
  private destroyed = false;
  readonly vmFops: FileOperations;

  constructor(
    k: Kernel,
    private readonly links: KvmModuleLinks,
  ) {
    super(k, "kvm");
    this.id = links.nextVmId++;
    const module = links.module;
    this.module = module;
    this.mm = k.current!.process!.mm;
    this.kvmLock = links.kvmLock;
    this.lock = new Mutex(k, "kvm.lock", `kvm.lock (vm ${this.id})`);
    k.modules.tryGet(module, `kvm vm ${this.id}`);
    this.vmFops = {
      owner: module,
      name: "kvm-vm",
      release: (file: File) => (file.privateData as Kvm).putPath("vm file"),
      unlocked_ioctl: (file, cmd, arg) => (file.privateData as Kvm).vmIoctl(cmd, arg),
    };
  }

  protected override poisonable(): boolean {
    return true;
  }

  describe(): string {
    return `kvm vm ${this.id}`;
  }

  /**
   * kvm_put_kvm() as a path: a put that is not the last is a plain put; the last runs
   * kvm_destroy_vm() where the caller is, with its sleeps (kvm_lock, the device destroy ops)
   * as yield points, and only then frees the VM. From the moment the count would reach zero
   * the VM is "destroying": kvm_get_kvm_safe() refuses it, as refcount_inc_not_zero() does.
   */
  *putPath(holder: string): KGen<void> {
    if (this.refs !== 1 || this.destroying) {
      this.put(holder);
      return;
    }
    this.destroying = true;
    // the refcount reached zero: a step that reads the VM after this is ordered with it
    this.k.footprint?.released.push(this);
    yield* this.destroyVm();
    this.destroyed = true;
    this.put(holder);
  }

  /**
   * kvm_destroy_vm() (virt/kvm/kvm_main.c): the uevent and the VM list under kvm_lock,
   * kvm_destroy_devices() (each device still on kvm->devices: list_del, then ops->destroy,
   * which may sleep), and the module reference last.
   */
  private *destroyVm(): KGen<void> {
    this.destroying = true;
    // kvm_uevent_notify_change(KVM_EVENT_DESTROY_VM), then list_del(&kvm->vm_list)
    yield* this.kvmLock.lock();
    try {
      this.onDestroy?.();
    } finally {
      this.kvmLock.unlock();
    }
    // kvm_destroy_devices(): devices without a release op end here
    for (let dev = this.devices.shift(); dev; dev = this.devices.shift()) {
      const r = dev.ops.destroy?.(dev);
      if (isGen(r)) yield* r;
    }
    this.k.modules.put(this.module, `kvm vm ${this.id}`);
  }

  protected release(): void {
    // a put outside a path (VFIO's kvm_put_kvm, which the twin's VFIO makes synchronously)
    // runs kvm_destroy_vm() at once: a sleep that would have to wait there is a deadlock splat
    if (!this.destroyed) runToEnd(this.k, this.destroyVm());
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
      case KVM_TWIN_SET_PASID_TRANSLATION: // the twin's proposal (./enqcmd.ts): ENOTTY on 6.12
        return kvmVmIoctlSetPasidTranslation(this, arg);
      default:
        return -ENOTTY;
    }
  }

  /**
   * KVM_SET_USER_MEMORY_REGION as bookkeeping, with the checks of virt/kvm/kvm_main.c:
   * kvm_vm_ioctl_set_memory_region() and __kvm_set_memory_region(). Slots are keyed by the
   * full slot value (address space << 16 | id); x86 with CONFIG_KVM_SMM has two address spaces.
   */
  private setUserMemoryRegion(arg: number): number {
    const mm = this.k.current!.process!.mm;
    const r = mm.readStruct(K.kvm_userspace_memory_region, arg);
    if (r === null) return -EFAULT;
    const id = r.slot & 0xffff;
    const as = r.slot >>> 16;
    if (id >= KVM_USER_MEM_SLOTS_) return -EINVAL;
    // check_memory_region_flags(): no guest_memfd on a default VM
    if (r.flags & ~(K.KVM_MEM_LOG_DIRTY_PAGES | K.KVM_MEM_READONLY)) return -EINVAL;
    const size = r.memory_size;
    const gpa = r.guest_phys_addr;
    const uaddr = r.userspace_addr;
    if (size & 4095n || gpa & 4095n || uaddr & 4095n) return -EINVAL;
    // access_ok(uaddr, size): the end may not pass USER_PTR_MAX (TASK_SIZE_MAX, 4-level paging)
    const end = (uaddr + size) & U64_MASK;
    if (end > USER_PTR_MAX || end < uaddr) return -EINVAL;
    if (as >= KVM_ADDRESS_SPACES) return -EINVAL;
    if (((gpa + size) & U64_MASK) < gpa) return -EINVAL;
    if (size >> 12n > KVM_MEM_MAX_NR_PAGES) return -EINVAL;
    const old = this.memslots.get(r.slot);
    if (size === 0n) {
      if (!old) return -EINVAL;
      this.memslots.delete(r.slot);
      return 0;
    }
    if (old) {
      // an existing slot may move or change LOG_DIRTY_PAGES, nothing else
      if (uaddr !== old.userspaceAddr || size !== old.memorySize || (r.flags ^ old.flags) & K.KVM_MEM_READONLY) {
        return -EINVAL;
      }
      if (gpa === old.guestPhysAddr) {
        old.flags = r.flags; // KVM_MR_FLAGS_ONLY, or nothing to change
        return 0;
      }
    }
    for (const s of this.memslots.values()) {
      if (s.slot === r.slot || s.slot >>> 16 !== as) continue;
      if (gpa < s.guestPhysAddr + s.memorySize && s.guestPhysAddr < gpa + size) return -17; // EEXIST
    }
    this.memslots.set(r.slot, {
      slot: r.slot,
      flags: r.flags,
      guestPhysAddr: gpa,
      memorySize: size,
      userspaceAddr: uaddr,
    });
    return 0;
  }
}

const KVM_USER_MEM_SLOTS_ = 32764;
/** KVM_MAX_NR_ADDRESS_SPACES on x86 with CONFIG_KVM_SMM (Debian's and the oracle's config) */
const KVM_ADDRESS_SPACES = 2;
const KVM_MEM_MAX_NR_PAGES = (1n << 31n) - 1n;
const USER_PTR_MAX = 2n ** 47n - 4096n;
const U64_MASK = 2n ** 64n - 1n;
