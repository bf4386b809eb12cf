// The selftest's looks into a mock domain and into user pages (drivers/iommu/iommufd/
// selftest.c): MD_CHECK_MAP (iommufd_test_md_check_pa()), MD_CHECK_REFS
// (iommufd_test_md_check_refs()), DIRTY (iommufd_test_dirty()) and MD_CHECK_IOTLB
// (iommufd_test_md_check_iotlb()).
//
// A user page is found as get_user_pages_fast() finds it (userPage(): mm.pageAt(), the Page
// behind a mapping, faulted in; EFAULT otherwise) and compared by identity, its physical
// address being its pfn. Its FOLL_PIN count (page_ref_count() /
// GUP_PIN_COUNTING_BIAS in the kernel) is Page.pins; the twin has no compound pages.

import { EFAULT, EINVAL, EIO, ENOENT, EOVERFLOW } from "../uapi/errno.js";
import { MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, test_dirty } from "../uapi/iommufd_test.js";
import { type Page, PAGE_SIZE, PROT_NONE } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import type { IommufdHwptPaging } from "./hw_pagetable.js";
import { uaddr } from "./pages.js";
import { type TestUcmd, setMember } from "./selftest_cmd.js";
import type { IommufdHwptNested } from "./hwpt_nested.js";
import { MOCK_IO_PAGE_SIZE, MOCK_PFN_DIRTY_IOVA, MockDomain } from "./selftest_mock_domain.js";
import { MockNestedDomain } from "./selftest_mock_nested.js";

const U64_MAX = 0xffffffffffffffffn;
const PAGE = BigInt(PAGE_SIZE);
const CHUNK = BigInt(MOCK_IO_PAGE_SIZE);

/**
 * get_user_pages_fast(addr, 1, 0, pages): the page at a user address, or -EFAULT. The page
 * comes from mm.pageAt() (a bridged process's mm answers it from the client's own mappings);
 * a twin VMA of device memory or without access refuses, as gup does.
 */
export function userPage(proc: Process, addr: bigint): Page | number {
  const a = uaddr(addr);
  const v = proc.mm.find(a);
  if (v && (v.io || v.prot === PROT_NONE)) return -EFAULT;
  return proc.mm.pageAt(a) ?? -EFAULT;
}

/** get_md_pagetable(): a HWPT_PAGING whose domain is a mock domain (short-term reference). */
export function getMdPagetable(u: TestUcmd, id: number): { hwpt: IommufdHwptPaging; mock: MockDomain } | number {
  const hwpt = u.ictx.objects.get<IommufdHwptPaging>(id, "hwpt_paging");
  if (!hwpt) return -ENOENT;
  if (!(hwpt.domain instanceof MockDomain)) {
    hwpt.put();
    return -EINVAL;
  }
  return { hwpt, mock: hwpt.domain };
}

/** iommufd_test_md_check_pa(): each 2 KiB IOVA chunk maps the memory now behind uptr. */
export function mdCheckMap(u: TestUcmd, m: { iova: bigint; length: bigint; uptr: bigint }): number {
  if (m.iova % CHUNK || m.length % CHUNK || m.uptr % CHUNK || m.uptr + m.length > U64_MAX) return -EINVAL;
  const md = getMdPagetable(u, u.cmd.id);
  if (typeof md === "number") return md;
  try {
    let { iova, uptr } = m;
    for (let length = m.length; length; length -= CHUNK) {
      const page = userPage(u.proc, uptr & ~(PAGE - 1n));
      if (typeof page === "number") return page;
      const e = md.mock.pfns.get(Number(iova / CHUNK));
      if (!e || MockDomain.paddrOf(e) !== page.pfn * 2 + Number((uptr % PAGE) / CHUNK)) return -EINVAL;
      iova += CHUNK;
      uptr += CHUNK;
    }
    return 0;
  } finally {
    md.hwpt.put();
  }
}

/** iommufd_test_md_check_refs(): every page of the range is pinned exactly `refs` times. */
export function mdCheckRefs(u: TestUcmd, m: { length: bigint; uptr: bigint; refs: number }): number {
  if (m.length % PAGE || m.uptr % PAGE || m.uptr + m.length > U64_MAX) return -EINVAL;
  let uptr = m.uptr;
  for (let length = m.length; length; length -= PAGE) {
    const page = userPage(u.proc, uptr);
    if (typeof page === "number") return page;
    if (page.pins !== m.refs) return -EIO;
    uptr += PAGE;
  }
  return 0;
}

/**
 * iommufd_test_dirty(): mark dirty the mock PTEs of the pages whose bit is set in the user
 * bitmap; out_nr_dirty counts the PTEs found. The PTE index is IOVA / page_size, as the
 * kernel computes it.
 */
export function mdDirty(u: TestUcmd, m: ReturnType<typeof test_dirty.decode>): number {
  const { page_size: ps, length, iova } = m;
  if (!ps || !length || iova % ps || length % ps || !m.uptr) return -EINVAL;
  const max = length / ps;
  if (max > 16n * 1024n * 1024n * 8n) return -EOVERFLOW;
  const md = getMdPagetable(u, u.cmd.id);
  if (typeof md === "number") return md;
  try {
    if (!md.mock.dirtyTrack) return -EINVAL;
    const bits = u.proc.mm.copyFromUser(uaddr(m.uptr), Number((max + 7n) / 8n));
    if (typeof bits === "number") return -EFAULT;
    let count = 0;
    for (let i = 0n; i < max; i++) {
      if (!((bits[Number(i >> 3n)]! >> Number(i & 7n)) & 1)) continue;
      const e = md.mock.pfns.get(Number((iova + i * ps) / ps));
      if (!e) continue;
      e.flags |= MOCK_PFN_DIRTY_IOVA;
      count++;
    }
    m.out_nr_dirty = BigInt(count);
    setMember(u, test_dirty, m);
    return u.respond();
  } finally {
    md.hwpt.put();
  }
}

/** iommufd_test_md_check_iotlb(): IOTLB entry `id` of a nested mock HWPT holds `iotlb`. */
export function mdCheckIotlb(u: TestUcmd, m: { id: number; iotlb: number }): number {
  const hwpt = u.ictx.objects.get<IommufdHwptNested>(u.cmd.id, "hwpt_nested");
  if (!hwpt) return -ENOENT;
  const d = hwpt.domain;
  hwpt.put();
  if (!(d instanceof MockNestedDomain)) return -EINVAL;
  return m.id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX || d.iotlb[m.id] !== m.iotlb ? -EINVAL : 0;
}
