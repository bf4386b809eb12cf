// Sizes and key offsets of the VFIO / iommufd structs the scenario runner stages, as printed by
// sizeof()/offsetof() in a C program compiled against the 6.12 uapi headers.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as S from "../../src/vmm/script_structs.js";
import * as V from "../../src/uapi/vfio.js";
import type { StructDesc } from "../../src/uapi/struct.js";

const SIZES: [StructDesc<any>, number][] = [
  [V.vfio_group_status, 8],
  [V.vfio_info_cap_header, 8],
  [V.vfio_iommu_type1_info, 24],
  [V.vfio_iova_range, 16],
  [V.vfio_iommu_type1_info_cap_iova_range, 16],
  [V.vfio_iommu_type1_info_cap_migration, 32],
  [V.vfio_iommu_type1_info_dma_avail, 12],
  [V.vfio_iommu_type1_dma_map, 32],
  [V.vfio_iommu_type1_dma_unmap, 24],
  [V.vfio_device_info, 24],
  [V.vfio_region_info, 32],
  [V.vfio_irq_info, 16],
  [V.vfio_irq_set, 20],
  [S.vfio_device_bind_iommufd, 16],
  [S.vfio_device_attach_iommufd_pt, 12],
  [S.vfio_device_detach_iommufd_pt, 8],
  [S.iommu_destroy, 8],
  [S.iommu_ioas_alloc, 12],
  [S.iommu_iova_range, 16],
  [S.iommu_ioas_iova_ranges, 32],
  [S.iommu_ioas_allow_iovas, 24],
  [S.iommu_ioas_map, 40],
  [S.iommu_ioas_copy, 40],
  [S.iommu_ioas_unmap, 24],
  [S.iommu_option, 24],
  [S.iommu_vfio_ioas, 12],
  [S.iommu_hwpt_alloc, 48],
  [S.iommu_hw_info, 40],
  [S.iommu_fault_alloc, 16],
];

test("VFIO and iommufd structs have the 6.12 header's sizes", () => {
  for (const [d, size] of SIZES) assert.equal(d.size, size, d.name);
});

test("offsets that depend on padding match the header", () => {
  assert.equal(V.vfio_iommu_type1_info_cap_migration.offsetOf("pgsize_bitmap"), 16);
  assert.equal(V.vfio_region_info.offsetOf("size"), 16);
  assert.equal(S.iommu_hw_info.offsetOf("out_capabilities"), 32);
  assert.equal(S.iommu_hwpt_alloc.offsetOf("fault_id"), 40);
  assert.equal(S.iommu_option.offsetOf("val64"), 16);
});
