// IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST's back door, the kernel selftest's) in a trace: the
// request by name, the header with op by name, the op's union member with its out_ fields
// after success, changed fields as in => out, and an unknown op's union as raw words.

import { test } from "node:test";
import assert from "node:assert/strict";
import { formatEvent } from "../../src/kernel/trace.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { ioasAlloc, setup, teardown } from "../iommufd/helpers.js";
import { testCmd } from "../iommufd/selftest_helpers.js";

test("IOMMU_TEST_CMD decodes its header, op by name and the op's member of the union", () => {
  const e = setup();
  const ioas = ioasAlloc(e);
  e.twin.kernel.trace.enabled = true;
  const md = testCmd(e, T.IOMMU_TEST_OP_MOCK_DOMAIN, ioas);
  assert.equal(md.rc, 0);
  const stdev = Number(md.get("u32", 0));
  const hwpt = Number(md.get("u32", 4));
  const idev = Number(md.get("u32", 8));
  assert.equal(
    testCmd(e, T.IOMMU_TEST_OP_ADD_RESERVED, ioas, [
      ["u64", 0, T.MOCK_APERTURE_START],
      ["u64", 8, 0x2000n],
    ]).rc,
    0,
  );
  assert.equal(
    testCmd(e, T.IOMMU_TEST_OP_CREATE_ACCESS, ioas, [["u32", 4, T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES]]).rc,
    0,
  );
  assert.equal(testCmd(e, 99, ioas, [["u64", 0, 0x1234n]]).rc < 0, true);
  // the helper's own mmaps of its argument buffer aside
  const events = e.twin.kernel.trace.events.filter((x) => x.call === "ioctl");
  const lines = events.map((x) => formatEvent(x, { pid: false }));
  assert.deepEqual(lines.slice(0, 2), [
    `ioctl(${e.fd}, IOMMU_TEST_CMD, {size=72, op=IOMMU_TEST_OP_MOCK_DOMAIN, id=${ioas}, __reserved=0, mock_domain={out_stdev_id=${stdev}, out_hwpt_id=${hwpt}, out_idev_id=${idev}}, last=0}) = 0`,
    `ioctl(${e.fd}, IOMMU_TEST_CMD, {size=72, op=IOMMU_TEST_OP_ADD_RESERVED, id=${ioas}, __reserved=0, add_reserved={start=0x1000000, length=8192}, last=0}) = 0`,
  ]);
  // the access fd the kernel wrote, after the call
  assert.match(
    lines[2]!,
    new RegExp(
      `^ioctl\\(${e.fd}, IOMMU_TEST_CMD, \\{size=72, op=IOMMU_TEST_OP_CREATE_ACCESS, id=${ioas}, __reserved=0, create_access=\\{out_access_fd=\\d+, flags=MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES\\}, last=0\\}\\) = \\d+$`,
    ),
  );
  assert.match(
    lines[3]!,
    /^ioctl\(\d+, IOMMU_TEST_CMD, \{size=72, op=99, id=\d+, __reserved=0, data=\[0x1234, 0, 0, 0, 0, 0\], last=0\}\) = -1 EOPNOTSUPP \(Operation not supported\)$/,
  );
  // the JSON form: fields by name
  const j = events[0]!.toJSON() as { args: { request: string; arg: Record<string, unknown> } };
  assert.equal(j.args.request, "IOMMU_TEST_CMD");
  assert.equal(j.args.arg.op, "IOMMU_TEST_OP_MOCK_DOMAIN");
  assert.deepEqual(j.args.arg.mock_domain, { out_stdev_id: stdev, out_hwpt_id: hwpt, out_idev_id: idev });
  e.twin.kernel.trace.enabled = false;
  for (const fd of [Number(/out_access_fd=(\d+)/.exec(lines[2]!)![1])]) e.p.close(fd);
  teardown(e);
});

test("IOMMU_TEST_CMD: a failed call shows no out_ fields", () => {
  const e = setup();
  e.twin.kernel.trace.enabled = true;
  assert.ok(testCmd(e, T.IOMMU_TEST_OP_MOCK_DOMAIN, 4242).rc < 0);
  const line = formatEvent(
    e.twin.kernel.trace.events.find((x) => x.call === "ioctl")!,
    { pid: false },
  );
  assert.equal(
    line,
    `ioctl(${e.fd}, IOMMU_TEST_CMD, {size=72, op=IOMMU_TEST_OP_MOCK_DOMAIN, id=4242, __reserved=0, mock_domain={}, last=0}) = -1 ENOENT (No such file or directory)`,
  );
  e.twin.kernel.trace.enabled = false;
  teardown(e);
});
