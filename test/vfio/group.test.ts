// Container and group files: every ioctl on success and on each errno path, and the
// ordering rules, checked against what the oracle kernel answered (shared/oracle/README.md).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { EBADF, EBADFD, EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOTTY } from "../../src/uapi/errno.js";
import { checkVfioInvariants, checkVfioQuiescent } from "../../src/check/vfio_invariants.js";
import { BDF, call, deviceFd, env, legacy, map, s32, str } from "./helpers.js";

const status = (e: ReturnType<typeof env>, g: number, argsz = 8) =>
  call(e, g, V.VFIO_GROUP_GET_STATUS, V.vfio_group_status, { argsz });

describe("container", () => {
  it("GET_API_VERSION, CHECK_EXTENSION before SET_IOMMU", () => {
    const e = env();
    const c = e.p.open("/dev/vfio/vfio");
    assert.equal(e.p.ioctl(c, V.VFIO_GET_API_VERSION), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_TYPE1_IOMMU), 1);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_TYPE1v2_IOMMU), 1);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_NOIOMMU_IOMMU), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_UNMAP_ALL), 1);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_DMA_CC_IOMMU), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_UPDATE_VADDR), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, 12345), 0);
  });

  it("SET_IOMMU with no group, MAP_DMA and unknown ioctls before SET_IOMMU are EINVAL", () => {
    const e = env();
    const c = e.p.open("/dev/vfio/vfio");
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), -EINVAL);
    assert.equal(map(e, c, e.buf, 0n, 0x1000n), -EINVAL);
    assert.equal(e.p.ioctl(c, 0x3b99), -EINVAL);
  });

  it("SET_IOMMU: unknown type ENODEV, NOIOMMU ENODEV, again EINVAL; then extensions of the backend", () => {
    const e = env();
    const c = e.p.open("/dev/vfio/vfio");
    const g = e.p.open("/dev/vfio/1");
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, 99), -ENODEV);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_NOIOMMU_IOMMU), -ENODEV);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), -EINVAL);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_DMA_CC_IOMMU), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_UNMAP_ALL), 1);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_UPDATE_VADDR), 1);
    // unknown ioctls now reach type1, which says ENOTTY
    assert.equal(e.p.ioctl(c, 0x3b99), -ENOTTY);
    const m = e.twin.kernel.modules.loaded.get("vfio_iommu_type1")!;
    assert.equal(m.refcnt, 1, "the container pins its backend");
    assert.equal(e.twin.kernel.modules.unload("vfio_iommu_type1") < 0, true);
  });

  it("DMA_CC is 1 with a coherent device", () => {
    const e = env({
      pci: [{ bdf: "0000:00:02.0", vendor: 0x8086, device: 0x10d3, iommuGroup: 4, driver: "vfio-pci", coherent: true }],
    });
    const { c } = legacy(e, "/dev/vfio/4");
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_DMA_CC_IOMMU), 1);
  });

  it("once the last group leaves, the container is unprivileged again", () => {
    const e = env();
    const { c, g } = legacy(e);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_UNSET_CONTAINER), 0);
    assert.equal(map(e, c, e.buf, 0n, 0x1000n), -EINVAL);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), -EINVAL);
    assert.equal(e.twin.kernel.modules.loaded.get("vfio_iommu_type1")!.refcnt, 0);
  });
});

describe("group", () => {
  it("is single-open (EBUSY); unknown group ENOENT", () => {
    const e = env();
    const g = e.p.open("/dev/vfio/1");
    assert.ok(g >= 0);
    assert.equal(e.p.open("/dev/vfio/1"), -EBUSY);
    assert.equal(e.p.open("/dev/vfio/999"), -ENOENT);
    e.p.close(g);
    const g2 = e.p.open("/dev/vfio/1");
    assert.ok(g2 >= 0);
  });

  it("GET_STATUS: VIABLE, then VIABLE|CONTAINER_SET; argsz 4 EINVAL; bad pointer EFAULT", () => {
    const e = env();
    const g = e.p.open("/dev/vfio/1");
    const c = e.p.open("/dev/vfio/vfio");
    assert.equal(status(e, g).out.flags, V.VFIO_GROUP_FLAGS_VIABLE);
    assert.equal(status(e, g, 4).rc, -EINVAL);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_GET_STATUS, 0x10), -EFAULT);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    assert.equal(status(e, g).out.flags, V.VFIO_GROUP_FLAGS_VIABLE | V.VFIO_GROUP_FLAGS_CONTAINER_SET);
    assert.equal(e.p.ioctl(g, 0x3b99), -ENOTTY);
  });

  it("GET_STATUS: argsz echoed, flags overwritten (oracle); across pages; a read-only tail EFAULT", () => {
    // the 6.12 oracle: argsz=100 flags=0xffff -> argsz 100, flags VIABLE
    const e = env();
    const g = e.p.open("/dev/vfio/1");
    const r = call(e, g, V.VFIO_GROUP_GET_STATUS, V.vfio_group_status, { argsz: 100, flags: 0xffff });
    assert.deepEqual([r.rc, r.out.argsz, r.out.flags], [0, 100, V.VFIO_GROUP_FLAGS_VIABLE]);
    const at = e.scr + 0x1000 - 4;
    const x = call(e, g, V.VFIO_GROUP_GET_STATUS, V.vfio_group_status, { argsz: 8, flags: 0xffff }, { at });
    assert.deepEqual([x.rc, x.out.argsz, x.out.flags], [0, 8, V.VFIO_GROUP_FLAGS_VIABLE]);
    const two = e.p.mmap(0x2000);
    assert.equal(e.p.munmap(two + 0x1000, 0x1000), 0);
    e.p.write(two + 0x1000 - 4, new Uint8Array([8, 0, 0, 0]));
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_GET_STATUS, two + 0x1000 - 4), -EFAULT, "flags in a hole");
    assert.equal(e.p.mmap(0x1000, { addr: two + 0x1000, prot: 1 }), two + 0x1000);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_GET_STATUS, two + 0x1000 - 4), -EFAULT, "flags read-only");
    assert.deepEqual([...e.p.read(two + 0x1000 - 4, 4)], [8, 0, 0, 0]);
  });

  it("SET_CONTAINER: fd -1 EBADF, a group fd EBADFD, twice EINVAL, other container EINVAL, bad ptr EFAULT", () => {
    const e = env();
    const g = e.p.open("/dev/vfio/1");
    const c = e.p.open("/dev/vfio/vfio");
    const c2 = e.p.open("/dev/vfio/vfio");
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, -1)), -EBADF);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, g)), -EBADFD);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, 0x10), -EFAULT);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), -EINVAL);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c2)), -EINVAL);
  });

  it("UNSET_CONTAINER: none set EINVAL; with a device open EBUSY; after close 0, again EINVAL", () => {
    const e = env();
    const g = e.p.open("/dev/vfio/1");
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_UNSET_CONTAINER), -EINVAL);
    e.p.close(g);
    const l = legacy(e);
    const d = deviceFd(e, l.g);
    assert.ok(d >= 0);
    assert.equal(e.p.ioctl(l.g, V.VFIO_GROUP_UNSET_CONTAINER), -EBUSY);
    e.p.close(d);
    assert.equal(e.p.ioctl(l.g, V.VFIO_GROUP_UNSET_CONTAINER), 0);
    assert.equal(e.p.ioctl(l.g, V.VFIO_GROUP_UNSET_CONTAINER), -EINVAL);
    assert.equal(status(e, l.g).out.flags, V.VFIO_GROUP_FLAGS_VIABLE);
  });

  it("GET_DEVICE_FD: no container EINVAL, no IOMMU EINVAL, bad name ENODEV, bad ptr EFAULT, twice ok", () => {
    const e = env();
    const g = e.p.open("/dev/vfio/1");
    const c = e.p.open("/dev/vfio/vfio");
    assert.equal(deviceFd(e, g), -EINVAL);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    assert.equal(deviceFd(e, g), -EINVAL);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), 0);
    assert.equal(deviceFd(e, g, "0000:00:09.0"), -ENODEV);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, 0x10), -EFAULT);
    const d1 = deviceFd(e, g);
    const d2 = deviceFd(e, g);
    assert.ok(d1 >= 0 && d2 >= 0 && d1 !== d2);
    const vdev = e.twin.kernel.objects;
    void vdev;
    assert.deepEqual(checkVfioInvariants(e.twin.kernel), []);
    e.p.close(d1);
    e.p.close(d2);
    e.p.close(g);
    e.p.close(c);
    assert.deepEqual(checkVfioQuiescent(e.twin.kernel), []);
  });

  it("a group with a device bound to a host driver is not viable and cannot be set", () => {
    const e = env({
      pci: [
        { bdf: "0000:00:01.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 1, driver: "vfio-pci" },
        { bdf: "0000:00:01.1", vendor: 0x8086, device: 0x1234, iommuGroup: 1, driver: "host" },
      ],
    });
    const g = e.p.open("/dev/vfio/1");
    const c = e.p.open("/dev/vfio/vfio");
    assert.equal(status(e, g).out.flags, 0);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), -1);
    assert.equal(status(e, g).out.flags, 0);
  });

  it("multi-device groups: both devices reachable, one container user per opened device", () => {
    const e = env({
      pci: [
        { bdf: "0000:00:03.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 7, driver: "vfio-pci" },
        { bdf: "0000:00:03.1", vendor: 0x1234, device: 0x11e8, iommuGroup: 7, driver: "vfio-pci" },
        { bdf: "0000:00:04.0", vendor: 0x1234, device: 0x11e8, iommuGroup: 8, driver: "vfio-pci" },
      ],
    });
    assert.deepEqual(e.p.readdir("/sys/kernel/iommu_groups/7/devices"), ["0000:00:03.0", "0000:00:03.1"]);
    const { c, g } = legacy(e, "/dev/vfio/7");
    const g8 = e.p.open("/dev/vfio/8");
    assert.equal(e.p.ioctl(g8, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    assert.equal(deviceFd(e, g, "0000:00:04.0"), -ENODEV, "a device of another group");
    const a = deviceFd(e, g, "0000:00:03.0");
    const b = deviceFd(e, g, "0000:00:03.1");
    const x = deviceFd(e, g8, "0000:00:04.0");
    assert.ok(a >= 0 && b >= 0 && x >= 0);
    e.p.close(a);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_UNSET_CONTAINER), -EBUSY);
    e.p.close(b);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_UNSET_CONTAINER), 0);
    // group 8 keeps the container and its backend
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
    e.twin.kill(e.p);
    assert.deepEqual(checkVfioQuiescent(e.twin.kernel), []);
  });

  it("sysfs names the group, driver, ids and the device cdev", () => {
    const e = env();
    assert.equal(e.p.readlink(`/sys/bus/pci/devices/${BDF}/iommu_group`), "../../../kernel/iommu_groups/1");
    assert.equal(e.p.readlink(`/sys/bus/pci/devices/${BDF}/driver`), "../../../bus/pci/drivers/vfio-pci");
    assert.deepEqual(e.p.readdir(`/sys/bus/pci/devices/${BDF}/vfio-dev`), ["vfio0"]);
    assert.equal(e.twin.kernel.sysfs.read(`/sys/bus/pci/devices/${BDF}/vendor`), "0x1234\n");
    assert.equal(e.twin.kernel.sysfs.read(`/sys/bus/pci/devices/${BDF}/device`), "0x11e8\n");
    void str;
  });
});

describe("lifetimes seen on the oracle", () => {
  it("a group closed with a device open stays busy until the device closes; the container lives on", () => {
    const e = env();
    const { c, g } = legacy(e);
    const d = deviceFd(e, g);
    assert.equal(e.p.close(g), 0);
    assert.equal(e.p.open("/dev/vfio/1"), -EBUSY);
    assert.equal(e.p.close(c), 0);
    assert.equal(e.p.close(d), 0);
    const g3 = e.p.open("/dev/vfio/1");
    assert.ok(g3 >= 0);
    assert.equal(status(e, g3).out.flags, V.VFIO_GROUP_FLAGS_VIABLE);
    const g4 = e.p.dup(g3);
    assert.equal(status(e, g4).out.flags, V.VFIO_GROUP_FLAGS_VIABLE);
  });

  it("SET_IOMMU(TYPE1_NESTING) is EINVAL on VT-d; ioctls of the other file types are ENOTTY", () => {
    const e = env();
    const c = e.p.open("/dev/vfio/vfio");
    const g = e.p.open("/dev/vfio/1");
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_TYPE1_NESTING_IOMMU), 1);
    assert.equal(e.p.ioctl(c, V.VFIO_CHECK_EXTENSION, V.VFIO_EEH), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_GET_API_VERSION, 5), 0);
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(e, c)), 0);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1_NESTING_IOMMU), -EINVAL);
    assert.equal(e.twin.kernel.modules.loaded.get("vfio_iommu_type1")!.refcnt, 0);
    assert.equal(e.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), 0);
    assert.equal(deviceFd(e, g, `${BDF}x`), -ENODEV);
    const d = deviceFd(e, g);
    assert.equal(e.p.ioctl(d, V.VFIO_GROUP_GET_STATUS, e.scr), -ENOTTY);
    assert.equal(e.p.ioctl(g, V.VFIO_DEVICE_GET_INFO, e.scr), -ENOTTY);
    assert.equal(e.p.ioctl(c, V.VFIO_GROUP_GET_STATUS, e.scr), -ENOTTY);
    assert.equal(e.p.ioctl(c, V.VFIO_DEVICE_GET_INFO, e.scr), -ENOTTY);
    assert.equal(map(e, c, e.buf, 0n, 0x10000000000n), -EINVAL);
    assert.equal(map(e, c, e.buf, 0n, 0x80000000n), -EFAULT);
  });
});

describe("vfio_pci unbind and rebind", () => {
  it("unloading vfio_pci removes the group node; an open group fd then answers ENODEV; reload restores vfio0", () => {
    const e = env();
    const k = e.twin.kernel;
    const { c, g } = legacy(e);
    assert.equal(map(e, c, e.buf, 0x100000n, 0x1000n), 0);
    assert.equal(k.modules.unload("vfio_pci"), 0, "no device is open");
    assert.equal(e.p.open("/dev/vfio/1"), -ENOENT);
    assert.equal(e.p.readlink(`/sys/bus/pci/devices/${BDF}/driver`), -ENOENT);
    assert.equal(status(e, g).rc, -ENODEV);
    assert.equal(e.p.proc.mm.lockedVm, 0, "the container lost its last group and its mappings");
    assert.equal(e.p.ioctl(g, V.VFIO_GROUP_UNSET_CONTAINER), -EINVAL);
    e.p.close(g);
    e.p.close(c);
    assert.equal(k.modules.load("vfio_pci"), 0);
    assert.deepEqual(e.p.readdir(`/sys/bus/pci/devices/${BDF}/vfio-dev`), ["vfio0"]);
    const l = legacy(e);
    assert.ok(deviceFd(e, l.g) >= 0);
    assert.equal(k.modules.unload("vfio_pci") < 0, true, "an open device pins the driver");
    e.twin.kill(e.p);
    assert.deepEqual(checkVfioQuiescent(k), []);
  });
});
