// The vfio module (vfio.ko: vfio_main.c + group.c + container.c): the core state, the
// container node /dev/vfio/vfio, and the exported API KVM uses. Backends (vfio_iommu_type1)
// and drivers (vfio_pci) are separate modules that require this one.

import type { Kernel } from "../kernel/kernel.js";
import type { ModuleDef } from "../kernel/module.js";
import type { File } from "../kernel/fs.js";
import type { HolderOwnership, RefCounted } from "../kernel/kref.js";
import type { VfioDeviceFile } from "./vfio_main.js";
import { makeContainerFops } from "./container.js";
import { VfioCore } from "./vfio_main.js";
import { makeVfioKvmApi, makeVfioPasidApi } from "./vfio_kvm.js";
import { vfioCdevHooks } from "./device_cdev.js";
import { vfioIommufdHooks } from "./iommufd.js";
import { exportKvmCoupling } from "./kvm_coupling.js";

export const VFIO_CONTAINER_PATH = "/dev/vfio/vfio";

export const vfioModule: ModuleDef = {
  name: "vfio",
  init(k, m) {
    const core = new VfioCore(k, m);
    VfioCore.install(k, core);
    // the device cdev and the iommufd side (drivers/vfio/device_cdev.c, drivers/vfio/iommufd.c)
    core.cdevHooks = vfioCdevHooks;
    core.iommufdHooks = vfioIommufdHooks;
    k.devices.register(VFIO_CONTAINER_PATH, makeContainerFops(core), core);
    const api = makeVfioKvmApi(core);
    for (const [name, fn] of Object.entries(api)) m.export(name, fn);
    for (const [name, fn] of Object.entries(makeVfioPasidApi(core))) m.export(name, fn); // docs/pasid.md
    exportKvmCoupling(k, m); // the other two coupling designs' exports (src/kvm/vfio_coupling.ts)
    m.export("__vfio_core", core);
    k.checks.set("vfio", () => vfioCoreViolations(k, core));
    k.holderOwners.set("vfio", (h, o) => vfioHolder(core, h, o));
    return 0;
  },
  exit(k) {
    k.checks.delete("vfio");
    k.holderOwners.delete("vfio");
    k.devices.unregister(VFIO_CONTAINER_PATH);
    VfioCore.install(k, null);
  },
};

/**
 * The VFIO core's invariants (in Kernel.checks while the module is loaded): a device's open
 * count equals its device files that were granted access; a device holds a kvm only while
 * open and with the kvm_put_kvm pin; a group with a container has one container user plus
 * one per opened device of the group; container and group agree on their membership; an
 * open group's file is live.
 */
export function vfioCoreViolations(k: Kernel, core: VfioCore): string[] {
  const out: string[] = [];
  const files = new Map<unknown, number>();
  for (const o of k.objects) {
    if (o.kind !== "file" || (o as File).fops !== core.deviceFops) continue;
    const df = (o as File).privateData as VfioDeviceFile | null;
    if (df?.accessGranted) files.set(df.device, (files.get(df.device) ?? 0) + 1);
  }
  for (const d of core.devices) {
    const n = files.get(d) ?? 0;
    if (d.openCount !== n) out.push(`vfio_device ${d.name}: open count ${d.openCount}, ${n} open device files`);
    if (d.kvm !== null && (d.openCount === 0 || d.putKvm === null))
      out.push(`vfio_device ${d.name}: kvm held while closed`);
  }
  for (const g of core.groups.values()) {
    const opened = g.devices.filter((d) => d.openCount > 0 && !d.cdevOpened).length;
    const want = g.container ? 1 + opened : 0;
    if (g.containerUsers !== want)
      out.push(`vfio_group ${g.id}: ${g.containerUsers} container users, expected ${want}`);
    if (g.container && !g.container.groups.includes(g)) out.push(`vfio_group ${g.id}: not in its container's list`);
    if (g.openedFile?.dead) out.push(`vfio_group ${g.id}: opened file is released`);
  }
  return out;
}

/**
 * The owners behind VFIO's holder names: a VM reference taken by vfio_device_get_kvm_safe()
 * lives in a device's kvm pointer; a group's "device NAME" is a registered device of it.
 */
export function vfioHolder(core: VfioCore, holder: string, obj: RefCounted): HolderOwnership | undefined {
  if (holder === "kvm_get_kvm_safe") {
    const holds = core.devices.filter((d) => d.kvm === obj && d.putKvm !== null).length;
    return { owner: "the kvm pointers of VFIO devices", released: false, holds };
  }
  if (holder === "registration") {
    const d = core.devices.find((x) => x === obj);
    return { owner: "the VFIO device list", released: false, holds: d?.registered ? 1 : 0 };
  }
  if (obj.kind !== "vfio_group" || !holder.startsWith("device ")) return undefined;
  const m = /^device (.+)$/.exec(holder);
  if (!m) return undefined;
  const d = core.devices.find((x) => x.name === m[1]);
  const owner = `vfio device ${m[1]}`;
  if (!d) return { owner, released: true, holds: 0 };
  return { owner, released: false, holds: d.group === obj ? 1 : 0 };
}
