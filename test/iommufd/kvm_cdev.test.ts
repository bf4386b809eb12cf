// The device cdev with KVM: KVM_DEV_VFIO_FILE_ADD accepts cdev fds, bound or not, and a
// driver that needs KVM at open time (the test mdev standing for GVT-g) can only be bound
// after its cdev was added to a VM (the kvm is taken at BIND, vfio_df_get_kvm_safe()).
// Emulated devices bind through an iommufd access object (drivers/vfio/iommufd.c
// vfio_iommufd_emulated_bind()).

import { it } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, EEXIST, ENOENT, ESRCH } from "../../src/uapi/errno.js";
import * as K from "../../src/uapi/kvm.js";
import { createTwin } from "../../src/twin.js";
import { checkInvariants, holders } from "../../src/check/invariants.js";
import { VfioCore, vfioDeviceGetKvmSafe, vfioDevicePutKvm } from "../../src/vfio/vfio_main.js";
import { TypedProcess } from "../../src/vmm/typed.js";
import {
  type Env,
  teardown,
  ioasAlloc,
  map,
  destroy,
  rawFields as raw,
  checkAll,
  bindIommufd as bind,
  attachPt as attach,
} from "./helpers.js";

function env(): Env {
  const twin = createTwin();
  assert.equal(twin.kernel.modules.load("vfio_kvm_gated_mdev"), 0);
  const p = twin.spawn();
  return { twin, p, tp: new TypedProcess(p), fd: p.open("/dev/iommu"), buf: p.mmap(1 << 20) };
}

function kvmVfioDevice(e: Env): number {
  const kvm = e.p.open("/dev/kvm");
  const vm = e.p.ioctl(kvm, K.KVM_CREATE_VM, 0);
  assert.ok(vm >= 0);
  const r = raw(e, K.KVM_CREATE_DEVICE, [["u32", 0, K.KVM_DEV_TYPE_VFIO]], undefined, vm);
  assert.equal(r.rc, 0);
  assert.equal(e.p.close(kvm), 0);
  return Number(r.get("u32", 4));
}
function fileOp(e: Env, dev: number, attr: number, fd: number): number {
  const at = e.tp.scratchAddr() + 0x6000;
  e.p.write(at, new Uint8Array(new Int32Array([fd]).buffer));
  return raw(
    e,
    K.KVM_SET_DEVICE_ATTR,
    [
      ["u32", 4, K.KVM_DEV_VFIO_FILE],
      ["u64", 8, attr],
      ["u64", 16, at],
    ],
    undefined,
    dev,
  ).rc;
}

it("FILE_ADD takes cdev fds, bound or not; a KVM-needing driver binds only after FILE_ADD", () => {
  const e = env();
  const id = ioasAlloc(e);
  assert.equal(map(e, id, 0x100000n, 0x1000n).rc, 0);
  const kdev = kvmVfioDevice(e);
  // the edu device's cdev, unbound then bound and attached
  const c0 = e.p.open("/dev/vfio/devices/vfio0");
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_ADD, c0), 0);
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_ADD, c0), -EEXIST);
  assert.deepEqual(bind(e, c0), { rc: 0, devid: 2 });
  assert.equal(attach(e, c0, id).rc, 0);
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_DEL, c0), 0);
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_DEL, c0), -ENOENT);
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_ADD, c0), 0);
  // the mdev that needs KVM: its cdev is vfio1
  const c1 = e.p.open("/dev/vfio/devices/vfio1");
  assert.ok(c1 >= 0);
  assert.deepEqual(bind(e, c1), { rc: -ESRCH, devid: 0 }, "open_device finds no kvm");
  checkAll(e);
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_ADD, c1), 0);
  const { rc, devid } = bind(e, c1);
  assert.equal(rc, 0);
  assert.equal(devid, 4, "the access object's id (3 is the edu device's HWPT)");
  assert.deepEqual(attach(e, c1, id), { rc: 0, pt: id }, "an emulated device attaches to the IOAS itself");
  assert.deepEqual(attach(e, c1, 3), { rc: -ENOENT, pt: 3 }, "not to a HWPT");
  assert.equal(destroy(e, id), -EBUSY);
  assert.equal(destroy(e, devid), -EBUSY, "the driver holds its access");
  checkAll(e);
  assert.equal(e.p.close(c1), 0);
  assert.equal(destroy(e, devid), -EBUSY, "KVM still holds the cdev file, so it stays bound");
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_DEL, c1), -9, "the fd is gone (EBADF)");
  assert.equal(e.p.close(kdev), 0, "the KVM VFIO device keeps files until the VM goes");
  teardown(e);
});

it("a second BIND of the same device through another cdev fd fails without leaking the VM (issue 12 #4)", () => {
  // Linux 6.12 took KVM before vfio_df_open() and, when that failed, put the device's only
  // pointer: the first BIND's reference leaked. The fixed kernel gets KVM only at open count 0.
  const e = env();
  const k = e.twin.kernel;
  const kdev = kvmVfioDevice(e);
  const a = e.p.open("/dev/vfio/devices/vfio0");
  const b = e.p.open("/dev/vfio/devices/vfio0");
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_ADD, a), 0);
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_ADD, b), 0);
  assert.equal(bind(e, a).rc, 0);
  assert.equal(bind(e, b).rc, -22, "one device cannot be opened twice through cdevs (EINVAL)");
  checkAll(e);
  // the first bind still holds KVM for the driver; unbinding (its last close) puts it
  assert.equal(e.p.close(a), 0);
  assert.equal(e.p.close(b), 0);
  assert.equal(e.p.close(kdev), 0);
  teardown(e);
  assert.deepEqual(
    [...k.objects].filter((o) => o.kind === "kvm").map((o) => `${o.describe()}: ${holders(o)}`),
    [],
    "the VM is gone after exit",
  );
});

it("the invariant check sees 6.12's #4 leak the moment it happens, not only at exit (issue 12)", () => {
  // Replay 6.12's failed second BIND on the bound device: vfio_df_get_kvm_safe() before the
  // open fails, then vfio_device_put_kvm(): one reference is put, and the pointer the first
  // BIND's reference lived in is cleared. The count still equals its named holders; only the
  // owner (the device's kvm pointer) says the reference is no longer kept anywhere.
  const e = env();
  const k = e.twin.kernel;
  const kdev = kvmVfioDevice(e);
  const a = e.p.open("/dev/vfio/devices/vfio0");
  assert.equal(fileOp(e, kdev, K.KVM_DEV_VFIO_FILE_ADD, a), 0);
  assert.equal(bind(e, a).rc, 0);
  checkAll(e);
  const vdev = VfioCore.of(k)!.devices.find((d) => d.kvm !== null)!;
  const vm = vdev.kvm;
  vfioDeviceGetKvmSafe(vdev, vm);
  vfioDevicePutKvm(vdev);
  const v = checkInvariants(k);
  assert.deepEqual(
    v.map((x) => x.check),
    ["holder-not-in-owner"],
    v.map((x) => x.message).join("\n"),
  );
  assert.match(v[0]!.message, /kvm_get_kvm_safe x1, but 0 found in the kvm pointers of VFIO devices/);
});
