// KVM VM destruction as a path (src/kvm/kvm.ts putPath/destroyVm): the last VM reference,
// wherever it is dropped inside a path, runs kvm_destroy_vm() with its sleeps as yield points;
// kvm_get_kvm_safe() refuses a VM being destroyed; the world racing destruction with
// KVM_DEV_VFIO_FILE_DEL/ADD and a VFIO close is clean under every coupling, and the
// 51cdc8bc120e variant is still found there and in its own world.
import { test } from "node:test";
import assert from "node:assert/strict";
import { explore, runSchedule, type World } from "../../src/check/explorer.js";
import { worldByName } from "../../src/check/worlds.js";
import { checkInvariants } from "../../src/check/invariants.js";
import { kvmState } from "../../src/kvm/kvm_main.js";
import { closePath } from "../../src/kernel/syscalls.js";
import { type KGen, preempt } from "../../src/kernel/sched.js";
import type { KvmRefExports } from "../../src/kernel/vfio_kvm.js";
import { createTwin } from "../../src/twin.js";
import * as K from "../../src/uapi/kvm.js";

const WORLD = "kvm-destroy-vs-file-ops";

test("kvm-destroy-vs-file-ops is clean and complete under every coupling design", () => {
  for (const design of ["upstream", "file-ops", "symbol-get"] as const) {
    const r = explore(() => worldByName(WORLD)!.build({ design }), { maxExecutions: 200 });
    assert.equal(r.complete, true, design);
    assert.deepEqual(r.failures, [], design);
    // FILE_ADD after the KVM-VFIO fd closed under it answers EBADF in some orders
    assert.deepEqual([...r.outcomes.keys()].sort(), ["[-9,0,0]", "[0,0,0]"], design);
  }
});

test("the last VM put inside FILE_DEL/ADD's ioctl runs kvm_destroy_vm there, taking kvm_lock", () => {
  // close_device first (VFIO's VM reference goes), then del_add starts, close_kvm closes
  // both fds under it: del_add's ioctl holds the last KVM-VFIO file reference
  const o = runSchedule(() => worldByName(WORLD)!.build({}), [2, 2, 2, 2, 1]);
  const steps = o.steps.map((s) => `${o.threads[s.thread]}: ${s.from} -> ${s.to}`);
  assert.ok(steps.includes("del_add: mutex_lock(kvm.lock (vm 1)) -> mutex_lock(kvm_lock)"), steps.join("\n"));
  assert.deepEqual(o.violations, []);
});

test("kvm_get_kvm_safe() refuses a VM whose destruction is in progress", () => {
  const twin = createTwin({});
  const k = twin.kernel;
  const p = twin.spawn({ name: "vmm" });
  const vmFd = p.ioctl(p.open("/dev/kvm"), K.KVM_CREATE_VM, 0);
  assert.ok(vmFd >= 0);
  const kvm = [...kvmState(k)!.vms][0]!;
  const getSafe = k.modules.loaded.get("kvm")!.exports.get("kvm_get_kvm_safe") as KvmRefExports["kvm_get_kvm_safe"];
  const kvmLock = kvm.kvmLock; // the module's, outliving the VM
  const seen: boolean[] = [];
  const world: World = {
    kernel: k,
    threads: [
      {
        // another VM's creation or destruction holds kvm_lock for a while
        name: "holder",
        *path(): KGen<number> {
          yield* kvmLock.lock();
          yield* preempt("holding kvm_lock");
          kvmLock.unlock();
          return 0;
        },
      },
      { name: "close_vm", process: p.proc, syscall: true, path: (t) => closePath(k, p.proc, t, vmFd) },
      {
        name: "vfio_open",
        *path(): KGen<number> {
          yield* preempt("vfio_device_get_kvm_safe");
          const ok = getSafe(kvm);
          seen.push(ok);
          if (ok) kvm.put("kvm_get_kvm_safe");
          return ok ? 1 : 0;
        },
      },
    ],
  };
  // holder takes kvm_lock; close_vm's last put blocks in kvm_destroy_vm on it; the lookup
  const o = runSchedule(() => world, [0, 1, 1, 2, 2]);
  assert.deepEqual(seen, [false]);
  assert.deepEqual(o.results, [0, 0, 0]);
  assert.equal(kvm.dead, true);
  assert.equal(kvmState(k)!.vms.size, 0);
  assert.deepEqual(checkInvariants(k), []);
});

test("51cdc8bc120e (KVM-VFIO torn down by .destroy) deadlocks in the destruction world too", () => {
  const r = explore(() => worldByName(WORLD)!.build({ broken: ["kvm-vfio-destroy-op", "set-kvm-group-lock"] }), {
    maxExecutions: 50,
  });
  assert.ok(r.failures.length > 0);
  assert.ok(r.failures.some((f) => f.violations.some((v) => /deadlock: .* waits for group_lock/.test(v.message))));
});
