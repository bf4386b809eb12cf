// include/uapi/linux/iommufd.h (6.12): ioctl numbers (type ';', commands from 0x80) and
// constants. Struct layouts follow beside their commands as each path is implemented.

import { defineIoctl, type IoctlArg } from "./ioctls.js";
import { _IO, IOMMUFD_TYPE } from "./ioctl.js";
import { defineStruct } from "./struct.js";

export const IOMMUFD_CMD_BASE = 0x80;
export const IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE;
export const IOMMUFD_CMD_IOAS_ALLOC = 0x81;
export const IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
export const IOMMUFD_CMD_IOAS_COPY = 0x83;
export const IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
export const IOMMUFD_CMD_IOAS_MAP = 0x85;
export const IOMMUFD_CMD_IOAS_UNMAP = 0x86;
export const IOMMUFD_CMD_OPTION = 0x87;
export const IOMMUFD_CMD_VFIO_IOAS = 0x88;
export const IOMMUFD_CMD_HWPT_ALLOC = 0x89;
export const IOMMUFD_CMD_GET_HW_INFO = 0x8a;
export const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b;
export const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c;
export const IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d;
export const IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e;

const d = (name: string, cmd: number, arg: IoctlArg = "ptr") =>
  defineIoctl("iommufd", name, _IO(IOMMUFD_TYPE, cmd), arg);

export const IOMMU_DESTROY = d("IOMMU_DESTROY", IOMMUFD_CMD_DESTROY);
export const IOMMU_IOAS_ALLOC = d("IOMMU_IOAS_ALLOC", IOMMUFD_CMD_IOAS_ALLOC);
export const IOMMU_IOAS_ALLOW_IOVAS = d("IOMMU_IOAS_ALLOW_IOVAS", IOMMUFD_CMD_IOAS_ALLOW_IOVAS);
export const IOMMU_IOAS_COPY = d("IOMMU_IOAS_COPY", IOMMUFD_CMD_IOAS_COPY);
export const IOMMU_IOAS_IOVA_RANGES = d("IOMMU_IOAS_IOVA_RANGES", IOMMUFD_CMD_IOAS_IOVA_RANGES);
export const IOMMU_IOAS_MAP = d("IOMMU_IOAS_MAP", IOMMUFD_CMD_IOAS_MAP);
export const IOMMU_IOAS_UNMAP = d("IOMMU_IOAS_UNMAP", IOMMUFD_CMD_IOAS_UNMAP);
export const IOMMU_OPTION = d("IOMMU_OPTION", IOMMUFD_CMD_OPTION);
export const IOMMU_VFIO_IOAS = d("IOMMU_VFIO_IOAS", IOMMUFD_CMD_VFIO_IOAS);
export const IOMMU_HWPT_ALLOC = d("IOMMU_HWPT_ALLOC", IOMMUFD_CMD_HWPT_ALLOC);
export const IOMMU_GET_HW_INFO = d("IOMMU_GET_HW_INFO", IOMMUFD_CMD_GET_HW_INFO);
export const IOMMU_HWPT_SET_DIRTY_TRACKING = d("IOMMU_HWPT_SET_DIRTY_TRACKING", IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);
export const IOMMU_HWPT_GET_DIRTY_BITMAP = d("IOMMU_HWPT_GET_DIRTY_BITMAP", IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);
export const IOMMU_HWPT_INVALIDATE = d("IOMMU_HWPT_INVALIDATE", IOMMUFD_CMD_HWPT_INVALIDATE);
export const IOMMU_FAULT_QUEUE_ALLOC = d("IOMMU_FAULT_QUEUE_ALLOC", IOMMUFD_CMD_FAULT_QUEUE_ALLOC);

// ---- struct layouts (include/uapi/linux/iommufd.h, 6.12); sizes checked in test/uapi/iommufd_structs.test.ts

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
