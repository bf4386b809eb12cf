// include/uapi/linux/iommufd.h (6.12): ioctl numbers (type ';', commands from 0x80) and
// constants. Struct layouts follow beside their commands as each path is implemented.

import { defineIoctl, type IoctlArg } from "./ioctls.js";
import { _IO, IOMMUFD_TYPE } from "./ioctl.js";

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
