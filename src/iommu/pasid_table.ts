// The IOMMU core's PASID attachments (drivers/iommu/iommu.c: group->pasid_array,
// iommu_attach_device_pasid(), iommu_replace_device_pasid(), iommu_detach_device_pasid()):
// per IOMMU group, PASID -> the domain a PASID-tagged DMA of its devices goes through. The
// RID's own DMA (no PASID) keeps using group.domain. A device's PASID DMA with no entry at
// that PASID is refused and logged like any other DMAR fault (reason "no-pasid-domain").

import { EBUSY, EINVAL, ENODEV, EOPNOTSUPP } from "../uapi/errno.js";
import type { IommuDomain } from "./domain.js";
import type { IommuDevice, IommuGroup } from "./iommu.js";
import { SideTable } from "../kernel/side_table.js";

/** dev->iommu->max_pasids for a PASID-capable device (20-bit PASIDs) */
export const MAX_PASIDS = 1 << 20;

const tables = new SideTable<IommuGroup, Map<number, IommuDomain>>();

function table(g: IommuGroup): Map<number, IommuDomain> {
  let t = tables.get(g);
  if (!t) tables.set(g, (t = new Map()));
  return t;
}

/** dev->iommu->max_pasids: 0 for a device (or IOMMU) without PASID support */
export function maxPasids(dev: IommuDevice): number {
  return dev.capable("pasid") ? MAX_PASIDS : 0;
}

function checkPasid(dev: IommuDevice, domain: IommuDomain, pasid: number): number {
  if (domain.type !== "paging") return -EOPNOTSUPP; // no set_dev_pasid for other domain types
  if (!dev.group.devices.includes(dev)) return -ENODEV;
  if (pasid === 0) return -EINVAL; // IOMMU_NO_PASID
  for (const d of dev.group.devices) if (pasid >= maxPasids(d)) return -EINVAL;
  return 0;
}

/** iommu_attach_device_pasid(): EBUSY when the PASID already has a domain. */
export function iommuAttachDevicePasid(domain: IommuDomain, dev: IommuDevice, pasid: number): number {
  const rc = checkPasid(dev, domain, pasid);
  if (rc) return rc;
  const t = table(dev.group);
  if (t.has(pasid)) return -EBUSY;
  t.set(pasid, domain);
  return 0;
}

/** iommu_replace_device_pasid(): the PASID must be attached; the switch is atomic. */
export function iommuReplaceDevicePasid(domain: IommuDomain, dev: IommuDevice, pasid: number): number {
  const rc = checkPasid(dev, domain, pasid);
  if (rc) return rc;
  const t = table(dev.group);
  if (!t.has(pasid)) return -EINVAL;
  t.set(pasid, domain);
  return 0;
}

/** iommu_detach_device_pasid(): the PASID's DMA is blocked again. */
export function iommuDetachDevicePasid(domain: IommuDomain, dev: IommuDevice, pasid: number): void {
  const t = table(dev.group);
  if (t.get(pasid) !== domain) throw new Error(`PASID ${pasid} of ${dev.bdf} is not attached to ${domain.describe()}`);
  t.delete(pasid);
}

/** The domain attached at `pasid` for the device's group, or null. */
export function pasidDomain(dev: IommuDevice, pasid: number): IommuDomain | null {
  return tables.get(dev.group)?.get(pasid) ?? null;
}

/** Every PASID attachment of a group (invariants, reports). */
export function groupPasids(g: IommuGroup): ReadonlyMap<number, IommuDomain> {
  return tables.get(g) ?? new Map();
}
