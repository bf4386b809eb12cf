// The machine the twin runs on: its PCI functions, how they are grouped for isolation and
// which driver each is bound to at boot, and the platform IOMMU's capabilities.
//
// Contract (outside scripts rely on it): createTwin({ pci: [{ bdf, vendor, device,
// iommuGroup, driver, coherent, pasid }] }), driver "vfio-pci" or "host". Devices bound to
// vfio-pci get /dev/vfio/<iommuGroup> and a cdev /dev/vfio/devices/vfio<N>, N counting the
// vfio-pci devices in config order from 0. With no `pci` list the machine is the oracle's
// (../shared/oracle): a q35 PC with QEMU's emulated Intel VT-d (aw-bits 39) and one edu
// device 0000:00:01.0 in IOMMU group 1, bound to vfio-pci, not cache-coherent, no PASID.

import { DSA_DEVICE, DSA_VENDOR, DsaDevice } from "./dsa.js";
import { EDU_DEVICE, EDU_VENDOR, EduDevice } from "./edu.js";
import { GenericPciDevice } from "./generic.js";
import type { PciDevice, TimerHost } from "./pci.js";

export type PciDriverName = "vfio-pci" | "host";

export interface PciFunctionConfig {
  /** "0000:00:01.0" */
  bdf: string;
  vendor: number;
  device: number;
  iommuGroup: number;
  driver: PciDriverName;
  /** IOMMU_CAP_ENFORCE_CACHE_COHERENCY for this device (default false, as on the oracle) */
  coherent?: boolean;
  /** the device and its IOMMU support PASID (default false) */
  pasid?: boolean;
}

/** What the platform IOMMU offers every device (an emulated VT-d unless said otherwise). */
export interface IommuHwConfig {
  /** the IOMMU driver's name, for hw_info: "intel-iommu" */
  readonly kind: "intel-vtd";
  /** address width: the aperture is 0 .. 2^awBits - 1 */
  readonly awBits: number;
  /** supported page sizes (4K | 2M | 1G on VT-d with superpages) */
  readonly pgsizeBitmap: bigint;
  /** the interrupt window every device has reserved (IOMMU_RESV_MSI) */
  readonly msiStart: bigint;
  readonly msiEnd: bigint;
}

export const DEFAULT_IOMMU: IommuHwConfig = {
  kind: "intel-vtd",
  awBits: 39,
  pgsizeBitmap: 0x40201000n,
  msiStart: 0xfee00000n,
  msiEnd: 0xfeefffffn,
};

/** A DSA-shaped device (src/hw/dsa.ts) with PASID support, for machines given `pasid: true`
 * devices: `createTwin({ kernelVersion: "6.15", pci: [...ORACLE_PCI, DSA_PCI] })`. */
export const DSA_PCI: PciFunctionConfig = {
  bdf: "0000:00:02.0",
  vendor: DSA_VENDOR,
  device: DSA_DEVICE,
  iommuGroup: 2,
  driver: "vfio-pci",
  coherent: true,
  pasid: true,
};

export const ORACLE_PCI: readonly PciFunctionConfig[] = [
  {
    bdf: "0000:00:01.0",
    vendor: EDU_VENDOR,
    device: EDU_DEVICE,
    iommuGroup: 1,
    driver: "vfio-pci",
    coherent: false,
    pasid: false,
  },
];

export interface MachineDevice {
  readonly config: Required<PciFunctionConfig>;
  readonly hw: PciDevice;
}

const BDF_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

export class Machine {
  readonly devices: MachineDevice[] = [];
  readonly iommu: IommuHwConfig;

  /** @param timers virtual time for the devices' delayed work (the kernel's clock) */
  constructor(timers: TimerHost, pci: readonly PciFunctionConfig[] = ORACLE_PCI, iommu: IommuHwConfig = DEFAULT_IOMMU) {
    this.iommu = iommu;
    const seen = new Set<string>();
    let barAddr = 0xfea00000;
    for (const c of pci) {
      if (!BDF_RE.test(c.bdf)) throw new TypeError(`machine: bad bdf ${JSON.stringify(c.bdf)}`);
      if (seen.has(c.bdf)) throw new TypeError(`machine: bdf ${c.bdf} given twice`);
      if (c.driver !== "vfio-pci" && c.driver !== "host") throw new TypeError(`machine: bad driver for ${c.bdf}`);
      if (!Number.isInteger(c.iommuGroup) || c.iommuGroup < 0)
        throw new TypeError(`machine: bad iommuGroup for ${c.bdf}`);
      seen.add(c.bdf);
      const full: Required<PciFunctionConfig> = { coherent: false, pasid: false, ...c };
      const hw =
        c.vendor === EDU_VENDOR && c.device === EDU_DEVICE
          ? new EduDevice(c.bdf, timers)
          : c.vendor === DSA_VENDOR && c.device === DSA_DEVICE
            ? new DsaDevice(c.bdf, timers)
            : new GenericPciDevice(c.bdf, c.vendor, c.device, barAddr);
      if (hw instanceof EduDevice) hw.cfg.setUint32(0x10, barAddr >>> 0, true);
      if (hw instanceof DsaDevice) {
        // 64-bit memory BARs 0 and 2 (type bits 0b100)
        hw.cfg.setUint32(0x10, (barAddr | 0x4) >>> 0, true);
        hw.cfg.setUint32(0x18, ((barAddr + 0x10000) | 0x4) >>> 0, true);
      }
      barAddr += 0x100000;
      this.devices.push({ config: full, hw });
    }
  }

  byBdf(bdf: string): MachineDevice | null {
    return this.devices.find((d) => d.config.bdf === bdf) ?? null;
  }
}
