// The KVM device framework (virt/kvm/kvm_main.c: KVM_CREATE_DEVICE, the device fd and its
// attribute dispatch), with no VFIO file involved, once per coupling design.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, EFAULT, EIO, EMFILE, ENODEV, ENOTTY, ENXIO, EPERM } from "../../src/uapi/errno.js";
import type { TwinProcess } from "../../src/twin.js";
import * as K from "../../src/uapi/kvm.js";
import { COUPLING_DESIGNS } from "../../src/kvm/vfio_coupling.js";
import { boot, vms, Vmm } from "./harness.js";

const FILE = K.KVM_DEV_VFIO_FILE;

for (const design of COUPLING_DESIGNS) {
  describe(`KVM device framework (${design})`, () => {
    it("KVM_CREATE_DEVICE: TEST probes without writing fd, ENODEV for unknown types, EBUSY for a second", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      assert.deepEqual(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO, K.KVM_CREATE_DEVICE_TEST), { rc: 0, fd: -1 });
      for (const t of [0, 1, 5, 11, K.KVM_DEV_TYPE_MAX, 0xffffffff])
        assert.equal(v.createDevice(vm, t).rc, -ENODEV, `type ${t}`);
      assert.equal(v.createDevice(vm, 99, K.KVM_CREATE_DEVICE_TEST).rc, -ENODEV);
      const d = v.createDevice(vm, K.KVM_DEV_TYPE_VFIO, 0x2); // unknown flag bits ignored
      assert.equal(d.rc, 0);
      assert.ok(d.fd >= 0);
      assert.equal(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO).rc, -EBUSY);
      assert.equal(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO, K.KVM_CREATE_DEVICE_TEST).rc, 0);
      assert.equal(v.p.ioctl(vm, K.KVM_CREATE_DEVICE, 0), -EFAULT);
      assert.equal(v.p.close(d.fd), 0);
      assert.equal(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO).rc, 0, "a new one after close");
      // the one-per-VM rule is per VM
      const vm2 = v.createVm();
      assert.equal(v.createDevice(vm2, K.KVM_DEV_TYPE_VFIO).rc, 0);
    });

    it("KVM_CREATE_DEVICE reads the struct first: ENODEV from zeroed read-only memory, EFAULT unmapped", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      const ro = v.p.mmap(4096, { prot: 1 });
      // read-only memory holding zeros: type 0 -> ENODEV before any copy back
      assert.equal(v.p.ioctl(vm, K.KVM_CREATE_DEVICE, ro), -ENODEV);
      const vm2 = v.createVm();
      const page = v.p.mmap(4096);
      v.p.write(page, K.kvm_create_device.encode({ type: K.KVM_DEV_TYPE_VFIO, fd: 0, flags: 0 }));
      assert.equal(v.p.munmap(page + 0, 4096), 0);
      assert.equal(v.p.ioctl(vm2, K.KVM_CREATE_DEVICE, page), -EFAULT);
      assert.equal(vms(twin).at(-1)!.devices.length, 0, "nothing created");
    });

    it("no fd left for the device: EMFILE, the device is undone, the VM reference dropped", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      const kvm = vms(twin)[0]!;
      const files = (v.p as TwinProcess).proc.files;
      files.maxFds = 16;
      while (v.p.eventfd() >= 0);
      assert.equal(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO).rc, -EMFILE);
      assert.equal(kvm.devices.length, 0);
      assert.equal(kvm.holders.get("kvm device"), undefined);
      files.maxFds = 1024;
      assert.equal(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO).rc, 0, "not EBUSY: the failed one is gone");
      assert.deepEqual(twin.kernel.bugs, []);
    });

    it("attribute dispatch: HAS, GET -> EPERM, ENXIO for unknown group/attr, EFAULT, ENOTTY", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const dev = v.vfioDevice(v.createVm());
      assert.equal(v.has(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD), 0);
      assert.equal(v.has(dev, FILE, K.KVM_DEV_VFIO_FILE_DEL), 0);
      assert.equal(v.has(dev, FILE, K.KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE), -ENXIO);
      assert.equal(v.has(dev, FILE, 1n + (1n << 32n)), -ENXIO);
      assert.equal(v.has(dev, 2, K.KVM_DEV_VFIO_FILE_ADD), -ENXIO);
      assert.equal(v.get(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD), -EPERM);
      assert.equal(v.p.ioctl(dev, K.KVM_GET_DEVICE_ATTR, 0), -EPERM, "no accessor: EPERM before the copy");
      assert.equal(v.p.ioctl(dev, K.KVM_HAS_DEVICE_ATTR, 0), -EFAULT);
      assert.equal(v.p.ioctl(dev, K.KVM_SET_DEVICE_ATTR, 0), -EFAULT);
      assert.equal(v.set(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD, { addr: 0 }), -EFAULT);
      assert.equal(v.set(dev, FILE, K.KVM_DEV_VFIO_FILE_DEL, { addr: 0x7ff0000000 }), -EFAULT);
      assert.equal(v.set(dev, FILE, K.KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE, { addr: 0 }), -ENXIO);
      assert.equal(v.set(dev, FILE, 9, 0), -ENXIO);
      assert.equal(v.set(dev, 0, K.KVM_DEV_VFIO_FILE_ADD, 0), -ENXIO);
      assert.equal(v.p.ioctl(dev, K.KVM_CREATE_VM, 0), -ENOTTY);
      assert.equal(v.p.ioctl(dev, K.KVM_SET_USER_MEMORY_REGION, v.scratch), -ENOTTY);
    });

    it("VM and device ioctls from another process are EIO (kvm->mm != current->mm)", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      const dev = v.vfioDevice(vm);
      const other = new Vmm(twin.spawn());
      const vm2 = v.p.sendFd(vm, other.p);
      const dev2 = v.p.sendFd(dev, other.p);
      assert.equal(other.has(dev2, FILE, K.KVM_DEV_VFIO_FILE_ADD), -EIO);
      assert.equal(other.createDevice(vm2, K.KVM_DEV_TYPE_VFIO, K.KVM_CREATE_DEVICE_TEST).rc, -EIO);
    });

    it("KVM built without CONFIG_KVM_VFIO: KVM_DEV_TYPE_VFIO is ENODEV, TEST too", () => {
      const twin = boot(design, { kvmVfio: false });
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      assert.equal(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO, K.KVM_CREATE_DEVICE_TEST).rc, -ENODEV);
      assert.equal(v.createDevice(vm, K.KVM_DEV_TYPE_VFIO).rc, -ENODEV);
    });
  });
}
