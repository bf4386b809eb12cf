// IOMMU_TEST_CMD's mock domain ops, modelled on tools/testing/selftests/iommu/iommufd.c
// (6.12) TEST_F bodies: MOCK_DOMAIN(_FLAGS), MOCK_DOMAIN_REPLACE, MD_CHECK_MAP,
// MD_CHECK_REFS, SET_TEMP_MEMORY_LIMIT, GET_HW_INFO and HWPT_ALLOC on a mock device, and
// the command's framing. Every test ends with the invariants and a clean process exit.

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, EFAULT, EINVAL, EIO, ENOENT, ENOTTY, EOPNOTSUPP } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { createTwin } from "../../src/twin.js";
import { setMockIommuProbes } from "../../src/iommufd/selftest_mock_dev.js";
import {
  type Env,
  setup,
  teardown,
  ioasAlloc,
  map,
  unmap,
  destroy,
  ranges,
  raw,
  RW,
  bindIommufd,
  attachPt,
} from "./helpers.js";
import {
  BUF,
  START,
  checkMap,
  checkRefs,
  hwptAlloc,
  mockDomain,
  mockDomainOk,
  replace,
  testCmd,
} from "./selftest_helpers.js";

const PAGE = 0x1000n;
const MOCK_PAGE = 0x800n;
let e: Env;
beforeEach(() => {
  e = setup();
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
});
afterEach(() => teardown(e));

describe("IOMMU_TEST_CMD framing", () => {
  it("is 72 bytes, minimum 68; unknown ops are EOPNOTSUPP", () => {
    assert.equal(T.iommu_test_cmd.size, 72);
    assert.equal(testCmd(e, 99, 0).rc, -EOPNOTSUPP);
    assert.equal(testCmd(e, 0, 0).rc, -EOPNOTSUPP);
    assert.equal(testCmd(e, T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, [["u32", 0, 65536]], 67).rc, -EINVAL);
    assert.equal(testCmd(e, T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, [["u32", 0, 65536]], 68).rc, 0);
  });

  it("SET_TEMP_MEMORY_LIMIT: at least sizeof(unsigned long) + sizeof(u32)", () => {
    const lim = (n: number) => testCmd(e, T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, [["u32", 0, n]]).rc;
    assert.equal(lim(11), -EINVAL);
    assert.equal(lim(12), 0);
    assert.equal(lim(16), 0);
    assert.equal(lim(65536), 0);
  });

  it("without CONFIG_IOMMUFD_TEST the command is ENOTTY, as any unknown iommufd ioctl", () => {
    const twin = createTwin({ kvm: false, iommufdTest: false });
    const p = twin.spawn();
    const fd = p.open("/dev/iommu");
    const buf = p.mmap(4096);
    p.write(buf, T.iommu_test_cmd.encode({ size: 72, op: T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT }));
    assert.equal(p.ioctl(fd, T.IOMMU_TEST_CMD, buf), -ENOTTY);
    assert.equal(p.ioctl(fd, T.IOMMU_TEST_CMD, 0), -ENOTTY, "not even the size is read");
    // and IOMMU_IOAS_COPY knows no syzkaller flag
    p.write(
      buf,
      U.iommu_ioas_copy.encode({
        size: U.iommu_ioas_copy.size,
        flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | T.MOCK_FLAGS_ACCESS_SYZ,
        length: 0x1000n,
      }),
    );
    assert.equal(p.ioctl(fd, U.IOMMU_IOAS_COPY, buf), -EOPNOTSUPP);
    twin.kill(p);
  });
});

describe("MOCK_DOMAIN", () => {
  it("binds a mock device and attaches it to an automatic domain (iommufd_ioas fixture)", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    // the selftest object first, then the device, then the automatic HWPT
    assert.deepEqual(d, { rc: 0, stdev: 2, idev: 3, hwpt: 4 });
    // ioas_destroy: the HWPT holds the IOAS; the device and HWPT are in use
    assert.equal(destroy(e, ioas), -EBUSY);
    assert.equal(destroy(e, d.hwpt), -EBUSY);
    assert.equal(destroy(e, d.idev), -EBUSY);
    // the mock domain's aperture and page size shape the IOAS
    const r = ranges(e, ioas, 4);
    assert.deepEqual(r.list, [[T.MOCK_APERTURE_START, T.MOCK_APERTURE_LAST]]);
    assert.equal(r.align, MOCK_PAGE);
    assert.equal(map(e, ioas, 0x1000n, PAGE, { va: BUF }).rc, -EINVAL, "below the aperture");
    // destroying the selftest object takes the device and its automatic HWPT with it
    assert.equal(destroy(e, d.stdev), 0);
    assert.equal(destroy(e, d.hwpt), -ENOENT);
    assert.equal(destroy(e, d.idev), -ENOENT);
    assert.equal(destroy(e, ioas), 0);
  });

  it("two devices share the automatic domain; ids of gone objects are reused", () => {
    const ioas = ioasAlloc(e);
    const a = mockDomainOk(e, ioas);
    const b = mockDomainOk(e, ioas);
    assert.equal(b.hwpt, a.hwpt, "each mock device has its group, the domain is compatible");
    assert.deepEqual([b.stdev, b.idev], [5, 6]);
    assert.equal(destroy(e, a.stdev), 0);
    assert.equal(destroy(e, a.hwpt), -EBUSY, "still used by b");
    const c = mockDomainOk(e, ioas);
    assert.deepEqual([c.stdev, c.idev, c.hwpt], [2, 3, a.hwpt]);
  });

  it("hwpt_attach: on a HWPT directly; errors leave nothing behind", () => {
    const ioas = ioasAlloc(e);
    assert.equal(mockDomain(e, 99).rc, -ENOENT);
    const d = mockDomainOk(e, ioas);
    const x = mockDomainOk(e, d.hwpt);
    assert.equal(x.hwpt, d.hwpt);
    assert.equal(mockDomain(e, d.idev).rc, -EINVAL, "a device is not an attach target");
    assert.equal(mockDomain(e, ioas, 1 << 5).rc, -EINVAL, "unknown device flags");
    // the failed attempts freed their ids: the next object gets the lowest free one
    assert.equal(ioasAlloc(e), x.stdev + 2);
  });

  it("on the VT-d kernel the mock device does not probe: EINVAL, nothing left behind", () => {
    const ioas = ioasAlloc(e);
    setMockIommuProbes(e.twin.kernel, false);
    assert.equal(mockDomain(e, ioas).rc, -EINVAL);
    assert.equal(mockDomain(e, ioas, 1 << 5).rc, -EINVAL, "flags are checked first, same answer");
    assert.equal(ioasAlloc(e), 2, "the selftest object's id was freed");
    setMockIommuProbes(e.twin.kernel, true);
    assert.deepEqual(mockDomainOk(e, ioas), { rc: 0, stdev: 3, idev: 4, hwpt: 5 });
  });

  it("the user's struct gets the ids only when it was big enough to hold them", () => {
    const ioas = ioasAlloc(e);
    const r = testCmd(e, T.IOMMU_TEST_OP_MOCK_DOMAIN, ioas, [], 68);
    assert.equal(r.rc, 0);
    assert.equal(r.get("u32", 0), 2n);
  });
});

describe("MD_CHECK_MAP and MD_CHECK_REFS", () => {
  it("basic: a one page map is in the mock domain, pinned once", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    assert.equal(checkRefs(e, BUF, PAGE, 0), 0);
    const m = map(e, ioas, 0n, PAGE, { flags: RW, va: BUF });
    assert.equal(m.rc, 0);
    assert.ok(m.iova >= START);
    assert.equal(checkMap(e, d.hwpt, m.iova, PAGE, BUF), 0);
    assert.equal(checkRefs(e, BUF, PAGE, 1), 0);
    assert.equal(checkRefs(e, BUF, PAGE, 0), -EIO);
    // another user page is not what is mapped there
    assert.equal(checkMap(e, d.hwpt, m.iova, PAGE, BUF + 0x1000), -EINVAL);
    // the second half of the page sits at the second mock page
    assert.equal(checkMap(e, d.hwpt, m.iova + MOCK_PAGE, MOCK_PAGE, BUF + 0x800), 0);
    assert.equal(checkMap(e, d.hwpt, m.iova + MOCK_PAGE, MOCK_PAGE, BUF), -EINVAL);
    // argument checks
    assert.equal(checkMap(e, d.hwpt, m.iova + 1n, MOCK_PAGE, BUF), -EINVAL);
    assert.equal(checkMap(e, d.hwpt, m.iova, MOCK_PAGE + 1n, BUF), -EINVAL);
    assert.equal(checkMap(e, d.hwpt, m.iova, MOCK_PAGE, BUF + 1), -EINVAL);
    assert.equal(checkMap(e, d.hwpt, m.iova, 0x1000n, 0xfffffffffffff800n), -EINVAL, "uptr + length overflows");
    assert.equal(checkMap(e, ioas, m.iova, PAGE, BUF), -ENOENT, "not a HWPT");
    assert.equal(checkMap(e, d.hwpt, m.iova, PAGE, 0x1000), -EFAULT, "no user page there");
    assert.equal(checkMap(e, d.hwpt, m.iova, 0n, 0x1000), 0, "nothing to check");
    assert.equal(checkRefs(e, BUF + 1, PAGE, 1), -EINVAL);
    assert.equal(checkRefs(e, BUF, PAGE + 1n, 1), -EINVAL);
    assert.equal(checkRefs(e, 0x1000, PAGE, 0), -EFAULT);
    assert.equal(unmap(e, ioas, m.iova, PAGE).rc, 0);
    assert.equal(checkMap(e, d.hwpt, m.iova, PAGE, BUF), -EINVAL, "unmapped");
    assert.equal(checkRefs(e, BUF, PAGE, 0), 0);
  });

  it("a HWPT of the edu device is not a mock domain; a mock device cannot join it", () => {
    const ioas = ioasAlloc(e);
    const cdev = e.p.open("/dev/vfio/devices/vfio0");
    assert.ok(cdev >= 0);
    const b = bindIommufd(e, cdev);
    assert.equal(b.rc, 0);
    const at = attachPt(e, cdev, ioas);
    assert.equal(at.rc, 0);
    assert.equal(checkMap(e, at.pt, 0x100000n, PAGE, BUF), -EINVAL);
    assert.equal(mockDomain(e, at.pt).rc, -EINVAL, "__iommu_attach_group(): another driver's domain");
    const withMsi = ranges(e, ioas, 8).list;
    assert.equal(withMsi.length, 2, "the VT-d aperture minus the MSI window");
    // attached to the IOAS, the mock device gets a mock domain of its own
    const d = mockDomainOk(e, ioas);
    assert.notEqual(d.hwpt, at.pt);
    // the edu device cannot move to it, and its MSI window stays reserved in the shared IOAS
    assert.equal(attachPt(e, cdev, d.hwpt).rc, -EINVAL);
    assert.equal(destroy(e, d.stdev), 0);
    assert.deepEqual(ranges(e, ioas, 8).list, withMsi);
    assert.equal(e.p.close(cdev), 0);
  });

  it("all_aligns: every 2 KiB start and length maps the pages behind the user address", () => {
    const ioas = ioasAlloc(e);
    const a = mockDomainOk(e, ioas);
    const b = mockDomainOk(e, ioas);
    void b;
    const size = 8 * 0x1000;
    const buf = e.p.mmap(size);
    assert.equal(checkRefs(e, buf, BigInt(size), 0), 0);
    for (let start = 0; start < size; start += 0x800)
      for (let end = start + 0x800; end < size; end += 0x800) {
        const length = BigInt(end - start);
        const m = map(e, ioas, 0n, length, { flags: RW, va: buf + start });
        assert.equal(m.rc, 0);
        assert.equal(checkMap(e, a.hwpt, m.iova, length, buf + start), 0);
        const s = Math.floor(start / 0x1000) * 0x1000;
        const en = Math.floor(end / 0x1000) * 0x1000;
        if (en > s) assert.equal(checkRefs(e, buf + s, BigInt(en - s), 1), 0);
        assert.equal(unmap(e, ioas, m.iova, length).rc, 0);
      }
    assert.equal(checkRefs(e, buf, BigInt(size), 0), 0);
  });

  it("all_aligns_copy: a domain added while the area exists maps it too", () => {
    const ioas = ioasAlloc(e);
    mockDomainOk(e, ioas);
    const m = map(e, ioas, 0n, 0x2800n, { flags: RW, va: BUF + 0x800 });
    assert.equal(m.rc, 0);
    const x = mockDomainOk(e, ioas);
    assert.equal(checkMap(e, x.hwpt, m.iova, 0x2800n, BUF + 0x800), 0);
    assert.equal(checkRefs(e, BUF, 0x3000n, 1), 0);
    assert.equal(destroy(e, x.stdev), 0);
    assert.equal(unmap(e, ioas, m.iova, 0x2800n).rc, 0);
    assert.equal(checkRefs(e, BUF, 0x3000n, 0), 0);
  });

  it("closing the iommufd unpins everything (teardown_iommufd)", () => {
    const ioas = ioasAlloc(e);
    mockDomainOk(e, ioas);
    assert.equal(map(e, ioas, START, 0x10000n, { va: BUF }).rc, 0);
    assert.equal(checkRefs(e, BUF, 0x10000n, 1), 0);
    assert.equal(e.p.close(e.fd), 0);
    e.fd = e.p.open("/dev/iommu");
    assert.equal(checkRefs(e, BUF, 0x10000n, 0), 0);
  });
});

describe("MOCK_DOMAIN_REPLACE", () => {
  it("replace: to another IOAS frees the automatic HWPT; back and forth", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const other = ioasAlloc(e);
    const r = replace(e, d.stdev, other);
    assert.equal(r.rc, 0);
    assert.notEqual(r.pt, d.hwpt);
    assert.equal(replace(e, d.stdev, d.hwpt).rc, -ENOENT, "the old automatic HWPT is gone");
    assert.equal(replace(e, d.stdev, other).rc, 0);
    assert.equal(replace(e, d.stdev, ioas).rc, 0);
    assert.equal(destroy(e, other), 0);
    assert.equal(replace(e, d.idev, ioas).rc, -ENOENT, "needs the selftest object");
    assert.equal(replace(e, 99, ioas).rc, -ENOENT);
  });

  it("alloc_hwpt: a rotation through user HWPTs (iommufd_mock_domain.alloc_hwpt)", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    assert.equal(hwptAlloc(e, d.idev, ioas, ~U.IOMMU_HWPT_ALLOC_NEST_PARENT).rc, -EOPNOTSUPP);
    const h0 = hwptAlloc(e, d.idev, ioas);
    const h1 = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT);
    assert.equal(h0.rc, 0);
    assert.equal(h1.rc, 0);
    assert.deepEqual(replace(e, d.stdev, h0.id), { rc: 0, pt: h0.id });
    assert.equal(destroy(e, h0.id), -EBUSY);
    assert.equal(replace(e, d.stdev, h1.id).rc, 0);
    assert.equal(destroy(e, h1.id), -EBUSY);
    assert.equal(replace(e, d.stdev, ioas).rc, 0);
    assert.equal(destroy(e, h1.id), 0);
    const x = mockDomainOk(e, h0.id);
    assert.equal(destroy(e, x.stdev), 0);
    assert.equal(destroy(e, h0.id), 0);
  });

  it("driver data for a paging mock domain is EOPNOTSUPP", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const r = hwptAlloc(e, d.idev, ioas, 0, { type: T.IOMMU_HWPT_DATA_SELFTEST, uptr: BigInt(BUF), len: 4 });
    assert.equal(r.rc, -EOPNOTSUPP);
  });
});

describe("GET_HW_INFO of a mock device", () => {
  it("answers the selftest type and register, with dirty tracking unless NO_DIRTY", () => {
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const nd = mockDomainOk(e, ioas, T.MOCK_FLAGS_DEVICE_NO_DIRTY);
    const info = (dev: number, len: number) => {
      e.p.write(BUF, new Uint8Array(16).fill(0xff));
      const r = raw(e, U.IOMMU_GET_HW_INFO, U.iommu_hw_info, {
        size: U.iommu_hw_info.size,
        dev_id: dev,
        data_len: len,
        data_uptr: BigInt(BUF),
      });
      return { ...r, data: e.p.read(BUF, 16) };
    };
    const r = info(d.idev, 16);
    assert.equal(r.rc, 0);
    assert.equal(r.out.out_data_type, T.IOMMU_HW_INFO_TYPE_SELFTEST);
    assert.equal(r.out.data_len, 8);
    assert.equal(r.out.out_capabilities, BigInt(U.IOMMU_HW_CAP_DIRTY_TRACKING));
    assert.equal(r.out.out_max_pasid_log2, 0);
    assert.deepEqual(T.iommu_test_hw_info.decode(r.data), { flags: 0, test_reg: T.IOMMU_HW_INFO_SELFTEST_REGVAL });
    assert.deepEqual([...r.data.subarray(8)], new Array(8).fill(0), "the rest of the buffer is cleared");
    const small = info(d.idev, 4);
    assert.equal(small.rc, 0);
    assert.equal(small.out.data_len, 8);
    assert.deepEqual([...small.data.subarray(4, 8)], [0xff, 0xff, 0xff, 0xff], "only data_len bytes are written");
    assert.equal(info(nd.idev, 8).out.out_capabilities, 0n);
    assert.equal(info(99, 8).rc, -ENOENT);
  });
});
