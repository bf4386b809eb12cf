// The strace formatter on the calls the real kernel here cannot answer (VFIO, iommufd, KVM
// succeeding): strace's conventions (flags by name, out fields after the call, `in => out`,
// pointed-to fds and names followed) and the structured JSON beside the text.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin, type TwinProcess } from "../../src/twin.js";
import { formatEvent } from "../../src/kernel/trace.js";
import { straceQuote } from "../../src/trace/strace_quote.js";
import { mapFlags, openFlags } from "../../src/trace/syscall_flags.js";
import { ioctlRequest } from "../../src/trace/ioctl_decode.js";
import { render } from "../../src/trace/value.js";
import { _IOWR } from "../../src/uapi/ioctl.js";
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  iommu_ioas_alloc,
  iommu_ioas_map,
} from "../../src/uapi/iommufd.js";
import {
  VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_irq_set,
} from "../../src/uapi/vfio.js";

function traced(): { twin: ReturnType<typeof createTwin>; p: TwinProcess; lines: () => string[] } {
  const twin = createTwin();
  const p = twin.spawn({ name: "vmm", memlock: 64 << 20 });
  twin.kernel.trace.enabled = true;
  return { twin, p, lines: () => twin.kernel.trace.events.map((e) => formatEvent(e, { pid: false })) };
}

test("buffers are quoted as strace quotes them: octal as short as the next byte allows, cut at 32", () => {
  assert.equal(straceQuote(Uint8Array.of(1, 0x30, 0, 0x38, 0xff), 32), '"\\0010\\08\\377"');
  assert.equal(straceQuote(new TextEncoder().encode('a"\\\t\r\v\f'), 32), '"a\\"\\\\\\t\\r\\v\\f"');
  assert.equal(straceQuote(new Uint8Array(40).fill(0x61), 32), `"${"a".repeat(32)}"...`);
});

test("flags by name in strace's order, leftover bits in hex", () => {
  assert.equal(render(openFlags(0o2004002)), "O_RDWR|O_NONBLOCK|O_CLOEXEC");
  assert.equal(render(openFlags(0o40000000 | 1)), "O_WRONLY|0x800000");
  assert.equal(render(mapFlags(0x100022)), "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE");
  assert.equal(render(ioctlRequest(undefined, _IOWR(0x3b, 0x99, 16))), "_IOC(_IOC_READ|_IOC_WRITE, 0x3b, 0x99, 0x10)");
});

test("iommufd: out fields after a successful call, a field the kernel changed as in => out", () => {
  const { twin, p, lines } = traced();
  const fd = p.open("/dev/iommu");
  const buf = p.mmap(1 << 20);
  p.write(buf, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size }));
  assert.equal(p.ioctl(fd, IOMMU_IOAS_ALLOC, buf), 0);
  p.write(
    buf + 64,
    iommu_ioas_map.encode({
      size: iommu_ioas_map.size,
      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: 1,
      user_va: BigInt(buf + 4096),
      length: 8192n,
    }),
  );
  assert.equal(p.ioctl(fd, IOMMU_IOAS_MAP, buf + 64), 0);
  p.write(buf, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size, flags: 1 }));
  assert.ok(p.ioctl(fd, IOMMU_IOAS_ALLOC, buf) < 0);
  const l = lines();
  assert.equal(l[2], "ioctl(3, IOMMU_IOAS_ALLOC, {size=12, flags=0, out_ioas_id=1}) = 0");
  assert.match(
    l[3]!,
    /^ioctl\(3, IOMMU_IOAS_MAP, \{size=40, flags=IOMMU_IOAS_MAP_WRITEABLE\|IOMMU_IOAS_MAP_READABLE, ioas_id=1, __reserved=0, user_va=0x[0-9a-f]+, length=8192, iova=0\} => \{iova=0x[0-9a-f]+\}\) = 0$/,
  );
  // a failed call shows what userspace passed, not the out fields
  assert.equal(l[4], "ioctl(3, IOMMU_IOAS_ALLOC, {size=12, flags=0x1}) = -1 EOPNOTSUPP (Operation not supported)");
  const json = JSON.parse(JSON.stringify(twin.kernel.trace.events[3]));
  assert.equal(json.args.request, "IOMMU_IOAS_MAP");
  assert.equal(json.args.arg.in.flags, "IOMMU_IOAS_MAP_WRITEABLE|IOMMU_IOAS_MAP_READABLE");
  assert.equal(json.args.arg.in.length, 8192);
  assert.match(json.args.arg.out.iova, /^0x/);
});

test("VFIO: the container fd behind int*, the device name behind char*, the eventfds after an irq set", () => {
  const { p, lines } = traced();
  const c = p.open("/dev/vfio/vfio");
  const g = p.open("/dev/vfio/1");
  const buf = p.mmap(4096);
  p.write(buf, Uint8Array.of(c, 0, 0, 0));
  assert.equal(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, buf), 0);
  assert.equal(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  p.write(buf, new TextEncoder().encode("0000:00:01.0\0"));
  const d = p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, buf);
  assert.ok(d > 0);
  const efd = p.eventfd(0);
  const set = vfio_irq_set.encode({
    argsz: vfio_irq_set.size + 4,
    flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
    index: VFIO_PCI_MSI_IRQ_INDEX,
    count: 1,
  });
  p.write(buf, set);
  p.write(buf + vfio_irq_set.size, Uint8Array.of(efd, 0, 0, 0));
  assert.equal(p.ioctl(d, VFIO_DEVICE_SET_IRQS, buf), 0);
  const l = lines();
  assert.ok(l.includes("ioctl(4, VFIO_GROUP_SET_CONTAINER, [3]) = 0"), l.join("\n"));
  assert.ok(l.includes("ioctl(3, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) = 0"));
  assert.ok(l.includes(`ioctl(4, VFIO_GROUP_GET_DEVICE_FD, "0000:00:01.0") = ${d}`));
  assert.ok(
    l.includes(
      `ioctl(${d}, VFIO_DEVICE_SET_IRQS, {argsz=24, flags=VFIO_IRQ_SET_DATA_EVENTFD|VFIO_IRQ_SET_ACTION_TRIGGER, index=1, start=0, count=1, data=[${efd}]}) = 0`,
    ),
    l.join("\n"),
  );
});

test("an EBUSY carries who holds it, back to the process and the syscall that took each reference", () => {
  const { twin, p } = traced();
  const other = twin.spawn({ name: "second" });
  p.open("/dev/vfio/1");
  assert.equal(other.open("/dev/vfio/1"), -16);
  const e = twin.kernel.trace.events.at(-1)!;
  assert.equal(formatEvent(e), '[pid 2] openat(AT_FDCWD, "/dev/vfio/1", O_RDWR) = -1 EBUSY (Device or resource busy)');
  const group = e.holders!.find((h) => h.object === "vfio_group 1")!;
  const groupFile = group.holders.find((l) => l.ref === "group file")!;
  assert.equal(groupFile.takenBy, 'openat("/dev/vfio/1") by vmm[1]');
  const fd = groupFile.heldBy.find((l) => l.kind === "fd")!;
  assert.equal(fd.ref, "fd 3 of pid 1");
  assert.deepEqual(
    fd.heldBy.map((l) => [l.kind, l.holder]),
    [["process", "vmm[1]"]],
  );
  const json = JSON.parse(JSON.stringify(e));
  assert.equal(json.errno, "EBUSY");
  assert.ok(json.holders.some((h: { object: string }) => h.object === "vfio_group 1"));
});

test("every VFIO, iommufd and KVM ioctl the twin knows decodes its struct with every field by name", async () => {
  const { allIoctls } = await import("../../src/uapi/ioctls.js");
  const { ioctlIntArg, ioctlPtrArg, ioctlStructArg } = await import("../../src/trace/ioctl_decode.js");
  const mem = { read: (_a: number, n: number) => new Uint8Array(n) };
  let structs = 0;
  for (const def of allIoctls()) {
    assert.equal(render(ioctlRequest(def, def.nr)), def.name);
    if (typeof def.arg !== "object") {
      const v = def.arg === "ptr" ? ioctlPtrArg(def, 0x1000, mem) : ioctlIntArg(def, 3);
      assert.ok(render(v).length > 0, def.name);
      continue;
    }
    structs++;
    const before = new Uint8Array(def.arg.size + 256);
    const after = before.slice();
    after[def.arg.size - 1] = 1; // the kernel wrote the last byte: an in => out or an out field
    const ctx = { fileType: def.subsys };
    const ok = render(ioctlStructArg(def, def.arg, 0x1000, before, after, true, ctx, mem));
    const names = [...ok.matchAll(/(?:\{|, )([a-z_0-9]+)=/g)].map((m) => m[1]);
    for (const f of def.arg.fields) assert.ok(names.includes(f.name), `${def.name}: ${f.name} in ${ok}`);
    const failed = render(ioctlStructArg(def, def.arg, 0x1000, before, null, false, ctx, mem));
    assert.ok(!failed.includes("=>"), `${def.name}: a failed call shows only what was passed: ${failed}`);
  }
  assert.ok(structs > 30, `${structs} struct ioctls`);
});
