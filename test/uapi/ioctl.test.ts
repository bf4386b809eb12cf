import { test } from "node:test";
import assert from "node:assert/strict";
import { _IOC_DIR, _IOC_NR, _IOC_SIZE, _IOC_TYPE, _IOWR, KVMIO } from "../../src/uapi/ioctl.js";
import { ioctlByName } from "../../src/uapi/ioctls.js";
import "../../src/uapi/vfio.js";
import "../../src/uapi/iommufd.js";
import "../../src/uapi/kvm.js";
import { HEADER_IOCTL_NUMBERS } from "./header_numbers.js";
import { errnoByName, errnoName } from "../../src/uapi/errno.js";

test("every ioctl number computed from its definition equals the kernel header's value", () => {
  assert.ok(HEADER_IOCTL_NUMBERS.length >= 12);
  for (const [name, value] of HEADER_IOCTL_NUMBERS) {
    const def = ioctlByName(name);
    assert.ok(def, `${name} is defined`);
    assert.equal(def.nr, value, `${name}: 0x${def.nr.toString(16)} != 0x${value.toString(16)}`);
  }
});

test("_IOC fields decode back", () => {
  const n = _IOWR(KVMIO, 0xe0, 12);
  assert.equal(n, 0xc00caee0);
  assert.equal(_IOC_DIR(n), 3);
  assert.equal(_IOC_TYPE(n), 0xae);
  assert.equal(_IOC_NR(n), 0xe0);
  assert.equal(_IOC_SIZE(n), 12);
});

test("errno names are the x86-64 Linux ones", () => {
  assert.equal(errnoName(22), "EINVAL");
  assert.equal(errnoName(77), "EBADFD");
  assert.equal(errnoName(95), "EOPNOTSUPP");
  assert.equal(errnoName(90), "EMSGSIZE");
  assert.equal(errnoByName("EOVERFLOW"), 75);
  assert.equal(errnoName(4095), "E4095");
});
