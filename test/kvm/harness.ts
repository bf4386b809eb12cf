// Helpers for KVM's tests: a twin booted with a chosen coupling design, and the raw calls a
// VMM makes on a VM and a KVM device, with arguments staged in the process's own memory.

import type { UserProcess } from "../../src/backend/backend.js";
import { createTwin, type Twin, type TwinConfig } from "../../src/twin.js";
import { ORACLE_PCI, type PciFunctionConfig } from "../../src/hw/machine.js";
import { kvmState } from "../../src/kvm/kvm_main.js";
import type { Kvm } from "../../src/kvm/kvm.js";
import type { CouplingDesign } from "../../src/kvm/vfio_coupling.js";
import * as K from "../../src/uapi/kvm.js";
import * as V from "../../src/uapi/vfio.js";
import {
  FAKE_COHERENT_GROUP,
  FAKE_NEEDS_KVM_GROUP,
  FAKE_NONCOHERENT_GROUP,
  fakeVfioModule,
  type FakeVfioOptions,
} from "./fake_vfio.js";

export interface BootOptions extends TwinConfig {
  /** load vfio (default true) */
  withVfio?: boolean;
  fake?: FakeVfioOptions;
}

/** A twin with the fake vfio module in place of any real one. */
export function boot(design: CouplingDesign, o: BootOptions = {}): Twin {
  const twin = createTwin({ ...o, coupling: design, vfio: false });
  const k = twin.kernel;
  k.modules.provide(fakeVfioModule(o.fake));
  if (o.withVfio !== false) {
    const rc = k.modules.load("vfio");
    if (rc < 0) throw new Error(`load vfio: ${rc}`);
  }
  return twin;
}

/**
 * The machine of the real-VFIO runs: the oracle's edu device (group 1, behind an IOMMU that
 * does not enforce cache coherency, as QEMU's VT-d without snoop control) and a second device
 * alone in group 2 whose IOMMU does.
 */
export const REAL_PCI: PciFunctionConfig[] = [
  ...ORACLE_PCI,
  { bdf: "0000:00:02.0", vendor: 0x1af4, device: 0x1041, iommuGroup: 2, driver: "vfio-pci", coherent: true },
];

/** A twin as createTwin builds it, with the real VFIO modules, on REAL_PCI. */
export function bootReal(design: CouplingDesign, o: BootOptions = {}): Twin {
  return createTwin({ pci: REAL_PCI, ...o, coupling: design, vfio: o.withVfio !== false });
}

/** What KVM's tests need from a VFIO: the real src/vfio, and the fake for what it lacks. */
export interface VfioWorld {
  readonly name: "fake vfio" | "real vfio";
  boot(design: CouplingDesign, o?: BootOptions): Twin;
  /** a group whose IOMMU enforces cache coherency; its device's driver does not need KVM */
  readonly coherentGroup: string;
  /** a group whose IOMMU does not (null: the world has none) */
  readonly nonCoherentGroup: string | null;
  /** a group whose device's driver needs the VM at open_device, and the device's name; null
   * when this VFIO has no such driver */
  needsKvm(twin: Twin): { path: string; device: string } | null;
}

export const FAKE_WORLD: VfioWorld = {
  name: "fake vfio",
  boot,
  coherentGroup: FAKE_COHERENT_GROUP,
  nonCoherentGroup: FAKE_NONCOHERENT_GROUP,
  needsKvm: () => ({ path: FAKE_NEEDS_KVM_GROUP, device: "fake-device" }),
};

/** The mdev name of src/vfio/mdev/kvm_gated_mdev.ts (KVM_GATED_MDEV_UUID), as userspace sees it. */
const KVM_GATED_MDEV = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";

export const REAL_WORLD: VfioWorld = {
  name: "real vfio",
  boot: bootReal,
  coherentGroup: "/dev/vfio/2",
  nonCoherentGroup: "/dev/vfio/1",
  needsKvm(twin) {
    // VFIO's test driver: GVT-g-like, open_device fails with ESRCH without a KVM
    const mods = twin.kernel.modules;
    if (!mods.available.has("vfio_kvm_gated_mdev")) return null;
    if (!mods.loaded.has("vfio_kvm_gated_mdev") && mods.load("vfio_kvm_gated_mdev") < 0) return null;
    const link = twin.kernel.sysfs.readlink(`/sys/bus/mdev/devices/${KVM_GATED_MDEV}/iommu_group`);
    if (typeof link !== "string") return null;
    return { path: `/dev/vfio/${link.split("/").pop()}`, device: KVM_GATED_MDEV };
  },
};

export const WORLDS: VfioWorld[] = [FAKE_WORLD, REAL_WORLD];

/** A process with a scratch page at `scratch` for staging ioctl arguments. */
export class Vmm {
  readonly scratch: number;
  /** group fd -> the container fd deviceFd() set up for it */
  readonly containers = new Map<number, number>();
  constructor(readonly p: UserProcess) {
    this.scratch = p.mmap(4096);
    if (this.scratch < 0) throw new Error(`mmap: ${this.scratch}`);
  }

  /** open /dev/kvm + KVM_CREATE_VM: the VM fd (or -errno) */
  createVm(): number {
    const kfd = this.p.open("/dev/kvm");
    if (kfd < 0) return kfd;
    const vm = this.p.ioctl(kfd, K.KVM_CREATE_VM, 0);
    this.p.close(kfd);
    return vm;
  }

  /** KVM_CREATE_DEVICE: rc, and the fd field as written back (-1 going in) */
  createDevice(vm: number, type: number, flags = 0): { rc: number; fd: number } {
    this.p.write(this.scratch, K.kvm_create_device.encode({ type, fd: 0xffffffff, flags }));
    const rc = this.p.ioctl(vm, K.KVM_CREATE_DEVICE, this.scratch);
    const back = K.kvm_create_device.decode(this.p.read(this.scratch, K.kvm_create_device.size));
    return { rc, fd: back.fd | 0 };
  }

  /** a VFIO pseudo-device fd, or throw */
  vfioDevice(vm: number): number {
    const { rc, fd } = this.createDevice(vm, K.KVM_DEV_TYPE_VFIO);
    if (rc !== 0) throw new Error(`KVM_CREATE_DEVICE: ${rc}`);
    return fd;
  }

  /** KVM_{SET,GET,HAS}_DEVICE_ATTR with addr -> an s32 `val`, or addr = `{ addr }` */
  attr(req: number, dev: number, group: number, attr: number | bigint, val: number | { addr: number } = 0): number {
    const valAt = this.scratch + 256;
    let addr: bigint;
    if (typeof val === "number") {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, val, true);
      this.p.write(valAt, b);
      addr = BigInt(valAt);
    } else addr = BigInt(val.addr);
    this.p.write(this.scratch, K.kvm_device_attr.encode({ flags: 0, group, attr: BigInt(attr), addr }));
    return this.p.ioctl(dev, req, this.scratch);
  }
  set(dev: number, group: number, attr: number | bigint, val: number | { addr: number } = 0): number {
    return this.attr(K.KVM_SET_DEVICE_ATTR, dev, group, attr, val);
  }
  has(dev: number, group: number, attr: number | bigint): number {
    return this.attr(K.KVM_HAS_DEVICE_ATTR, dev, group, attr);
  }
  get(dev: number, group: number, attr: number | bigint): number {
    return this.attr(K.KVM_GET_DEVICE_ATTR, dev, group, attr);
  }
  /**
   * A device fd from the group the VFIO way: the group joins a new TYPE1v2 container the
   * first time, then VFIO_GROUP_GET_DEVICE_FD with the group's device name (from sysfs).
   */
  deviceFd(group: number, groupPath: string, device?: string): number {
    if (!this.containers.has(group)) {
      const c = this.p.open("/dev/vfio/vfio");
      if (c < 0) return c;
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, c, true);
      this.p.write(this.scratch + 512, b);
      const r1 = this.p.ioctl(group, V.VFIO_GROUP_SET_CONTAINER, this.scratch + 512);
      if (r1 < 0) return r1;
      const r2 = this.p.ioctl(c, V.VFIO_SET_IOMMU, V.VFIO_TYPE1v2_IOMMU);
      if (r2 < 0) return r2;
      this.containers.set(group, c);
    }
    const id = groupPath.slice("/dev/vfio/".length);
    const devs = this.p.readdir(`/sys/kernel/iommu_groups/${id}/devices`);
    const name = device ?? (Array.isArray(devs) && devs[0] ? devs[0] : "0000:00:01.0");
    this.p.write(this.scratch + 512, new TextEncoder().encode(name + "\0"));
    return this.p.ioctl(group, V.VFIO_GROUP_GET_DEVICE_FD, this.scratch + 512);
  }

  add(dev: number, fd: number): number {
    return this.set(dev, K.KVM_DEV_VFIO_FILE, K.KVM_DEV_VFIO_FILE_ADD, fd);
  }
  del(dev: number, fd: number): number {
    return this.set(dev, K.KVM_DEV_VFIO_FILE, K.KVM_DEV_VFIO_FILE_DEL, fd);
  }
}

/** The twin's live VMs (newest last). */
export function vms(twin: Twin): Kvm[] {
  return [...(kvmState(twin.kernel)?.vms ?? [])];
}

/** Every live object's description, for leak checks. */
export function live(twin: Twin): string[] {
  return [...twin.kernel.objects].map((o) => o.describe()).sort();
}

/** Holders of every live file, by file path. */
export function fileHolders(twin: Twin): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const o of twin.kernel.objects) {
    if (o.kind !== "file") continue;
    out.set(o.describe(), [...o.holders.keys()].sort());
  }
  return out;
}
