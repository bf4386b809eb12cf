// include/uapi/linux/kvm.h: the system, VM and device ioctls the twin implements.

import { defineIoctl } from "./ioctls.js";
import { _IO, _IOW, _IOWR, KVMIO } from "./ioctl.js";
import { defineStruct } from "./struct.js";

export const KVM_API_VERSION = 12;

export const kvm_userspace_memory_region = defineStruct("kvm_userspace_memory_region", [
  ["slot", "u32"],
  ["flags", "u32"],
  ["guest_phys_addr", "u64"],
  ["memory_size", "u64"],
  ["userspace_addr", "u64"],
] as const);

export const kvm_create_device = defineStruct("kvm_create_device", [
  ["type", "u32"],
  ["fd", "u32"],
  ["flags", "u32"],
] as const);

export const kvm_device_attr = defineStruct("kvm_device_attr", [
  ["flags", "u32"],
  ["group", "u32"],
  ["attr", "u64"],
  ["addr", "u64"],
] as const);

export const kvm_vfio_spapr_tce = defineStruct("kvm_vfio_spapr_tce", [
  ["groupfd", "s32"],
  ["tablefd", "s32"],
] as const);

const d = (name: string, nr: number, arg: Parameters<typeof defineIoctl>[3]) => defineIoctl("kvm", name, nr, arg);

// system ioctls (/dev/kvm)
export const KVM_GET_API_VERSION = d("KVM_GET_API_VERSION", _IO(KVMIO, 0x00), "none");
export const KVM_CREATE_VM = d("KVM_CREATE_VM", _IO(KVMIO, 0x01), "int");
export const KVM_CHECK_EXTENSION = d("KVM_CHECK_EXTENSION", _IO(KVMIO, 0x03), "int");
export const KVM_GET_VCPU_MMAP_SIZE = d("KVM_GET_VCPU_MMAP_SIZE", _IO(KVMIO, 0x04), "none");
// VM ioctls
export const KVM_CREATE_VCPU = d("KVM_CREATE_VCPU", _IO(KVMIO, 0x41), "int");
export const KVM_SET_USER_MEMORY_REGION = d(
  "KVM_SET_USER_MEMORY_REGION",
  _IOW(KVMIO, 0x46, kvm_userspace_memory_region.size),
  kvm_userspace_memory_region,
);
export const KVM_CREATE_DEVICE = d("KVM_CREATE_DEVICE", _IOWR(KVMIO, 0xe0, kvm_create_device.size), kvm_create_device);
// device ioctls (also VM and vCPU ioctls on some architectures)
export const KVM_SET_DEVICE_ATTR = d("KVM_SET_DEVICE_ATTR", _IOW(KVMIO, 0xe1, kvm_device_attr.size), kvm_device_attr);
export const KVM_GET_DEVICE_ATTR = d("KVM_GET_DEVICE_ATTR", _IOW(KVMIO, 0xe2, kvm_device_attr.size), kvm_device_attr);
export const KVM_HAS_DEVICE_ATTR = d("KVM_HAS_DEVICE_ATTR", _IOW(KVMIO, 0xe3, kvm_device_attr.size), kvm_device_attr);

export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_MEM_GUEST_MEMFD = 1 << 2;

export const KVM_CREATE_DEVICE_TEST = 1;

export const KVM_DEV_TYPE_FSL_MPIC_20 = 1;
export const KVM_DEV_TYPE_FSL_MPIC_42 = 2;
export const KVM_DEV_TYPE_XICS = 3;
export const KVM_DEV_TYPE_VFIO = 4;
export const KVM_DEV_TYPE_ARM_VGIC_V2 = 5;
export const KVM_DEV_TYPE_FLIC = 6;
export const KVM_DEV_TYPE_ARM_VGIC_V3 = 7;
export const KVM_DEV_TYPE_ARM_VGIC_ITS = 8;
export const KVM_DEV_TYPE_XIVE = 9;
export const KVM_DEV_TYPE_ARM_PV_TIME = 10;
export const KVM_DEV_TYPE_RISCV_AIA = 11;
export const KVM_DEV_TYPE_MAX = 12;

// KVM-VFIO device attributes (Documentation/virt/kvm/devices/vfio.rst)
export const KVM_DEV_VFIO_FILE = 1;
export const KVM_DEV_VFIO_FILE_ADD = 1;
export const KVM_DEV_VFIO_FILE_DEL = 2;
export const KVM_DEV_VFIO_GROUP = KVM_DEV_VFIO_FILE;
export const KVM_DEV_VFIO_GROUP_ADD = KVM_DEV_VFIO_FILE_ADD;
export const KVM_DEV_VFIO_GROUP_DEL = KVM_DEV_VFIO_FILE_DEL;
export const KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE = 3;

// capabilities (KVM_CHECK_EXTENSION arguments)
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_COALESCED_MMIO = 15;
export const KVM_CAP_IOMMU = 18;
export const KVM_CAP_DESTROY_MEMORY_REGION_WORKS = 21;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_JOIN_MEMORY_REGIONS_WORKS = 30;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_INTERNAL_ERROR_DATA = 40;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_SIGNAL_MSI = 77;
export const KVM_CAP_DEVICE_CTRL = 89;
export const KVM_CAP_ENABLE_CAP_VM = 98;
export const KVM_CAP_CHECK_EXTENSION_VM = 105;
export const KVM_CAP_IOEVENTFD_ANY_LENGTH = 122;
export const KVM_CAP_COALESCED_PIO = 162;
export const KVM_CAP_HALT_POLL = 182;
export const KVM_CAP_BINARY_STATS_FD = 203;
export const KVM_CAP_SYSTEM_EVENT_DATA = 215;
export const KVM_CAP_USER_MEMORY2 = 231;
export const KVM_CAP_VM_TYPES = 235;
