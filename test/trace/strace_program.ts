// One program of raw calls that both kernels answer: the real one on this machine through the
// host backend (under strace, by scripts/record-strace-goldens.sh) and the twin (under its own
// trace, in strace_golden.test.ts). The machine has no /dev/kvm or /dev/vfio, so the calls are
// the memory, eventfd and file calls, plus KVM and VFIO ioctls on /dev/null: Linux answers
// those ENOTTY, yet strace still decodes each request and its argument, which pins the twin's
// decoding of the same requests to strace's own.

import type { UserProcess } from "../../src/backend/backend.js";
import { O_CLOEXEC, O_RDONLY, O_RDWR } from "../../src/kernel/fs.js";
import {
  KVM_CAP_USER_MEMORY,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_DEVICE,
  KVM_CREATE_DEVICE_TEST,
  KVM_CREATE_VCPU,
  KVM_DEV_TYPE_VFIO,
  KVM_DEV_VFIO_FILE,
  KVM_DEV_VFIO_FILE_ADD,
  KVM_HAS_DEVICE_ATTR,
  KVM_SET_DEVICE_ATTR,
  kvm_create_device,
  kvm_device_attr,
  KVM_CREATE_VM,
  KVM_GET_API_VERSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_SET_USER_MEMORY_REGION,
  kvm_userspace_memory_region,
} from "../../src/uapi/kvm.js";
import {
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_STATUS,
  VFIO_TYPE1v2_IOMMU,
  vfio_group_status,
} from "../../src/uapi/vfio.js";
import { IOMMU_IOAS_ALLOC, iommu_ioas_alloc } from "../../src/uapi/iommufd.js";

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

/** Paths that exist on neither kernel, opened before and after the program to find it in a trace. */
export const BEGIN_MARK = "/vfio-twin-strace-begin";
export const END_MARK = "/vfio-twin-strace-end";

export function stracedProgram(p: UserProcess): void {
  const nul = p.open("/dev/null", O_RDWR | O_CLOEXEC);
  p.open("/dev/vfio/42", O_RDWR | O_CLOEXEC); // ENOENT on both
  p.open("/dev/null", O_RDONLY | O_CLOEXEC);

  const a = p.mmap(8192, { prot: PROT_READ | PROT_WRITE });
  const ro = p.mmap(4096, { prot: PROT_READ });
  p.munmap(ro, 4096);
  p.mmap(4096, { prot: PROT_READ, fd: nul }); // /dev/null has no ->mmap: ENODEV

  // an eventfd: a write of 1, a read of it, a read that would block
  const efd = p.eventfd(EFD_NONBLOCK | EFD_CLOEXEC);
  p.write(a, Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0));
  p.writeFd(efd, a, 8);
  p.readFd(efd, a + 16, 8);
  p.readFd(efd, a + 16, 8); // EAGAIN
  p.pread(efd, a, 8, 0); // ESPIPE

  // /dev/null: writes of text and of binary, a read and a positioned read
  p.write(a + 64, new TextEncoder().encode('hello "twin"\n\t\\'));
  p.writeFd(nul, a + 64, 15);
  p.write(
    a + 128,
    Uint8Array.from({ length: 40 }, (_, i) => (i * 37) & 0xff),
  );
  p.pwrite(nul, a + 128, 40, 4096);
  p.readFd(nul, a, 16);
  p.pread(nul, a, 16, 0);

  p.setMemlock(4 << 20); // lowering is allowed to anyone
  p.setMemlock(4 << 20, 1000); // a soft limit above the hard one: EINVAL
  const d = p.dup(nul);
  p.close(d);
  p.close(1000); // EBADF

  // KVM requests: strace decodes them whatever the file, Linux refuses them on /dev/null
  p.ioctl(nul, KVM_GET_API_VERSION, 0);
  p.ioctl(nul, KVM_CREATE_VM, 0);
  p.ioctl(nul, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);
  p.ioctl(nul, KVM_GET_VCPU_MMAP_SIZE, 0);
  p.ioctl(nul, KVM_CREATE_VCPU, 2);
  p.write(
    a + 256,
    kvm_userspace_memory_region.encode({
      slot: 1,
      flags: KVM_MEM_LOG_DIRTY_PAGES,
      guest_phys_addr: 0x100000n,
      memory_size: 0x200000n,
      userspace_addr: BigInt(a),
    }),
  );
  p.ioctl(nul, KVM_SET_USER_MEMORY_REGION, a + 256);
  p.write(a + 512, kvm_create_device.encode({ type: KVM_DEV_TYPE_VFIO, flags: KVM_CREATE_DEVICE_TEST }));
  p.ioctl(nul, KVM_CREATE_DEVICE, a + 512);
  p.write(a + 256, Uint8Array.of(7, 0, 0, 0)); // an int: the fd KVM_DEV_VFIO_FILE_ADD takes
  p.write(
    a + 768,
    kvm_device_attr.encode({ group: KVM_DEV_VFIO_FILE, attr: BigInt(KVM_DEV_VFIO_FILE_ADD), addr: BigInt(a + 256) }),
  );
  p.ioctl(nul, KVM_SET_DEVICE_ATTR, a + 768);
  p.ioctl(nul, KVM_HAS_DEVICE_ATTR, a + 768);
  // VFIO and iommufd requests: strace names them and leaves the argument as a pointer; the twin
  // decodes it (tested against the strace style, not this golden, in strace_format.test.ts)
  p.ioctl(nul, VFIO_GET_API_VERSION, 0);
  p.ioctl(nul, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
  p.write(a + 1024, vfio_group_status.encode({ argsz: vfio_group_status.size }));
  p.ioctl(nul, VFIO_GROUP_GET_STATUS, a + 1024);
  p.write(a + 1024, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size }));
  p.ioctl(nul, IOMMU_IOAS_ALLOC, a + 1024);

  // the calls the twin answers outside its syscall layer, where both kernels give the same
  // answer (this machine's 0000:00:01.0 has a vendor attribute, as the twin's edu device)
  p.readlink("/vfio-twin-no-such-link"); // ENOENT
  p.readlink("/sys/bus/pci/devices"); // a directory: EINVAL
  p.readlink("/sys/bus/pci/devices/0000:00:01.0/vendor"); // a file: EINVAL
  p.readdir("/vfio-twin-no-such-dir"); // ENOENT
  p.readdir("/sys/bus/pci/devices/0000:00:01.0/vendor"); // ENOTDIR

  p.munmap(a, 8192);
  p.close(efd);
  p.close(nul);
}
