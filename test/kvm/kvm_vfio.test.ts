// The KVM device framework and the KVM-VFIO pseudo-device, run once per coupling design:
// the uAPI results must not depend on the design.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  EBADF,
  EBUSY,
  EEXIST,
  EFAULT,
  EINVAL,
  EIO,
  ENODEV,
  ENOENT,
  ENOTTY,
  ENXIO,
  EPERM,
  ESRCH,
} from "../../src/uapi/errno.js";
import * as K from "../../src/uapi/kvm.js";
import { VFIO_GROUP_GET_DEVICE_FD } from "../../src/uapi/vfio.js";
import { COUPLING_DESIGNS } from "../../src/kvm/vfio_coupling.js";
import type { KvmVfio } from "../../src/kvm/vfio.js";
import { checkInvariants, formatViolations } from "../../src/check/invariants.js";
import type { Twin } from "../../src/twin.js";
import { boot, fileHolders, live, vms, Vmm } from "./harness.js";

function invariants(twin: Twin): void {
  const v = checkInvariants(twin.kernel);
  assert.equal(v.length, 0, formatViolations(v));
}
import { goldenSteps, replay } from "./replay.js";
import type { FakeGroup } from "./fake_vfio.js";

const FILE = K.KVM_DEV_VFIO_FILE;
const here = new URL("../../../test/kvm/oracle/", import.meta.url);

function getDeviceFd(v: Vmm, group: number): number {
  v.p.write(v.scratch + 512, new TextEncoder().encode("0000:00:01.0\0"));
  return v.p.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, v.scratch + 512);
}

for (const design of COUPLING_DESIGNS) {
  describe(`KVM-VFIO device (${design})`, () => {
    it("replays the oracle's errno scenario line for line", () => {
      const twin = boot(design, { fake: { needsKvm: false } });
      const script = readFileSync(new URL("kvm-vfio-errno.txt", here), "utf8");
      const golden = goldenSteps(readFileSync(new URL("kvm-vfio-errno.custom.txt", here), "utf8"));
      const got = replay(twin.spawn(), script, { group: "/dev/vfio/1", bdf: "0000:00:01.0" });
      assert.deepEqual(got, golden);
    });

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

    it("FILE_ADD / FILE_DEL: EBADF, EINVAL for non-VFIO files, EEXIST, ENOENT; group and device fds", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      const dev = v.vfioDevice(vm);
      const kvm = vms(twin)[0]!;
      assert.equal(v.add(dev, -1), -EBADF);
      assert.equal(v.add(dev, 999), -EBADF);
      assert.equal(v.del(dev, -1), -EBADF);
      assert.equal(v.add(dev, vm), -EINVAL);
      assert.equal(v.add(dev, dev), -EINVAL);
      const container = v.p.open("/dev/vfio/vfio");
      assert.equal(v.add(dev, container), -EINVAL);
      assert.equal(v.add(dev, v.p.eventfd()), -EINVAL);
      assert.equal(v.del(dev, vm), -ENOENT, "DEL does not validate the file");
      const g = v.p.open("/dev/vfio/1");
      assert.equal(v.del(dev, g), -ENOENT);
      assert.equal(v.add(dev, g), 0);
      assert.equal(kvm.arch.assignedDevices, 1);
      assert.equal(v.add(dev, g), -EEXIST);
      const g2 = v.p.dup(g);
      assert.equal(v.add(dev, g2), -EEXIST, "same open file through a dup");
      assert.equal(kvm.arch.assignedDevices, 1);
      // a device fd from the group (the fake driver needs the VM set at open: it is)
      const d = getDeviceFd(v, g);
      assert.ok(d >= 0, `GET_DEVICE_FD ${d}`);
      assert.equal(v.add(dev, d), 0);
      assert.equal(v.add(dev, d), -EEXIST);
      assert.equal(kvm.arch.assignedDevices, 2);
      assert.equal(v.del(dev, g2), 0, "DEL through a dup");
      assert.equal(v.del(dev, g), -ENOENT);
      assert.equal(v.del(dev, d), 0);
      assert.equal(v.del(dev, d), -ENOENT);
      assert.equal(kvm.arch.assignedDevices, 0);
      invariants(twin);
    });

    it("set_kvm: the group learns its VM on ADD and forgets it on DEL; a driver needing KVM fails open before", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      const dev = v.vfioDevice(vm);
      const group = (
        twin.kernel.modules.loaded.get("vfio")!.exports.get("__fake_groups") as Map<number, FakeGroup>
      ).get(1)!;
      const g = v.p.open("/dev/vfio/1");
      assert.equal(getDeviceFd(v, g), -ESRCH, "open_device before FILE_ADD: no KVM");
      assert.equal(v.add(dev, g), 0);
      assert.equal(group.kvm, vms(twin)[0]);
      const d = getDeviceFd(v, g);
      assert.ok(d >= 0);
      const kvm = vms(twin)[0]!;
      assert.equal(kvm.holders.get("kvm_get_kvm_safe"), 1, "the open device holds a VM reference");
      assert.equal(v.del(dev, g), 0);
      assert.equal(group.kvm, null);
      assert.equal(v.p.close(d), 0);
      assert.equal(kvm.holders.get("kvm_get_kvm_safe"), undefined);
    });

    it("noncoherent DMA: registered once while any added file is non-coherent, undone on DEL and release", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      const dev = v.vfioDevice(vm);
      const kvm = vms(twin)[0]!;
      const kv = kvm.devices[0]!.private_ as KvmVfio;
      const coherent = v.p.open("/dev/vfio/1");
      const nonco = v.p.open("/dev/vfio/2");
      assert.equal(v.add(dev, coherent), 0);
      assert.equal(kvm.arch.noncoherentDmaCount, 0);
      assert.equal(v.add(dev, nonco), 0);
      assert.equal(kvm.arch.noncoherentDmaCount, 1);
      assert.equal(kv.noncoherent, true);
      invariants(twin);
      const d = getDeviceFd(v, nonco);
      assert.equal(v.add(dev, d), 0);
      assert.equal(kvm.arch.noncoherentDmaCount, 1, "one registration per KVM-VFIO device");
      assert.equal(v.del(dev, nonco), 0);
      assert.equal(kvm.arch.noncoherentDmaCount, 1, "the device fd is still non-coherent");
      assert.equal(v.del(dev, d), 0);
      assert.equal(kvm.arch.noncoherentDmaCount, 0);
      assert.equal(v.add(dev, nonco), 0);
      assert.equal(kvm.arch.noncoherentDmaCount, 1);
      v.p.close(dev); // release unregisters
      assert.equal(kvm.arch.noncoherentDmaCount, 0);
      assert.equal(kvm.arch.assignedDevices, 0);
      void vm;
    });

    it("holds one file reference per added file, named for its VM and design", () => {
      const twin = boot(design);
      const v = new Vmm(twin.spawn());
      const dev = v.vfioDevice(v.createVm());
      const g = v.p.open("/dev/vfio/1");
      assert.equal(v.add(dev, g), 0);
      const holders = [...fileHolders(twin).entries()].find(([d]) => d.startsWith("file /dev/vfio/1"))![1];
      const expect = design === "symbol-get" ? "vfio external user" : `kvm-vfio of vm ${vms(twin)[0]!.id}`;
      assert.deepEqual(holders, [expect, `fd ${g} of pid ${v.p.pid}`].sort());
      const pins = [...twin.kernel.modules.loaded.get("vfio")!.pins.keys()];
      if (design === "file-ops")
        assert.ok(
          pins.some((p) => p.endsWith(": vfio_file_ops")),
          pins.join(),
        );
      else assert.ok(!pins.some((p) => p.includes("vfio_file_ops")), pins.join());
    });

    describe("reference release in every order: no leak", () => {
      // the three things userspace closes, and one add/del choice
      const orders = [
        ["group", "kvmdev", "vm"],
        ["group", "vm", "kvmdev"],
        ["kvmdev", "group", "vm"],
        ["kvmdev", "vm", "group"],
        ["vm", "group", "kvmdev"],
        ["vm", "kvmdev", "group"],
      ] as const;
      for (const order of orders) {
        for (const del of [false, true]) {
          it(`${del ? "FILE_DEL, then " : ""}close ${order.join(", ")}`, () => {
            const twin = boot(design);
            const before = live(twin);
            const v = new Vmm(twin.spawn());
            const fds = { vm: v.createVm(), kvmdev: -1, group: v.p.open("/dev/vfio/1") };
            fds.kvmdev = v.vfioDevice(fds.vm);
            assert.equal(v.add(fds.kvmdev, fds.group), 0);
            const dfd = getDeviceFd(v, fds.group);
            assert.equal(v.add(fds.kvmdev, dfd), 0);
            assert.equal(v.p.close(dfd), 0, "KVM keeps the device file");
            invariants(twin);
            if (del) assert.equal(v.del(fds.kvmdev, fds.group), 0);
            for (const what of order) {
              assert.equal(v.p.close(fds[what]), 0);
              invariants(twin);
            }
            assert.equal(vms(twin).length, 0, "VM destroyed");
            twin.kill(v.p);
            assert.deepEqual(live(twin), before);
            assert.deepEqual(twin.kernel.bugs, []);
            assert.deepEqual([...twin.kernel.modules.loaded.get("vfio")!.pins.keys()], []);
            assert.deepEqual([...twin.kernel.modules.loaded.get("kvm")!.pins.keys()], []);
          });
        }
      }
      it("process exit closes everything", () => {
        const twin = boot(design);
        const before = live(twin);
        const v = new Vmm(twin.spawn());
        const vm = v.createVm();
        const dev = v.vfioDevice(vm);
        const g = v.p.open("/dev/vfio/2");
        assert.equal(v.add(dev, g), 0);
        assert.equal(v.add(dev, getDeviceFd(v, g)), 0);
        twin.kill(v.p);
        assert.deepEqual(live(twin), before);
        assert.deepEqual(twin.kernel.bugs, []);
      });
    });

    it("rmmod vfio is refused while KVM holds a VFIO file, even with every user fd closed", () => {
      const twin = boot(design);
      const mods = twin.kernel.modules;
      const v = new Vmm(twin.spawn());
      const dev = v.vfioDevice(v.createVm());
      const g = v.p.open("/dev/vfio/1");
      assert.equal(v.add(dev, g), 0);
      assert.equal(v.p.close(g), 0);
      assert.ok(mods.unload("vfio") < 0);
      assert.equal(mods.loaded.get("vfio")?.state, "live");
      assert.ok(mods.unload("kvm") < 0, "the VM pins kvm");
      assert.equal(v.p.close(dev), 0);
      assert.equal(mods.unload("vfio"), 0, "released with the KVM-VFIO device");
    });

    it("VFIO never loaded: any fd is EINVAL (or EBADF), the device itself works", () => {
      const twin = boot(design, { withVfio: false });
      const v = new Vmm(twin.spawn());
      const vm = v.createVm();
      const dev = v.vfioDevice(vm);
      assert.equal(v.add(dev, vm), -EINVAL);
      assert.equal(v.add(dev, -1), -EBADF);
      assert.equal(v.del(dev, vm), -ENOENT);
      assert.equal(v.has(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD), 0);
      // loaded later: symbol_get finds it then
      assert.equal(twin.kernel.modules.load("vfio"), 0);
      const g = v.p.open("/dev/vfio/1");
      assert.equal(v.add(dev, g), 0);
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
