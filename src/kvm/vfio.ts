// The VFIO-KVM bridge pseudo-device, KVM_DEV_TYPE_VFIO (virt/kvm/vfio.c,
// Documentation/virt/kvm/devices/vfio.rst). Userspace adds and removes VFIO files (group
// fds, device fds from GET_DEVICE_FD, cdev fds) through attribute group KVM_DEV_VFIO_FILE;
// KVM keeps each file, tells VFIO its VM (set_kvm: drivers that need the VM at open, such as
// vGPU drivers, fail without it) and counts the VM as having non-coherent DMA while any
// added file's IOMMU does not enforce cache coherency (x86 then honours guest memory types).
// How it reaches VFIO is the swappable coupling of ./vfio_coupling.ts.
//
// Locks: kvm.lock (held by the framework around create and release) > kv.lock.

import { shouldFail } from "../kernel/fail_nth.js";
import { EBADF, EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ENXIO } from "../uapi/errno.js";
import * as K from "../uapi/kvm.js";
import { Mutex } from "../kernel/locks.js";
import { isGen, type KGen, type KRet } from "../kernel/sched.js";
import type { KvmDevice, KvmDeviceAttr, KvmDeviceOps } from "./kvm_device.js";
import type { VfioCoupling, VfioFileRef } from "./vfio_coupling.js";

/** struct kvm_vfio */
export class KvmVfio {
  readonly files: VfioFileRef[] = [];
  readonly lock: Mutex;
  noncoherent = false;
  constructor(readonly dev: KvmDevice) {
    this.lock = new Mutex(dev.kvm.k, "kvm_vfio.lock", `kvm_vfio.lock (vm ${dev.kvm.id})`);
  }
  get holder(): string {
    return `kvm-vfio of vm ${this.dev.kvm.id}`;
  }
}

/** kvm_vfio_ops for one kvm module instance, over `coupling`. */
export function kvmVfioOps(coupling: VfioCoupling): KvmDeviceOps {
  const ops: KvmDeviceOps = {
    name: "kvm-vfio",
    create(dev) {
      // kvm_vfio_create(): only one VFIO "device" per VM
      if (dev.kvm.devices.some((d) => d.ops === ops)) return -EBUSY;
      if (shouldFail()) return -ENOMEM; // kzalloc of the kvm_vfio (virt/kvm/vfio.c:372)
      dev.private_ = new KvmVfio(dev);
      return 0;
    },
    release: (dev) => release(coupling, dev),
    set_attr: (dev, attr) => setAttr(coupling, dev, attr),
    has_attr: (_dev, attr) => hasAttr(attr),
  };
  return ops;
}

/** the u64 attr values, made once (a BigInt() per compare would allocate per call) */
const FILE_ADD = BigInt(K.KVM_DEV_VFIO_FILE_ADD);
const FILE_DEL = BigInt(K.KVM_DEV_VFIO_FILE_DEL);

function hasAttr(attr: KvmDeviceAttr): number {
  // kvm_vfio_has_attr(): SET_SPAPR_TCE only with CONFIG_SPAPR_TCE_IOMMU (not on x86)
  if (attr.group === K.KVM_DEV_VFIO_FILE) {
    if (attr.attr === FILE_ADD || attr.attr === FILE_DEL) return 0;
  }
  return -ENXIO;
}

/** kvm_vfio_set_attr() + kvm_vfio_set_file() */
function* setAttr(coupling: VfioCoupling, dev: KvmDevice, attr: KvmDeviceAttr): KGen<number> {
  if (attr.group !== K.KVM_DEV_VFIO_FILE) return -ENXIO;
  const add = attr.attr === FILE_ADD;
  if (!add && attr.attr !== FILE_DEL) return -ENXIO;
  // get_user(fd, (int32_t __user *)attr->addr)
  const addr = attr.addr < 2n ** 53n ? Number(attr.addr) : 2 ** 53;
  const u = dev.kvm.k.current!.process!.mm.getU32(addr);
  if (u < 0) return -EFAULT;
  const fd = u | 0;
  return add ? yield* fileAdd(coupling, dev, fd) : yield* fileDel(coupling, dev, fd);
}

/** fget(): the file behind fd with a borrowed reference, or null (fd is unsigned there). */
function fget(dev: KvmDevice, fd: number) {
  const f = fd < 0 ? null : dev.kvm.k.current!.process!.files.lookup(fd);
  return f ? f.get() : null;
}

/** kvm_vfio_file_add() */
function* fileAdd(coupling: VfioCoupling, dev: KvmDevice, fd: number): KGen<number> {
  const kv = dev.private_ as KvmVfio;
  const file = fget(dev, fd);
  if (!file) return -EBADF;
  try {
    const ref = coupling.get(file, kv.holder);
    if (!ref) return -EINVAL; // not a VFIO group or device file
    yield* kv.lock.lock();
    try {
      if (kv.files.some((r) => coupling.same(r, ref))) {
        coupling.put(ref);
        return -EEXIST;
      }
      if (shouldFail()) {
        // kzalloc of the kvm_vfio_file (virt/kvm/vfio.c:169), before its get_file()
        coupling.put(ref);
        return -ENOMEM;
      }
      kv.files.push(ref);
      dev.kvm.arch.assignedDevices++; // kvm_arch_start_assignment()
      yield* path(coupling.setKvm(ref, dev.kvm));
      updateCoherency(coupling, kv);
      return 0;
    } finally {
      kv.lock.unlock();
    }
  } finally {
    file.put();
  }
}

/** kvm_vfio_file_del(): any open file is looked up; one never added is ENOENT. */
function* fileDel(coupling: VfioCoupling, dev: KvmDevice, fd: number): KGen<number> {
  const kv = dev.private_ as KvmVfio;
  const file = fget(dev, fd);
  if (!file) return -EBADF;
  try {
    yield* kv.lock.lock();
    try {
      let ret = -ENOENT;
      const i = kv.files.findIndex((r) => coupling.matches(r, file));
      if (i >= 0) {
        const [ref] = kv.files.splice(i, 1);
        dev.kvm.arch.assignedDevices--; // kvm_arch_end_assignment()
        yield* path(coupling.setKvm(ref!, null));
        // broken variant "file-del-no-fput": the entry leaves the list, its fput is forgotten
        if (!dev.kvm.k.broken.has("file-del-no-fput")) coupling.put(ref!);
        ret = 0;
      }
      updateCoherency(coupling, kv);
      return ret;
    } finally {
      kv.lock.unlock();
    }
  } finally {
    file.put();
  }
}

/** kvm_vfio_release(): on device fd close, with kvm.lock held. */
function* release(coupling: VfioCoupling, dev: KvmDevice): KGen<void> {
  const kv = dev.private_ as KvmVfio;
  for (const ref of kv.files.splice(0)) {
    yield* path(coupling.setKvm(ref, null));
    coupling.put(ref);
    dev.kvm.arch.assignedDevices--;
  }
  updateCoherency(coupling, kv);
  dev.private_ = null;
}

/**
 * kvm_vfio_update_coherency(): the device registers the VM's non-coherent DMA once, while
 * at least one file is non-coherent (stopping at the first one found).
 */
function updateCoherency(coupling: VfioCoupling, kv: KvmVfio): void {
  const noncoherent = kv.files.some((r) => !coupling.enforcedCoherent(r));
  if (noncoherent === kv.noncoherent) return;
  kv.noncoherent = noncoherent;
  if (noncoherent)
    kv.dev.kvm.arch.noncoherentDmaCount++; // kvm_arch_register_noncoherent_dma()
  else kv.dev.kvm.arch.noncoherentDmaCount--;
}

function* path(r: KRet<void>): KGen<void> {
  if (isGen(r)) yield* r;
}

/**
 * Broken variant "kvm-vfio-destroy-op" (fixed by 51cdc8bc120e): the KVM-VFIO device is torn
 * down by .destroy from kvm_destroy_vm(), i.e. by whoever drops the last VM reference, instead
 * of by .release when its fd closes. VFIO drops its VM reference (vfio_device_put_kvm) with
 * group_lock held, and with set_kvm taking group_lock (as it did then) that is a self-deadlock.
 */
export function destroyInsteadOfRelease(ops: KvmDeviceOps, coupling: VfioCoupling): KvmDeviceOps {
  const { release: _r, ...rest } = ops;
  return {
    ...rest,
    // a path: kvm_destroy_vm() drives it where the last VM reference went
    destroy: (dev) => (dev.private_ !== null ? release(coupling, dev) : undefined),
  };
}
