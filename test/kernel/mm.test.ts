import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { Segfault, PROT_READ } from "../../src/backend/backend.js";
import { EEXIST, EFAULT, EINVAL } from "../../src/uapi/errno.js";
import { KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION, kvm_userspace_memory_region } from "../../src/uapi/kvm.js";
import { PAGE_SIZE } from "../../src/kernel/mm.js";

test("user memory: fixed mappings, read/write round trip, faults outside", () => {
  const p = createTwin().spawn();
  assert.equal(p.mmap(0x10000, { addr: 0x10000000 }), 0x10000000);
  assert.equal(p.mmap(0x1000, { addr: 0x10008000 }), -EEXIST, "MAP_FIXED_NOREPLACE over a mapping");
  p.write(0x10000ffe, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual([...p.read(0x10000ffe, 4)], [1, 2, 3, 4], "a write across a page boundary reads back");
  assert.deepEqual([...p.read(0x10002000, 2)], [0, 0], "untouched anonymous memory is zero");
  assert.throws(() => p.read(0x10010000, 1), Segfault);
  assert.throws(() => p.read(0x1000ffff, 2), Segfault, "a read that runs off the end faults");
  assert.equal(p.mmap(0x1000, { addr: 0x20000000, prot: PROT_READ }), 0x20000000);
  assert.throws(() => p.write(0x20000000, new Uint8Array([1])), Segfault, "PROT_READ memory is not writable");
  assert.equal(p.mmap(0x1000, { addr: 0x1234 }), -EINVAL);
});

test("munmap splits a mapping; the rest stays readable", () => {
  const p = createTwin().spawn();
  const a = p.mmap(4 * PAGE_SIZE);
  p.write(a + 3 * PAGE_SIZE, new Uint8Array([9]));
  assert.equal(p.munmap(a + PAGE_SIZE, PAGE_SIZE), 0);
  assert.throws(() => p.read(a + PAGE_SIZE, 1), Segfault);
  assert.equal(p.read(a + 3 * PAGE_SIZE, 1)[0], 9);
  assert.equal(p.munmap(a + 1, PAGE_SIZE), -EINVAL);
});

test("copy_from_user on a bad pointer gives EFAULT, a good one is decoded", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const vm = p.ioctl(p.open("/dev/kvm"), KVM_CREATE_VM, 0);
  assert.equal(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, 0xdead000), -EFAULT, "unmapped");
  assert.equal(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, 2n ** 63n), -EFAULT, "kernel half");
  const buf = p.mmap(PAGE_SIZE);
  const guest = p.mmap(0x200000);
  // a struct straddling the end of the mapping faults too
  assert.equal(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, buf + PAGE_SIZE - 8), -EFAULT);
  p.write(buf, kvm_userspace_memory_region.encode({ slot: 0, memory_size: 0x200000n, userspace_addr: BigInt(guest) }));
  assert.equal(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, buf), 0);
  p.write(buf, kvm_userspace_memory_region.encode({ slot: 1, memory_size: 0x1000n, userspace_addr: BigInt(guest) }));
  assert.equal(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, buf), -EEXIST, "overlapping guest physical range");
  p.write(buf, kvm_userspace_memory_region.encode({ slot: 1, flags: 0x80, memory_size: 0x1000n }));
  assert.equal(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, buf), -EINVAL, "unknown flag");
});

test("a pinned page outlives munmap and keeps its bytes", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const proc = [...twin.kernel.processes.values()][0]!;
  const a = p.mmap(PAGE_SIZE);
  p.write(a, new Uint8Array([0x5a]));
  const pages = proc.mm.pinPages(a, 1, true);
  assert.ok(Array.isArray(pages));
  assert.equal(pages[0]!.pins, 1);
  assert.equal(p.munmap(a, PAGE_SIZE), 0);
  assert.equal(pages[0]!.data[0], 0x5a);
  assert.equal(proc.mm.pinPages(a, 1, false), -EFAULT, "nothing is mapped there now");
});

test("pin permissions follow check_vma_flags: a write pin needs PROT_WRITE only, a read pin PROT_READ", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const proc = [...twin.kernel.processes.values()][0]!;
  const wo = p.mmap(PAGE_SIZE, { prot: 2 });
  const ro = p.mmap(PAGE_SIZE, { prot: PROT_READ });
  const none = p.mmap(PAGE_SIZE, { prot: 0 });
  assert.ok(Array.isArray(proc.mm.pinPages(wo, 1, true)));
  assert.equal(proc.mm.pinPages(ro, 1, true), -EFAULT);
  assert.ok(Array.isArray(proc.mm.pinPages(ro, 1, false)));
  assert.equal(proc.mm.pinPages(none, 1, false), -EFAULT);
});

test("procStatus reports locked_vm and pinned_vm in kB; capDrop removes a capability", () => {
  const twin = createTwin();
  const p = twin.spawn({ caps: [14] });
  const proc = [...twin.kernel.processes.values()][0]!;
  proc.mm.lockedVm = 3;
  proc.mm.pinnedVm = 5;
  assert.deepEqual(p.procStatus(), { vmLckKb: 12, vmPinKb: 20 });
  assert.equal(proc.capable(14), true);
  assert.equal(p.capDrop(14), 0);
  assert.equal(proc.capable(14), false);
  assert.equal(p.capDrop(64), -EINVAL);
});

test("clear_user zeroes what is there, leaves untouched pages absent, and faults with nothing written", () => {
  const p = createTwin().spawn();
  const mm = p.proc.mm;
  const a = p.mmap(1 << 30); // 1 GiB, four pages touched
  for (const off of [0, 4096 * 7, (1 << 30) - 4096, (1 << 29) + 100]) p.write(a + off, new Uint8Array(8).fill(0xee));
  const v = mm.find(a)!;
  assert.equal(v.pages!.size, 4);
  assert.equal(mm.clearUser(a + 4, (1 << 30) - 4), 0);
  assert.equal(v.pages!.size, 4, "no page faulted in to be cleared");
  assert.deepEqual([...p.read(a, 8)], [0xee, 0xee, 0xee, 0xee, 0, 0, 0, 0]);
  assert.deepEqual(p.read(a + (1 << 29) + 100, 8), new Uint8Array(8));
  const r = p.mmap(4096, { prot: PROT_READ });
  p.write(a, new Uint8Array(4).fill(1));
  assert.equal(mm.clearUser(a, 8), 0);
  assert.equal(mm.clearUser(a + (1 << 30) - 8, 16), -EFAULT, "runs off the end");
  assert.equal(mm.clearUser(r, 8), -EFAULT, "read-only");
  p.write(a + (1 << 30) - 8, new Uint8Array(8).fill(2));
  assert.equal(mm.clearUser(a + (1 << 30) - 8, 4096 + 8), -EFAULT);
  assert.deepEqual([...p.read(a + (1 << 30) - 8, 8)], [2, 2, 2, 2, 2, 2, 2, 2], "nothing written on a fault");
});
