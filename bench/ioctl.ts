// The cost of one raw ioctl round trip (issue 2): KVM_CHECK_EXTENSION(KVM_CAP_USER_MEMORY) on
// a /dev/kvm fd, through the twin's syscall path and, where /dev/kvm exists, on the real
// kernel through the host backend (koffi -> glibc ioctl -> kernel). Target: the twin at most
// 1/3 of the real kernel's cost.

import { createRequire } from "node:module";
import { createTwin } from "../src/twin.js";
import { createHost, hostAvailable, koffiAvailable } from "../src/backend/host.js";
import * as K from "../src/uapi/kvm.js";
import type { UserProcess } from "../src/backend/backend.js";
import type { BenchContext, BenchRow, BenchSuite } from "./harness.js";

const HOST = "ioctl/host KVM_CHECK_EXTENSION";
const TWIN = "ioctl/twin KVM_CHECK_EXTENSION";
const TARGET = 1 / 3;
const HOST_SLOT = "ioctl/host KVM_SET_USER_MEMORY_REGION, no change";

/** A VM with slot 0 over 64 KiB, and the ioctl that sets it again unchanged: a struct ioctl
 * (copy_from_user + checks + slots_lock) that returns 0 without touching the memslots. */
export function memslotNoop(p: UserProcess): () => number {
  const kvm = p.open("/dev/kvm");
  const vm = p.ioctl(kvm, K.KVM_CREATE_VM, 0);
  const mem = p.mmap(0x10000);
  const arg = p.mmap(4096);
  p.write(arg, K.kvm_userspace_memory_region.encode({ slot: 0, memory_size: 0x10000n, userspace_addr: BigInt(mem) }));
  if (p.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, arg) !== 0) throw new Error("SET_USER_MEMORY_REGION");
  return () => p.ioctl(vm, K.KVM_SET_USER_MEMORY_REGION, arg);
}

function run(ctx: BenchContext): BenchRow[] {
  const rows: BenchRow[] = [];
  const hostOk = koffiAvailable() && hostAvailable("/dev/kvm");
  const base = hostOk ? HOST : undefined;
  const withBase = (r: BenchRow): BenchRow => (base && r.name !== base ? { ...r, baseline: base } : r);

  if (hostOk) {
    const host = createHost();
    const p = host.spawn();
    const fd = p.open("/dev/kvm");
    if (fd < 0) throw new Error(`host open /dev/kvm: ${fd}`);
    if (p.ioctl(fd, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY) !== 1) throw new Error("host CHECK_EXTENSION");
    rows.push({
      name: HOST,
      ns: ctx.measure(() => p.ioctl(fd, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY)),
      note: "real kernel via koffi",
    });
    rows.push(
      withBase({
        name: "ioctl/host EBADF (fd -1)",
        ns: ctx.measure(() => p.ioctl(-1, K.KVM_CHECK_EXTENSION, 0)),
        note: "kernel fails at fdget; + errno read",
      }),
    );
    const slotNoop = memslotNoop(p);
    rows.push({ name: HOST_SLOT, ns: ctx.measure(slotNoop), note: "a struct ioctl on the real kernel" });
    host.kill(p);
    // what of the host's cost is the FFI crossing itself: a libc function that makes no syscall
    const koffi = createRequire(import.meta.url)("koffi");
    const abs = koffi.load("libc.so.6").func("int abs(int x)") as (x: number) => number;
    rows.push(
      withBase({
        name: "ioctl/host koffi call of libc abs() (no syscall)",
        ns: ctx.measure(() => abs(-3)),
        note: "FFI share of the host rows",
      }),
    );
  }

  const twin = createTwin();
  const p = twin.spawn();
  const fd = p.open("/dev/kvm");
  const vm = p.ioctl(fd, K.KVM_CREATE_VM, 0);
  if (p.ioctl(fd, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY) !== 1) throw new Error("twin CHECK_EXTENSION");
  rows.push(
    withBase({
      name: TWIN,
      ns: ctx.measure(() => p.ioctl(fd, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY)),
      note: hostOk ? `target <= ${TARGET.toFixed(3)}x` : "no /dev/kvm here: host not measured",
    }),
  );
  rows.push(
    withBase({
      name: "ioctl/twin KVM_CHECK_EXTENSION on a VM fd",
      ns: ctx.measure(() => p.ioctl(vm, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY)),
    }),
  );
  rows.push(
    withBase({ name: "ioctl/twin EBADF (fd -1)", ns: ctx.measure(() => p.ioctl(-1, K.KVM_CHECK_EXTENSION, 0)) }),
  );
  const slotNoop = memslotNoop(p);
  rows.push({
    name: "ioctl/twin KVM_SET_USER_MEMORY_REGION, no change",
    ns: ctx.measure(slotNoop),
    ...(hostOk ? { baseline: HOST_SLOT } : {}),
    note: "copy_from_user + struct decode",
  });
  twin.kernel.trace.enabled = true;
  rows.push(
    withBase({
      name: "ioctl/twin KVM_CHECK_EXTENSION, tracing on",
      ns: ctx.measure(() => {
        const rc = p.ioctl(fd, K.KVM_CHECK_EXTENSION, K.KVM_CAP_USER_MEMORY);
        twin.kernel.trace.clear();
        return rc;
      }),
      note: "records a strace line per call",
    }),
  );
  twin.kernel.trace.enabled = false;
  twin.kill(p);
  return rows;
}

function summary(rows: BenchRow[]): string[] {
  const h = rows.find((r) => r.name === HOST);
  const t = rows.find((r) => r.name === TWIN);
  if (!t) return [];
  if (!h) return [`twin raw ioctl: ${t.ns.toFixed(1)} ns (no /dev/kvm on this machine: no real-kernel comparison)`];
  const r = t.ns / h.ns;
  return [
    `raw ioctl round trip: twin ${t.ns.toFixed(1)} ns, real kernel ${h.ns.toFixed(1)} ns, ratio ${r.toFixed(3)} ` +
      `(target <= ${TARGET.toFixed(3)}): ${r <= TARGET ? "met" : "MISSED"}`,
  ];
}

export const suite: BenchSuite = {
  name: "ioctl",
  title: "one raw ioctl round trip: twin vs the real kernel",
  run,
  summary,
};
