import { test } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";
import { BDF, call, deviceFd, env, legacy, map, s32, unmap } from "./helpers.js";

test("smoke: the legacy flow on the oracle machine", () => {
  const e = env();
  const { c, g } = legacy(e);
  assert.equal(map(e, c, e.buf, 0x100000n, 0x4000n), 0);
  const d = deviceFd(e, g, BDF);
  assert.ok(d >= 0, `device fd ${d}`);
  const info = call(e, d, V.VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: V.vfio_device_info.size });
  assert.equal(info.rc, 0);
  assert.equal(info.out.flags, 2);
  assert.equal(info.out.num_regions, 9);
  assert.equal(unmap(e, c, 0n, 0x1000000n).size, 0x4000n);
  void s32;
  assert.equal(e.p.close(d), 0);
  assert.equal(e.p.close(g), 0);
  assert.equal(e.p.close(c), 0);
});
