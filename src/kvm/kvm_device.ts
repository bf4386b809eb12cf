// KVM's device framework (virt/kvm/kvm_main.c): KVM_CREATE_DEVICE on a VM fd makes an
// in-kernel device of a registered type and returns an anonymous-inode fd for it; the fd
// takes KVM_SET/GET/HAS_DEVICE_ATTR. On x86 the only registered type is KVM_DEV_TYPE_VFIO
// (when KVM is built with CONFIG_KVM_VFIO).
//
// Lifetime: the device fd holds a reference on its VM ("kvm device"), so a VM outlives its
// device fds. Closing the fd runs ops.release (with kvm.lock held) and drops that reference;
// devices without a release op stay on kvm.devices until the VM dies (kvm_destroy_devices).

import { shouldFail } from "../kernel/fail_nth.js";
import { EFAULT, EIO, ENODEV, ENOMEM, ENOTTY, EPERM } from "../uapi/errno.js";
import * as K from "../uapi/kvm.js";
import type { File, FileOperations } from "../kernel/fs.js";
import { O_CLOEXEC, O_RDWR } from "../kernel/fs.js";
import type { Module } from "../kernel/module.js";
import { isGen, type KGen, type KRet } from "../kernel/sched.js";
import { installFile } from "../kernel/syscalls.js";
import type { Kvm } from "./kvm.js";

export type KvmDeviceAttr = ReturnType<typeof K.kvm_device_attr.decode>;

/** struct kvm_device_ops (include/linux/kvm_host.h). */
export interface KvmDeviceOps {
  readonly name: string;
  /** called with kvm.lock held; 0 or -errno */
  create(dev: KvmDevice, type: number): number;
  init?(dev: KvmDevice): void;
  /** on fd close, with kvm.lock held; frees the device */
  release?(dev: KvmDevice): KRet<void>;
  /** at VM destruction, for devices still on kvm.devices (may sleep) */
  destroy?(dev: KvmDevice): KRet<void>;
  set_attr?(dev: KvmDevice, attr: KvmDeviceAttr): KRet<number>;
  get_attr?(dev: KvmDevice, attr: KvmDeviceAttr): KRet<number>;
  has_attr?(dev: KvmDevice, attr: KvmDeviceAttr): KRet<number>;
  ioctl?(dev: KvmDevice, cmd: number, arg: number): KRet<number>;
}

/** kvm_device_ops_table: indexed by KVM_DEV_TYPE_*. */
export type KvmDeviceOpsTable = (KvmDeviceOps | null)[];

export function newDeviceOpsTable(): KvmDeviceOpsTable {
  return new Array<KvmDeviceOps | null>(K.KVM_DEV_TYPE_MAX).fill(null);
}

/** struct kvm_device. */
export class KvmDevice {
  private_: unknown = null;
  constructor(
    readonly ops: KvmDeviceOps,
    readonly kvm: Kvm,
  ) {}
}

const DEVICE_HOLDER = "kvm device";

function* run<T>(r: KRet<T>): KGen<T> {
  return isGen(r) ? yield* r : r;
}

/** kvm_device_fops: one per kvm module instance (the fd pins the module). */
export function kvmDeviceFops(owner: Module): FileOperations {
  return {
    owner,
    name: "kvm-device",
    unlocked_ioctl: (file, cmd, arg) => kvmDeviceIoctl(file, cmd, arg),
    release: (file) => kvmDeviceRelease(file),
  };
}

/** kvm_device_ioctl() */
function kvmDeviceIoctl(file: File, cmd: number, arg: number): KRet<number> {
  const dev = file.privateData as KvmDevice;
  const k = dev.kvm.k;
  if (dev.kvm.mm !== k.current?.process?.mm) return -EIO;
  switch (cmd) {
    case K.KVM_SET_DEVICE_ATTR:
      return deviceIoctlAttr(dev, dev.ops.set_attr, arg);
    case K.KVM_GET_DEVICE_ATTR:
      return deviceIoctlAttr(dev, dev.ops.get_attr, arg);
    case K.KVM_HAS_DEVICE_ATTR:
      return deviceIoctlAttr(dev, dev.ops.has_attr, arg);
    default:
      return dev.ops.ioctl ? dev.ops.ioctl(dev, cmd, arg) : -ENOTTY;
  }
}

/** kvm_device_ioctl_attr(): no accessor -> EPERM before the argument is even read. */
function deviceIoctlAttr(
  dev: KvmDevice,
  accessor: ((dev: KvmDevice, attr: KvmDeviceAttr) => KRet<number>) | undefined,
  arg: number,
): KRet<number> {
  if (!accessor) return -EPERM;
  const attr = dev.kvm.k.current!.process!.mm.readStruct(K.kvm_device_attr, arg);
  if (attr === null) return -EFAULT;
  return accessor.call(dev.ops, dev, attr);
}

/** kvm_device_release() */
function* kvmDeviceRelease(file: File): KGen<void> {
  const dev = file.privateData as KvmDevice;
  const kvm = dev.kvm;
  if (dev.ops.release) {
    yield* kvm.lock.lock();
    try {
      removeDevice(kvm, dev);
      yield* run(dev.ops.release(dev));
    } finally {
      kvm.lock.unlock();
    }
  }
  yield* kvm.putPath(DEVICE_HOLDER); // the last VM reference runs kvm_destroy_vm() here
}

function removeDevice(kvm: Kvm, dev: KvmDevice): void {
  const i = kvm.devices.indexOf(dev);
  if (i >= 0) kvm.devices.splice(i, 1);
}

/** KVM_CREATE_DEVICE in kvm_vm_ioctl() around kvm_ioctl_create_device(). */
export function* kvmVmIoctlCreateDevice(
  kvm: Kvm,
  table: KvmDeviceOpsTable,
  fops: FileOperations,
  arg: number,
): KGen<number> {
  const mm = kvm.k.current!.process!.mm;
  const b = mm.copyFromUser(arg, K.kvm_create_device.size);
  if (typeof b === "number") return -EFAULT;
  const cd = K.kvm_create_device.decode(b);
  const r = yield* createDevice(kvm, table, fops, cd);
  if (r !== 0) return r;
  // with the TEST flag the struct goes back unchanged; a failed copy leaves the new fd open
  if (mm.copyToUser(arg, K.kvm_create_device.encode(cd)) < 0) return -EFAULT;
  return 0;
}

/** kvm_ioctl_create_device(): 0 with cd.fd set, or -errno. Unknown flag bits are ignored. */
function* createDevice(
  kvm: Kvm,
  table: KvmDeviceOpsTable,
  fops: FileOperations,
  cd: { type: number; fd: number; flags: number },
): KGen<number> {
  const ops = cd.type < table.length ? table[cd.type] : null;
  if (!ops) return -ENODEV;
  if (cd.flags & K.KVM_CREATE_DEVICE_TEST) return 0;

  if (shouldFail()) return -ENOMEM; // kzalloc of the kvm_device (kvm_main.c:4896)
  const dev = new KvmDevice(ops, kvm);
  yield* kvm.lock.lock();
  let ret: number;
  try {
    ret = ops.create(dev, cd.type);
    if (ret >= 0) kvm.devices.unshift(dev); // list_add_rcu: at the head
  } finally {
    kvm.lock.unlock();
  }
  if (ret < 0) return ret;
  ops.init?.(dev);

  kvm.get(DEVICE_HOLDER);
  // anon_inode_getfd() (kvm_main.c:4917): the struct file's allocation may fail
  const f = shouldFail() ? -ENOMEM : kvm.k.allocFile(fops, `anon_inode:${ops.name}`, O_RDWR | O_CLOEXEC);
  if (typeof f === "number") {
    kvm.put(DEVICE_HOLDER); // kvm_put_kvm_no_destroy(): the VM file still holds it
    yield* kvm.lock.lock();
    try {
      removeDevice(kvm, dev);
      if (ops.release) yield* run(ops.release(dev));
    } finally {
      kvm.lock.unlock();
    }
    if (ops.destroy) yield* run(ops.destroy(dev));
    return f;
  }
  f.fmodePread = false; // anon_inode_getfd(): no FMODE_PREAD, pread is ESPIPE
  f.privateData = dev;
  // on EMFILE the new file is dropped, and its release (kvmDeviceRelease) undoes the rest
  const fd = installFile(kvm.k.current!.process!, f);
  if (fd < 0) return fd;
  cd.fd = fd;
  return 0;
}
