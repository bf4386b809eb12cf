// Every fallible step of the attach, map, copy, replace and bind paths fails in turn (as
// tools/testing/selftests/iommu/iommufd_fail_nth.c does): each failure must return an
// error and leave objects, areas, reservations, pins, accounting and the IOMMU group exactly
// as they were, and all invariants must hold; then the same call succeeds unarmed.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as U from "../../src/uapi/iommufd.js";
import { setFailNth, failNthSteps } from "../../src/iommufd/fail_nth.js";
import type { IommufdCtx } from "../../src/iommufd/main.js";
import { IommufdIoas } from "../../src/iommufd/ioas.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import {
  type Env,
  setup,
  teardown,
  ioasAlloc,
  map,
  rawFields as raw,
  checkAll,
  RW,
  FIXED,
  bindIommufd,
  attachPt,
} from "./helpers.js";

const BUF = 0x10000000;

function ctxOf(e: Env): IommufdCtx {
  return e.p.proc.files.lookup(e.fd)!.privateData as IommufdCtx;
}

/** Everything a failed call must leave alone, as a comparable value. */
function snapshot(e: Env): unknown {
  const ictx = ctxOf(e);
  const core = IommuCore.of(e.twin.kernel);
  return {
    objects: ictx.objects.objects().map((o) => `${o.id}:${o.type}:${o.refs}`),
    areas: ictx.objects
      .objects()
      .filter((o): o is IommufdIoas => o instanceof IommufdIoas)
      .map((o) => [
        o.id,
        o.iopt.iovaAlignment,
        o.iopt.areas.all().map((a) => `${a.start}-${a.last}:${a.filled}`),
        o.iopt.reserved.all().map((r) => `${r.start}-${r.last}`),
        o.iopt.domains.length,
      ]),
    groups: [...ictx.groups.keys()],
    pinned: e.p.proc.mm.pinnedVm,
    locked: e.p.proc.user.lockedVm,
    groupDomain: core.group(1)!.domain.type,
    pins: [0, 1, 2, 3, 4, 5].map((i) => e.p.proc.mm.pageAt(BUF + i * 0x1000)!.pins),
  };
}

/** Fail step 1, 2, ... of `call` until it succeeds; returns how many failures were checked. */
function sweep(e: Env, call: () => number): number {
  for (let n = 1; ; n++) {
    const before = snapshot(e);
    setFailNth(n);
    const rc = call();
    const steps = failNthSteps();
    setFailNth(0);
    if (rc >= 0) {
      assert.ok(steps < n, `succeeded although step ${n} failed`);
      return n - 1;
    }
    assert.ok([-12, -22, -2].includes(rc), `step ${n}: unexpected ${rc}`);
    assert.deepEqual(snapshot(e), before, `step ${n} (rc ${rc}) changed state`);
    checkAll(e);
  }
}

function env(): { e: Env; d: number; ioas: number } {
  const e = setup({ memlock: 1 << 20 });
  assert.equal(e.p.mmap(1 << 20, { addr: BUF }), BUF);
  const ioas = ioasAlloc(e);
  const d = e.p.open("/dev/vfio/devices/vfio0");
  return { e, d, ioas };
}
const bind = (e: Env, d: number) => bindIommufd(e, d).rc;
const attach = (e: Env, d: number, pt: number) => attachPt(e, d, pt).rc;

describe("fail_nth", () => {
  it("bind and attach (automatic domain, pinning two areas)", () => {
    const { e, d, ioas } = env();
    assert.ok(sweep(e, () => bind(e, d)) >= 1);
    assert.equal(map(e, ioas, 0x100000n, 0x2000n, { va: BUF }).rc, 0);
    assert.equal(map(e, ioas, 0x200000n, 0x3000n, { va: BUF + 0x2000 }).rc, 0);
    const n = sweep(e, () => attach(e, d, ioas));
    assert.ok(n >= 5, `only ${n} fallible steps`);
    assert.equal(e.p.proc.mm.pinnedVm, 5);
    teardown(e);
  });

  it("map, copy and unmap with a domain attached", () => {
    const { e, d, ioas } = env();
    assert.equal(bind(e, d), 0);
    assert.equal(attach(e, d, ioas), 0);
    assert.ok(sweep(e, () => map(e, ioas, 0x100000n, 0x3000n, { va: BUF }).rc) >= 3);
    const other = ioasAlloc(e);
    assert.equal(attach(e, d, other), 0, "replace: the first automatic HWPT goes");
    const copy = () =>
      raw(e, U.IOMMU_IOAS_COPY, [
        ["u32", 0, 40],
        ["u32", 4, FIXED | RW],
        ["u32", 8, other],
        ["u32", 12, ioas],
        ["u64", 16, 0x3000],
        ["u64", 24, 0x500000],
        ["u64", 32, 0x100000],
      ]).rc;
    assert.ok(sweep(e, copy) >= 3);
    assert.ok(sweep(e, () => attach(e, d, ioas)) >= 3, "replace back");
    teardown(e);
  });

  it("explicit HWPT allocation and attach", () => {
    const { e, d, ioas } = env();
    assert.equal(bind(e, d), 0);
    assert.equal(map(e, ioas, 0x100000n, 0x2000n, { va: BUF }).rc, 0);
    let hwpt = 0;
    sweep(e, () => {
      const r = raw(e, U.IOMMU_HWPT_ALLOC, [
        ["u32", 0, 48],
        ["u32", 8, 2],
        ["u32", 12, ioas],
      ]);
      hwpt = Number(r.get("u32", 16));
      return r.rc;
    });
    assert.ok(hwpt > 0);
    assert.ok(sweep(e, () => attach(e, d, hwpt)) >= 1);
    teardown(e);
  });
});
