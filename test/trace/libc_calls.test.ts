// The process calls the twin answers outside its syscall layer (sysfs readlink and readdir, a
// capability drop, /proc/self/status) traced as the C library makes them and strace prints
// them; the failing ones are also in the strace goldens (strace_golden.test.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { formatEvent, Trace } from "../../src/kernel/trace.js";
import { CAP_IPC_LOCK, CAP_SYS_RAWIO } from "../../src/kernel/process.js";
import { readdirCalls } from "../../src/trace/libc_calls.js";
import { checkInvariants } from "../../src/check/invariants.js";

function traced() {
  const twin = createTwin();
  const p = twin.spawn({ name: "qemu-system-x86_64", caps: [CAP_IPC_LOCK, CAP_SYS_RAWIO] });
  twin.kernel.trace.enabled = true;
  const lines = () => twin.kernel.trace.events.map((e) => formatEvent(e, { pid: false }));
  return { twin, p, lines };
}

test("readlink of a sysfs link: the target as strace prints the buffer, its length the result", () => {
  const { p, lines } = traced();
  assert.equal(p.readlink("/sys/bus/pci/devices/0000:00:01.0/iommu_group"), "../../../kernel/iommu_groups/1");
  assert.equal(p.readlink("/sys/bus/pci/devices/0000:00:01.0/driver"), "../../../bus/pci/drivers/vfio-pci");
  assert.equal(p.readlink("/sys/nope"), -2);
  assert.deepEqual(lines(), [
    'readlink("/sys/bus/pci/devices/0000:00:01.0/iommu_group", "../../../kernel/iommu_groups/1", 4096) = 30',
    'readlink("/sys/bus/pci/devices/0000:00:01.0/driver", "../../../bus/pci/drivers/vfio-pc"..., 4096) = 33',
    'readlink("/sys/nope", 0x10000000, 4096) = -1 ENOENT (No such file or directory)',
  ]);
});

test("readdir: opendir's openat at the lowest free fd, getdents64 with . and .., close; the fd table untouched", () => {
  const { twin, p, lines } = traced();
  const before = p.open("/dev/null", 2);
  assert.deepEqual(p.readdir("/sys/kernel/iommu_groups"), ["1"]);
  assert.equal(p.readdir("/sys/bus/pci/devices/0000:00:01.0/vendor"), -20);
  assert.deepEqual(lines().slice(1), [
    'openat(AT_FDCWD, "/sys/kernel/iommu_groups", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = 4',
    'newfstatat(4, "", {st_mode=S_IFDIR|0755, st_size=0, ...}, AT_EMPTY_PATH) = 0',
    // ".", ".." and "1": 24 bytes each (19 + name + NUL, 8-aligned)
    "getdents64(4, 0x10000000 /* 3 entries */, 32768) = 72",
    "getdents64(4, 0x10000000 /* 0 entries */, 32768) = 0",
    "close(4) = 0",
    'openat(AT_FDCWD, "/sys/bus/pci/devices/0000:00:01.0/vendor", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = -1 ENOTDIR (Not a directory)',
  ]);
  assert.equal(before, 3);
  assert.equal(p.open("/dev/null", 2), 4, "the directory's fd was never installed");
  assert.deepEqual(checkInvariants(twin.kernel), []);
});

test("readdir of a large directory: getdents64 in 32 KiB chunks, every entry counted once", () => {
  const trace = new Trace();
  const names = Array.from({ length: 1500 }, (_, i) => `entry-${String(i).padStart(5, "0")}`);
  for (const c of readdirCalls("/sys/big", 3, names)) trace.emit(1, 0, c.call, c.args, c.rc);
  const dents = trace.events.filter((e) => e.call === "getdents64");
  const counts = dents.map((e) => Number(/\/\* (\d+) entries/.exec(formatEvent(e))![1]));
  // "." and ".." take 24 bytes each, every other entry 19 + 11 + 1 -> 32: 2 + 1022 fill 32752
  // of the 32768-byte buffer, the next one would not fit
  assert.deepEqual(counts, [1024, 478, 0]);
  assert.deepEqual(
    dents.map((e) => e.ret),
    [2 * 24 + 1022 * 32, 478 * 32, 0],
  );
});

test("capDrop: capget then capset without the capability, the sets by name", () => {
  const { p, lines } = traced();
  assert.equal(p.capDrop(CAP_IPC_LOCK), 0);
  assert.equal(p.capDrop(CAP_SYS_RAWIO), 0);
  assert.equal(p.capDrop(64), -22);
  const hdr = "{version=_LINUX_CAPABILITY_VERSION_3, pid=0}";
  assert.deepEqual(lines(), [
    `capget(${hdr}, {effective=1<<CAP_IPC_LOCK|1<<CAP_SYS_RAWIO, permitted=1<<CAP_IPC_LOCK|1<<CAP_SYS_RAWIO, inheritable=0}) = 0`,
    `capset(${hdr}, {effective=1<<CAP_SYS_RAWIO, permitted=1<<CAP_SYS_RAWIO, inheritable=0}) = 0`,
    `capget(${hdr}, {effective=1<<CAP_SYS_RAWIO, permitted=1<<CAP_SYS_RAWIO, inheritable=0}) = 0`,
    `capset(${hdr}, {effective=0, permitted=0, inheritable=0}) = 0`,
  ]);
});

test("procStatus: /proc/self/status opened, read to the end, closed; the lines the twin models", () => {
  const { p, twin } = traced();
  const st = p.procStatus();
  assert.deepEqual(st, { vmLckKb: 0, vmPinKb: 0 });
  const ev = twin.kernel.trace.events;
  assert.deepEqual(
    ev.map((e) => formatEvent(e, { pid: false })),
    [
      'openat(AT_FDCWD, "/proc/self/status", O_RDONLY|O_CLOEXEC) = 3',
      'read(3, "Name:\\tqemu-system-x86\\nPid:\\t1\\nVmL"..., 8192) = 67',
      'read(3, "", 8192) = 0',
      "close(3) = 0",
    ],
  );
  // the whole text, VmLck and VmPin as task_mem() prints them (%8lu kB)
  const buf = ev[1]!.arg("buf") as { b: Uint8Array };
  assert.equal(
    new TextDecoder().decode(buf.b),
    "Name:\tqemu-system-x86\nPid:\t1\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n",
  );
});
