// The vfio_pci module (drivers/vfio/pci/vfio_pci.c): binds to the machine's PCI functions
// configured for "vfio-pci" (what driver_override + probe does at boot), registers each as a
// vfio_device in the VFIO group of its IOMMU group, and names its device cdev in sysfs
// (/sys/bus/pci/devices/<bdf>/vfio-dev/vfio<N>, N in config order from 0; the cdev's file
// operations belong to the device-cdev code).

import type { Kernel } from "../../kernel/kernel.js";
import type { Module, ModuleDef } from "../../kernel/module.js";
import { type KGen, runToEnd } from "../../kernel/sched.js";
import { IommuCore } from "../../iommu/iommu.js";
import { bindDriver, pciSysfsDir, unbindDriver } from "../../iommu/pci_probe.js";
import { vfioRegisterGroupDev, vfioUnregisterGroupDev } from "../group.js";
import { VfioCore, VfioDevice } from "../vfio_main.js";
import { VfioPciCoreDevice, vfioPciOps } from "./vfio_pci_core.js";
import { vfioDeviceCdevAdd, vfioDeviceCdevDel } from "../device_cdev.js";

export { VFIO_CDEV_DIR } from "../device_cdev.js";

export const vfioPciModule: ModuleDef = {
  name: "vfio_pci",
  requires: ["vfio"],
  init(k, m) {
    const core = VfioCore.of(k)!;
    const icore = IommuCore.of(k);
    const bound: VfioDevice[] = [];
    for (const fn of icore.pciFunctions) {
      if (fn.config.driver !== "vfio-pci") continue;
      if (fn.iommu.driver !== null) continue;
      // vfio_pci_core_register_device(): vfio_assign_device_set + vfio_register_group_dev
      if (bindDriver(k, fn.iommu, "vfio-pci") < 0) continue;
      const vdev = new VfioDevice(k, fn.config.bdf, vfioPciOps, m, fn.iommu);
      vdev.priv = new VfioPciCoreDevice(vdev, fn.hw);
      const rc = vfioRegisterGroupDev(core, vdev, "iommu");
      if (rc < 0) {
        vdev.put("init");
        unbindDriver(k, fn.iommu);
        continue;
      }
      vdev.cdevIndex = core.allocCdevIndex();
      k.sysfs.file(`${pciSysfsDir(vdev.name)}/vfio-dev/vfio${vdev.cdevIndex}/dev`, `511:${vdev.cdevIndex}\n`);
      vfioDeviceCdevAdd(core, vdev);
      bound.push(vdev);
    }
    m.export("__vfio_pci_devices", bound);
    return 0;
  },
  exit(k, m) {
    runToEnd(k, exitPath(k, m, false));
  },
  // vfio_pci_remove() of each device: the unregister waits for the device's users
  exitPath: (k, m) => exitPath(k, m, true),
};

function* exitPath(k: Kernel, m: Module, wait: boolean): KGen<void> {
  const core = VfioCore.of(k)!;
  const icore = IommuCore.of(k);
  for (const vdev of m.exports.get("__vfio_pci_devices") as VfioDevice[]) {
    k.sysfs.remove(`${pciSysfsDir(vdev.name)}/vfio-dev`);
    vfioDeviceCdevDel(core, vdev);
    core.freeCdevIndex(vdev.cdevIndex);
    yield* vfioUnregisterGroupDev(core, vdev, wait);
    const dev = icore.device(vdev.name);
    if (dev) unbindDriver(k, dev);
  }
}
