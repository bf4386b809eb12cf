// Fault injection over the explorer's worlds: the n-th fallible step of each call fails, for
// every n, and the twin is exactly as before (objects, counts, holders, fds, pins, accounting,
// domains, iommufd objects and areas) with every invariant holding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { faultSweep, sweepCall } from "../../src/check/fault.js";
import { leakedSince } from "../../src/check/invariants.js";
import { Env } from "../../src/check/worlds.js";
import { VfioCore } from "../../src/vfio/vfio_main.js";
import * as K from "../../src/uapi/kvm.js";
import * as U from "../../src/uapi/iommufd.js";
import * as V from "../../src/uapi/vfio.js";
import { randomWorld } from "../../src/check/random_world.js";
import { WORLDS } from "../../src/check/worlds.js";
import { shouldFail } from "../../src/iommufd/fail_nth.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { RefCounted } from "../../src/kernel/kref.js";
import type { World } from "../../src/check/explorer.js";

test("every fallible step of every call of every world fails cleanly", () => {
  let checked = 0;
  for (const w of WORLDS) {
    // the second attach to an IOAS with an automatic HWPT: a failure while attaching to that
    // HWPT that reads as EINVAL (iommufd_should_fail() in the reserved-region check) makes
    // iommufd_device_auto_get_domain() try the next HWPT and then make a new one: it succeeds
    const absorbs = w.name === "iommufd-two-attach-auto-domain" ? ["attach1"] : [];
    const r = faultSweep(() => w.build({}), 200, absorbs);
    assert.deepEqual(r.problems, [], w.name);
    if (absorbs.length) assert.ok(r.absorbed.length > 0, "the EINVAL fallback of auto_get_domain is exercised");
    checked += r.failures.reduce((a, b) => a + b, 0);
  }
  for (let seed = 1; seed <= 6; seed++) {
    const r = faultSweep(() => randomWorld(seed, {}));
    assert.deepEqual(r.problems, [], `random:${seed}`);
    checked += r.failures.reduce((a, b) => a + b, 0);
  }
  assert.ok(checked >= 12, `only ${checked} injected failures`);
});

class Thing extends RefCounted {
  describe(): string {
    return "thing";
  }
  protected release(): void {}
}

test("a call that keeps a reference when its second fallible step fails is reported", () => {
  const build = (): World => {
    const k = new Kernel();
    const t = new Thing(k, "thing");
    return {
      kernel: k,
      threads: [
        {
          name: "leaky",
          path: () => {
            if (shouldFail()) return -12;
            t.get("half-done");
            if (shouldFail()) return -12; // forgets to put "half-done"
            t.put("half-done");
            return 0;
          },
        },
      ],
    };
  };
  const r = faultSweep(build);
  assert.deepEqual(r.failures, [2]);
  assert.equal(r.problems.length, 1);
  assert.match(
    r.problems[0]!,
    /leaky: fail-nth 2: the twin changed:\n- \d+ thing refs=1 init:1\n\+ \d+ thing refs=2 init:1,half-done:1/,
  );
});

// The fallible steps outside iommufd's countdown of old: VFIO's container, device file and
// IOMMU driver allocations, KVM's device and KVM-VFIO file allocations, and iommufd's object
// allocation. For every n each call returns an errno and leaves the twin exactly as it was:
// the digest (live objects with counts and holders, fds, pins, domains, iommufd objects),
// every invariant, and no object alive that was not alive before (leaks).
test("VFIO, KVM and iommufd allocations: for every n the call returns an errno and the twin is as before", () => {
  const counted: Record<string, number> = {};
  const sweep = (name: string, e: Env, call: () => number, min: number): void => {
    const k = e.k;
    const baseline = new Set(k.objects);
    const leaks: string[] = [];
    const r = sweepCall(k, () => {
      const rc = call();
      // the failing call (the sweep's last call succeeds and may make objects)
      if (rc < 0) leaks.push(...leakedSince(k, baseline).map((o) => o.describe()));
      return rc;
    });
    assert.deepEqual(r.problems, [], name);
    assert.deepEqual(leaks, [], `${name}: leaked`);
    assert.ok(r.checked >= min, `${name}: ${r.checked} fallible steps, expected at least ${min}`);
    counted[name] = r.checked;
  };
  // vfio_fops_open(): the container
  let e = new Env({});
  sweep("open /dev/vfio/vfio", e, () => e.p.open("/dev/vfio/vfio"), 1);
  // SET_IOMMU: vfio_iommu_type1_open()'s allocation, then the group attach (iommu_map)
  e = new Env({});
  {
    const c = e.ok(e.p.open("/dev/vfio/vfio"), "open container");
    const g = e.ok(e.p.open("/dev/vfio/1"), "open group");
    e.ok(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, e.s32(c)), "SET_CONTAINER");
    sweep("VFIO_SET_IOMMU", e, () => e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), 1);
  }
  // GET_DEVICE_FD: the vfio_device_file, then the anon inode file
  e = new Env({});
  {
    const { g } = e.legacy();
    const name = e.str("0000:00:01.0");
    sweep("VFIO_GROUP_GET_DEVICE_FD", e, () => e.p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, name), 2);
  }
  // the cdev's open: the vfio_device_file
  e = new Env({});
  {
    const vdev = VfioCore.of(e.k)!.devices.find((x) => x.name === "0000:00:01.0")!;
    sweep("open cdev", e, () => e.p.open(`/dev/vfio/devices/vfio${vdev.cdevIndex}`), 1);
  }
  // KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO): the kvm_device, the kvm_vfio, the anon inode file
  e = new Env({});
  {
    const vm = e.t.ioctlInt(e.t.open("/dev/kvm"), K.KVM_CREATE_VM, 0);
    const cd = e.stage(K.kvm_create_device.encode({ type: K.KVM_DEV_TYPE_VFIO, fd: 0, flags: 0 }));
    sweep("KVM_CREATE_DEVICE", e, () => e.p.ioctl(vm, K.KVM_CREATE_DEVICE, cd), 3);
  }
  // KVM_DEV_VFIO_FILE_ADD: the kvm_vfio_file
  e = new Env({});
  {
    const g = e.ok(e.p.open("/dev/vfio/1"), "open group");
    const { dev } = e.kvm();
    const attr = e.fileAttr(K.KVM_DEV_VFIO_FILE_ADD, g);
    sweep("KVM_DEV_VFIO_FILE_ADD", e, () => e.p.ioctl(dev, K.KVM_SET_DEVICE_ATTR, attr), 1);
  }
  // IOMMU_IOAS_ALLOC: iommufd's object allocation
  e = new Env({}, { kvm: false });
  {
    const ifd = e.ok(e.p.open("/dev/iommu"), "open /dev/iommu");
    const arg = e.stage(U.iommu_ioas_alloc.encode({ size: U.iommu_ioas_alloc.size, flags: 0 }));
    sweep("IOMMU_IOAS_ALLOC", e, () => e.p.ioctl(ifd, U.IOMMU_IOAS_ALLOC, arg), 1);
  }
  assert.equal(Object.keys(counted).length, 7);
});
