import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { formatHolders, whoHolds } from "../../src/check/holders.js";

test("whoHolds names the processes and fds holding a node open", () => {
  const twin = createTwin();
  const a = twin.spawn({ name: "libvirtd" });
  const b = twin.spawn({ name: "qemu" });
  const fd = a.open("/dev/kvm");
  a.sendFd(fd, b);
  a.dup(fd);
  const hs = whoHolds(twin.kernel, "/dev/kvm");
  assert.deepEqual(
    hs.map((h) => `${h.holder} ${h.process}`),
    ["fd 3 of pid 1 libvirtd[1]", "fd 3 of pid 2 qemu[2]", "fd 4 of pid 1 libvirtd[1]"],
  );
  assert.match(formatHolders("/dev/kvm", hs), /fd 3 of pid 2 \(qemu\[2\]\)/);
  twin.kill(a);
  twin.kill(b);
  assert.equal(formatHolders("/dev/kvm", whoHolds(twin.kernel, "/dev/kvm")), "/dev/kvm: not open");
});

// ---- chains ----

import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatChains, objectGraph, whoHoldsChains, type HolderLink } from "../../src/check/holders.js";
import { runScene } from "../../src/cli/scene.js";
import { BusyError, TypedProcess } from "../../src/vmm/typed.js";
import { startVm } from "../../src/vmm/passthrough.js";

const SCENARIOS = fileURLToPath(new URL("../../../test/scenarios/", import.meta.url));

/** The holders that are kernel objects of their own (no syscall of a process took them). */
const KERNEL_LEAVES = [
  /^driver \S+: device registration$/,
  /^iommufd: device attached to a page table$/,
  /^vfio-pci (irq|req) trigger$/,
  /^creator \(a reference not yet handed over\)$/,
];

test("every holder name of the scenario corpus and the demo resolves to the object behind it", () => {
  const unresolved = new Map<string, string>();
  const look = (where: string) => (twin: { kernel: ReturnType<typeof createTwin>["kernel"] }) => {
    const g = objectGraph(twin.kernel);
    for (const e of g.edges) {
      const n = g.nodes.get(e.from)!;
      if (n.kind === "kernel" && !KERNEL_LEAVES.some((re) => re.test(n.label))) unresolved.set(n.label, where);
    }
  };
  const files = readdirSync(SCENARIOS).filter((f) => f.endsWith(".txt"));
  assert.ok(files.length > 40);
  for (const f of files) runScene({ script: SCENARIOS + f }, look(f));
  runScene({ teardown: true }, look("demo"));
  assert.deepEqual([...unresolved], []);
});

function flatten(ls: readonly HolderLink[]): HolderLink[] {
  return ls.flatMap((l) => [l, ...flatten(l.heldBy)]);
}

test("a module's pins lead back to the processes whose files and objects hold it", () => {
  const twin = createTwin();
  const qemu = twin.spawn({ name: "qemu", memlock: 64 << 20 });
  startVm(qemu, { bdf: "0000:00:01.0" });
  const [vfio] = whoHoldsChains(twin.kernel, "module vfio_iommu_type1");
  assert.equal(vfio!.refs, 1);
  const all = flatten(vfio!.holders);
  // container ids count across the twins of a process: match any
  const backend = all.find((l) => /^vfio container \d+ backend$/.test(l.ref))!;
  assert.equal(backend.takenBy, "ioctl(6, VFIO_SET_IOMMU) by qemu[1]");
  assert.ok(all.some((l) => l.kind === "process" && l.holder === "qemu[1]"));
  assert.match(
    formatChains([vfio!]),
    /^module vfio_iommu_type1 \(refcount 1\)\n {2}<- vfio_container (\d+) \[vfio container \1 backend\]/,
  );
});

test("IOMMU_DESTROY's EBUSY names the page table holding the IOAS and the ioctl that made it", () => {
  const busy: string[] = [];
  runScene({ script: `${SCENARIOS}iommufd-teardown.txt` }, (_t, e) => {
    if (e.errno !== "EBUSY" || !e.arg("request")) return;
    const ioas = e.holders!.find((h) => /^iommufd ioas 1 /.test(h.object));
    if (!ioas) return;
    busy.push(...ioas.holders.map((l) => `${l.ref} <- ${l.takenBy}`));
  });
  assert.ok(busy.includes("hwpt 3 <- ioctl(3, IOMMU_HWPT_ALLOC) by vfio_script[1]"), busy.join("\n"));
});

test("the typed layer's EBUSY is a BusyError that says who holds the group", () => {
  const twin = createTwin();
  const a = twin.spawn({ name: "first" });
  a.open("/dev/vfio/1");
  const b = new TypedProcess(twin.spawn({ name: "second" }));
  let err: unknown;
  try {
    b.open("/dev/vfio/1");
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof BusyError);
  assert.equal(err.code, "EBUSY");
  const file = err.holders.find((h) => h.object === "file /dev/vfio/1 (vfio-group)")!;
  assert.deepEqual(
    flatten(file.holders).map((l) => `${l.holder} [${l.ref}] ${l.takenBy ?? ""}`),
    ['fd 3 [fd 3 of pid 1] openat("/dev/vfio/1") by first[1]', "first[1] [fd table] "],
  );
  assert.match(err.message, /EBUSY \(16\); held by:\n/);
});
