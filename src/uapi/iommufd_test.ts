// drivers/iommu/iommufd/iommufd_test.h (6.12): the uAPI of CONFIG_IOMMUFD_TEST's back door,
// IOMMU_TEST_CMD, and of the selftest mock IOMMU (hw_info, nested hwpt data, invalidation).
//
// struct iommu_test_cmd is a header, a 48-byte union (aligned to 8 by its __aligned_u64
// members) and `last`: 72 bytes, minimum size offsetofend(last) = 68. The union is `data`
// here (six u64s); each op's member is its own struct below, decoded from those 48 bytes.

import { _IO, IOMMUFD_TYPE } from "./ioctl.js";
import { IOMMUFD_CMD_BASE } from "./iommufd.js";
import { defineStruct } from "./struct.js";

export const IOMMU_TEST_OP_ADD_RESERVED = 1;
export const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
export const IOMMU_TEST_OP_MD_CHECK_MAP = 3;
export const IOMMU_TEST_OP_MD_CHECK_REFS = 4;
export const IOMMU_TEST_OP_CREATE_ACCESS = 5;
export const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6;
export const IOMMU_TEST_OP_ACCESS_PAGES = 7;
export const IOMMU_TEST_OP_ACCESS_RW = 8;
export const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
export const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
export const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11;
export const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
export const IOMMU_TEST_OP_DIRTY = 13;
export const IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
export const IOMMU_TEST_OP_TRIGGER_IOPF = 15;

export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;

export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
export const MOCK_FLAGS_ACCESS_SYZ = 1 << 16;

export const MOCK_ACCESS_RW_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;

export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;

export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;

export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;

export const iommu_test_cmd = defineStruct("iommu_test_cmd", [
  ["size", "u32"],
  ["op", "u32"],
  ["id", "u32"],
  ["__reserved", "u32"],
  ["data", "u64", 6],
  ["last", "u32"],
] as const);
export type IommuTestCmd = ReturnType<typeof iommu_test_cmd.decode>;

export const IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32);
/** offsetof(struct iommu_test_cmd, <union>) */
export const TEST_CMD_UNION_OFFSET = 16;

// the union's members
export const test_add_reserved = defineStruct("add_reserved", [
  ["start", "u64"],
  ["length", "u64"],
] as const);
export const test_mock_domain = defineStruct("mock_domain_flags", [
  ["out_stdev_id", "u32"],
  ["out_hwpt_id", "u32"],
  ["out_idev_id", "u32"],
  ["dev_flags", "u32"],
] as const);
export const test_mock_domain_replace = defineStruct("mock_domain_replace", [["pt_id", "u32"]] as const);
export const test_check_map = defineStruct("check_map", [
  ["iova", "u64"],
  ["length", "u64"],
  ["uptr", "u64"],
] as const);
export const test_check_refs = defineStruct("check_refs", [
  ["length", "u64"],
  ["uptr", "u64"],
  ["refs", "u32"],
] as const);
export const test_create_access = defineStruct("create_access", [
  ["out_access_fd", "u32"],
  ["flags", "u32"],
] as const);
export const test_destroy_access_pages = defineStruct("destroy_access_pages", [["access_pages_id", "u32"]] as const);
export const test_access_pages = defineStruct("access_pages", [
  ["flags", "u32"],
  ["out_access_pages_id", "u32"],
  ["iova", "u64"],
  ["length", "u64"],
  ["uptr", "u64"],
] as const);
export const test_access_rw = defineStruct("access_rw", [
  ["iova", "u64"],
  ["length", "u64"],
  ["uptr", "u64"],
  ["flags", "u32"],
] as const);
export const test_memory_limit = defineStruct("memory_limit", [["limit", "u32"]] as const);
export const test_access_replace_ioas = defineStruct("access_replace_ioas", [["ioas_id", "u32"]] as const);
export const test_dirty = defineStruct("dirty", [
  ["flags", "u32"],
  ["iova", "u64"],
  ["length", "u64"],
  ["page_size", "u64"],
  ["uptr", "u64"],
  ["out_nr_dirty", "u64"],
] as const);
export const test_check_iotlb = defineStruct("check_iotlb", [
  ["id", "u32"],
  ["iotlb", "u32"],
] as const);
export const test_trigger_iopf = defineStruct("trigger_iopf", [
  ["dev_id", "u32"],
  ["pasid", "u32"],
  ["grpid", "u32"],
  ["perm", "u32"],
  ["addr", "u64"],
] as const);

/** IOMMU_GET_HW_INFO of a mock device */
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
export const iommu_test_hw_info = defineStruct("iommu_test_hw_info", [
  ["flags", "u32"],
  ["test_reg", "u32"],
] as const);

/** IOMMU_HWPT_ALLOC data of a nested mock hwpt */
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
export const iommu_hwpt_selftest = defineStruct("iommu_hwpt_selftest", [["iotlb", "u32"]] as const);

/** IOMMU_HWPT_INVALIDATE data of a nested mock hwpt */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
export const iommu_hwpt_invalidate_selftest = defineStruct("iommu_hwpt_invalidate_selftest", [
  ["flags", "u32"],
  ["iotlb_id", "u32"],
] as const);
