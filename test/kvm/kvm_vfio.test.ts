// The KVM-VFIO pseudo-device with VFIO files, for every coupling design and every VFIO the
// branch has (the fake of ./fake_vfio.ts, and the real src/vfio once merged): the uAPI
// results must depend on neither.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EBADF, EEXIST, EINVAL, ENOENT, ESRCH } from "../../src/uapi/errno.js";
import * as K from "../../src/uapi/kvm.js";
import { COUPLING_DESIGNS } from "../../src/kvm/vfio_coupling.js";
import type { KvmVfio } from "../../src/kvm/vfio.js";
import { checkInvariants, formatViolations } from "../../src/check/invariants.js";
import { rmmodStack } from "../../src/cli/designs.js";
import type { Twin } from "../../src/twin.js";
import { fileHolders, live, vms, Vmm, WORLDS } from "./harness.js";

const FILE = K.KVM_DEV_VFIO_FILE;

function invariants(twin: Twin): void {
  const v = checkInvariants(twin.kernel);
  assert.equal(v.length, 0, formatViolations(v));
}

function groupFile(twin: Twin, path: string) {
  return [...fileHolders(twin).entries()].find(([d]) => d.startsWith(`file ${path} `));
}

for (const world of WORLDS) {
  for (const design of COUPLING_DESIGNS) {
    describe(`KVM-VFIO files (${world.name}, ${design})`, () => {
      const G = world.coherentGroup;

      it("FILE_ADD / FILE_DEL: EBADF, EINVAL for non-VFIO files, EEXIST, ENOENT; group and device fds", () => {
        const twin = world.boot(design);
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
        const g = v.p.open(G);
        assert.ok(g >= 0, `open ${G}: ${g}`);
        assert.equal(v.del(dev, g), -ENOENT);
        assert.equal(v.add(dev, g), 0);
        assert.equal(kvm.arch.assignedDevices, 1);
        assert.equal(v.add(dev, g), -EEXIST);
        const g2 = v.p.dup(g);
        assert.equal(v.add(dev, g2), -EEXIST, "same open file through a dup");
        assert.equal(kvm.arch.assignedDevices, 1);
        const d = v.deviceFd(g, G);
        assert.ok(d >= 0, `GET_DEVICE_FD ${d}`);
        assert.equal(v.add(dev, d), 0);
        assert.equal(v.add(dev, d), -EEXIST);
        assert.equal(kvm.arch.assignedDevices, 2);
        invariants(twin);
        assert.equal(v.del(dev, g2), 0, "DEL through a dup");
        assert.equal(v.del(dev, g), -ENOENT);
        assert.equal(v.del(dev, d), 0);
        assert.equal(v.del(dev, d), -ENOENT);
        assert.equal(kvm.arch.assignedDevices, 0);
        invariants(twin);
      });

      it("set_kvm ordering: a driver needing KVM fails open_device (ESRCH) until the group is added", (t) => {
        const twin = world.boot(design);
        const gated = world.needsKvm(twin);
        if (!gated) return t.skip("this VFIO has no driver that needs KVM");
        const { path, device } = gated;
        const v = new Vmm(twin.spawn());
        const dev = v.vfioDevice(v.createVm());
        const kvm = vms(twin)[0]!;
        const g = v.p.open(path);
        assert.ok(g >= 0, `open ${path}: ${g}`);
        assert.equal(v.deviceFd(g, path, device), -ESRCH, "GET_DEVICE_FD before FILE_ADD: no KVM");
        assert.equal(v.add(dev, g), 0);
        const d = v.deviceFd(g, path, device);
        assert.ok(d >= 0, `GET_DEVICE_FD after FILE_ADD: ${d}`);
        assert.equal(kvm.holders.get("kvm_get_kvm_safe"), 1, "the open device holds a VM reference");
        assert.equal(v.del(dev, g), 0);
        assert.equal(kvm.holders.get("kvm_get_kvm_safe"), 1, "kept until the device closes");
        assert.equal(v.p.close(d), 0);
        assert.equal(kvm.holders.get("kvm_get_kvm_safe"), undefined);
        assert.equal(v.deviceFd(g, path, device), -ESRCH, "after FILE_DEL the group has no VM again");
        invariants(twin);
      });

      it("a VM reference held by an open device keeps the VM alive past every KVM fd", (t) => {
        const twin = world.boot(design);
        const gated = world.needsKvm(twin);
        if (!gated) return t.skip("this VFIO has no driver that needs KVM");
        const before = live(twin);
        const v = new Vmm(twin.spawn());
        const vm = v.createVm();
        const dev = v.vfioDevice(vm);
        const g = v.p.open(gated.path);
        assert.equal(v.add(dev, g), 0);
        const d = v.deviceFd(g, gated.path, gated.device);
        assert.ok(d >= 0);
        assert.equal(v.p.close(dev), 0);
        assert.equal(v.p.close(vm), 0);
        assert.equal(vms(twin).length, 1, "the device's kvm_get_kvm_safe reference keeps it");
        invariants(twin);
        assert.equal(v.p.close(d), 0);
        assert.equal(vms(twin).length, 0);
        twin.kill(v.p);
        assert.deepEqual(live(twin), before);
      });

      it(
        "noncoherent DMA: registered once while any added file is non-coherent, undone on DEL and release",
        { skip: world.nonCoherentGroup ? false : "this VFIO has no non-coherent IOMMU" },
        () => {
          const NC = world.nonCoherentGroup!;
          const twin = world.boot(design);
          const v = new Vmm(twin.spawn());
          const dev = v.vfioDevice(v.createVm());
          const kvm = vms(twin)[0]!;
          const kv = kvm.devices[0]!.private_ as KvmVfio;
          const coherent = v.p.open(G);
          const nonco = v.p.open(NC);
          assert.equal(v.add(dev, coherent), 0);
          assert.equal(kvm.arch.noncoherentDmaCount, 0);
          assert.equal(v.add(dev, nonco), 0);
          assert.equal(kvm.arch.noncoherentDmaCount, 1);
          assert.equal(kv.noncoherent, true);
          invariants(twin);
          const d = v.deviceFd(nonco, NC);
          assert.equal(v.add(dev, d), 0);
          assert.equal(kvm.arch.noncoherentDmaCount, 1, "one registration per KVM-VFIO device");
          assert.equal(v.del(dev, nonco), 0);
          assert.equal(kvm.arch.noncoherentDmaCount, 1, "the device fd is still non-coherent");
          assert.equal(v.del(dev, d), 0);
          assert.equal(kvm.arch.noncoherentDmaCount, 0);
          assert.equal(v.add(dev, nonco), 0);
          assert.equal(kvm.arch.noncoherentDmaCount, 1);
          assert.equal(v.p.close(dev), 0); // release unregisters
          assert.equal(kvm.arch.noncoherentDmaCount, 0);
          assert.equal(kvm.arch.assignedDevices, 0);
          invariants(twin);
        },
      );

      it("cdev fds (unbound) are VFIO files too: ADD, EEXIST, DEL, ENOENT (as on the oracle)", (t) => {
        const twin = world.boot(design);
        const v = new Vmm(twin.spawn());
        const dev = v.vfioDevice(v.createVm());
        const c = v.p.open("/dev/vfio/devices/vfio0");
        if (c === -ENOENT) return t.skip("this VFIO has no device cdev");
        assert.ok(c >= 0, `open cdev: ${c}`);
        assert.equal(v.add(dev, c), 0);
        assert.equal(v.add(dev, c), -EEXIST);
        assert.equal(vms(twin)[0]!.arch.assignedDevices, 1);
        assert.equal(v.del(dev, c), 0);
        assert.equal(v.del(dev, c), -ENOENT);
        assert.equal(v.add(dev, c), 0);
        assert.equal(v.p.close(c), 0, "KVM keeps the cdev file");
        assert.equal(v.p.close(dev), 0);
        invariants(twin);
      });

      it("coherent files alone register no noncoherent DMA", () => {
        const twin = world.boot(design);
        const v = new Vmm(twin.spawn());
        const dev = v.vfioDevice(v.createVm());
        const g = v.p.open(G);
        assert.equal(v.add(dev, g), 0);
        assert.equal(v.add(dev, v.deviceFd(g, G)), 0);
        assert.equal(vms(twin)[0]!.arch.noncoherentDmaCount, 0);
      });

      it("holds one file reference per added file, named for its VM and design", () => {
        const twin = world.boot(design);
        const v = new Vmm(twin.spawn());
        const dev = v.vfioDevice(v.createVm());
        const g = v.p.open(G);
        assert.equal(v.add(dev, g), 0);
        const holders = groupFile(twin, G)![1];
        const expect = design === "symbol-get" ? "vfio external user" : `kvm-vfio of vm ${vms(twin)[0]!.id}`;
        assert.ok(holders.includes(expect), holders.join());
        assert.ok(holders.includes(`fd ${g} of pid ${v.p.pid}`), holders.join());
        const pins = [...twin.kernel.modules.loaded.get("vfio")!.pins.keys()];
        assert.equal(
          pins.some((p) => p.endsWith(": vfio_file_ops")),
          design === "file-ops",
          pins.join(),
        );
        assert.equal(v.del(dev, g), 0);
        assert.ok(!groupFile(twin, G)![1].includes(expect), "FILE_DEL drops it");
      });

      describe("reference release in every order: no leak", () => {
        // the three things userspace closes, and one add/del choice; the device fd is added
        // and closed by userspace first, so KVM alone keeps it
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
              const twin = world.boot(design);
              const before = live(twin);
              const v = new Vmm(twin.spawn());
              const fds = { vm: v.createVm(), kvmdev: -1, group: v.p.open(G) };
              fds.kvmdev = v.vfioDevice(fds.vm);
              assert.equal(v.add(fds.kvmdev, fds.group), 0);
              const dfd = v.deviceFd(fds.group, G);
              assert.equal(v.add(fds.kvmdev, dfd), 0);
              assert.equal(v.p.close(dfd), 0, "KVM keeps the device file");
              assert.equal(v.p.close(v.containers.get(fds.group)!), 0);
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
              for (const m of twin.kernel.modules.loaded.values())
                assert.deepEqual([...m.pins.keys()], [], `${m.name} pins`);
            });
          }
        }
        it("process exit closes everything", () => {
          const twin = world.boot(design);
          const before = live(twin);
          const v = new Vmm(twin.spawn());
          const dev = v.vfioDevice(v.createVm());
          const g = v.p.open(world.nonCoherentGroup ?? G);
          assert.equal(v.add(dev, g), 0);
          assert.equal(v.add(dev, v.deviceFd(g, world.nonCoherentGroup ?? G)), 0);
          twin.kill(v.p);
          assert.deepEqual(live(twin), before);
          assert.deepEqual(twin.kernel.bugs, []);
          invariants(twin);
        });
      });

      it("rmmod of the VFIO modules while KVM holds a file: vfio stays; after release as if KVM never held it", () => {
        // control: the same files opened and closed, never given to KVM
        const control = world.boot(design);
        const c = new Vmm(control.spawn());
        const cg = c.p.open(G);
        c.p.close(c.deviceFd(cg, G));
        for (const fd of [cg, c.containers.get(cg)!]) c.p.close(fd);
        const expected = rmmodStack(control.kernel);

        const twin = world.boot(design);
        const mods = twin.kernel.modules;
        const v = new Vmm(twin.spawn());
        const vm = v.createVm();
        const dev = v.vfioDevice(vm);
        const g = v.p.open(G);
        assert.equal(v.add(dev, g), 0);
        const d = v.deviceFd(g, G);
        assert.equal(v.add(dev, d), 0);
        for (const fd of [d, g, v.containers.get(g)!]) assert.equal(v.p.close(fd), 0);
        rmmodStack(twin.kernel);
        assert.equal(mods.loaded.get("vfio")?.state, "live", "KVM's files pin vfio");
        assert.ok(mods.unload("kvm") < 0, "the VM pins kvm");
        invariants(twin);
        assert.equal(v.p.close(dev), 0);
        assert.equal(v.p.close(vm), 0);
        const after = rmmodStack(twin.kernel);
        assert.equal(mods.loaded.has("vfio"), control.kernel.modules.loaded.has("vfio"), `${after} vs ${expected}`);
        invariants(twin);
      });

      it("VFIO never loaded: any fd is EINVAL (or EBADF); VFIO loaded later is found then", () => {
        const twin = world.boot(design, { withVfio: false });
        const v = new Vmm(twin.spawn());
        const vm = v.createVm();
        const dev = v.vfioDevice(vm);
        assert.equal(v.add(dev, vm), -EINVAL);
        assert.equal(v.add(dev, -1), -EBADF);
        assert.equal(v.del(dev, vm), -ENOENT);
        assert.equal(v.has(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD), 0);
        assert.equal(twin.kernel.modules.load("vfio"), 0);
        const g = v.p.open(G);
        if (g >= 0) assert.equal(v.add(dev, g), 0);
        else assert.ok(world.name === "real vfio", "the fake's nodes come with its module");
      });
    });
  }
}
