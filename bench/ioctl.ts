// The cost of one raw ioctl round trip (issue 2): KVM_CHECK_EXTENSION(KVM_CAP_USER_MEMORY) on
// a /dev/kvm fd, through the twin's syscall path and, where /dev/kvm exists, on the real
// kernel through the host backend (koffi -> glibc ioctl -> kernel). Target: the twin at most
// 1/3 of the real kernel's cost.
//
// Struct-carrying ioctls (issue 18): KVM_HAS_DEVICE_ATTR on a KVM VFIO device (a 24-byte
// struct in), VFIO_GROUP_GET_STATUS (8 bytes in and out) and VFIO_DEVICE_GET_REGION_INFO
// (32 bytes in and out) on the twin. Targets: HAS_DEVICE_ATTR <= 1/3 of the real kernel's
// (where /dev/kvm exists), the two VFIO calls <= 1.5x the twin's HAS_DEVICE_ATTR. Without
// /dev/kvm the host rows are a stand-in with the same shape: TIOCSWINSZ on a pty master (an
// 8-byte struct copied in, a mutex, compared, no change) through the same FFI path.

import { createRequire } from "node:module";
import { createTwin } from "../src/twin.js";
import { createHost, hostAvailable, koffiAvailable } from "../src/backend/host.js";
import * as K from "../src/uapi/kvm.js";
import * as V from "../src/uapi/vfio.js";
import type { UserProcess } from "../src/backend/backend.js";
import type { BenchContext, BenchRow, BenchSuite } from "./harness.js";

const HOST = "ioctl/host KVM_CHECK_EXTENSION";
const TWIN = "ioctl/twin KVM_CHECK_EXTENSION";
const TARGET = 1 / 3;
const HOST_SLOT = "ioctl/host KVM_SET_USER_MEMORY_REGION, no change";
const HOST_ATTR = "ioctl/host KVM_HAS_DEVICE_ATTR";
const HOST_WINSZ = "ioctl/host TIOCSWINSZ on /dev/ptmx (stand-in: 8-byte struct in)";
const TWIN_ATTR = "ioctl/twin KVM_HAS_DEVICE_ATTR";
const TWIN_STATUS = "ioctl/twin VFIO_GROUP_GET_STATUS";
const TWIN_REGION = "ioctl/twin VFIO_DEVICE_GET_REGION_INFO";
const TIOCSWINSZ = 0x5414;

/** A KVM VFIO device and HAS_DEVICE_ATTR(KVM_DEV_VFIO_FILE, FILE_ADD) on it: a 24-byte struct
 * copied in and decoded, 0 back. */
export function hasDeviceAttr(p: UserProcess): () => number {
  const kvm = p.open("/dev/kvm");
  const vm = p.ioctl(kvm, K.KVM_CREATE_VM, 0);
  const arg = p.mmap(4096);
  p.write(arg, K.kvm_create_device.encode({ type: K.KVM_DEV_TYPE_VFIO }));
  if (p.ioctl(vm, K.KVM_CREATE_DEVICE, arg) !== 0) throw new Error("KVM_CREATE_DEVICE");
  const dev = K.kvm_create_device.decode(p.read(arg, K.kvm_create_device.size)).fd;
  p.write(arg + 64, K.kvm_device_attr.encode({ group: K.KVM_DEV_VFIO_FILE, attr: BigInt(K.KVM_DEV_VFIO_FILE_ADD) }));
  if (p.ioctl(dev, K.KVM_HAS_DEVICE_ATTR, arg + 64) !== 0) throw new Error("HAS_DEVICE_ATTR");
  return () => p.ioctl(dev, K.KVM_HAS_DEVICE_ATTR, arg + 64);
}

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
    const attr = hasDeviceAttr(p);
    rows.push({ name: HOST_ATTR, ns: ctx.measure(attr), note: "the real kernel's struct ioctl" });
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

  const winsz = hostOk ? null : hostWinsz();
  if (winsz) rows.push({ name: HOST_WINSZ, ns: ctx.measure(winsz.call), note: "no /dev/kvm: a host struct ioctl" });
  winsz?.close();

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
  const attrBase = hostOk ? HOST_ATTR : winsz ? HOST_WINSZ : undefined;
  rows.push({
    name: TWIN_ATTR,
    ns: ctx.measure(hasDeviceAttr(p)),
    ...(attrBase ? { baseline: attrBase } : {}),
    note: "24-byte struct in; target <= 0.333x the real kernel's",
  });
  const vfio = vfioCalls(p);
  rows.push({ name: TWIN_STATUS, ns: ctx.measure(vfio.status), baseline: TWIN_ATTR, note: "target <= 1.5x" });
  rows.push({ name: TWIN_REGION, ns: ctx.measure(vfio.region), baseline: TWIN_ATTR, note: "target <= 1.5x" });
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

/** TIOCSWINSZ on a pty master on the host, unchanged size: null where /dev/ptmx won't open. */
function hostWinsz(): { call: () => number; close: () => void } | null {
  if (!koffiAvailable()) return null;
  const host = createHost();
  const p = host.spawn();
  const fd = p.open("/dev/ptmx", 0o2 | 0o400); // O_RDWR | O_NOCTTY
  if (fd < 0) {
    host.kill(p);
    return null;
  }
  const arg = p.mmap(4096);
  p.write(arg, new Uint8Array([24, 0, 80, 0, 0, 0, 0, 0]));
  if (p.ioctl(fd, TIOCSWINSZ, arg) !== 0) {
    host.kill(p);
    return null;
  }
  return { call: () => p.ioctl(fd, TIOCSWINSZ, arg), close: () => host.kill(p) };
}

/** A type1 container over group 1 and its device's fd: GET_STATUS on the group and
 * GET_REGION_INFO(BAR0) on the device, each with its struct staged once. */
function vfioCalls(p: UserProcess): { status: () => number; region: () => number } {
  const arg = p.mmap(4096);
  const c = p.open("/dev/vfio/vfio");
  const g = p.open("/dev/vfio/1");
  const fdb = new Uint8Array(4);
  new DataView(fdb.buffer).setInt32(0, c, true);
  p.write(arg, fdb);
  if (p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, arg) !== 0) throw new Error("SET_CONTAINER");
  if (p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU) !== 0) throw new Error("SET_IOMMU");
  p.write(arg, new TextEncoder().encode("0000:00:01.0\0"));
  const dev = p.ioctl(g, V.VFIO_GROUP_GET_DEVICE_FD, arg);
  if (dev < 0) throw new Error(`GET_DEVICE_FD: ${dev}`);
  const st = arg + 0x100;
  const ri = arg + 0x200;
  p.write(st, V.vfio_group_status.encode({ argsz: V.vfio_group_status.size }));
  p.write(ri, V.vfio_region_info.encode({ argsz: V.vfio_region_info.size, index: 0 }));
  if (p.ioctl(g, V.VFIO_GROUP_GET_STATUS, st) !== 0) throw new Error("GET_STATUS");
  if (p.ioctl(dev, V.VFIO_DEVICE_GET_REGION_INFO, ri) !== 0) throw new Error("GET_REGION_INFO");
  return {
    status: () => p.ioctl(g, V.VFIO_GROUP_GET_STATUS, st),
    region: () => p.ioctl(dev, V.VFIO_DEVICE_GET_REGION_INFO, ri),
  };
}

function summary(rows: BenchRow[]): string[] {
  const ns = (n: string) => rows.find((r) => r.name === n)?.ns;
  const out: string[] = [];
  const h = ns(HOST);
  const t = ns(TWIN);
  if (t !== undefined && h === undefined)
    out.push(`twin raw ioctl: ${t.toFixed(1)} ns (no /dev/kvm on this machine: no real-kernel comparison)`);
  if (t !== undefined && h !== undefined) {
    const r = t / h;
    out.push(
      `raw ioctl round trip: twin ${t.toFixed(1)} ns, real kernel ${h.toFixed(1)} ns, ratio ${r.toFixed(3)} ` +
        `(target <= ${TARGET.toFixed(3)}): ${r <= TARGET ? "met" : "MISSED"}`,
    );
  }
  const a = ns(TWIN_ATTR);
  const ha = ns(HOST_ATTR) ?? ns(HOST_WINSZ);
  if (a !== undefined && ha !== undefined) {
    const r = a / ha;
    const what = ns(HOST_ATTR) !== undefined ? "the real kernel's HAS_DEVICE_ATTR" : "the host's TIOCSWINSZ (stand-in)";
    out.push(
      `struct ioctl: twin HAS_DEVICE_ATTR ${a.toFixed(1)} ns, ${what} ${ha.toFixed(1)} ns, ratio ${r.toFixed(3)} ` +
        `(target <= ${TARGET.toFixed(3)}): ${r <= TARGET ? "met" : "MISSED"}`,
    );
  }
  for (const n of [TWIN_STATUS, TWIN_REGION]) {
    const x = ns(n);
    if (x !== undefined && a !== undefined)
      out.push(
        `${n.slice(11)}: ${(x / a).toFixed(2)}x the twin's HAS_DEVICE_ATTR (target <= 1.5x): ${x / a <= 1.5 ? "met" : "MISSED"}`,
      );
  }
  return out;
}

export const suite: BenchSuite = {
  name: "ioctl",
  title: "one raw ioctl round trip: twin vs the real kernel",
  run,
  summary,
};
