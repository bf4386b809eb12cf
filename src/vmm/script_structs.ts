// The uAPI struct layouts and constants the scenario runner stages, for the structs whose
// owners (the vfio and iommufd work) are adding them to src/uapi in parallel. Kept here, not in
// src/uapi, so that the branches merge without duplicate definitions; once those land on main
// the runner imports them from src/uapi and this file goes. Layouts checked against the 6.12
// headers in test/uapi/scenario_structs.test.ts.

import { defineStruct } from "../uapi/struct.js";

// include/uapi/linux/vfio.h (6.12)
export const vfio_device_bind_iommufd = defineStruct("vfio_device_bind_iommufd", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["iommufd", "s32"],
  ["out_devid", "u32"],
] as const);

export const vfio_device_attach_iommufd_pt = defineStruct("vfio_device_attach_iommufd_pt", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["pt_id", "u32"],
] as const);

export const vfio_device_detach_iommufd_pt = defineStruct("vfio_device_detach_iommufd_pt", [
  ["argsz", "u32"],
  ["flags", "u32"],
] as const);

// include/uapi/linux/iommufd.h (6.12)
export const iommu_destroy = defineStruct("iommu_destroy", [
  ["size", "u32"],
  ["id", "u32"],
] as const);

export const iommu_ioas_alloc = defineStruct("iommu_ioas_alloc", [
  ["size", "u32"],
  ["flags", "u32"],
  ["out_ioas_id", "u32"],
] as const);

export const iommu_iova_range = defineStruct("iommu_iova_range", [
  ["start", "u64"],
  ["last", "u64"],
] as const);

export const iommu_ioas_iova_ranges = defineStruct("iommu_ioas_iova_ranges", [
  ["size", "u32"],
  ["ioas_id", "u32"],
  ["num_iovas", "u32"],
  ["__reserved", "u32"],
  ["allowed_iovas", "u64"],
  ["out_iova_alignment", "u64"],
] as const);

export const iommu_ioas_allow_iovas = defineStruct("iommu_ioas_allow_iovas", [
  ["size", "u32"],
  ["ioas_id", "u32"],
  ["num_iovas", "u32"],
  ["__reserved", "u32"],
  ["allowed_iovas", "u64"],
] as const);

export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

export const iommu_ioas_map = defineStruct("iommu_ioas_map", [
  ["size", "u32"],
  ["flags", "u32"],
  ["ioas_id", "u32"],
  ["__reserved", "u32"],
  ["user_va", "u64"],
  ["length", "u64"],
  ["iova", "u64"],
] as const);

export const iommu_ioas_copy = defineStruct("iommu_ioas_copy", [
  ["size", "u32"],
  ["flags", "u32"],
  ["dst_ioas_id", "u32"],
  ["src_ioas_id", "u32"],
  ["length", "u64"],
  ["dst_iova", "u64"],
  ["src_iova", "u64"],
] as const);

export const iommu_ioas_unmap = defineStruct("iommu_ioas_unmap", [
  ["size", "u32"],
  ["ioas_id", "u32"],
  ["iova", "u64"],
  ["length", "u64"],
] as const);

export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

export const iommu_option = defineStruct("iommu_option", [
  ["size", "u32"],
  ["option_id", "u32"],
  ["op", "u16"],
  ["__reserved", "u16"],
  ["object_id", "u32"],
  ["val64", "u64"],
] as const);

export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

export const iommu_vfio_ioas = defineStruct("iommu_vfio_ioas", [
  ["size", "u32"],
  ["ioas_id", "u32"],
  ["op", "u16"],
  ["__reserved", "u16"],
] as const);

export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;

export const iommu_hwpt_alloc = defineStruct("iommu_hwpt_alloc", [
  ["size", "u32"],
  ["flags", "u32"],
  ["dev_id", "u32"],
  ["pt_id", "u32"],
  ["out_hwpt_id", "u32"],
  ["__reserved", "u32"],
  ["data_type", "u32"],
  ["data_len", "u32"],
  ["data_uptr", "u64"],
  ["fault_id", "u32"],
  ["__reserved2", "u32"],
] as const);

export const iommu_hw_info = defineStruct("iommu_hw_info", [
  ["size", "u32"],
  ["flags", "u32"],
  ["dev_id", "u32"],
  ["data_len", "u32"],
  ["data_uptr", "u64"],
  ["out_data_type", "u32"],
  ["out_max_pasid_log2", "u8"],
  ["__reserved", "u8", 3],
  ["out_capabilities", "u64"],
] as const);

export const iommu_fault_alloc = defineStruct("iommu_fault_alloc", [
  ["size", "u32"],
  ["flags", "u32"],
  ["out_fault_id", "u32"],
  ["out_fault_fd", "u32"],
] as const);
