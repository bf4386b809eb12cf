// The KVM device cases that need no VFIO, written once against UserProcess so that they run
// on the twin and on the real /dev/kvm (host backend) with the same expectations.

import type { UserProcess } from "../../src/backend/backend.js";
import { errnoName } from "../../src/uapi/errno.js";
import * as K from "../../src/uapi/kvm.js";
import { Vmm } from "./harness.js";

/** case -> "0" or the errno name; "created" cases also say whether the fd field was written */
export const NO_VFIO_EXPECTED: [string, string][] = [
  ["CREATE_DEVICE VFIO TEST", "0 fd-untouched"],
  ["CREATE_DEVICE VFIO TEST|0x2", "0 fd-untouched"],
  ["CREATE_DEVICE 99 TEST", "ENODEV"],
  ["CREATE_DEVICE 0", "ENODEV"],
  ["CREATE_DEVICE KVM_DEV_TYPE_MAX", "ENODEV"],
  ["CREATE_DEVICE 0xffffffff", "ENODEV"],
  ["CREATE_DEVICE NULL", "EFAULT"],
  ["CREATE_DEVICE VFIO flags 0x2", "0 fd-written"],
  ["CREATE_DEVICE VFIO again", "EBUSY"],
  ["HAS FILE ADD", "0"],
  ["HAS FILE DEL", "0"],
  ["HAS FILE SPAPR_TCE", "ENXIO"],
  ["HAS FILE attr 1+2^32", "ENXIO"],
  ["HAS group 2", "ENXIO"],
  ["HAS NULL", "EFAULT"],
  ["GET FILE ADD", "EPERM"],
  ["GET NULL", "EPERM"],
  ["SET NULL", "EFAULT"],
  ["SET FILE ADD addr 0", "EFAULT"],
  ["SET FILE DEL addr 0", "EFAULT"],
  ["SET FILE SPAPR_TCE addr 0", "ENXIO"],
  ["SET FILE attr 4", "ENXIO"],
  ["SET group 0 ADD", "ENXIO"],
  ["ADD fd -1", "EBADF"],
  ["ADD fd 0x7ffffff0", "EBADF"],
  ["DEL fd -1", "EBADF"],
  ["ADD VM fd", "EINVAL"],
  ["ADD /dev/kvm fd", "EINVAL"],
  ["ADD eventfd", "EINVAL"],
  ["ADD the KVM-VFIO device fd", "EINVAL"],
  ["DEL VM fd (never added)", "ENOENT"],
  ["KVM_CREATE_VM on the device fd", "ENOTTY"],
  ["ioctl 0xae00 on the device fd", "ENOTTY"],
  ["close device, CREATE_DEVICE VFIO", "0 fd-written"],
];

const txt = (rc: number) => (rc < 0 ? errnoName(-rc) : String(rc));

export function runNoVfioCases(p: UserProcess): [string, string][] {
  const v = new Vmm(p);
  const out: [string, string][] = [];
  const r = (name: string, rc: number) => out.push([name, txt(rc)]);
  const cr = (name: string, type: number, flags = 0) => {
    const d = v.createDevice(vm, type, flags);
    out.push([name, d.rc < 0 ? txt(d.rc) : `${d.rc} ${d.fd === -1 ? "fd-untouched" : "fd-written"}`]);
    return d.fd;
  };
  const kvmFd = p.open("/dev/kvm");
  const vm = p.ioctl(kvmFd, K.KVM_CREATE_VM, 0);
  if (vm < 0) throw new Error(`KVM_CREATE_VM: ${txt(vm)}`);
  const VFIO = K.KVM_DEV_TYPE_VFIO;
  const FILE = K.KVM_DEV_VFIO_FILE;
  cr("CREATE_DEVICE VFIO TEST", VFIO, K.KVM_CREATE_DEVICE_TEST);
  cr("CREATE_DEVICE VFIO TEST|0x2", VFIO, K.KVM_CREATE_DEVICE_TEST | 2);
  cr("CREATE_DEVICE 99 TEST", 99, K.KVM_CREATE_DEVICE_TEST);
  cr("CREATE_DEVICE 0", 0);
  cr("CREATE_DEVICE KVM_DEV_TYPE_MAX", K.KVM_DEV_TYPE_MAX);
  cr("CREATE_DEVICE 0xffffffff", 0xffffffff);
  r("CREATE_DEVICE NULL", p.ioctl(vm, K.KVM_CREATE_DEVICE, 0));
  let dev = cr("CREATE_DEVICE VFIO flags 0x2", VFIO, 2);
  cr("CREATE_DEVICE VFIO again", VFIO);
  r("HAS FILE ADD", v.has(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD));
  r("HAS FILE DEL", v.has(dev, FILE, K.KVM_DEV_VFIO_FILE_DEL));
  r("HAS FILE SPAPR_TCE", v.has(dev, FILE, K.KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE));
  r("HAS FILE attr 1+2^32", v.has(dev, FILE, 1n + (1n << 32n)));
  r("HAS group 2", v.has(dev, 2, K.KVM_DEV_VFIO_FILE_ADD));
  r("HAS NULL", p.ioctl(dev, K.KVM_HAS_DEVICE_ATTR, 0));
  r("GET FILE ADD", v.get(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD));
  r("GET NULL", p.ioctl(dev, K.KVM_GET_DEVICE_ATTR, 0));
  r("SET NULL", p.ioctl(dev, K.KVM_SET_DEVICE_ATTR, 0));
  r("SET FILE ADD addr 0", v.set(dev, FILE, K.KVM_DEV_VFIO_FILE_ADD, { addr: 0 }));
  r("SET FILE DEL addr 0", v.set(dev, FILE, K.KVM_DEV_VFIO_FILE_DEL, { addr: 0 }));
  r("SET FILE SPAPR_TCE addr 0", v.set(dev, FILE, K.KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE, { addr: 0 }));
  r("SET FILE attr 4", v.set(dev, FILE, 4, 0));
  r("SET group 0 ADD", v.set(dev, 0, K.KVM_DEV_VFIO_FILE_ADD, 0));
  r("ADD fd -1", v.add(dev, -1));
  r("ADD fd 0x7ffffff0", v.add(dev, 0x7ffffff0));
  r("DEL fd -1", v.del(dev, -1));
  r("ADD VM fd", v.add(dev, vm));
  r("ADD /dev/kvm fd", v.add(dev, kvmFd));
  const efd = p.eventfd();
  r("ADD eventfd", v.add(dev, efd));
  r("ADD the KVM-VFIO device fd", v.add(dev, dev));
  r("DEL VM fd (never added)", v.del(dev, vm));
  r("KVM_CREATE_VM on the device fd", p.ioctl(dev, K.KVM_CREATE_VM, 0));
  r("ioctl 0xae00 on the device fd", p.ioctl(dev, 0xae00, 0));
  p.close(dev);
  dev = cr("close device, CREATE_DEVICE VFIO", VFIO);
  for (const fd of [dev, efd, vm, kvmFd]) p.close(fd);
  p.munmap(v.scratch, 4096);
  return out;
}
