// The KVM-facing VFIO API (vfio_file_* exported by the vfio module) and the KVM reference a
// device takes at open, the 6.12 way (symbol_get of kvm_get_kvm_safe / kvm_put_kvm). KVM is
// replaced here by a stand-in module exporting those two symbols, so the test does not
// depend on src/kvm; the mdev test driver needs the kvm at open_device (-ESRCH without).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { EINVAL, ESRCH, EWOULDBLOCK, EBUSY } from "../../src/uapi/errno.js";
import type { File } from "../../src/kernel/fs.js";
import type { ModuleDef } from "../../src/kernel/module.js";
import type { TwinConfig } from "../../src/twin.js";
import type { VfioKvmApi } from "../../src/vfio/vfio_kvm.js";
import { VfioCore } from "../../src/vfio/vfio_main.js";
import { KVM_GATED_MDEV_UUID, type KvmGatedState } from "../../src/vfio/mdev/kvm_gated_mdev.js";
import { checkVfioQuiescent } from "../../src/check/vfio_invariants.js";
import { call, deviceFd, env, legacy, map, s32, unmap } from "./helpers.js";

interface FakeKvm {
  refs: number;
  dying: boolean;
}

const fakeKvmModule: ModuleDef = {
  name: "fake_kvm",
  init(_k, m) {
    m.export("kvm_get_kvm_safe", (kvm: FakeKvm) => {
      if (kvm.dying) return false;
      kvm.refs++;
      return true;
    });
    m.export("kvm_put_kvm", (kvm: FakeKvm) => {
      kvm.refs--;
    });
    return 0;
  },
};

function setup(cfg: TwinConfig = {}, withKvm = true) {
  const e = env({ ...cfg, kvm: false });
  const k = e.twin.kernel;
  if (withKvm) {
    k.modules.provide(fakeKvmModule);
    assert.equal(k.modules.load("fake_kvm"), 0);
  }
  const api = {} as VfioKvmApi;
  for (const n of [
    "vfio_file_is_valid",
    "vfio_file_enforced_coherent",
    "vfio_file_set_kvm",
    "vfio_file_iommu_group",
    "vfio_file_is_group",
  ] as const)
    (api as unknown as Record<string, unknown>)[n] = k.modules.moduleOf(n)!.exports.get(n);
  const file = (fd: number): File => e.p.proc.files.lookup(fd)!;
  return { e, k, api, file };
}

describe("vfio_file_* API", () => {
  it("recognises group and device files only; coherence; no iommu_group on x86", () => {
    const { e, api, file } = setup();
    const { c, g } = legacy(e);
    const d = deviceFd(e, g);
    const efd = e.p.eventfd();
    assert.equal(api.vfio_file_is_valid(file(g)), true);
    assert.equal(api.vfio_file_is_valid(file(d)), true);
    assert.equal(api.vfio_file_is_valid(file(c)), false);
    assert.equal(api.vfio_file_is_valid(file(efd)), false);
    assert.equal(api.vfio_file_is_group(file(g)), true);
    assert.equal(api.vfio_file_is_group(file(d)), false);
    assert.equal(api.vfio_file_enforced_coherent(file(g)), false);
    assert.equal(api.vfio_file_enforced_coherent(file(d)), false);
    assert.equal(api.vfio_file_enforced_coherent(file(efd)), true);
    assert.equal(api.vfio_file_iommu_group(file(g)), null);
  });

  it("a coherent device's group and device files are enforced-coherent", () => {
    const { e, api, file } = setup({
      pci: [{ bdf: "0000:00:05.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 2, driver: "vfio-pci", coherent: true }],
    });
    const { g } = legacy(e, "/dev/vfio/2");
    assert.equal(api.vfio_file_enforced_coherent(file(g)), true);
    assert.equal(api.vfio_file_enforced_coherent(file(deviceFd(e, g, "0000:00:05.0"))), true);
  });

  it("a device opened after set_kvm holds a KVM reference and the kvm_put_kvm pin until its last close", () => {
    const { e, k, api, file } = setup();
    const kvm: FakeKvm = { refs: 1, dying: false };
    const { c, g } = legacy(e);
    api.vfio_file_set_kvm(file(g), kvm);
    const d = deviceFd(e, g);
    const d2 = deviceFd(e, g);
    const vdev = VfioCore.of(k)!.devices[0]!;
    assert.equal(vdev.kvm, kvm);
    assert.equal(kvm.refs, 2, "one reference for the open device, not per fd");
    const fk = k.modules.loaded.get("fake_kvm")!;
    assert.deepEqual([...fk.pins.entries()], [["symbol_get(kvm_put_kvm)", 1]]);
    assert.equal(k.modules.unload("fake_kvm"), -EWOULDBLOCK);
    e.p.close(d);
    assert.equal(kvm.refs, 2);
    e.p.close(d2);
    assert.equal(kvm.refs, 1);
    assert.equal(vdev.kvm, null);
    assert.equal(fk.refcnt, 0);
    api.vfio_file_set_kvm(file(g), null);
    e.p.close(g);
    e.p.close(c);
    assert.deepEqual(checkVfioQuiescent(k), []);
    assert.equal(k.modules.unload("fake_kvm"), 0);
  });

  it("a dying kvm (kvm_get_kvm_safe false) is not taken; without KVM loaded the open goes on", () => {
    const { e, k, api, file } = setup();
    const kvm: FakeKvm = { refs: 0, dying: true };
    const { g } = legacy(e);
    api.vfio_file_set_kvm(file(g), kvm);
    const d = deviceFd(e, g);
    assert.ok(d >= 0);
    assert.equal(VfioCore.of(k)!.devices[0]!.kvm, null);
    assert.equal(k.modules.loaded.get("fake_kvm")!.refcnt, 0);
    const n = setup({}, false);
    const l = legacy(n.e);
    n.api.vfio_file_set_kvm(n.file(l.g), { refs: 1, dying: false });
    assert.ok(deviceFd(n.e, l.g) >= 0);
    assert.equal(n.k.modules.stats.misses.get("kvm_put_kvm"), 1);
  });
});

describe("the KVM-gated mdev driver", () => {
  function mdev() {
    const s = setup();
    assert.equal(s.k.modules.load("vfio_kvm_gated_mdev"), 0);
    const vdev = VfioCore.of(s.k)!.devices.find((x) => x.name === KVM_GATED_MDEV_UUID)!;
    const link = s.e.p.readlink(`/sys/bus/mdev/devices/${KVM_GATED_MDEV_UUID}/iommu_group`) as string;
    const gid = Number(link.split("/").pop());
    assert.equal(gid, vdev.group.id);
    return { ...s, vdev, path: `/dev/vfio/${gid}` };
  }

  it("open_device fails with ESRCH until the group has a KVM; nothing is left behind", () => {
    const { e, k, api, file, vdev, path } = mdev();
    const { c, g } = legacy(e, path);
    assert.equal(deviceFd(e, g, KVM_GATED_MDEV_UUID), -ESRCH);
    assert.equal(vdev.openCount, 0);
    assert.equal(k.modules.loaded.get("vfio_kvm_gated_mdev")!.refcnt, 0);
    const kvm: FakeKvm = { refs: 1, dying: false };
    api.vfio_file_set_kvm(file(g), kvm);
    const d = deviceFd(e, g, KVM_GATED_MDEV_UUID);
    assert.ok(d >= 0);
    assert.deepEqual((vdev.priv as KvmGatedState).opens, [kvm]);
    assert.equal(call(e, d, V.VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: 24 }).out.num_regions, 0);
    assert.equal(k.modules.unload("vfio_kvm_gated_mdev"), -EWOULDBLOCK);
    // KVM_DEV_VFIO_FILE_DEL clears it; the open device keeps its own reference
    api.vfio_file_set_kvm(file(g), null);
    assert.equal(kvm.refs, 2);
    void c;
    e.twin.kill(e.p);
    assert.equal(kvm.refs, 1);
    assert.equal((vdev.priv as KvmGatedState).closes, 1);
    assert.deepEqual(checkVfioQuiescent(k), []);
    assert.equal(k.modules.unload("vfio_kvm_gated_mdev"), 0);
    assert.equal(e.twin.spawn().open(path), -2);
  });

  it("an emulated-only container records mappings without pinning; a real group replays them", () => {
    const { e, k, path } = mdev();
    const { c } = legacy(e, path);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_UPDATE_VADDR), 0);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
    assert.equal(map(e, c, e.buf, 0xfee00000n, 0x1000n), 0, "no aperture or MSI window without a domain");
    assert.equal(map(e, c, 0x7ffffffff000, 0x200000n, 0x1000n), 0, "unbacked memory is fine until pinned");
    assert.equal(e.p.proc.mm.lockedVm, 0);
    const info = call(e, c, V.VFIO_IOMMU_GET_INFO, V.vfio_iommu_type1_info, { argsz: 4096 });
    assert.equal(info.out.iova_pgsizes, 0xfffffffffffff000n);
    assert.equal(unmap(e, c, 0x100000n, 0x4000n, V.VFIO_DMA_UNMAP_FLAG_VADDR).rc, -EBUSY);
    const g1 = e.p.open("/dev/vfio/1");
    assert.equal(e.p.ioctl(g1, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), -EINVAL, "MSI-window mapping conflicts");
    assert.equal(unmap(e, c, 0xfee00000n, 0x1000n).size, 0x1000n);
    assert.equal(e.p.ioctl(g1, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), -14, "replay pins unbacked memory: EFAULT");
    assert.equal(e.p.proc.mm.lockedVm, 0, "a failed replay unpins what it pinned");
    assert.equal(unmap(e, c, 0x200000n, 0x1000n).size, 0x1000n);
    assert.equal(e.p.ioctl(g1, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    assert.equal(e.p.proc.mm.lockedVm, 4);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_UPDATE_VADDR), 0);
    e.twin.kill(e.p);
    assert.deepEqual(checkVfioQuiescent(k), []);
  });
});
