// VFIO struct layouts against sizeof() in Linux 6.12's include/uapi/linux/vfio.h (checked
// with a C compiler; vfio_device_info has its 6.12 `pad`, 24 bytes).
import { it } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../src/uapi/vfio.js";

it("vfio structs have the 6.12 header's sizes and minsz offsets", () => {
  const sizes: [{ size: number; name: string }, number][] = [
    [V.vfio_group_status, 8],
    [V.vfio_device_info, 24],
    [V.vfio_region_info, 32],
    [V.vfio_irq_info, 16],
    [V.vfio_irq_set, 20],
    [V.vfio_iommu_type1_info, 24],
    [V.vfio_iommu_type1_dma_map, 32],
    [V.vfio_iommu_type1_dma_unmap, 24],
    [V.vfio_iommu_type1_info_cap_migration, 32],
    [V.vfio_iommu_type1_info_dma_avail, 12],
    [V.vfio_iommu_type1_info_cap_iova_range, 16],
    [V.vfio_iommu_type1_dirty_bitmap_get, 40],
    [V.vfio_device_feature, 8],
    [V.vfio_bitmap, 24],
  ];
  for (const [d, n] of sizes) assert.equal(d.size, n, d.name);
  assert.equal(V.vfio_iommu_type1_info.offsetOfEnd("iova_pgsizes"), 16);
  assert.equal(V.vfio_iommu_type1_dma_map.offsetOfEnd("size"), 32);
  assert.equal(V.vfio_region_info.offsetOfEnd("offset"), 32);
  assert.equal(V.vfio_device_info.offsetOfEnd("num_irqs"), 16);
  assert.equal(V.vfio_iommu_type1_info_cap_migration.offsetOf("pgsize_bitmap"), 16);
});
