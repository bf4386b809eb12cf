// The twin's extension past strace: the VFIO capability chain a successful
// VFIO_IOMMU_GET_INFO wrote after its struct, each entry by name with its body.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { formatEvent } from "../../src/kernel/trace.js";
import * as V from "../../src/uapi/vfio.js";
import { checkInvariants } from "../../src/check/invariants.js";

test("VFIO_IOMMU_GET_INFO: the capability chain after the struct, each entry decoded", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const c = p.open("/dev/vfio/vfio", 2);
  const g = p.open("/dev/vfio/1", 2);
  const buf = p.mmap(8192);
  p.write(buf, Uint8Array.of(c, 0, 0, 0));
  assert.equal(p.ioctl(g, V.VFIO_GROUP_SET_CONTAINER, buf), 0);
  assert.equal(p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU), 0);
  twin.kernel.trace.enabled = true;
  // too small: the kernel says how much it needs and writes no chain
  assert.ok(p.writeStruct(V.vfio_iommu_type1_info, buf, { argsz: V.vfio_iommu_type1_info.size }));
  assert.equal(p.ioctl(c, V.VFIO_IOMMU_GET_INFO, buf), 0);
  const need = p.readStruct(V.vfio_iommu_type1_info, buf)!.argsz;
  assert.ok(need > V.vfio_iommu_type1_info.size);
  assert.ok(p.writeStruct(V.vfio_iommu_type1_info, buf, { argsz: need }));
  assert.equal(p.ioctl(c, V.VFIO_IOMMU_GET_INFO, buf), 0);
  const [small, full] = twin.kernel.trace.events.map((e) => formatEvent(e, { pid: false }));
  assert.doesNotMatch(small!, /caps=/);
  assert.match(small!, new RegExp(`=> \\{argsz=${need}\\}\\) = 0$`));
  // the chain as type1 builds it (migration, DMA available, IOVA ranges), each entry's next the
  // offset of the following one from the struct's start: 24 + 32 -> 56, + 12 aligned to 8 -> 72,
  // + 8 + 8 + 2 * 16 -> 120, the argsz the kernel asked for
  assert.equal(need, 120);
  assert.equal(
    full,
    "ioctl(3, VFIO_IOMMU_GET_INFO, {argsz=120, flags=VFIO_IOMMU_INFO_PGSIZES|VFIO_IOMMU_INFO_CAPS, iova_pgsizes=0x40201000, cap_offset=24, pad=0, caps=[" +
      "{id=VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version=1, next=56, flags=0, pgsize_bitmap=0x1000, max_dirty_bitmap_size=268435456}, " +
      "{id=VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version=1, next=72, avail=65535}, " +
      "{id=VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version=1, next=0, nr_iovas=2, reserved=0, iova_ranges=[{start=0, end=0xfedfffff}, {start=0xfef00000, end=0x7fffffffff}]}]}) = 0",
  );
  // the JSON form keeps the entries as objects
  const j = twin.kernel.trace.events[1]!.toJSON() as { args: { arg: { caps: { id: string }[] } } };
  assert.deepEqual(
    j.args.arg.caps.map((x) => x.id),
    ["VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION", "VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL", "VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE"],
  );
  assert.deepEqual(checkInvariants(twin.kernel), []);
});
