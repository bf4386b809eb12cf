// The syscall boundary under malformed programs (issue 12): an exception inside a kernel path
// is an oops reported as a KernelBug, never a JavaScript exception out of the call; calls on
// and into an exited process; size_t counts near 2^64.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { KTIME_MAX } from "../../src/kernel/time.js";
import { ProcessExited } from "../../src/backend/backend.js";
import { checkInvariants, formatViolations } from "../../src/check/invariants.js";
import type { File, FileOperations } from "../../src/kernel/fs.js";
import * as sys from "../../src/kernel/syscalls.js";
import { EBADF, EBUSY, EFAULT, EINVAL, EIO, EPIPE, ESRCH } from "../../src/uapi/errno.js";
import { KVM_CREATE_VM, KVM_GET_API_VERSION } from "../../src/uapi/kvm.js";

function files(twin: ReturnType<typeof createTwin>, path: string): File[] {
  return [...twin.kernel.objects].filter((o) => o.kind === "file" && (o as File).path === path) as File[];
}

/** A char device whose ioctl 1 and whose release throw as a buggy path would. */
function buggyDevice(twin: ReturnType<typeof createTwin>): void {
  const fops: FileOperations = {
    owner: null,
    name: "buggy",
    unlocked_ioctl(_f, cmd) {
      if (cmd === 1) return buggyBitmap();
      return 0;
    },
    release() {
      throw new TypeError("release went wrong");
    },
  };
  twin.kernel.devices.register("/dev/buggy", fops, null);
}

function buggyBitmap(): number {
  return Number(1n << (2n ** 31n)); // what a too-large BigInt does: RangeError
}

test("an exception inside a kernel path is an oops with its stack; the call returns EIO and leaves the kernel", () => {
  const twin = createTwin();
  const k = twin.kernel;
  buggyDevice(twin);
  const p = twin.spawn({ name: "fuzz" });
  const fd = p.open("/dev/buggy");
  assert.equal(p.ioctl(fd, 1), -EIO);
  assert.equal(k.bugs.length, 1);
  const [bug] = k.bugs;
  assert.equal(bug!.kind, "oops");
  assert.match(bug!.message, /fuzz\[\d+\] ioctl\(3, 0x1\): RangeError/);
  assert.match(bug!.stack ?? "", /buggyBitmap/, "the path's stack, as an oops prints it");
  assert.equal(p.proc.mainTask.inSyscall, false, "the task left the syscall");
  assert.equal(k.current, null);
  // the process and the twin stay usable; the check says what broke
  assert.equal(p.ioctl(fd, 2), 0);
  const kvm = p.open("/dev/kvm");
  assert.equal(p.ioctl(kvm, KVM_GET_API_VERSION), 12);
  assert.match(formatViolations(checkInvariants(k)), /\[no-kernel-bugs\] oops: .*RangeError/);
});

test("a release that throws in task_work is an oops; the close and the later releases still happen", () => {
  const twin = createTwin();
  const k = twin.kernel;
  buggyDevice(twin);
  const p = twin.spawn();
  const a = p.open("/dev/buggy");
  const vm = p.ioctl(p.open("/dev/kvm"), KVM_CREATE_VM, 0);
  assert.equal(p.close(a), 0);
  assert.equal(k.bugs.length, 1);
  assert.match(k.bugs[0]!.message, /task_work: TypeError: release went wrong/);
  assert.equal(p.proc.mainTask.inSyscall, false);
  assert.equal(p.proc.mainTask.taskWork.length, 0);
  // exit with another buggy file open: the VM is still destroyed
  p.open("/dev/buggy");
  assert.ok(vm > 0);
  twin.kill(p);
  assert.equal(k.bugs.length, 2);
  assert.deepEqual(
    [...k.objects].filter((o) => o.kind === "kvm"),
    [],
  );
  assert.equal(files(twin, "/dev/buggy").length, 0);
});

test("sendFd to an exited process is EPIPE and installs nothing: the group is free after (issue 12 #5)", () => {
  const twin = createTwin();
  const a = twin.spawn({ name: "a" });
  const b = twin.spawn({ name: "b" });
  twin.kill(b);
  const g = a.open("/dev/vfio/1");
  const vm = a.ioctl(a.open("/dev/kvm"), KVM_CREATE_VM, 0);
  assert.ok(g >= 0 && vm >= 0);
  assert.equal(a.sendFd(99, b), -EBADF, "scm_send() looks the fd up first");
  assert.equal(a.sendFd(g, b), -EPIPE);
  assert.equal(a.sendFd(vm, b), -EPIPE);
  assert.deepEqual(b.proc.files.entries(), [], "the dead table stays empty");
  twin.kill(a);
  assert.equal(files(twin, "/dev/vfio/1").length, 0);
  assert.equal([...twin.kernel.objects].filter((o) => o.kind === "kvm").length, 0, "the VM is gone");
  const c = twin.spawn();
  const g2 = c.open("/dev/vfio/1");
  assert.ok(g2 >= 0, `the next process gets the group, not EBUSY (${g2 === -EBUSY ? "EBUSY" : g2})`);
  twin.kill(c);
  assert.equal(formatViolations(checkInvariants(twin.kernel)), "all invariants hold");
});

test("every call through a killed process's handle throws ProcessExited and leaks nothing (issue 12 #6)", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const p = twin.spawn({ name: "gone" });
  const q = twin.spawn();
  const mem = p.mmap(4096);
  twin.kill(p);
  assert.equal(p.exited, true);
  const before = new Set(k.objects);
  const calls: [string, () => unknown][] = [
    ["open", () => p.open("/dev/vfio/1")],
    ["eventfd", () => p.eventfd(0)],
    ["ioctl", () => p.ioctl(3, KVM_GET_API_VERSION)],
    ["close", () => p.close(0)],
    ["dup", () => p.dup(0)],
    ["mmap", () => p.mmap(4096)],
    ["munmap", () => p.munmap(mem, 4096)],
    ["read", () => p.read(mem, 1)],
    ["write", () => p.write(mem, new Uint8Array(1))],
    ["sendFd", () => p.sendFd(0, q)],
    ["pread", () => p.pread(0, mem, 1, 0)],
    ["readFd", () => p.readFd(0, mem, 1)],
    ["writeFd", () => p.writeFd(0, mem, 1)],
    ["readlink", () => p.readlink("/sys/bus/pci/devices/0000:00:01.0/iommu_group")],
    ["setMemlock", () => p.setMemlock(0)],
    ["procStatus", () => p.procStatus()],
    ["sleep", () => p.sleep(1)],
  ];
  for (const [name, fn] of calls)
    assert.throws(fn, (e: unknown) => e instanceof ProcessExited && e.pid === p.pid && e.message.includes(name), name);
  assert.deepEqual(
    [...k.objects].filter((o) => !before.has(o)).map((o) => o.describe()),
    [],
  );
  // the kernel's own entry points answer a dead task without touching its tables
  assert.equal(sys.sysOpen(k, p.proc, "/dev/vfio/1", 2), -ESRCH);
  assert.equal(sys.sysEventfd(k, p.proc, 0), -ESRCH);
  assert.deepEqual(p.proc.files.entries(), []);
  const g = q.open("/dev/vfio/1");
  assert.ok(g >= 0, "nobody holds the group");
  assert.equal(formatViolations(checkInvariants(k)), "all invariants hold");
});

test("read/write/pread/pwrite with a size_t count near 2^64 fail access_ok with EFAULT (issue 12 #7)", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const buf = p.mmap(4096);
  const nul = p.open("/dev/null");
  const efd = p.eventfd(0);
  for (const count of [-1, -4096, -(2 ** 53), 2 ** 53, 2 ** 63]) {
    assert.equal(p.readFd(nul, buf, count), -EFAULT, `read ${count}`);
    assert.equal(p.writeFd(nul, buf, count), -EFAULT, `write ${count}`);
    assert.equal(p.pread(nul, buf, count, 0), -EFAULT, `pread /dev/null ${count} (was 0)`);
    assert.equal(p.pwrite(nul, buf, count, 0), -EFAULT, `pwrite ${count}`);
    assert.equal(p.readFd(efd, buf, count), -EFAULT, `eventfd read ${count}`);
  }
  // the checks before access_ok keep their order: a bad fd is still EBADF
  assert.equal(p.readFd(99, buf, -1), -EBADF);
  assert.equal(p.readFd(nul, buf, 16), 0);
  assert.equal(p.writeFd(nul, buf, 16), 16);
});

test("a device timer that throws is an oops; sleep goes on, later timers fire, bad times are EINVAL", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const p = twin.spawn();
  const fired: string[] = [];
  k.clock.schedule(1e6, "broken device", () => {
    throw new RangeError("timer went wrong");
  });
  k.clock.schedule(2e6, "healthy device", () => fired.push("healthy"));
  assert.equal(p.sleep(5), 0);
  assert.deepEqual(fired, ["healthy"], "the timer after the broken one still ran");
  assert.equal(k.clock.now, 5e6);
  assert.deepEqual(
    k.bugs.map((b) => [b.kind, b.message]),
    [["oops", "timer broken device: RangeError: timer went wrong"]],
  );
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) assert.equal(p.sleep(bad), -EINVAL, String(bad));
  assert.equal(k.clock.now, 5e6, "no time passed for an invalid sleep");
  // a finite but absurd sleep ends at KTIME_MAX, as the kernel clamps it, and time stays exact
  // enough that a timer armed after it still fires
  assert.equal(p.sleep(1e300), 0);
  assert.equal(k.clock.now, KTIME_MAX);
  k.clock.schedule(0, "after the end of time", () => fired.push("late"));
  assert.equal(p.sleep(1), 0);
  assert.deepEqual(fired, ["healthy", "late"]);
  assert.deepEqual(
    checkInvariants(k).map((v) => v.check),
    ["no-kernel-bugs"],
  );
});
