// Boot-time probing of the machine's PCI functions (drivers/pci/probe.c + iommu_probe_device()
// + the driver core's bind): every function joins its IOMMU group, its sysfs directory appears
// (/sys/bus/pci/devices/<bdf>/{vendor,device,iommu_group,driver}, /sys/kernel/iommu_groups/<n>/
// devices/<bdf>), and functions configured with driver "host" are bound to a host driver,
// which uses the group's default domain (iommu_device_use_default_domain()) and so makes
// the group non-viable for VFIO. Functions configured for vfio-pci wait for that module.

import type { Kernel } from "../kernel/kernel.js";
import type { Machine } from "../hw/machine.js";
import { IommuCore, type IommuDevice } from "./iommu.js";

export function pciSysfsDir(bdf: string): string {
  return `/sys/bus/pci/devices/${bdf}`;
}

export function bootMachine(k: Kernel, m: Machine): IommuCore {
  const core = IommuCore.of(k);
  core.hw = m.iommu;
  for (const d of m.devices) {
    const c = d.config;
    const dev = core.probeDevice(c.bdf, d.hw, c.iommuGroup, { coherent: c.coherent, pasid: c.pasid });
    core.pciFunctions.push({ config: c, hw: d.hw, iommu: dev });
    const dir = pciSysfsDir(c.bdf);
    const hex = (v: number) => `0x${v.toString(16).padStart(4, "0")}\n`;
    k.sysfs.file(`${dir}/vendor`, hex(c.vendor));
    k.sysfs.file(`${dir}/device`, hex(c.device));
    k.sysfs.link(`${dir}/iommu_group`, `../../../kernel/iommu_groups/${c.iommuGroup}`);
    k.sysfs.link(`/sys/kernel/iommu_groups/${c.iommuGroup}/devices/${c.bdf}`, `../../../../bus/pci/devices/${c.bdf}`);
    if (c.driver === "host") {
      const rc = bindDriver(k, dev, "host");
      if (rc < 0) throw new Error(`twin boot: binding ${c.bdf} to a host driver failed with ${rc}`);
    }
  }
  return core;
}

/** really_probe() for the twin: the host driver uses the default domain; 0 or -errno. */
export function bindDriver(k: Kernel, dev: IommuDevice, name: string): number {
  if (name === "host") {
    const rc = dev.core.deviceUseDefaultDomain(dev);
    if (rc < 0) return rc;
  }
  dev.driver = name;
  k.sysfs.link(`${pciSysfsDir(dev.bdf)}/driver`, `../../../bus/pci/drivers/${name}`);
  return 0;
}

export function unbindDriver(k: Kernel, dev: IommuDevice): void {
  if (dev.driver === "host") dev.core.deviceUnuseDefaultDomain(dev);
  dev.driver = null;
  k.sysfs.remove(`${pciSysfsDir(dev.bdf)}/driver`);
}
