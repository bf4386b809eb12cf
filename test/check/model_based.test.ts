// Model-based tests (fast-check commands): random sequences of calls on the twin and on a
// small model of what they should do, compared after every command, with the whole-twin
// check after each and the leak check when the program ends; fast-check shrinks a failing
// sequence to a minimal one. Three machines: type1 mappings, KVM memory slots, and the VFIO
// container / group / device state machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createTwin, type Twin, type TwinProcess } from "../../src/twin.js";
import { checkInvariants, formatViolations, leakedSince } from "../../src/check/invariants.js";
import { checkVfioQuiescent } from "../../src/check/vfio_invariants.js";
import { kvmState } from "../../src/kvm/kvm_main.js";
import * as K from "../../src/uapi/kvm.js";
import * as V from "../../src/uapi/vfio.js";
import { EBUSY, EEXIST, EINVAL } from "../../src/uapi/errno.js";
import type { RefCounted } from "../../src/kernel/kref.js";

const RUNS = 40;

interface Real {
  twin: Twin;
  p: TwinProcess;
  scr: number;
  buf: number;
  baseline: Set<RefCounted>;
}

function real(): Real {
  const twin = createTwin();
  const baseline = new Set(twin.kernel.objects);
  const p = twin.spawn();
  return { twin, p, scr: p.mmap(0x10000), buf: p.mmap(0x10000), baseline };
}

function whole(r: Real): void {
  const v = checkInvariants(r.twin.kernel);
  assert.equal(v.length, 0, formatViolations(v));
}

function s32(r: Real, v: number): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  r.p.write(r.scr + 0x800, b);
  return r.scr + 0x800;
}

function finish(r: Real): void {
  r.twin.kill(r.p);
  whole(r);
  assert.deepEqual(
    leakedSince(r.twin.kernel, r.baseline).map((o) => o.describe()),
    [],
  );
  assert.deepEqual(checkVfioQuiescent(r.twin.kernel), []);
}

// --- type1 -----------------------------------------------------------------------------

interface Type1Model {
  /** slot -> pages (slots are 4 KiB IOVA units from 1 MiB) */
  maps: Map<number, number>;
}
interface Type1Real extends Real {
  c: number;
}
const IOVA = (slot: number) => 0x100000n + BigInt(slot) * 0x1000n;

function overlaps(m: Type1Model, slot: number, pages: number): boolean {
  for (const [s, n] of m.maps) if (slot < s + n && s < slot + pages) return true;
  return false;
}

class MapCmd implements fc.Command<Type1Model, Type1Real> {
  constructor(
    readonly slot: number,
    readonly pages: number,
  ) {}
  check = () => true;
  run(m: Type1Model, r: Type1Real): void {
    const d = V.vfio_iommu_type1_dma_map;
    r.p.write(
      r.scr,
      d.encode({
        argsz: d.size,
        flags: 3,
        vaddr: BigInt(r.buf + this.slot * 0x1000),
        iova: IOVA(this.slot),
        size: BigInt(this.pages * 0x1000),
      }),
    );
    const rc = r.p.ioctl(r.c, V.VFIO_IOMMU_MAP_DMA, r.scr);
    if (overlaps(m, this.slot, this.pages)) assert.equal(rc, -EEXIST);
    else {
      assert.equal(rc, 0);
      m.maps.set(this.slot, this.pages);
    }
    assert.equal(
      r.p.proc.mm.lockedVm,
      [...m.maps.values()].reduce((a, b) => a + b, 0),
    );
    whole(r);
  }
  toString = () => `map(${this.slot}, ${this.pages})`;
}

class UnmapCmd implements fc.Command<Type1Model, Type1Real> {
  constructor(readonly pick: number) {}
  check = () => true;
  run(m: Type1Model, r: Type1Real): void {
    // an existing mapping exactly, or (when there is none) one slot nobody mapped
    const keys = [...m.maps.keys()].sort((a, b) => a - b);
    const slot = keys.length ? keys[this.pick % keys.length]! : 20;
    const pages = m.maps.get(slot) ?? 1;
    const d = V.vfio_iommu_type1_dma_unmap;
    r.p.write(r.scr, d.encode({ argsz: d.size, flags: 0, iova: IOVA(slot), size: BigInt(pages * 0x1000) }));
    assert.equal(r.p.ioctl(r.c, V.VFIO_IOMMU_UNMAP_DMA, r.scr), 0);
    const out = d.decode(r.p.read(r.scr, d.size));
    assert.equal(out.size, m.maps.has(slot) ? BigInt(pages * 0x1000) : 0n);
    m.maps.delete(slot);
    assert.equal(
      r.p.proc.mm.lockedVm,
      [...m.maps.values()].reduce((a, b) => a + b, 0),
    );
    whole(r);
  }
  toString = () => `unmap(#${this.pick})`;
}

test("model-based: type1 MAP_DMA / UNMAP_DMA against a map of ranges, locked_vm = mapped pages", () => {
  const cmds = [
    fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 3 })).map(([s, n]) => new MapCmd(s, n)),
    fc.nat(7).map((i) => new UnmapCmd(i)),
  ];
  fc.assert(
    fc.property(fc.commands(cmds, { maxCommands: 25 }), (c) => {
      const base = real();
      const cfd = base.p.open("/dev/vfio/vfio");
      const g = base.p.open("/dev/vfio/1");
      assert.equal(base.p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, s32(base, cfd)), 0);
      assert.equal(base.p.ioctl(cfd, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), 0);
      const r: Type1Real = { ...base, c: cfd };
      fc.modelRun(() => ({ model: { maps: new Map() }, real: r }), c);
      finish(r);
    }),
    { numRuns: RUNS, seed: 15 },
  );
});

// --- KVM memory slots ----------------------------------------------------------------------

interface SlotModel {
  slots: Map<number, { gpa: number; pages: number }>;
}
interface KvmReal extends Real {
  vm: number;
}

function setRegion(r: KvmReal, slot: number, gpaPage: number, pages: number): number {
  const d = K.kvm_userspace_memory_region;
  r.p.write(
    r.scr,
    d.encode({
      slot,
      flags: 0,
      guest_phys_addr: BigInt(gpaPage * 0x1000),
      memory_size: BigInt(pages * 0x1000),
      userspace_addr: BigInt(r.buf + slot * 0x4000),
    }),
  );
  return r.p.ioctl(r.vm, K.KVM_SET_USER_MEMORY_REGION, r.scr);
}

class SetSlot implements fc.Command<SlotModel, KvmReal> {
  constructor(
    readonly slot: number,
    readonly gpa: number,
    readonly pages: number,
  ) {}
  check = () => true;
  run(m: SlotModel, r: KvmReal): void {
    const rc = setRegion(r, this.slot, this.gpa, this.pages);
    const old = m.slots.get(this.slot);
    let want = 0;
    if (this.pages === 0) want = old ? 0 : -EINVAL;
    else if (old && old.pages !== this.pages) want = -EINVAL;
    else if (old && old.gpa === this.gpa) want = 0;
    else {
      for (const [s, x] of m.slots)
        if (s !== this.slot && this.gpa < x.gpa + x.pages && x.gpa < this.gpa + this.pages) want = -EEXIST;
    }
    assert.equal(rc, want, `set(${this.slot}, ${this.gpa}, ${this.pages})`);
    if (rc === 0) {
      if (this.pages === 0) m.slots.delete(this.slot);
      else m.slots.set(this.slot, { gpa: this.gpa, pages: this.pages });
    }
    const vm = [...kvmState(r.twin.kernel)!.vms][0]!;
    assert.deepEqual(
      [...vm.memslots.values()]
        .map((s) => [s.slot, Number(s.guestPhysAddr) / 0x1000, Number(s.memorySize) / 0x1000])
        .sort(),
      [...m.slots].map(([s, x]) => [s, x.gpa, x.pages]).sort(),
    );
    whole(r);
  }
  toString = () => `set(${this.slot}, gpa page ${this.gpa}, ${this.pages} pages)`;
}

test("model-based: KVM_SET_USER_MEMORY_REGION against a model of slots (create, move, delete, overlap)", () => {
  const cmd = fc
    .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 3 }))
    .map(([s, g, n]) => new SetSlot(s, g, n));
  fc.assert(
    fc.property(fc.commands([cmd], { maxCommands: 30 }), (c) => {
      const base = real();
      const vm = base.p.ioctl(base.p.open("/dev/kvm"), K.KVM_CREATE_VM, 0);
      const r: KvmReal = { ...base, vm };
      fc.modelRun(() => ({ model: { slots: new Map() }, real: r }), c);
      finish(r);
    }),
    { numRuns: RUNS, seed: 15 },
  );
});

// --- container / group / device ------------------------------------------------------------

interface VfioModel {
  group: boolean;
  attached: boolean;
  iommu: boolean;
  devices: number[];
}
interface VfioReal extends Real {
  c: number;
  g: number;
  name: number;
}

const vfioCmds: fc.Arbitrary<fc.Command<VfioModel, VfioReal>>[] = [
  fc.constant({
    check: () => true,
    run(m: VfioModel, r: VfioReal) {
      const fd = r.p.open("/dev/vfio/1");
      if (m.group || m.devices.length) {
        // single open; and a group whose devices are open stays in use
        assert.ok(fd === -EBUSY || (!m.group && fd >= 0), `open = ${fd}`);
        if (fd >= 0) {
          r.g = fd;
          m.group = true;
        }
      } else {
        assert.ok(fd >= 0);
        r.g = fd;
        m.group = true;
        m.attached = false;
      }
      whole(r);
    },
    toString: () => "open group",
  }),
  fc.constant({
    check: (m: VfioModel) => m.group,
    run(m: VfioModel, r: VfioReal) {
      assert.equal(r.p.close(r.g), 0);
      m.group = false;
      // the container stays attached while a device of the group is open
      if (m.devices.length === 0) {
        m.attached = false;
        m.iommu = false;
      }
      whole(r);
    },
    toString: () => "close group",
  }),
  fc.constant({
    check: (m: VfioModel) => m.group,
    run(m: VfioModel, r: VfioReal) {
      const rc = r.p.ioctl(r.g, V.VFIO_GROUP_SET_CONTAINER, s32(r, r.c));
      assert.equal(rc, m.attached ? -EINVAL : 0);
      m.attached = true;
      whole(r);
    },
    toString: () => "SET_CONTAINER",
  }),
  fc.constant({
    check: (m: VfioModel) => m.group,
    run(m: VfioModel, r: VfioReal) {
      const rc = r.p.ioctl(r.g, V.VFIO_GROUP_UNSET_CONTAINER, 0);
      if (!m.attached) assert.equal(rc, -EINVAL);
      else if (m.devices.length) assert.equal(rc, -EBUSY);
      else {
        assert.equal(rc, 0);
        m.attached = false;
        m.iommu = false;
      }
      whole(r);
    },
    toString: () => "UNSET_CONTAINER",
  }),
  fc.constant({
    check: () => true,
    run(m: VfioModel, r: VfioReal) {
      const rc = r.p.ioctl(r.c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU);
      assert.equal(rc, m.attached && !m.iommu ? 0 : -EINVAL);
      if (rc === 0) m.iommu = true;
      whole(r);
    },
    toString: () => "SET_IOMMU",
  }),
  fc.constant({
    check: (m: VfioModel) => m.group,
    run(m: VfioModel, r: VfioReal) {
      const fd = r.p.ioctl(r.g, V.VFIO_GROUP_GET_DEVICE_FD, r.name);
      if (m.iommu) {
        assert.ok(fd >= 0, `GET_DEVICE_FD = ${fd}`);
        m.devices.push(fd);
      } else assert.equal(fd, -EINVAL);
      whole(r);
    },
    toString: () => "GET_DEVICE_FD",
  }),
  fc.nat(3).map((i) => ({
    check: (m: VfioModel) => m.devices.length > 0,
    run(m: VfioModel, r: VfioReal) {
      const [fd] = m.devices.splice(i % m.devices.length, 1);
      assert.equal(r.p.close(fd!), 0);
      if (!m.group && m.devices.length === 0) {
        m.attached = false;
        m.iommu = false;
      }
      whole(r);
    },
    toString: () => `close device #${i}`,
  })),
];

test("model-based: the container / group / device state machine (single open, attach, iommu, device users)", () => {
  fc.assert(
    fc.property(fc.commands(vfioCmds, { maxCommands: 30 }), (c) => {
      const base = real();
      const cfd = base.p.open("/dev/vfio/vfio");
      base.p.write(base.scr + 0x900, new Uint8Array([...Buffer.from("0000:00:01.0"), 0]));
      const r: VfioReal = { ...base, c: cfd, g: -1, name: base.scr + 0x900 };
      fc.modelRun(() => ({ model: { group: false, attached: false, iommu: false, devices: [] }, real: r }), c);
      finish(r);
    }),
    { numRuns: RUNS, seed: 15 },
  );
});
