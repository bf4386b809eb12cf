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
