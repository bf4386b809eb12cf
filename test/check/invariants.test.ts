import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { checkInvariants, leakedSince } from "../../src/check/invariants.js";
import { KVM_CREATE_VM } from "../../src/uapi/kvm.js";

test("a fresh twin and a twin after a closed session satisfy every invariant", () => {
  const twin = createTwin();
  const k = twin.kernel;
  assert.deepEqual(checkInvariants(k), []);
  const base = new Set(k.objects);
  const p = twin.spawn();
  p.ioctl(p.open("/dev/kvm"), KVM_CREATE_VM, 0);
  assert.deepEqual(checkInvariants(k), []);
  twin.kill(p);
  assert.deepEqual(leakedSince(k, base), []);
  assert.deepEqual(checkInvariants(k), []);
});

test("an untracked reference and a module pin without a holder are reported", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const p = twin.spawn();
  const vmfd = p.ioctl(p.open("/dev/kvm"), KVM_CREATE_VM, 0);
  const vm = [...k.objects].find((o) => o.kind === "kvm")!;
  vm.get(); // a reference nobody owns: a leak waiting to happen
  k.modules.loaded.get("kvm")!.refcnt++;
  const v = checkInvariants(k);
  assert.ok(v.some((x) => x.check === "refcount-holders" && x.message.includes("kvm vm")));
  assert.ok(v.some((x) => x.check === "module-pins" && x.message.startsWith("kvm:")));
  p.close(vmfd);
  twin.kill(p);
  assert.equal(vm.dead, false, "the extra reference keeps the VM alive: a leak");
});

test("a put on a released object is a use after free", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const p = twin.spawn();
  p.ioctl(p.open("/dev/kvm"), KVM_CREATE_VM, 0);
  const vm = [...k.objects].find((o) => o.kind === "kvm")!;
  twin.kill(p);
  assert.throws(() => vm.put(), /use-after-free/);
  assert.ok(checkInvariants(k).some((x) => x.check === "no-kernel-bugs"));
});

test("a file still in the fd table of an exited process is held by a released owner (issue 12)", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const p = twin.spawn();
  const fd = p.open("/dev/kvm");
  assert.ok(fd >= 0);
  const proc = k.processes.get(p.pid)!;
  // what exit would leave if it forgot this table (issue 12 #5, #6 left files in dead tables)
  proc.exited = true;
  k.processes.delete(p.pid);
  const v = checkInvariants(k).filter((x) => x.check === "held-by-released-owner");
  assert.equal(v.length, 4, "stdio and /dev/kvm");
  assert.ok(v.some((x) => x.message.includes(`fd ${fd} of pid ${p.pid} x1, but pid ${p.pid}'s fd table was released`)));
});

test("a reference whose owner no longer keeps it is found where it sits: a VMA reference with no VMA", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const p = twin.spawn();
  const kvm = p.open("/dev/kvm");
  const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
  assert.ok(vm >= 0);
  const file = [...k.objects].find((o) => o.kind === "file" && o.describe().includes("kvm-vm"));
  assert.ok(file, [...k.objects].map((o) => o.describe()).join(", "));
  file.get("vma"); // a mapping reference with no VMA behind it
  const v = checkInvariants(k);
  assert.deepEqual(
    v.map((x) => x.check),
    ["holder-not-in-owner"],
  );
  assert.match(v[0]!.message, /vma x1, but 0 found in the VMAs of live processes/);
  file.put("vma");
  assert.deepEqual(checkInvariants(k), []);
  twin.kill(p);
});
