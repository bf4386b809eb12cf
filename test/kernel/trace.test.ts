import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { formatEvent } from "../../src/kernel/trace.js";
import { KVM_CREATE_DEVICE, KVM_CREATE_VM, KVM_GET_API_VERSION, kvm_create_device } from "../../src/uapi/kvm.js";

test("syscalls are traced strace-style and as JSON, with errno names and messages", () => {
  const twin = createTwin();
  twin.kernel.trace.enabled = true;
  const p = twin.spawn();
  const fd = p.open("/dev/kvm");
  p.ioctl(fd, KVM_GET_API_VERSION, 1);
  p.close(42);
  const lines = twin.kernel.trace.events.map((e) => formatEvent(e));
  assert.equal(lines[0], `[pid 1] openat(AT_FDCWD, "/dev/kvm", O_RDWR) = 3`);
  assert.equal(lines[1], `[pid 1] ioctl(3, KVM_GET_API_VERSION, 0x1) = -1 EINVAL (Invalid argument)`);
  assert.equal(lines[2], `[pid 1] close(42) = -1 EBADF (Bad file descriptor)`);
  const json = JSON.parse(JSON.stringify(twin.kernel.trace.events[1]));
  assert.deepEqual(json.args, { fd: 3, request: "KVM_GET_API_VERSION", arg: "0x1" });
  assert.equal(json.syscall, "ioctl");
  assert.deepEqual(JSON.parse(JSON.stringify(twin.kernel.trace.events[0])).args, {
    dirfd: "AT_FDCWD",
    pathname: "/dev/kvm",
    flags: "O_RDWR",
  });
  assert.equal(json.result, -1);
  assert.equal(json.errno, "EINVAL");
  assert.equal(json.error, "Invalid argument");
});

test("struct arguments are decoded from user memory, enums and out fields by name", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const vm = p.ioctl(p.open("/dev/kvm"), KVM_CREATE_VM, 0);
  const buf = p.mmap(4096);
  p.write(buf, kvm_create_device.encode({ type: 99 }));
  twin.kernel.trace.enabled = true;
  p.ioctl(vm, KVM_CREATE_DEVICE, buf);
  p.write(buf, kvm_create_device.encode({ type: 4 }));
  p.ioctl(vm, KVM_CREATE_DEVICE, buf);
  const [bad, good] = twin.kernel.trace.events.map((e) => formatEvent(e, { pid: false }));
  assert.equal(bad, "ioctl(4, KVM_CREATE_DEVICE, {type=99, flags=0}) = -1 ENODEV (No such device)");
  assert.equal(good, "ioctl(4, KVM_CREATE_DEVICE, {type=KVM_DEV_TYPE_VFIO, fd=5, flags=0}) = 0");
});

test("tracing is off by default and records nothing", () => {
  const twin = createTwin();
  twin.spawn().open("/dev/kvm");
  assert.equal(twin.kernel.trace.events.length, 0);
});
