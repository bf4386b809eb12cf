// PASID attachments of iommufd devices, as upstream added them after 6.12 (Yi Liu's series,
// drivers/iommu/iommufd/pasid.c: iommufd_device_pasid_attach(), _replace(), _detach(), over
// iommufd_device_change_pt(); merged in 6.15). API for VFIO (src/vfio/iommufd.ts):
//
//   iommufdDevicePasidAttach(idev, pasid, ptId)    attach {device, pasid} to an IOAS (an
//                                                  automatic domain) or a HWPT: { rc, ptId }
//   iommufdDevicePasidReplace(idev, pasid, ptId)   the same for an attached PASID
//   iommufdDevicePasidDetach(idev, pasid)          undo the attach
//   iommufdDevicePasids(idev)                      the attached PASIDs
//
// Each attached PASID holds its HWPT and the device. The IOMMU core's PASID table
// (src/iommu/pasid_table.ts) decides what the device's PASID-tagged DMA reaches.
//
// THE TWIN'S PROPOSAL, not upstream code: an attach also authorizes the PASID for ENQCMD in
// the table of the process that owns the iommufd (src/kernel/pasid.ts), when the PASID can be
// claimed in the host PASID space for this context (src/iommu/global_pasid.ts: a PASID another
// context holds is attached as upstream does, but not authorized). Detach, and the release of
// the device or the context, take it back out.
//
// As upstream, a PASID attachment reserves no IOVA regions (iommufd_hw_pagetable_attach()
// does that for IOMMU_NO_PASID only). Not modelled: IOMMU_HWPT_ALLOC_PASID /
// hwpt->pasid_compat (every paging HWPT is taken as PASID-compatible).

import { EINVAL } from "../uapi/errno.js";
import { pasidAuthAdd, pasidAuthRemove } from "../kernel/pasid.js";
import { globalPasids } from "../iommu/global_pasid.js";
import { iommuAttachDevicePasid, iommuDetachDevicePasid, iommuReplaceDevicePasid } from "../iommu/pasid_table.js";
import type { KGen } from "../kernel/sched.js";
import { type AttachFn, changePtPath, type IommufdDevice, type IommufdHwpt } from "./device.js";
import { hwptPut } from "./hw_pagetable.js";
import { SideTable } from "../kernel/side_table.js";

interface PasidAttach {
  hwpt: IommufdHwpt;
  /** authorized for ENQCMD in the owner's table (the twin's proposal) */
  authorized: boolean;
}

/** idev->pasid_hwpts */
const attachments = new SideTable<IommufdDevice, Map<number, PasidAttach>>();

function pasidHwpts(idev: IommufdDevice): Map<number, PasidAttach> {
  let m = attachments.get(idev);
  if (!m) attachments.set(idev, (m = new Map()));
  return m;
}

const holder = (idev: IommufdDevice, pasid: number) => `pasid ${pasid} of device ${idev.id}`;

/** iommufd_device_pasid_do_attach() */
function doAttach(pasid: number): AttachFn {
  return (idev, hwpt) => {
    const m = pasidHwpts(idev);
    const cur = m.get(pasid);
    if (cur) return cur.hwpt === hwpt ? null : -EINVAL;
    const rc = iommuAttachDevicePasid(hwpt.domain, idev.dev, pasid);
    if (rc) return rc;
    m.set(pasid, { hwpt, authorized: authorize(idev, pasid) });
    hwpt.get(holder(idev, pasid));
    idev.get(holder(idev, pasid));
    return null;
  };
}

/** iommufd_device_pasid_do_replace(): the HWPT left behind (the caller puts it) */
function doReplace(pasid: number): AttachFn {
  return (idev, hwpt) => {
    const cur = pasidHwpts(idev).get(pasid);
    if (!cur) return -EINVAL;
    if (cur.hwpt === hwpt) return null;
    const rc = iommuReplaceDevicePasid(hwpt.domain, idev.dev, pasid);
    if (rc) return rc;
    const old = cur.hwpt;
    cur.hwpt = hwpt;
    hwpt.get(holder(idev, pasid));
    // changePtPath() puts the HWPT left behind under the device's attach holder name
    old.handOver(holder(idev, pasid), idev.attachedHolder);
    return old;
  };
}

/** The twin's proposal: claim the PASID for this context and add it to the owner's table. */
function authorize(idev: IommufdDevice, pasid: number): boolean {
  const owner = idev.ictx.owner;
  if (!owner || owner.exited) return false;
  if (globalPasids(idev.k).claim(pasid, idev.ictx) < 0) return false;
  pasidAuthAdd(idev.k, owner, pasid);
  return true;
}

function deauthorize(idev: IommufdDevice, pasid: number): void {
  globalPasids(idev.k).put(pasid, idev.ictx);
  if (idev.ictx.owner) pasidAuthRemove(idev.k, idev.ictx.owner, pasid);
}

// Paths, as the RID's attach and detach are: they take the IOAS's locks (an automatic
// domain's HWPT is made or destroyed under them) and wait there for whoever holds them.

/** iommufd_device_pasid_attach() */
export function* iommufdDevicePasidAttach(
  idev: IommufdDevice,
  pasid: number,
  ptId: number,
): KGen<{ rc: number; ptId: number }> {
  return yield* changePtPath(idev, ptId, doAttach(pasid));
}

/** iommufd_device_pasid_replace() */
export function* iommufdDevicePasidReplace(
  idev: IommufdDevice,
  pasid: number,
  ptId: number,
): KGen<{ rc: number; ptId: number }> {
  return yield* changePtPath(idev, ptId, doReplace(pasid));
}

/** iommufd_device_pasid_detach() */
export function* iommufdDevicePasidDetach(idev: IommufdDevice, pasid: number): KGen<void> {
  const m = pasidHwpts(idev);
  const a = m.get(pasid);
  if (!a) throw idev.k.bug("iommufd", `detach of PASID ${pasid} not attached to ${idev.describe()}`);
  m.delete(pasid);
  iommuDetachDevicePasid(a.hwpt.domain, idev.dev, pasid);
  if (a.authorized) deauthorize(idev, pasid);
  yield* hwptPut(idev.ictx, a.hwpt, holder(idev, pasid));
  idev.put(holder(idev, pasid));
}

/** The PASIDs attached on a device, sorted. */
export function iommufdDevicePasids(idev: IommufdDevice): number[] {
  return [...(attachments.get(idev)?.keys() ?? [])].sort((a, b) => a - b);
}

/** The HWPT at `pasid`, or null. */
export function iommufdDevicePasidHwpt(idev: IommufdDevice, pasid: number): IommufdHwpt | null {
  return attachments.get(idev)?.get(pasid)?.hwpt ?? null;
}
