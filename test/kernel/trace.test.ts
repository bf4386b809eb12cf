import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { formatEvent } from "../../src/kernel/trace.js";
import { KVM_CREATE_DEVICE, KVM_CREATE_VM, KVM_GET_API_VERSION, kvm_create_device } from "../../src/uapi/kvm.js";

test("syscalls are traced strace-style and as JSON, with errno names", () => {
  const twin = createTwin();
  twin.kernel.trace.enabled = true;
  const p = twin.spawn();
  const fd = p.open("/dev/kvm");
  p.ioctl(fd, KVM_GET_API_VERSION, 1);
  p.close(42);
  const lines = twin.kernel.trace.events.map(formatEvent);
  assert.equal(lines[0], `[pid 1] openat(AT_FDCWD, "/dev/kvm", O_RDWR) = 3`);
  assert.equal(lines[1], `[pid 1] ioctl(3, KVM_GET_API_VERSION) = -1 EINVAL (22)`);
  assert.equal(lines[2], `[pid 1] close(42) = -1 EBADF (9)`);
  const json = JSON.parse(JSON.stringify(twin.kernel.trace.events[1]));
  assert.equal(json.call, "ioctl");
  assert.equal(json.errno, "EINVAL");
});

test("struct arguments are decoded from user memory", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const vm = p.ioctl(p.open("/dev/kvm"), KVM_CREATE_VM, 0);
  const buf = p.mmap(4096);
  p.write(buf, kvm_create_device.encode({ type: 99 }));
  twin.kernel.trace.enabled = true;
  p.ioctl(vm, KVM_CREATE_DEVICE, buf);
  const e = twin.kernel.trace.events.at(-1)!;
  assert.match(formatEvent(e), /KVM_CREATE_DEVICE, \{type=0x63, fd=0, flags=0\}\) = -1 /);
});

test("tracing is off by default and records nothing", () => {
  const twin = createTwin();
  twin.spawn().open("/dev/kvm");
  assert.equal(twin.kernel.trace.events.length, 0);
});
