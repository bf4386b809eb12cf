// The same userspace cases on the twin and on the real kernel (the host backend), with the
// same expectations: what the twin answers is what this machine's kernel answers. The
// values were also checked on the oracle's 6.12 (KVM_CAP_IOMMU 0, KVM_CAP_MAX_VCPUS 1024,
// GET_API_VERSION(1) EINVAL, unknown VM ioctl ENOTTY, unknown /dev/kvm ioctl EINVAL,
// SET_USER_MEMORY_REGION at address 16 EFAULT).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import type { Backend, UserProcess } from "../../src/backend/backend.js";
import { PROT_READ, PROT_WRITE, ProcessExited, Segfault } from "../../src/backend/backend.js";
import { createHost, hostAvailable, koffiAvailable } from "../../src/backend/host.js";
import { EAGAIN, EBADF, EEXIST, EFAULT, EINVAL, ENOMEM, ENOTTY, ESPIPE } from "../../src/uapi/errno.js";
import * as K from "../../src/uapi/kvm.js";
import { TypedProcess } from "../../src/vmm/typed.js";

const koffiSkip = koffiAvailable() ? false : "host backend: koffi cannot load libc here; host cases skipped";
const kvmSkip =
  koffiSkip || (hostAvailable("/dev/kvm") ? false : "no /dev/kvm on this machine: host KVM cases skipped");

const BACKENDS: { name: string; make: () => Backend; kvmSkip: string | false; memSkip: string | false }[] = [
  { name: "twin", make: () => createTwin(), kvmSkip: false, memSkip: false },
  { name: "host", make: () => createHost(), kvmSkip, memSkip: koffiSkip },
];

/** The capabilities the twin models, with the value every x86 6.x kernel gives them. */
const CAPS: [string, number, number][] = [
  ["KVM_CAP_USER_MEMORY", K.KVM_CAP_USER_MEMORY, 1],
  ["KVM_CAP_DESTROY_MEMORY_REGION_WORKS", K.KVM_CAP_DESTROY_MEMORY_REGION_WORKS, 1],
  ["KVM_CAP_JOIN_MEMORY_REGIONS_WORKS", K.KVM_CAP_JOIN_MEMORY_REGIONS_WORKS, 1],
  ["KVM_CAP_INTERNAL_ERROR_DATA", K.KVM_CAP_INTERNAL_ERROR_DATA, 1],
  ["KVM_CAP_CHECK_EXTENSION_VM", K.KVM_CAP_CHECK_EXTENSION_VM, 1],
  ["KVM_CAP_ENABLE_CAP_VM", K.KVM_CAP_ENABLE_CAP_VM, 1],
  ["KVM_CAP_DEVICE_CTRL", K.KVM_CAP_DEVICE_CTRL, 1],
  ["KVM_CAP_NR_MEMSLOTS", K.KVM_CAP_NR_MEMSLOTS, 32764],
  ["KVM_CAP_IOMMU", K.KVM_CAP_IOMMU, 0],
  ["unknown cap 0x7fffffff", 0x7fffffff, 0],
];

type Region = Partial<ReturnType<typeof K.kvm_userspace_memory_region.decode>>;
const TOP = 2n ** 47n; // end of user space with 4-level paging (+1 page)
/** One VM's slot history, in order; checked on the oracle's 6.12 too (except the
 * top-of-address-space rows: its guest runs with 5-level paging). Address space 1 (SMM) is
 * left out: it exists only with CONFIG_KVM_SMM, which this machine's host kernel lacks. */
const MEMSLOT_CASES = (u: bigint): [string, Region, number][] => {
  const s0 = { slot: 0, flags: 0, guest_phys_addr: 0n, memory_size: 0x10000n, userspace_addr: u };
  const moved = { ...s0, guest_phys_addr: 0x100000n };
  return [
    ["create slot 0", s0, 0],
    ["the same again: nothing to change", s0, 0],
    ["move to another gpa", moved, 0],
    ["resize", { ...moved, memory_size: 0x20000n }, -EINVAL],
    ["another userspace_addr", { ...moved, userspace_addr: u + 0x10000n }, -EINVAL],
    ["toggle LOG_DIRTY_PAGES only", { ...moved, flags: K.KVM_MEM_LOG_DIRTY_PAGES }, 0],
    ["toggle READONLY", { ...moved, flags: K.KVM_MEM_READONLY }, -EINVAL],
    ["address space 2", { ...s0, slot: 2 << 16, guest_phys_addr: 0x200000n }, -EINVAL],
    ["delete a slot that does not exist", { slot: 9 }, -EINVAL],
    ["gpa + size wraps", { ...s0, slot: 8, guest_phys_addr: 0xfffffffffff00000n, memory_size: 0x200000n }, -EINVAL],
    ["2^31 pages", { ...s0, slot: 7, guest_phys_addr: 1n << 40n, memory_size: 1n << 43n }, -EINVAL],
    ["slot 32763", { ...s0, slot: 32763, guest_phys_addr: 0x4000000n, memory_size: 0x1000n }, 0],
    ["slot 32764", { ...s0, slot: 32764, guest_phys_addr: 0x5000000n, memory_size: 0x1000n }, -EINVAL],
    ["GUEST_MEMFD on a default VM", { ...s0, slot: 3, flags: K.KVM_MEM_GUEST_MEMFD }, -EINVAL],
    ["overlap with slot 0", { ...s0, slot: 4, guest_phys_addr: 0x100000n, memory_size: 0x1000n }, -EEXIST],
    ["end at the last user page", { ...s0, slot: 5, guest_phys_addr: 0x7000000n, userspace_addr: TOP - 0x11000n }, 0],
    [
      "end past the last user page",
      { ...s0, slot: 6, guest_phys_addr: 0x8000000n, userspace_addr: TOP - 0x10000n },
      -EINVAL,
    ],
    [
      "userspace_addr + size wraps",
      { ...s0, slot: 6, userspace_addr: 0xfffffffffffff000n, memory_size: 0x2000n },
      -EINVAL,
    ],
    ["delete slot 0", { ...moved, memory_size: 0n }, 0],
    ["delete it again", { ...moved, memory_size: 0n }, -EINVAL],
    ["slot 0 anew at gpa 0", s0, 0],
  ];
};

const UNKNOWN_KVM_IOCTL = 0xaeff; // _IO(KVMIO, 0xff): nothing at that number

for (const b of BACKENDS) {
  describe(`KVM system ioctls on the ${b.name} backend`, { skip: b.kvmSkip }, () => {
    let be: Backend;
    let p: UserProcess;
    let kvm: number;
    before(() => {
      be = b.make();
      p = be.spawn();
      kvm = p.open("/dev/kvm");
      assert.ok(kvm >= 0, `open /dev/kvm: ${kvm}`);
    });
    after(() => be.kill(p));

    it("KVM_GET_API_VERSION is 12, and EINVAL with a nonzero arg", () => {
      assert.equal(p.ioctl(kvm, K.KVM_GET_API_VERSION, 0), 12);
      assert.equal(p.ioctl(kvm, K.KVM_GET_API_VERSION, 1), -EINVAL);
    });

    it("KVM_CHECK_EXTENSION on /dev/kvm answers the modelled caps as Linux does", () => {
      for (const [name, cap, want] of CAPS) assert.equal(p.ioctl(kvm, K.KVM_CHECK_EXTENSION, cap), want, name);
      assert.equal(p.ioctl(kvm, K.KVM_CHECK_EXTENSION, 2n ** 40n), 0, "a cap beyond long's low bits");
    });

    it("KVM_GET_VCPU_MMAP_SIZE is three pages; an unknown /dev/kvm ioctl is EINVAL, not ENOTTY", () => {
      assert.equal(p.ioctl(kvm, K.KVM_GET_VCPU_MMAP_SIZE, 0), 3 * 4096);
      assert.equal(p.ioctl(kvm, UNKNOWN_KVM_IOCTL, 0), -EINVAL);
      assert.equal(p.ioctl(kvm, 0x5401 /* TCGETS */, 0), -EINVAL);
    });

    it("KVM_CREATE_VM gives a VM fd with its own CHECK_EXTENSION; unknown VM ioctls are ENOTTY", () => {
      assert.equal(p.ioctl(kvm, K.KVM_CREATE_VM, 1), -EINVAL, "no such VM type on x86");
      const vm = p.ioctl(kvm, K.KVM_CREATE_VM, 0);
      assert.ok(vm >= 0, `KVM_CREATE_VM: ${vm}`);
      assert.notEqual(vm, kvm);
      for (const [name, cap, want] of CAPS) assert.equal(p.ioctl(vm, K.KVM_CHECK_EXTENSION, cap), want, `VM ${name}`);
      assert.equal(p.ioctl(vm, UNKNOWN_KVM_IOCTL, 0), -ENOTTY);
      assert.equal(p.ioctl(vm, K.KVM_GET_API_VERSION, 0), -ENOTTY, "a system ioctl on a VM fd");
      assert.equal(p.close(vm), 0);
    });

    it("a closed fd gives EBADF, for ioctl and for a second close", () => {
      const fd = p.dup(kvm);
      assert.ok(fd >= 0);
      assert.equal(p.ioctl(fd, K.KVM_GET_API_VERSION, 0), 12, "the dup works");
      assert.equal(p.close(fd), 0);
      assert.equal(p.ioctl(fd, K.KVM_GET_API_VERSION, 0), -EBADF);
      assert.equal(p.close(fd), -EBADF);
      assert.equal(p.ioctl(-1, K.KVM_GET_API_VERSION, 0), -EBADF);
    });

    it("KVM_SET_USER_MEMORY_REGION: EFAULT for an unmapped pointer, EINVAL for bad fields, 0 for a good slot", () => {
      const vm = p.ioctl(kvm, K.KVM_CREATE_VM, 0);
      assert.ok(vm >= 0);
      assert.equal(p.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, 16), -EFAULT);
      assert.equal(p.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, 0), -EFAULT);
      const t = new TypedProcess(p);
      const mem = p.mmap(0x10000);
      assert.ok(mem >= 0);
      const set = (v: Partial<ReturnType<typeof K.kvm_userspace_memory_region.decode>>) =>
        p.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, t.stage(K.kvm_userspace_memory_region.encode(v)));
      const good = { slot: 0, guest_phys_addr: 0n, memory_size: 0x10000n, userspace_addr: BigInt(mem) };
      assert.equal(set({ ...good, memory_size: 0x10001n }), -EINVAL, "size not page aligned");
      assert.equal(set({ ...good, flags: 0x80 }), -EINVAL, "unknown flag");
      assert.equal(set({ ...good, slot: 40000 }), -EINVAL, "slot beyond KVM_USER_MEM_SLOTS");
      assert.equal(set(good), 0);
      assert.equal(set({ ...good, slot: 1 }), -EEXIST, "a second slot over the same guest range");
      assert.equal(set({ ...good, memory_size: 0n }), 0, "size 0 deletes the slot");
      assert.equal(p.close(vm), 0);
      assert.equal(p.munmap(mem, 0x10000), 0);
    });

    it("KVM_SET_USER_MEMORY_REGION slot rules: create, move, flags, resize, delete, limits", () => {
      const vm = p.ioctl(kvm, K.KVM_CREATE_VM, 0);
      const mem = p.mmap(0x20000);
      const t = new TypedProcess(p);
      const u = BigInt(mem);
      for (const [what, v, want] of MEMSLOT_CASES(u)) {
        const rc = p.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, t.stage(K.kvm_userspace_memory_region.encode(v)));
        assert.equal(rc, want, what);
      }
      assert.equal(p.close(vm), 0);
      assert.equal(p.munmap(mem, 0x20000), 0);
    });

    it("sendFd to the process itself and kill() closes every fd, a VM fd made by ioctl included", () => {
      const q = be.spawn();
      const pvm = p.ioctl(kvm, K.KVM_CREATE_VM, 0); // p's, made while q lives
      const k2 = q.open("/dev/kvm");
      const vm = q.ioctl(k2, K.KVM_CREATE_VM, 0);
      const passed = q.sendFd(k2, q);
      assert.ok(k2 >= 0 && vm >= 0 && passed >= 0);
      assert.equal(q.ioctl(passed, K.KVM_GET_API_VERSION, 0), 12);
      be.kill(q);
      for (const fd of [k2, vm, passed])
        assert.throws(() => q.ioctl(fd, K.KVM_CHECK_EXTENSION, 0), ProcessExited, `fd ${fd}: q is gone`);
      assert.equal(p.ioctl(kvm, K.KVM_GET_API_VERSION, 0), 12, "another process's fd is untouched");
      assert.equal(p.ioctl(pvm, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY), 1, "so is its VM made after q");
      assert.equal(p.close(pvm), 0);
    });
  });

  describe(`user memory on the ${b.name} backend`, { skip: b.memSkip }, () => {
    let be: Backend;
    let p: UserProcess;
    before(() => {
      be = b.make();
      p = be.spawn();
    });
    after(() => be.kill(p));

    it("anonymous memory starts zeroed and reads back what was written", () => {
      const a = p.mmap(8192);
      assert.ok(a > 0 && a % 4096 === 0, `mmap: ${a}`);
      assert.deepEqual(p.read(a, 16), new Uint8Array(16));
      const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
      p.write(a + 4000, bytes); // across the page boundary
      assert.deepEqual(p.read(a + 4000, 300), bytes);
      assert.deepEqual(p.read(BigInt(a + 4000), 4), bytes.subarray(0, 4), "bigint addresses too");
      assert.equal(p.munmap(a, 8192), 0);
    });

    it("munmap makes the range fault; a fixed mapping there then succeeds, and a taken one is EEXIST", () => {
      const a = p.mmap(3 * 4096);
      assert.ok(a > 0);
      assert.equal(p.mmap(4096, { addr: a + 4096 }), -EEXIST, "MAP_FIXED_NOREPLACE over a mapping");
      assert.equal(p.munmap(a + 4096, 4096), 0);
      assert.throws(() => p.read(a + 4096, 1), Segfault);
      assert.throws(() => p.read(a + 4000, 200), Segfault, "a read running into the hole");
      assert.throws(() => p.write(a + 4096, new Uint8Array(1)), Segfault);
      p.write(a, Uint8Array.of(1));
      p.write(a + 8192, Uint8Array.of(3));
      assert.equal(p.mmap(4096, { addr: a + 4096 }), a + 4096);
      assert.deepEqual(
        p.read(a, 3 * 4096).filter((x) => x !== 0),
        Uint8Array.of(1, 3),
        "the new page is fresh",
      );
      assert.equal(p.munmap(a, 3 * 4096), 0);
      assert.throws(() => p.read(a, 1), Segfault);
    });

    it("a PROT_READ mapping reads but faults on write; bad munmap/mmap arguments are EINVAL", () => {
      const a = p.mmap(4096, { prot: PROT_READ });
      assert.ok(a > 0);
      assert.deepEqual(p.read(a, 4), new Uint8Array(4));
      assert.throws(() => p.write(a, Uint8Array.of(1)), Segfault);
      assert.equal(p.munmap(a + 1, 4096), -EINVAL, "unaligned address");
      assert.equal(p.munmap(a, 0), -EINVAL, "length 0");
      assert.equal(p.mmap(0), -EINVAL, "mmap length 0");
      assert.equal(p.mmap(4096, { addr: a + 1 }), -EINVAL, "unaligned fixed address");
      assert.equal(p.munmap(a, 4096), 0);
    });

    it("readFd/writeFd move bytes between an eventfd and user memory; a bad buffer is EFAULT", () => {
      const efd = p.eventfd(0o4000 /* EFD_NONBLOCK */);
      assert.ok(efd >= 0);
      const a = p.mmap(4096);
      const v = new Uint8Array(8);
      new DataView(v.buffer).setBigUint64(0, 5n, true);
      p.write(a, v);
      assert.equal(p.writeFd(efd, a, 8), 8);
      assert.equal(p.writeFd(efd, a, 7), -EINVAL);
      assert.equal(p.writeFd(efd, 16, 8), -EFAULT);
      assert.equal(p.readFd(efd, a + 8, 8), 8);
      assert.equal(new DataView(p.read(a + 8, 8).buffer).getBigUint64(0, true), 5n);
      assert.equal(p.readFd(efd, a + 8, 8), -EAGAIN, "the count was consumed");
      assert.equal(p.writeFd(efd, a, 16), -EINVAL, "eventfd writes exactly 8 bytes");
      assert.equal(p.writeFd(efd, a, 8), 8);
      assert.equal(p.readFd(efd, 16, 8), -EFAULT);
      assert.equal(p.readFd(efd, a + 8, 8), -EAGAIN, "a read that faults has consumed the count all the same");
      assert.equal(p.close(efd), 0);
      assert.equal(p.readFd(efd, a, 8), -EBADF);
      assert.equal(p.munmap(a, 4096), 0);
    });

    it("pread/pwrite/read/write error order: pos, fd, FMODE_PREAD, access mode, op, buffer", () => {
      const a = p.mmap(4096);
      const efd = p.eventfd(0o4000);
      assert.equal(p.pread(-1, a, 8, -1), -EINVAL, "a negative pos is checked before the fd");
      assert.equal(p.pread(-1, a, 8, 0), -EBADF);
      assert.equal(p.pread(efd, a, 8, 0), -ESPIPE, "an eventfd has no FMODE_PREAD");
      assert.equal(p.pwrite(efd, a, 8, 0), -ESPIPE);
      assert.equal(p.mmap(-1), -ENOMEM, "a negative length is a huge size_t");
      assert.equal(p.close(efd), 0);
      if (!b.kvmSkip) {
        const ro = p.open("/dev/kvm", 0 /* O_RDONLY */);
        assert.ok(ro >= 0);
        assert.equal(p.writeFd(ro, a, 8), -EBADF, "not open for writing");
        assert.equal(p.readFd(ro, 16, 8), -EINVAL, "no read op, checked before the buffer");
        assert.equal(p.pread(ro, a, 8, 0), -EINVAL, "a node from open(2) has FMODE_PREAD; /dev/kvm has no read");
        assert.equal(p.close(ro), 0);
      }
      assert.equal(p.munmap(a, 4096), 0);
    });

    it("a PROT_WRITE-only mapping is readable (x86 has no write-only pages); PROT_NONE is not", () => {
      const w = p.mmap(4096, { prot: PROT_WRITE });
      p.write(w, Uint8Array.of(7));
      assert.deepEqual(p.read(w, 1), Uint8Array.of(7));
      const efd = p.eventfd(0o4000);
      const v = new Uint8Array(8);
      v[0] = 2;
      p.write(w + 8, v);
      assert.equal(p.writeFd(efd, w + 8, 8), 8, "the kernel reads it too (copy_from_user)");
      const none = p.mmap(4096, { prot: 0 });
      assert.throws(() => p.read(none, 1), Segfault);
      assert.equal(p.writeFd(efd, none, 8), -EFAULT);
      assert.equal(p.close(efd), 0);
      assert.equal(p.munmap(w, 4096), 0);
      assert.equal(p.munmap(none, 4096), 0);
    });

    it("setMemlock refuses soft above hard without changing anything", () => {
      assert.equal(p.setMemlock(2 * 4096, 4096), -EINVAL);
    });
  });
}

describe("KVM memslots in SMM address space 1 (twin only: needs CONFIG_KVM_SMM, as the oracle's 6.12 has)", () => {
  it("address space 1 has its own slots; a gpa taken in space 0 is free there", () => {
    const twin = createTwin();
    const p = twin.spawn();
    const vm = p.ioctl(p.open("/dev/kvm"), K.KVM_CREATE_VM, 0);
    const t = new TypedProcess(p);
    const mem = BigInt(p.mmap(0x10000));
    const set = (v: Region) =>
      p.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, t.stage(K.kvm_userspace_memory_region.encode(v)));
    const r = { slot: 0, guest_phys_addr: 0x100000n, memory_size: 0x10000n, userspace_addr: mem };
    assert.equal(set(r), 0);
    assert.equal(set({ ...r, slot: 1 << 16 }), 0, "oracle 6.12: OK");
    assert.equal(set({ ...r, slot: (1 << 16) | 1 }), -EEXIST, "overlap inside space 1");
    assert.equal(set({ ...r, slot: (1 << 16) | 32764 }), -EINVAL, "oracle 6.12: EINVAL");
    twin.kill(p);
  });
});
