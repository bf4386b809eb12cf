// include/uapi/linux/vfio.h: ioctl numbers (type ';', base 100) and constants. Struct
// layouts follow beside their ioctls as each path is implemented.

import { defineIoctl, type IoctlArg } from "./ioctls.js";
import { _IO, VFIO_BASE, VFIO_TYPE } from "./ioctl.js";
import { defineStruct } from "./struct.js";

const d = (name: string, n: number, arg: IoctlArg = "ptr") =>
  defineIoctl("vfio", name, _IO(VFIO_TYPE, VFIO_BASE + n), arg);

export const VFIO_API_VERSION = 0;

// ---- structs (include/uapi/linux/vfio.h) ----
export const vfio_group_status = defineStruct("vfio_group_status", [
  ["argsz", "u32"],
  ["flags", "u32"],
] as const);
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

export const vfio_device_info = defineStruct("vfio_device_info", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["num_regions", "u32"],
  ["num_irqs", "u32"],
  ["cap_offset", "u32"],
  ["pad", "u32"],
] as const);
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;

export const vfio_region_info = defineStruct("vfio_region_info", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["index", "u32"],
  ["cap_offset", "u32"],
  ["size", "u64"],
  ["offset", "u64"],
] as const);
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

/** struct vfio_info_cap_header: every capability chain entry starts with it */
export const vfio_info_cap_header = defineStruct("vfio_info_cap_header", [
  ["id", "u16"],
  ["version", "u16"],
  ["next", "u32"],
] as const);

export const vfio_irq_info = defineStruct("vfio_irq_info", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["index", "u32"],
  ["count", "u32"],
] as const);
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

/** struct vfio_irq_set: `data` (u8 or s32 per vector) follows the header */
export const vfio_irq_set = defineStruct("vfio_irq_set", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["index", "u32"],
  ["start", "u32"],
  ["count", "u32"],
] as const);
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_IRQ_SET_DATA_TYPE_MASK = 0x7;
export const VFIO_IRQ_SET_ACTION_TYPE_MASK = 0x38;

// vfio-pci region and irq indexes
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
export const VFIO_PCI_NUM_REGIONS = 9;
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
export const VFIO_PCI_NUM_IRQS = 5;
/** drivers/vfio/pci/vfio_pci_priv.h: region index in bits 40.. of the file offset */
export const VFIO_PCI_OFFSET_SHIFT = 40;

export const vfio_iommu_type1_info = defineStruct("vfio_iommu_type1_info", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["iova_pgsizes", "u64"],
  ["cap_offset", "u32"],
  ["pad", "u32"],
] as const);
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

export const vfio_iova_range = defineStruct("vfio_iova_range", [
  ["start", "u64"],
  ["end", "u64"],
] as const);
/** vfio_iommu_type1_info_cap_iova_range: `iova_ranges[nr_iovas]` follows */
export const vfio_iommu_type1_info_cap_iova_range = defineStruct("vfio_iommu_type1_info_cap_iova_range", [
  ["header", vfio_info_cap_header],
  ["nr_iovas", "u32"],
  ["reserved", "u32"],
] as const);
export const vfio_iommu_type1_info_cap_migration = defineStruct("vfio_iommu_type1_info_cap_migration", [
  ["header", vfio_info_cap_header],
  ["flags", "u32"],
  ["pgsize_bitmap", "u64"],
  ["max_dirty_bitmap_size", "u64"],
] as const);
export const vfio_iommu_type1_info_dma_avail = defineStruct("vfio_iommu_type1_info_dma_avail", [
  ["header", vfio_info_cap_header],
  ["avail", "u32"],
] as const);

export const vfio_iommu_type1_dma_map = defineStruct("vfio_iommu_type1_dma_map", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["vaddr", "u64"],
  ["iova", "u64"],
  ["size", "u64"],
] as const);
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

export const vfio_bitmap = defineStruct("vfio_bitmap", [
  ["pgsize", "u64"],
  ["size", "u64"],
  ["data", "u64"],
] as const);
export const vfio_iommu_type1_dma_unmap = defineStruct("vfio_iommu_type1_dma_unmap", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["iova", "u64"],
  ["size", "u64"],
] as const);
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

/** struct vfio_device_feature: argsz, flags (feature number | GET/SET/PROBE), then data */
export const vfio_device_feature = defineStruct("vfio_device_feature", [
  ["argsz", "u32"],
  ["flags", "u32"],
] as const);
export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;
export const VFIO_DEVICE_FEATURE_MIGRATION = 1;
export const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
export const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;

export const vfio_iommu_type1_dirty_bitmap = defineStruct("vfio_iommu_type1_dirty_bitmap", [
  ["argsz", "u32"],
  ["flags", "u32"],
] as const);
/** follows the header for GET_BITMAP */
export const vfio_iommu_type1_dirty_bitmap_get = defineStruct("vfio_iommu_type1_dirty_bitmap_get", [
  ["iova", "u64"],
  ["size", "u64"],
  ["bitmap", vfio_bitmap],
] as const);
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

// the device cdev's iommufd ioctls (drivers/vfio/device_cdev.c)
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
/** The 6.15 layouts (include/uapi/linux/vfio.h after the PASID series): `pasid` follows,
 * read only with VFIO_DEVICE_ATTACH_PASID / VFIO_DEVICE_DETACH_PASID in flags. The 6.12
 * structs above stay as they were so that 6.12 traces and sizes do not change. */
export const vfio_device_attach_iommufd_pt_pasid = defineStruct("vfio_device_attach_iommufd_pt", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["pt_id", "u32"],
  ["pasid", "u32"],
] as const);
export const vfio_device_detach_iommufd_pt_pasid = defineStruct("vfio_device_detach_iommufd_pt", [
  ["argsz", "u32"],
  ["flags", "u32"],
  ["pasid", "u32"],
] as const);
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

export const VFIO_GET_API_VERSION = d("VFIO_GET_API_VERSION", 0, "none");
export const VFIO_CHECK_EXTENSION = d("VFIO_CHECK_EXTENSION", 1, "int");
export const VFIO_SET_IOMMU = d("VFIO_SET_IOMMU", 2, "int");
export const VFIO_GROUP_GET_STATUS = d("VFIO_GROUP_GET_STATUS", 3, vfio_group_status);
export const VFIO_GROUP_SET_CONTAINER = d("VFIO_GROUP_SET_CONTAINER", 4);
export const VFIO_GROUP_UNSET_CONTAINER = d("VFIO_GROUP_UNSET_CONTAINER", 5, "none");
export const VFIO_GROUP_GET_DEVICE_FD = d("VFIO_GROUP_GET_DEVICE_FD", 6);
export const VFIO_DEVICE_GET_INFO = d("VFIO_DEVICE_GET_INFO", 7, vfio_device_info);
export const VFIO_DEVICE_GET_REGION_INFO = d("VFIO_DEVICE_GET_REGION_INFO", 8, vfio_region_info);
export const VFIO_DEVICE_GET_IRQ_INFO = d("VFIO_DEVICE_GET_IRQ_INFO", 9, vfio_irq_info);
export const VFIO_DEVICE_SET_IRQS = d("VFIO_DEVICE_SET_IRQS", 10, vfio_irq_set);
export const VFIO_DEVICE_RESET = d("VFIO_DEVICE_RESET", 11, "none");
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = d("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", 12);
export const VFIO_DEVICE_PCI_HOT_RESET = d("VFIO_DEVICE_PCI_HOT_RESET", 13);
export const VFIO_DEVICE_QUERY_GFX_PLANE = d("VFIO_DEVICE_QUERY_GFX_PLANE", 14);
export const VFIO_DEVICE_GET_GFX_DMABUF = d("VFIO_DEVICE_GET_GFX_DMABUF", 15);
export const VFIO_DEVICE_IOEVENTFD = d("VFIO_DEVICE_IOEVENTFD", 16);
export const VFIO_DEVICE_FEATURE = d("VFIO_DEVICE_FEATURE", 17, vfio_device_feature);
export const VFIO_DEVICE_BIND_IOMMUFD = d("VFIO_DEVICE_BIND_IOMMUFD", 18, vfio_device_bind_iommufd);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = d("VFIO_DEVICE_ATTACH_IOMMUFD_PT", 19, vfio_device_attach_iommufd_pt);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = d("VFIO_DEVICE_DETACH_IOMMUFD_PT", 20, vfio_device_detach_iommufd_pt);
export const VFIO_MIG_GET_PRECOPY_INFO = d("VFIO_MIG_GET_PRECOPY_INFO", 21);
// container (type1) ioctls share numbers with device ioctls: the file type decides
export const VFIO_IOMMU_GET_INFO = d("VFIO_IOMMU_GET_INFO", 12, vfio_iommu_type1_info);
export const VFIO_IOMMU_MAP_DMA = d("VFIO_IOMMU_MAP_DMA", 13, vfio_iommu_type1_dma_map);
export const VFIO_IOMMU_UNMAP_DMA = d("VFIO_IOMMU_UNMAP_DMA", 14, vfio_iommu_type1_dma_unmap);
export const VFIO_IOMMU_ENABLE = d("VFIO_IOMMU_ENABLE", 15, "none");
export const VFIO_IOMMU_DISABLE = d("VFIO_IOMMU_DISABLE", 16, "none");
export const VFIO_IOMMU_DIRTY_PAGES = d("VFIO_IOMMU_DIRTY_PAGES", 17, vfio_iommu_type1_dirty_bitmap);

// VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;
