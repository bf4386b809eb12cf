// The ioctl framing every iommufd command shares (main.c iommufd_fops_ioctl()), walked over
// every row of the table as the selftest does (iommufd.c TEST_LENGTH), plus the numbers
// outside the table.

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { E2BIG, EFAULT, EINVAL, ENOTTY } from "../../src/uapi/errno.js";
import { _IO, _IOC, _IOC_READ, IOMMUFD_TYPE, VFIO_BASE, VFIO_TYPE } from "../../src/uapi/ioctl.js";
import * as U from "../../src/uapi/iommufd.js";
import { IOMMUFD_IOCTL_OPS } from "../../src/iommufd/main.js";
import { type Env, setup, teardown, raw, ioasAlloc } from "./helpers.js";

let e: Env;
beforeEach(() => (e = setup()));
afterEach(() => teardown(e));

describe("iommufd ioctl framing", () => {
  it("has one row per 6.12 command with the kernel's minimum sizes", () => {
    assert.equal(IOMMUFD_IOCTL_OPS.length, 15);
    const min = Object.fromEntries(IOMMUFD_IOCTL_OPS.map((o) => [o.name, o.minSize]));
    assert.deepEqual(min, {
      iommu_destroy: 8,
      iommu_ioas_alloc: 12,
      iommu_ioas_allow_iovas: 24,
      iommu_ioas_copy: 40,
      iommu_ioas_iova_ranges: 32,
      iommu_ioas_map: 40,
      iommu_ioas_unmap: 24,
      iommu_option: 24,
      iommu_vfio_ioas: 12,
      iommu_hwpt_alloc: 24,
      iommu_hw_info: 32,
      iommu_hwpt_set_dirty_tracking: 16,
      iommu_hwpt_get_dirty_bitmap: 48,
      iommu_hwpt_invalidate: 32,
      iommu_fault_alloc: 16,
    });
  });

  it("answers EINVAL below the minimum and E2BIG for a non-zero tail, for every row", () => {
    for (const o of IOMMUFD_IOCTL_OPS) {
      const short = raw(e, o.cmd, o.desc, { size: o.minSize - 1 }, o.desc.size);
      assert.equal(short.rc, -EINVAL, `${o.name} size min-1`);
      const junk = new Uint8Array(8).fill(0xaa);
      const big = raw(e, o.cmd, o.desc, { size: o.desc.size + 8 }, o.desc.size, junk);
      assert.equal(big.rc, -E2BIG, `${o.name} size+8 with junk`);
    }
  });

  it("treats a zero tail like sizeof and writes nothing past the kernel struct", () => {
    const tail = new Uint8Array(8);
    const r = raw(e, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: U.iommu_ioas_alloc.size + 8 }, 12, tail);
    assert.equal(r.rc, 0);
    assert.equal(r.out.out_ioas_id, 1);
    assert.deepEqual([...r.bytes.subarray(12)], [0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("copies back only min(user size, sizeof): IOAS_ALLOC with size 12 of a longer buffer", () => {
    // a user size between min and sizeof: the kernel zero-fills and responds with `size` bytes
    const r = raw(e, U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, { size: 12 });
    assert.equal(r.rc, 0);
  });

  it("faults on an unreadable argument and on an unreadable tail", () => {
    assert.equal(e.p.ioctl(e.fd, U.IOMMU_IOAS_ALLOC, 0x10), -EFAULT);
    // size says 4 KiB more than the mapping holds after the struct
    assert.equal(e.p.mmap(4096, { addr: 0x40000000 }), 0x40000000);
    const end = 0x40000000 + 4096 - 12;
    e.p.write(end, U.iommu_ioas_alloc.encode({ size: 4096 }));
    assert.equal(e.p.ioctl(e.fd, U.IOMMU_IOAS_ALLOC, end), -EFAULT);
  });

  it("answers ENOTTY for empty rows, wrong encodings and unknown VFIO numbers", () => {
    const addr = e.tp.scratchAddr();
    e.p.write(addr, new Uint8Array([16, 0, 0, 0]));
    assert.equal(e.p.ioctl(e.fd, _IO(IOMMUFD_TYPE, 0x8f), addr), -ENOTTY);
    assert.equal(e.p.ioctl(e.fd, _IOC(_IOC_READ, IOMMUFD_TYPE, 0x81, 12), addr), -ENOTTY);
    assert.equal(e.p.ioctl(e.fd, _IO(VFIO_TYPE, VFIO_BASE + 17), addr), -ENOTTY);
  });

  it("offers numbers outside the table to the VFIO container emulation", () => {
    assert.equal(e.p.ioctl(e.fd, _IO(VFIO_TYPE, VFIO_BASE + 0)), 0); // VFIO_GET_API_VERSION
    assert.equal(e.p.ioctl(e.fd, _IO(VFIO_TYPE, VFIO_BASE + 1), 3), 1); // CHECK_EXTENSION TYPE1v2
    assert.equal(e.p.ioctl(e.fd, _IO(VFIO_TYPE, VFIO_BASE + 1), 10), 0); // UPDATE_VADDR
    assert.equal(ioasAlloc(e), 1);
  });
});
