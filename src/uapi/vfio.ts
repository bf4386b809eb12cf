// include/uapi/linux/vfio.h: ioctl numbers (type ';', base 100) and constants. Struct
// layouts follow beside their ioctls as each path is implemented.

import { defineIoctl, type IoctlArg } from "./ioctls.js";
import { _IO, VFIO_BASE, VFIO_TYPE } from "./ioctl.js";

const d = (name: string, n: number, arg: IoctlArg = "ptr") =>
  defineIoctl("vfio", name, _IO(VFIO_TYPE, VFIO_BASE + n), arg);

export const VFIO_API_VERSION = 0;

export const VFIO_GET_API_VERSION = d("VFIO_GET_API_VERSION", 0, "none");
export const VFIO_CHECK_EXTENSION = d("VFIO_CHECK_EXTENSION", 1, "int");
export const VFIO_SET_IOMMU = d("VFIO_SET_IOMMU", 2, "int");
export const VFIO_GROUP_GET_STATUS = d("VFIO_GROUP_GET_STATUS", 3);
export const VFIO_GROUP_SET_CONTAINER = d("VFIO_GROUP_SET_CONTAINER", 4);
export const VFIO_GROUP_UNSET_CONTAINER = d("VFIO_GROUP_UNSET_CONTAINER", 5, "none");
export const VFIO_GROUP_GET_DEVICE_FD = d("VFIO_GROUP_GET_DEVICE_FD", 6);
export const VFIO_DEVICE_GET_INFO = d("VFIO_DEVICE_GET_INFO", 7);
export const VFIO_DEVICE_GET_REGION_INFO = d("VFIO_DEVICE_GET_REGION_INFO", 8);
export const VFIO_DEVICE_GET_IRQ_INFO = d("VFIO_DEVICE_GET_IRQ_INFO", 9);
export const VFIO_DEVICE_SET_IRQS = d("VFIO_DEVICE_SET_IRQS", 10);
export const VFIO_DEVICE_RESET = d("VFIO_DEVICE_RESET", 11, "none");
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = d("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", 12);
export const VFIO_DEVICE_PCI_HOT_RESET = d("VFIO_DEVICE_PCI_HOT_RESET", 13);
export const VFIO_DEVICE_QUERY_GFX_PLANE = d("VFIO_DEVICE_QUERY_GFX_PLANE", 14);
export const VFIO_DEVICE_GET_GFX_DMABUF = d("VFIO_DEVICE_GET_GFX_DMABUF", 15);
export const VFIO_DEVICE_IOEVENTFD = d("VFIO_DEVICE_IOEVENTFD", 16);
export const VFIO_DEVICE_FEATURE = d("VFIO_DEVICE_FEATURE", 17);
export const VFIO_DEVICE_BIND_IOMMUFD = d("VFIO_DEVICE_BIND_IOMMUFD", 18);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = d("VFIO_DEVICE_ATTACH_IOMMUFD_PT", 19);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = d("VFIO_DEVICE_DETACH_IOMMUFD_PT", 20);
export const VFIO_MIG_GET_PRECOPY_INFO = d("VFIO_MIG_GET_PRECOPY_INFO", 21);
// container (type1) ioctls share numbers with device ioctls: the file type decides
export const VFIO_IOMMU_GET_INFO = d("VFIO_IOMMU_GET_INFO", 12);
export const VFIO_IOMMU_MAP_DMA = d("VFIO_IOMMU_MAP_DMA", 13);
export const VFIO_IOMMU_UNMAP_DMA = d("VFIO_IOMMU_UNMAP_DMA", 14);
export const VFIO_IOMMU_ENABLE = d("VFIO_IOMMU_ENABLE", 15, "none");
export const VFIO_IOMMU_DISABLE = d("VFIO_IOMMU_DISABLE", 16, "none");
export const VFIO_IOMMU_DIRTY_PAGES = d("VFIO_IOMMU_DIRTY_PAGES", 17);

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
