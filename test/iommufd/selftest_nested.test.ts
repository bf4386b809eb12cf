// Nested mock HWPTs, IOMMU_HWPT_INVALIDATE and MD_CHECK_IOTLB, modelled on
// tools/testing/selftests/iommu/iommufd.c (6.12) TEST_F(iommufd_ioas, alloc_hwpt_nested) with
// its IOPF through the fault queue, and its no_domain variant; TRIGGER_IOPF's other cases.

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, EOPNOTSUPP } from "../../src/uapi/errno.js";
import { setIommuIopf } from "../../src/iommufd/fault.js";
import * as U from "../../src/uapi/iommufd.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { type Env, setup, teardown, ioasAlloc, destroy, raw, rawFields, bindIommufd } from "./helpers.js";
import { BUF, hwptAlloc, mockDomain, mockDomainOk, replace, testCmd } from "./selftest_helpers.js";

let e: Env;
beforeEach(() => {
  e = setup();
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
});
afterEach(() => teardown(e));

const DATA = BUF; // struct iommu_hwpt_selftest { iotlb = IOMMU_TEST_IOTLB_DEFAULT }
const INV = BUF + 0x1000; // struct iommu_hwpt_invalidate_selftest inv_reqs[2]

function nested(
  dev: number,
  parent: number,
  opts: { flags?: number; type?: number; uptr?: number; len?: number } = {},
) {
  return hwptAlloc(e, dev, parent, opts.flags ?? 0, {
    type: opts.type ?? T.IOMMU_HWPT_DATA_SELFTEST,
    uptr: BigInt(opts.uptr ?? DATA),
    len: opts.len ?? 4,
  });
}

function iopf(dev: number, parent: number, fault: number) {
  return raw(e, U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, {
    size: U.iommu_hwpt_alloc.size,
    flags: U.IOMMU_HWPT_FAULT_ID_VALID,
    dev_id: dev,
    pt_id: parent,
    data_type: T.IOMMU_HWPT_DATA_SELFTEST,
    data_len: 4,
    data_uptr: BigInt(DATA),
    fault_id: fault,
  });
}

function invalidate(
  hwpt: number,
  reqs: [number, number][],
  num: number,
  opts: { type?: number; len?: number; uptr?: number } = {},
) {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  reqs.forEach(([flags, id], i) => {
    dv.setUint32(8 * i, flags, true);
    dv.setUint32(8 * i + 4, id, true);
  });
  e.p.write(INV, b);
  const r = raw(e, U.IOMMU_HWPT_INVALIDATE, U.iommu_hwpt_invalidate, {
    size: U.iommu_hwpt_invalidate.size,
    hwpt_id: hwpt,
    data_uptr: BigInt(opts.uptr ?? INV),
    data_type: opts.type ?? T.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    entry_len: opts.len ?? 8,
    entry_num: num,
  });
  return { rc: r.rc, num: r.out.entry_num };
}

function triggerIopf(dev: number, pasid: number): number {
  return testCmd(e, T.IOMMU_TEST_OP_TRIGGER_IOPF, 0, [
    ["u32", 0, dev],
    ["u32", 4, pasid],
    ["u32", 8, 2],
    ["u32", 12, U.IOMMU_PGFAULT_PERM_READ | U.IOMMU_PGFAULT_PERM_WRITE],
    ["u64", 16, 0xdeadbeafn],
  ]).rc;
}

function respond(fd: number, cookie: number, code: number): number {
  const at = BUF + 0x3000;
  e.p.write(at, U.iommu_hwpt_page_response.encode({ cookie, code }));
  return e.p.writeFd(fd, at, 8);
}

const iotlb = (hwpt: number, id: number, want: number) =>
  testCmd(e, T.IOMMU_TEST_OP_MD_CHECK_IOTLB, hwpt, [
    ["u32", 0, id],
    ["u32", 4, want],
  ]).rc;
const iotlbAll = (hwpt: number, want: number) => [0, 1, 2, 3].map((i) => iotlb(hwpt, i, want));

describe("alloc_hwpt_nested", () => {
  it("with a mock device: negative cases, two nested HWPTs, invalidation, replace", () => {
    e.p.write(DATA, T.iommu_hwpt_selftest.encode({ iotlb: T.IOMMU_TEST_IOTLB_DEFAULT }));
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    assert.equal(hwptAlloc(e, d.idev, 99).rc, -EINVAL, "no such parent");
    assert.equal(hwptAlloc(e, 99, ioas).rc, -ENOENT);
    assert.equal(hwptAlloc(e, d.idev, d.idev).rc, -EINVAL);
    const nf = U.IOMMU_HWPT_ALLOC_NEST_PARENT | U.IOMMU_HWPT_FAULT_ID_VALID;
    assert.equal(hwptAlloc(e, d.idev, ioas, nf).rc, -EOPNOTSUPP);
    const parent = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT).id;
    const notWork = hwptAlloc(e, d.idev, ioas).id;
    // negative nested cases
    assert.equal(nested(d.idev, parent, { type: U.IOMMU_HWPT_DATA_NONE }).rc, -EINVAL);
    assert.equal(nested(d.idev, parent, { type: T.IOMMU_HWPT_DATA_SELFTEST + 1 }).rc, -EOPNOTSUPP);
    assert.equal(nested(d.idev, parent, { len: 3 }).rc, -EINVAL);
    assert.equal(nested(d.idev, parent, { uptr: 0 }).rc, -EFAULT);
    assert.equal(nested(d.idev, parent, { flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT }).rc, -EOPNOTSUPP);
    assert.equal(nested(d.idev, notWork).rc, -EINVAL, "not a NEST_PARENT");
    assert.equal(nested(d.idev, d.hwpt).rc, -EINVAL, "an automatic HWPT");
    // two nested HWPTs on one parent, and one with a fault queue
    const f = rawFields(e, U.IOMMU_FAULT_QUEUE_ALLOC, [["u32", 0, 16]]);
    assert.equal(f.rc, 0);
    const faultId = Number(f.get("u32", 8));
    const faultFd = Number(f.get("u32", 12));
    const n0 = nested(d.idev, parent);
    const n1 = nested(d.idev, parent);
    assert.equal(n0.rc, 0);
    assert.equal(n1.rc, 0);
    assert.equal(iopf(d.idev, parent, 0xffffffff).rc, -ENOENT);
    const ip = iopf(d.idev, parent, faultId);
    assert.equal(ip.rc, 0);
    const iopfId = ip.out.out_hwpt_id;
    assert.equal(destroy(e, faultId), -EBUSY, "held by its fd and by the IOPF HWPT");
    assert.deepEqual(iotlbAll(n0.id, T.IOMMU_TEST_IOTLB_DEFAULT), [0, 0, 0, 0]);
    assert.deepEqual(iotlbAll(n1.id, T.IOMMU_TEST_IOTLB_DEFAULT), [0, 0, 0, 0]);
    assert.equal(iotlb(n0.id, 4, T.IOMMU_TEST_IOTLB_DEFAULT), -EINVAL);
    assert.equal(iotlb(parent, 0, T.IOMMU_TEST_IOTLB_DEFAULT), -ENOENT, "not nested");
    assert.equal(nested(d.idev, n0.id).rc, -EINVAL, "nested on nested");
    assert.equal(destroy(e, parent), -EBUSY);
    // hwpt_invalidate only supports a nested HWPT
    assert.deepEqual(invalidate(parent, [], 1), { rc: -ENOENT, num: 0 });
    assert.deepEqual(invalidate(n0.id, [], 0), { rc: 0, num: 0 });
    const ALL = T.IOMMU_TEST_INVALIDATE_FLAG_ALL;
    assert.deepEqual(invalidate(n0.id, [], 1, { type: T.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID }), {
      rc: -EINVAL,
      num: 0,
    });
    assert.deepEqual(invalidate(n0.id, [[0, 0]], 1, { len: 9 }), { rc: -EINVAL, num: 0 });
    assert.deepEqual(invalidate(n0.id, [[0, 0]], 1, { len: 1 }), { rc: -EINVAL, num: 0 });
    assert.deepEqual(invalidate(n0.id, [[0xffffffff, 0]], 1), { rc: -EOPNOTSUPP, num: 0 });
    assert.deepEqual(invalidate(n0.id, [[0, 0]], 1, { uptr: 0 }), { rc: -EINVAL, num: 0 });
    assert.deepEqual(invalidate(n0.id, [[0, 0]], 1, { len: 0 }), { rc: -EINVAL, num: 0 });
    assert.deepEqual(invalidate(n0.id, [[0, 4]], 1), { rc: -EINVAL, num: 0 });
    const D = T.IOMMU_TEST_IOTLB_DEFAULT;
    assert.deepEqual(
      invalidate(
        n0.id,
        [
          [0, 0],
          [0xffffffff, 1],
        ],
        2,
      ),
      { rc: -EOPNOTSUPP, num: 1 },
    );
    assert.deepEqual([iotlb(n0.id, 0, 0), iotlb(n0.id, 1, D), iotlb(n0.id, 2, D), iotlb(n0.id, 3, D)], [0, 0, 0, 0]);
    assert.deepEqual(
      invalidate(
        n0.id,
        [
          [0, 0],
          [0, 4],
        ],
        2,
      ),
      { rc: -EINVAL, num: 1 },
    );
    assert.deepEqual(invalidate(n0.id, [[0, 1]], 1), { rc: 0, num: 1 });
    assert.deepEqual([iotlb(n0.id, 0, 0), iotlb(n0.id, 1, 0), iotlb(n0.id, 2, D), iotlb(n0.id, 3, D)], [0, 0, 0, 0]);
    assert.deepEqual(
      invalidate(
        n0.id,
        [
          [0, 2],
          [0, 3],
        ],
        2,
      ),
      { rc: 0, num: 2 },
    );
    assert.deepEqual(iotlbAll(n0.id, 0), [0, 0, 0, 0]);
    assert.deepEqual(invalidate(n1.id, [[ALL, 0]], 1), { rc: 0, num: 1 });
    assert.deepEqual(iotlbAll(n1.id, 0), [0, 0, 0, 0]);
    // attach the device to the nested HWPTs
    assert.deepEqual(replace(e, d.stdev, n0.id), { rc: 0, pt: n0.id });
    assert.equal(destroy(e, n0.id), -EBUSY);
    assert.equal(replace(e, d.stdev, n1.id).rc, 0);
    assert.equal(destroy(e, n1.id), -EBUSY);
    assert.equal(destroy(e, n0.id), 0);
    // the oracle's kernel has no CONFIG_IOMMU_IOPF: the mock cannot enable IOPF, and the
    // kernel's selftest stops here ("not ok" on it)
    assert.equal(replace(e, d.stdev, iopfId).rc, -ENODEV);
    assert.equal(mockDomain(e, iopfId).rc, -ENODEV);
    assert.equal(triggerIopf(d.idev, 1), 0, "iommu_report_device_fault() is a stub");
    assert.equal(e.p.readFd(faultFd, BUF + 0x2000, 40), 0);
    assert.equal(replace(e, d.stdev, parent).rc, 0);
    assert.equal(destroy(e, n1.id), 0);
    assert.equal(destroy(e, iopfId), 0);
    assert.equal(replace(e, d.stdev, ioas).rc, 0);
    assert.equal(destroy(e, parent), 0);
    assert.equal(destroy(e, notWork), 0);
    assert.equal(e.p.close(faultFd), 0);
    assert.equal(destroy(e, faultId), 0);
  });

  it("with CONFIG_IOMMU_IOPF: the fault reaches the fault fd, is answered, or is answered for us", () => {
    setIommuIopf(e.twin.kernel, true);
    e.p.write(DATA, T.iommu_hwpt_selftest.encode({ iotlb: T.IOMMU_TEST_IOTLB_DEFAULT }));
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const parent = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT).id;
    const f = rawFields(e, U.IOMMU_FAULT_QUEUE_ALLOC, [["u32", 0, 16]]);
    const faultId = Number(f.get("u32", 8));
    const faultFd = Number(f.get("u32", 12));
    const ip = iopf(d.idev, parent, faultId);
    assert.equal(ip.rc, 0);
    const iopfId = ip.out.out_hwpt_id;
    assert.equal(replace(e, d.stdev, iopfId).rc, 0);
    assert.equal(destroy(e, iopfId), -EBUSY);
    // trigger an IOPF on the device (_test_cmd_trigger_iopf()): read the fault, answer it
    assert.equal(triggerIopf(d.idev, 1), 0);
    const buf = BUF + 0x2000;
    assert.equal(e.p.readFd(faultFd, buf, 0), -EINVAL, "the group does not fit in 0 bytes");
    assert.equal(e.p.readFd(faultFd, buf, 80), 40);
    const f0 = U.iommu_hwpt_pgfault.decode(e.p.read(buf, 40));
    assert.deepEqual(f0, {
      flags: U.IOMMU_PGFAULT_FLAGS_PASID_VALID | U.IOMMU_PGFAULT_FLAGS_LAST_PAGE,
      dev_id: d.idev,
      pasid: 1,
      grpid: 2,
      perm: U.IOMMU_PGFAULT_PERM_READ | U.IOMMU_PGFAULT_PERM_WRITE,
      __reserved: 0,
      addr: 0xdeadbeafn,
      length: 0,
      cookie: 1,
    });
    assert.equal(e.p.readFd(faultFd, buf, 40), 0, "nothing more");
    assert.equal(respond(faultFd, 1, 2), -EINVAL, "an unknown response code");
    assert.equal(respond(faultFd, 2, U.IOMMUFD_PAGE_RESP_SUCCESS), -EINVAL, "an unknown cookie");
    assert.equal(respond(faultFd, 1, U.IOMMUFD_PAGE_RESP_SUCCESS), 8);
    assert.equal(respond(faultFd, 1, U.IOMMUFD_PAGE_RESP_SUCCESS), -EINVAL, "answered already");
    // requests still pending when the device leaves are answered by the kernel
    assert.equal(triggerIopf(d.idev, 0), 0);
    assert.equal(triggerIopf(d.idev, 0), 0);
    assert.equal(e.p.readFd(faultFd, buf, 40), 40, "one group at a time fits");
    assert.equal(U.iommu_hwpt_pgfault.decode(e.p.read(buf, 40)).flags, U.IOMMU_PGFAULT_FLAGS_LAST_PAGE);
    assert.equal(replace(e, d.stdev, parent).rc, 0);
    assert.equal(e.p.readFd(faultFd, buf, 40), 0);
    assert.equal(respond(faultFd, 1, U.IOMMUFD_PAGE_RESP_SUCCESS), -EINVAL);
    assert.equal(triggerIopf(d.idev, 1), 0, "no handler: dropped");
    assert.equal(e.p.readFd(faultFd, buf, 40), 0);
    assert.equal(destroy(e, iopfId), 0);
    assert.equal(replace(e, d.stdev, ioas).rc, 0);
    assert.equal(destroy(e, parent), 0);
    assert.equal(e.p.close(faultFd), 0);
    assert.equal(destroy(e, faultId), 0);
  });

  it("TRIGGER_IOPF needs a mock device", () => {
    const ioas = ioasAlloc(e);
    assert.equal(triggerIopf(99, 0), -ENOENT);
    const cdev = e.p.open("/dev/vfio/devices/vfio0");
    const b = bindIommufd(e, cdev);
    assert.equal(b.rc, 0);
    assert.equal(triggerIopf(b.devid, 0), -EINVAL);
    const d = mockDomainOk(e, ioas);
    assert.equal(triggerIopf(d.idev, 0), 0, "attached to a HWPT without a fault: dropped");
    assert.equal(e.p.close(cdev), 0);
  });

  it("no_domain: every step names an object that does not exist", () => {
    const ioas = ioasAlloc(e);
    assert.equal(hwptAlloc(e, 0, ioas).rc, -ENOENT);
    assert.equal(nested(0, 0).rc, -ENOENT);
    assert.equal(replace(e, 0, 0).rc, -ENOENT);
  });

  it("a nested HWPT left attached goes away with the process", () => {
    e.p.write(DATA, T.iommu_hwpt_selftest.encode({ iotlb: 7 }));
    const ioas = ioasAlloc(e);
    const d = mockDomainOk(e, ioas);
    const parent = hwptAlloc(e, d.idev, ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT).id;
    const n = nested(d.idev, parent);
    assert.equal(n.rc, 0);
    assert.deepEqual(iotlbAll(n.id, 7), [0, 0, 0, 0]);
    assert.equal(replace(e, d.stdev, n.id).rc, 0);
    assert.equal(mockDomainOk(e, n.id).hwpt, n.id, "a second mock device attaches to it too");
  });
});
