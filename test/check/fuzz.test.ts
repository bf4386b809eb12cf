// The fuzzer (src/check/fuzz.ts): a short fixed-seed run finds nothing, and planted bugs (an
// ioctl of /dev/kvm that leaks a reference to its file, or one that throws) are found and
// shrunk to a short program that replays to the same failure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { failureKey, fuzz, parseProgram, programJson, replay, runProgram, type Program } from "../../src/check/fuzz.js";
import type { File, FileOperations } from "../../src/kernel/fs.js";
import type { Twin } from "../../src/twin.js";
import { KVM_CHECK_EXTENSION, KVM_CREATE_VM } from "../../src/uapi/kvm.js";

/** Replace /dev/kvm's ioctl with `ioctl` wrapped around the real one. */
function patchKvm(twin: Twin, wrap: (real: FileOperations, f: File, cmd: number, arg: number) => unknown): void {
  const dev = twin.kernel.devices.lookup("/dev/kvm")!;
  const real = dev.fops;
  const fops: FileOperations = { ...real, unlocked_ioctl: (f, cmd, arg) => wrap(real, f, cmd, arg) as number };
  twin.kernel.devices.register("/dev/kvm", fops, dev.data);
}

test("500 programs from a fixed seed: every check holds", () => {
  const r = fuzz({ seed: 12, programs: 500 });
  assert.deepEqual(
    r.failures.map((f) => f.failures[0]),
    [],
  );
  assert.ok(r.programs >= 500);
  assert.ok(r.syscalls > 500 * 5, `${r.syscalls} syscalls`);
});

test("a planted reference leak in KVM_CREATE_VM is found and shrunk to a short program", () => {
  const prepare = (twin: Twin) =>
    patchKvm(twin, (real, f, cmd, arg) => {
      const rc = real.unlocked_ioctl!(f, cmd, arg);
      if (cmd === KVM_CREATE_VM && typeof rc === "number" && rc >= 0) f.get("planted"); // never put
      return rc;
    });
  const found: string[] = [];
  const r = fuzz({ seed: 3, programs: 300, run: { prepare }, onFailure: (f) => found.push(f.key) });
  assert.ok(r.failures.length >= 1, "the fuzzer finds it");
  const f = r.failures[0]!;
  assert.deepEqual(
    found,
    r.failures.map((x) => x.key),
    "each distinct failure reported once, as found",
  );
  assert.match(f.failures.join("\n"), /\/dev\/kvm/);
  assert.ok(f.program.length <= 3, `shrunk to ${f.program.length} steps:\n${programJson(f.program)}`);
  // the printed JSON replays to the same failure; without the plant the program passes
  const back: Program = parseProgram(programJson(f.program));
  assert.equal(failureKey(runProgram(back, { prepare }).failures), f.key);
  assert.deepEqual(runProgram(back).failures, []);
  assert.ok(replay(back, { prepare }).trace.some((l) => l.includes("KVM_CREATE_VM")));
});

test("an exception planted in an ioctl path is an oops the fuzzer reports", () => {
  const prepare = (twin: Twin) =>
    patchKvm(twin, (real, f, cmd, arg) => {
      if (cmd === KVM_CHECK_EXTENSION && arg > 8) throw new RangeError("planted");
      return real.unlocked_ioctl!(f, cmd, arg);
    });
  const r = fuzz({ seed: 4, programs: 2000, run: { prepare } });
  assert.ok(r.failures.length >= 1, "the fuzzer finds it");
  const f = r.failures[0]!;
  assert.match(f.failures[0]!, /no-kernel-bugs.*RangeError: planted/);
  assert.ok(f.program.length <= 2, programJson(f.program));
});

test("what the fuzzer found on the twin before issue 12's fixes replays clean now", () => {
  // found in 2 min on the tree before the fixes (the first two with the sendFd-to-dead and
  // dead-handle checks masked): 12 #4, BIND of a second cdev fd took and dropped KVM's reference
  const kvmRefLeak = parseProgram(`{ "steps": [
    {"op":"setup","p":0,"kind":"kvm","alt":true},
    {"op":"setup","p":0,"kind":"kvm","alt":true},
    {"op":"setup","p":0,"kind":"iommufd","alt":false}
  ] }`);
  // 12 #5 and #6: a file sent to a killed process, a call through its handle
  const deadPeer = parseProgram(`{ "steps": [
    {"op":"setup","p":0,"kind":"type1","alt":false},
    {"op":"kill","p":2},
    {"op":"sendFd","p":0,"fd":{"t":"container","i":0},"to":2}
  ] }`);
  for (const prog of [kvmRefLeak, deadPeer]) assert.deepEqual(runProgram(prog).failures, []);
  const r = replay(kvmRefLeak);
  assert.equal(r.trace.filter((l) => l.includes("VFIO_DEVICE_BIND_IOMMUFD") && l.includes("= 0")).length, 1);
  assert.ok(
    r.trace.some((l) => /VFIO_DEVICE_BIND_IOMMUFD.*EINVAL/.test(l)),
    "the second BIND fails",
  );
  assert.ok(replay(deadPeer).trace.some((l) => /sendmsg.*EPIPE/.test(l)));
});
