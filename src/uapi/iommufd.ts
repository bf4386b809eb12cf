// include/uapi/linux/iommufd.h (6.12): ioctl numbers (type ';', commands from 0x80), the
// struct of every command and the constants they use. Each command's leading u32 is `size`;
// the kernel's minimum size for a command is offsetofend() of its last mandatory field
// (drivers/iommu/iommufd/main.c: iommufd_ioctl_ops[]), given here as IOMMUFD_MIN_FIELD.

import { defineIoctl } from "./ioctls.js";
import { _IO, IOMMUFD_TYPE } from "./ioctl.js";
import { defineStruct, type StructDesc } from "./struct.js";

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
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;

export const IOMMU_VTD_S1_SRE = 1 << 0;
export const IOMMU_VTD_S1_EAFE = 1 << 1;
export const IOMMU_VTD_S1_WPE = 1 << 2;

export const iommu_hwpt_vtd_s1 = defineStruct("iommu_hwpt_vtd_s1", [
  ["flags", "u64"],
  ["pgtbl_addr", "u64"],
  ["addr_width", "u32"],
  ["__reserved", "u32"],
] as const);

export const IOMMU_HWPT_DATA_NONE = 0;
export const IOMMU_HWPT_DATA_VTD_S1 = 1;

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

export const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0;

export const iommu_hw_info_vtd = defineStruct("iommu_hw_info_vtd", [
  ["flags", "u32"],
  ["__reserved", "u32"],
  ["cap_reg", "u64"],
  ["ecap_reg", "u64"],
] as const);

export const IOMMU_HW_INFO_TYPE_NONE = 0;
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;

export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1;
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2;

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

export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

export const iommu_hwpt_set_dirty_tracking = defineStruct("iommu_hwpt_set_dirty_tracking", [
  ["size", "u32"],
  ["flags", "u32"],
  ["hwpt_id", "u32"],
  ["__reserved", "u32"],
] as const);

export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

export const iommu_hwpt_get_dirty_bitmap = defineStruct("iommu_hwpt_get_dirty_bitmap", [
  ["size", "u32"],
  ["hwpt_id", "u32"],
  ["flags", "u32"],
  ["__reserved", "u32"],
  ["iova", "u64"],
  ["length", "u64"],
  ["page_size", "u64"],
  ["data", "u64"],
] as const);

export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;

export const iommu_hwpt_vtd_s1_invalidate = defineStruct("iommu_hwpt_vtd_s1_invalidate", [
  ["addr", "u64"],
  ["npages", "u64"],
  ["flags", "u32"],
  ["__reserved", "u32"],
] as const);

export const iommu_hwpt_invalidate = defineStruct("iommu_hwpt_invalidate", [
  ["size", "u32"],
  ["hwpt_id", "u32"],
  ["data_uptr", "u64"],
  ["data_type", "u32"],
  ["entry_len", "u32"],
  ["entry_num", "u32"],
  ["__reserved", "u32"],
] as const);

export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
export const IOMMU_PGFAULT_PERM_EXEC = 1 << 2;
export const IOMMU_PGFAULT_PERM_PRIV = 1 << 3;

export const iommu_hwpt_pgfault = defineStruct("iommu_hwpt_pgfault", [
  ["flags", "u32"],
  ["dev_id", "u32"],
  ["pasid", "u32"],
  ["grpid", "u32"],
  ["perm", "u32"],
  ["__reserved", "u32"],
  ["addr", "u64"],
  ["length", "u32"],
  ["cookie", "u32"],
] as const);

export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
export const IOMMUFD_PAGE_RESP_INVALID = 1;

export const iommu_hwpt_page_response = defineStruct("iommu_hwpt_page_response", [
  ["cookie", "u32"],
  ["code", "u32"],
] as const);

export const iommu_fault_alloc = defineStruct("iommu_fault_alloc", [
  ["size", "u32"],
  ["flags", "u32"],
  ["out_fault_id", "u32"],
  ["out_fault_fd", "u32"],
] as const);

const d = (name: string, cmd: number, arg: StructDesc<any>) =>
  defineIoctl("iommufd", name, _IO(IOMMUFD_TYPE, cmd), arg);

export const IOMMU_DESTROY = d("IOMMU_DESTROY", IOMMUFD_CMD_DESTROY, iommu_destroy);
export const IOMMU_IOAS_ALLOC = d("IOMMU_IOAS_ALLOC", IOMMUFD_CMD_IOAS_ALLOC, iommu_ioas_alloc);
export const IOMMU_IOAS_ALLOW_IOVAS = d("IOMMU_IOAS_ALLOW_IOVAS", IOMMUFD_CMD_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas);
export const IOMMU_IOAS_COPY = d("IOMMU_IOAS_COPY", IOMMUFD_CMD_IOAS_COPY, iommu_ioas_copy);
export const IOMMU_IOAS_IOVA_RANGES = d("IOMMU_IOAS_IOVA_RANGES", IOMMUFD_CMD_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges);
export const IOMMU_IOAS_MAP = d("IOMMU_IOAS_MAP", IOMMUFD_CMD_IOAS_MAP, iommu_ioas_map);
export const IOMMU_IOAS_UNMAP = d("IOMMU_IOAS_UNMAP", IOMMUFD_CMD_IOAS_UNMAP, iommu_ioas_unmap);
export const IOMMU_OPTION = d("IOMMU_OPTION", IOMMUFD_CMD_OPTION, iommu_option);
export const IOMMU_VFIO_IOAS = d("IOMMU_VFIO_IOAS", IOMMUFD_CMD_VFIO_IOAS, iommu_vfio_ioas);
export const IOMMU_HWPT_ALLOC = d("IOMMU_HWPT_ALLOC", IOMMUFD_CMD_HWPT_ALLOC, iommu_hwpt_alloc);
export const IOMMU_GET_HW_INFO = d("IOMMU_GET_HW_INFO", IOMMUFD_CMD_GET_HW_INFO, iommu_hw_info);
export const IOMMU_HWPT_SET_DIRTY_TRACKING = d(
  "IOMMU_HWPT_SET_DIRTY_TRACKING",
  IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING,
  iommu_hwpt_set_dirty_tracking,
);
export const IOMMU_HWPT_GET_DIRTY_BITMAP = d(
  "IOMMU_HWPT_GET_DIRTY_BITMAP",
  IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
  iommu_hwpt_get_dirty_bitmap,
);
export const IOMMU_HWPT_INVALIDATE = d("IOMMU_HWPT_INVALIDATE", IOMMUFD_CMD_HWPT_INVALIDATE, iommu_hwpt_invalidate);
export const IOMMU_FAULT_QUEUE_ALLOC = d("IOMMU_FAULT_QUEUE_ALLOC", IOMMUFD_CMD_FAULT_QUEUE_ALLOC, iommu_fault_alloc);

/** The last mandatory field of each command (main.c IOCTL_OP's _last): min size = its offsetofend. */
export const IOMMUFD_MIN_FIELD: ReadonlyMap<number, string> = new Map([
  [IOMMU_DESTROY, "id"],
  [IOMMU_FAULT_QUEUE_ALLOC, "out_fault_fd"],
  [IOMMU_GET_HW_INFO, "__reserved"],
  [IOMMU_HWPT_ALLOC, "__reserved"],
  [IOMMU_HWPT_GET_DIRTY_BITMAP, "data"],
  [IOMMU_HWPT_INVALIDATE, "__reserved"],
  [IOMMU_HWPT_SET_DIRTY_TRACKING, "__reserved"],
  [IOMMU_IOAS_ALLOC, "out_ioas_id"],
  [IOMMU_IOAS_ALLOW_IOVAS, "allowed_iovas"],
  [IOMMU_IOAS_COPY, "src_iova"],
  [IOMMU_IOAS_IOVA_RANGES, "out_iova_alignment"],
  [IOMMU_IOAS_MAP, "iova"],
  [IOMMU_IOAS_UNMAP, "length"],
  [IOMMU_OPTION, "val64"],
  [IOMMU_VFIO_IOAS, "__reserved"],
]);
