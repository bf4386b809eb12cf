// A small stand-in "vfio" module for KVM's tests, used until the real src/vfio lands (and
// kept for the cases the real one cannot set up: a non-coherent IOMMU). It has what KVM can
// see of VFIO and nothing more: a container node that is not a VFIO file, group nodes, device
// files made by VFIO_GROUP_GET_DEVICE_FD (any name), the five 6.12 exports, and the extra
// coupling exports of src/vfio/kvm_coupling.ts. Its device needs the VM at open, like the
// test driver of the real VFIO (open_device -> ESRCH without KVM), and takes a VM reference
// through symbol_get(kvm_get_kvm_safe) as vfio_device_get_kvm_safe() does.

import { EBUSY, EINVAL, ESRCH } from "../../src/uapi/errno.js";
import { VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU } from "../../src/uapi/vfio.js";
import type { File, FileOperations } from "../../src/kernel/fs.js";
import { O_RDWR } from "../../src/kernel/fs.js";
import type { Kernel } from "../../src/kernel/kernel.js";
import type { ModuleDef } from "../../src/kernel/module.js";
import { installFile } from "../../src/kernel/syscalls.js";
import type { KvmRefExports, VfioFileExports } from "../../src/kernel/vfio_kvm.js";
import { exportKvmCoupling } from "../../src/vfio/kvm_coupling.js";

export class FakeGroup {
  kvm: unknown = null;
  opened = false;
  constructor(
    readonly id: number,
    /** does the group's IOMMU enforce cache coherency (IOMMU_CAP_ENFORCE_CACHE_COHERENCY)? */
    public coherent: boolean,
    /** its device's driver needs the VM at open_device (ESRCH without) */
    readonly needsKvm: boolean,
  ) {}
}

export class FakeDevice {
  kvm: unknown = null;
  constructor(readonly group: FakeGroup) {}
}

export interface FakeVfioOptions {
  /** group id, IOMMU coherent?, driver needs KVM? Default: 1 coherent (an edu-like device),
   * 2 non-coherent, 3 coherent with a driver that needs KVM at open */
  groups?: [number, boolean, boolean][];
}

export const FAKE_COHERENT_GROUP = "/dev/vfio/1";
export const FAKE_NONCOHERENT_GROUP = "/dev/vfio/2";
export const FAKE_NEEDS_KVM_GROUP = "/dev/vfio/3";

export function fakeVfioModule(opts: FakeVfioOptions = {}): ModuleDef {
  return {
    name: "vfio",
    init(k: Kernel, m) {
      const groups = new Map<number, FakeGroup>();
      for (const [id, coherent, needsKvm] of opts.groups ?? [
        [1, true, false],
        [2, false, false],
        [3, true, true],
      ])
        groups.set(id, new FakeGroup(id, coherent, needsKvm));
      const symbolCall = <N extends keyof KvmRefExports, R>(name: N, use: (fn: KvmRefExports[N]) => R): R | null => {
        const fn = k.modules.symbolGet<KvmRefExports[N]>(name);
        if (!fn) return null;
        try {
          return use(fn);
        } finally {
          k.modules.symbolPut(name);
        }
      };
      const deviceFops: FileOperations = {
        owner: m,
        name: "vfio-device",
        release(f) {
          const d = f.privateData as FakeDevice;
          if (d.kvm) symbolCall("kvm_put_kvm", (put) => put(d.kvm));
        },
      };
      const groupFops: FileOperations = {
        owner: m,
        name: "vfio-group",
        open(f, dev) {
          const g = dev.data as FakeGroup;
          if (g.opened) return -EBUSY;
          g.opened = true;
          f.privateData = g;
          return 0;
        },
        release(f) {
          (f.privateData as FakeGroup).opened = false;
        },
        unlocked_ioctl(_f, cmd) {
          if (cmd === VFIO_GROUP_SET_CONTAINER) return 0; // nothing behind it in the fake
          if (cmd !== VFIO_GROUP_GET_DEVICE_FD) return -EINVAL;
          const g = _f.privateData as FakeGroup;
          const d = new FakeDevice(g);
          // vfio_device_group_open() -> open_device: this driver needs the VM
          if (g.needsKvm) {
            if (!g.kvm || !symbolCall("kvm_get_kvm_safe", (get) => get(g.kvm))) return -ESRCH;
            d.kvm = g.kvm;
          }
          const df = k.allocFile(deviceFops, "anon_inode:[vfio-device]", O_RDWR);
          if (typeof df === "number") return df;
          df.privateData = d;
          return installFile(k.current!.process!, df);
        },
      };
      const containerFops: FileOperations = {
        owner: m,
        name: "vfio-container",
        unlocked_ioctl: (_f, cmd) => (cmd === VFIO_SET_IOMMU ? 0 : -EINVAL),
      };
      k.devices.register("/dev/vfio/vfio", containerFops, null);
      for (const g of groups.values()) k.devices.register(`/dev/vfio/${g.id}`, groupFops, g);

      const isGroup = (f: File) => f.fops === groupFops;
      const isDevice = (f: File) => f.fops === deviceFops;
      const five: VfioFileExports = {
        vfio_file_is_valid: (f) => isGroup(f) || isDevice(f),
        vfio_file_is_group: isGroup,
        vfio_file_enforced_coherent(f) {
          if (isGroup(f)) return (f.privateData as FakeGroup).coherent;
          if (isDevice(f)) return (f.privateData as FakeDevice).group.coherent;
          return true;
        },
        vfio_file_set_kvm(f, kvm) {
          if (isGroup(f)) (f.privateData as FakeGroup).kvm = kvm;
          // a device file (cdev) keeps its own; a group-made device fd ignores it as 6.12 does
        },
        vfio_file_iommu_group: (f) => (isGroup(f) ? { id: (f.privateData as FakeGroup).id } : null),
      };
      for (const [name, fn] of Object.entries(five)) m.export(name, fn);
      exportKvmCoupling(k, m);
      m.export("__fake_groups", groups);
      return 0;
    },
    exit(k) {
      for (const p of k.devices.paths()) if (p.startsWith("/dev/vfio/")) k.devices.unregister(p);
    },
  };
}
