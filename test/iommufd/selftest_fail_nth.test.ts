// Fault injection through the mock (tools/testing/selftests/iommu/iommufd_fail_nth.c runs on
// mock domains): every fallible step of MOCK_DOMAIN onto a mapped IOAS, of a MAP and a COPY
// into an IOAS with mock domains, of CREATE_ACCESS and ACCESS_PAGES fails in turn; each
// failure is an errno and leaves objects, pins and invariants as they were. A map into the
// mock domain fails with ENOENT, as mock_domain_map_pages()'s own failure point does.

import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { ENOENT } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { setFailNth, failNthSteps } from "../../src/iommufd/fail_nth.js";
import type { IommufdCtx } from "../../src/iommufd/main.js";
import { type Env, setup, teardown, ioasAlloc, map, raw, checkAll, RW, FIXED } from "./helpers.js";
import { BUF, START, accessPages, checkRefs, createAccess, mockDomain, mockDomainOk } from "./selftest_helpers.js";

let e: Env;
beforeEach(() => {
  e = setup();
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
});
afterEach(() => {
  setFailNth(0);
  teardown(e);
});

const objects = () =>
  (e.p.proc.files.lookup(e.fd)!.privateData as IommufdCtx).objects.objects().map((o) => `${o.id}:${o.type}:${o.refs}`);
const pins = () => [0, 1, 2, 3].map((i) => [0, 1].find((n) => checkRefs(e, BUF + i * 0x1000, 0x1000n, n) === 0));

/** Fail each step of `call` in turn; returns the errnos seen. */
function sweep(call: () => number, undo: () => void): number[] {
  const seen: number[] = [];
  for (let n = 1; ; n++) {
    const before = { objects: objects(), pins: pins() };
    setFailNth(n);
    const rc = call();
    const steps = failNthSteps();
    setFailNth(0);
    if (steps < n) {
      assert.equal(rc, 0, `unarmed at step ${n}`);
      undo();
      return seen;
    }
    assert.ok(rc < 0, `step ${n} failed with ${rc}`);
    seen.push(-rc);
    assert.deepEqual({ objects: objects(), pins: pins() }, before, `step ${n}`);
    checkAll(e);
  }
}

describe("fail_nth through the mock", () => {
  it("MOCK_DOMAIN onto an IOAS with areas", () => {
    const ioas = ioasAlloc(e);
    assert.equal(map(e, ioas, START, 0x4000n, { va: BUF }).rc, 0);
    let stdev = 0;
    const seen = sweep(
      () => {
        const r = mockDomain(e, ioas);
        stdev = r.stdev;
        return r.rc;
      },
      () => assert.equal(raw(e, U.IOMMU_DESTROY, U.iommu_destroy, { size: 8, id: stdev }).rc, 0),
    );
    assert.ok(seen.length > 3);
    assert.ok(seen.includes(ENOENT), "the mock's map failure point");
  });

  it("MAP and COPY into an IOAS with two mock domains", () => {
    const ioas = ioasAlloc(e);
    mockDomainOk(e, ioas);
    mockDomainOk(e, ioas);
    const unmapAll = () =>
      assert.equal(
        raw(e, U.IOMMU_IOAS_UNMAP, U.iommu_ioas_unmap, { size: 24, ioas_id: ioas, iova: START, length: 0x4000n }).rc,
        0,
      );
    const seen = sweep(() => map(e, ioas, START, 0x4000n, { va: BUF }).rc, unmapAll);
    assert.ok(seen.includes(ENOENT));
    const src = ioasAlloc(e);
    assert.equal(map(e, src, START, 0x4000n, { va: BUF }).rc, 0);
    sweep(
      () =>
        raw(e, U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
          size: U.iommu_ioas_copy.size,
          flags: FIXED | RW,
          dst_ioas_id: ioas,
          src_ioas_id: src,
          dst_iova: START,
          src_iova: START,
          length: 0x4000n,
        }).rc,
      unmapAll,
    );
  });

  it("CREATE_ACCESS and ACCESS_PAGES", () => {
    const ioas = ioasAlloc(e);
    assert.equal(map(e, ioas, START, 0x4000n, { va: BUF }).rc, 0);
    let fd = -1;
    sweep(
      () => {
        const r = createAccess(e, ioas, T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
        fd = r.fd;
        return r.rc;
      },
      () => undefined,
    );
    sweep(
      () => accessPages(e, fd, START, 0x4000n, BUF).rc,
      () => assert.equal(e.p.close(fd), 0),
    );
  });
});
