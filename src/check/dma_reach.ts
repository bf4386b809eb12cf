// The per-DMA detector (issue 15, docs/invariants.md): every page a device's DMA reached must
// have gone through a domain its owner attached the device to, at an IOVA a live mapping of
// that owner covers, onto the very page that mapping pinned from the mapping process. Owners:
// - vfio_iommu_type1: a container's vfio_domain lists the device's group; the vfio_dma
//   covering the IOVA holds the page at that index (dma->task is the owning process);
// - iommufd: a paging HWPT whose iommufd_group (same context, same IOMMU group) has it
//   attached, or a PASID attach (the PASID table gave the domain); the filled iopt_area
//   covering the IOVA points at pages whose pinned page at that index is the page (the
//   iopt_pages' source process is the owner);
// - the kernel: a group's default domain (the DMA API of a host driver).
// Anything else reached memory it should not: a mapping that survived its unmap, a domain
// left attached after detach (a device without a domain must be blocked), a page unpinned
// under a live translation. Hooked at the IOMMU core's translation (IommuCore.dmaCheck):
// nothing runs while off; the explorer turns it on with poisoning.

import type { Kernel } from "../kernel/kernel.js";
import { type Page, PAGE_SIZE } from "../kernel/mm.js";
import { IommuCore, type IommuDevice } from "../iommu/iommu.js";
import type { IommuDomain } from "../iommu/domain.js";
import { pfnOf, type1Instances } from "../vfio/vfio_iommu_type1.js";
import { type IommufdCtx, iommufdState } from "../iommufd/main.js";
import { IommufdHwptPaging } from "../iommufd/hw_pagetable.js";

const hex = (n: bigint | number) => `0x${n.toString(16)}`;

/** Turn the per-DMA detector on (or off) for kernel k. */
export function setDmaReachCheck(k: Kernel, on: boolean): void {
  IommuCore.of(k).dmaCheck = on
    ? (dev, d, iova, page, write, pasid) => dmaReachViolation(k, dev, d, iova, page, write, pasid)
    : null;
}

/** Why this translation is wrong, or null when an owner of the domain accounts for it. */
export function dmaReachViolation(
  k: Kernel,
  dev: IommuDevice,
  d: IommuDomain,
  iova: bigint,
  page: Page,
  write: boolean,
  pasid: number | undefined,
): string | null {
  const what = `${write ? "write" : "read"} DMA by ${dev.bdf}${pasid !== undefined ? ` pasid ${pasid}` : ""} at iova ${hex(iova)} through ${d.describe()} reached pfn ${page.pfn}`;
  if (pasid === undefined && d === dev.group.defaultDomain) return null; // the kernel's own DMA API
  // vfio_iommu_type1
  for (const iommu of type1Instances(k)) {
    const vd = iommu.domains.find((x) => x.domain === d);
    if (!vd) continue;
    if (!vd.groups.includes(dev.group)) return `${what}, but the container does not have group ${dev.group.id} in it`;
    const dma = iommu.dmaList.find(pfnOf(iova));
    if (!dma) return `${what}, but no vfio_dma of the container covers the iova (a mapping outlived its unmap)`;
    const pg = dma.pages?.[Number((iova - dma.iova) / BigInt(PAGE_SIZE))];
    if (pg !== page)
      return `${what}, but the vfio_dma at ${hex(dma.iova)} of pid ${dma.proc.pid} holds ${pg ? `pfn ${pg.pfn}` : "no page"} there`;
    if (page.pins < 1 && !page.reserved) return `${what}, a page no longer pinned (pid ${dma.proc.pid}'s mapping)`;
    return null;
  }
  // iommufd
  const st = iommufdState(k);
  for (const ictx of st?.ctxs ?? []) {
    const o = hwptOf(ictx, dev, d);
    if (o !== null) {
      if (pasid === undefined && ictx.groups.get(dev.group.id)?.hwpt !== o)
        return `${what}, but ${ictx.name} has not attached group ${dev.group.id} to ${o.describe()} (a device without a domain must be blocked)`;
      const area = o.ioas.iopt.areas.first(iova, iova);
      if (!area || !area.pages || !area.filled)
        return `${what}, but no filled iopt_area of ${o.ioas.describe()} covers the iova (a mapping outlived its unmap)`;
      const idx = Math.floor((area.startByte + Number(iova - area.start)) / PAGE_SIZE);
      const pinned = area.pages.pinned?.get(idx);
      if (!pinned || pinned.page !== page)
        return `${what}, but ${o.ioas.describe()}'s pages of pid ${area.pages.source.pid} hold ${pinned ? `pfn ${pinned.page.pfn}` : "no pinned page"} at index ${idx}`;
      if (page.pins < 1 && !page.reserved) return `${what}, a page no longer pinned (pid ${area.pages.source.pid})`;
      return null;
    }
  }
  return `${what}, a domain no owner (type1 container, iommufd HWPT) has`;
}

/**
 * The paging HWPT of ictx whose domain is d: the one attached to the device's group, even
 * before its creator finalized it (iommufd_device_auto_get_domain() attaches the new domain
 * and fills it from the IOAS, then finalizes the HWPT: DMA in between is the user's), or a
 * finalized one; null when ictx has none.
 */
function hwptOf(ictx: IommufdCtx, dev: IommuDevice, d: IommuDomain): IommufdHwptPaging | null {
  const attached = ictx.groups.get(dev.group.id)?.hwpt;
  if (attached instanceof IommufdHwptPaging && attached.domain === d) return attached;
  for (const o of ictx.objects.objects()) if (o instanceof IommufdHwptPaging && o.domain === d) return o;
  return null;
}
