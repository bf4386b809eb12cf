// The vfio module (vfio.ko: vfio_main.c + group.c + container.c): the core state, the
// container node /dev/vfio/vfio, and the exported API KVM uses. Backends (vfio_iommu_type1)
// and drivers (vfio_pci) are separate modules that require this one.

import type { ModuleDef } from "../kernel/module.js";
import { makeContainerFops } from "./container.js";
import { VfioCore } from "./vfio_main.js";
import { makeVfioKvmApi } from "./vfio_kvm.js";

export const VFIO_CONTAINER_PATH = "/dev/vfio/vfio";

export const vfioModule: ModuleDef = {
  name: "vfio",
  init(k, m) {
    const core = new VfioCore(k, m);
    VfioCore.install(k, core);
    k.devices.register(VFIO_CONTAINER_PATH, makeContainerFops(core), core);
    const api = makeVfioKvmApi(core);
    for (const [name, fn] of Object.entries(api)) m.export(name, fn);
    m.export("__vfio_core", core);
    return 0;
  },
  exit(k) {
    k.devices.unregister(VFIO_CONTAINER_PATH);
    VfioCore.install(k, null);
  },
};
