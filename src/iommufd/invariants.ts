// iommufd invariants, recomputed from the real holders (the selftests' closing check, and
// more): every iopt_pages' kref equals the areas that point at it; every pinned index has
// as many users as filled areas cover it, each holding one FOLL_PIN on its page; areas are
// filled exactly when their IOAS has a domain; each process's pinned_vm (and, per mode,
// user/mm locked_vm) equals what its pages have charged; area trees are ordered, disjoint
// and their B+tree keys right; object ids are the ids they are stored under.

import type { Kernel } from "../kernel/kernel.js";
import type { Process } from "../kernel/process.js";
import type { MmStruct } from "../kernel/mm.js";
import type { IoptArea } from "./io_pagetable.js";
import { IommufdIoas } from "./ioas.js";
import { type IommufdCtx, iommufdState } from "./main.js";
import { IommufdDevice } from "./device.js";
import { IommufdHwptPaging } from "./hw_pagetable.js";
import { IommufdHwptNested } from "./hwpt_nested.js";
import { accessRangesOf } from "./access.js";
import { IommufdSelftest } from "./selftest_idev.js";
import { mockDevIds } from "./selftest_mock_dev.js";
import { MOCK_IO_PAGE_SIZE, MockDomain } from "./selftest_mock_domain.js";
import { IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, type IoptPages } from "./pages.js";

/** The pages iommufd has charged to mm->locked_vm (RLIMIT_MODE 1): locked_vm is shared with
 * type1 and mlock, so each checks only its own share. */
export function iommufdMmLockedVm(k: Kernel, mm: MmStruct): number {
  const st = iommufdState(k);
  if (!st) return 0;
  const seen = new Set<IoptPages>();
  let n = 0;
  for (const ictx of st.ctxs)
    for (const o of ictx.objects.objects()) {
      if (!(o instanceof IommufdIoas)) continue;
      for (const a of o.iopt.areas.all()) {
        const p = a.pages;
        if (!p || seen.has(p)) continue;
        seen.add(p);
        if (p.accountMode === IOPT_PAGES_ACCOUNT_MM && p.source.mm === mm) n += p.npinned;
      }
    }
  return n;
}

export function iommufdViolations(k: Kernel): string[] {
  const out: string[] = [];
  const st = iommufdState(k);
  if (!st) return out;
  const areasOf = new Map<IoptPages, IoptArea[]>();
  for (const ictx of st.ctxs) {
    for (const o of ictx.objects.objects()) {
      if (ictx.objects.peek(o.id) !== o) out.push(`${o.describe()}: not stored under its id`);
      if (o.dead) out.push(`${o.describe()}: released but still in the table`);
      if (!(o instanceof IommufdIoas)) continue;
      const iopt = o.iopt;
      out.push(...iopt.areas.violations(o.describe()));
      for (const a of iopt.areas.all()) {
        if (a.pages === null) {
          out.push(`${o.describe()}: area 0x${a.start.toString(16)} without pages between syscalls`);
          continue;
        }
        if (a.filled !== iopt.domains.length > 0)
          out.push(
            `${o.describe()}: area 0x${a.start.toString(16)} filled=${a.filled} with ${iopt.domains.length} domains`,
          );
        const l = areasOf.get(a.pages);
        if (l) l.push(a);
        else areasOf.set(a.pages, [a]);
      }
    }
  }
  const charged = new Map<Process, { user: number; mm: number; pinned: number }>();
  for (const [pages, areas] of areasOf) {
    if (pages.users !== areas.length)
      out.push(`iopt_pages 0x${pages.uptr.toString(16)}: users=${pages.users} but ${areas.length} areas`);
    const want = new Map<number, number>();
    for (const a of areas) {
      if (!a.filled) continue;
      for (let i = a.index; i <= a.lastIndex; i++) want.set(i, (want.get(i) ?? 0) + 1);
    }
    for (const [first, last] of accessRangesOf(pages))
      for (let i = first; i <= last; i++) want.set(i, (want.get(i) ?? 0) + 1);
    const have = pages.pinned ?? new Map();
    if (have.size !== want.size)
      out.push(`iopt_pages 0x${pages.uptr.toString(16)}: ${have.size} pinned, ${want.size} wanted`);
    for (const [i, pp] of have) {
      if (want.get(i) !== pp.users)
        out.push(`iopt_pages 0x${pages.uptr.toString(16)} index ${i}: ${pp.users} users, ${want.get(i) ?? 0} wanted`);
      if (pp.page.pins < 1) out.push(`iopt_pages 0x${pages.uptr.toString(16)} index ${i}: page not pinned`);
    }
    let c = charged.get(pages.source);
    if (!c) charged.set(pages.source, (c = { user: 0, mm: 0, pinned: 0 }));
    c.pinned += pages.npinned;
    if (pages.accountMode === IOPT_PAGES_ACCOUNT_USER) c.user += pages.npinned;
    if (pages.accountMode === IOPT_PAGES_ACCOUNT_MM) c.mm += pages.npinned;
  }
  for (const p of k.processes.values()) {
    const c = charged.get(p) ?? { user: 0, mm: 0, pinned: 0 };
    if (p.mm.pinnedVm !== c.pinned) out.push(`pid ${p.pid}: pinned_vm=${p.mm.pinnedVm}, iommufd pins ${c.pinned}`);
  }
  for (const ictx of st.ctxs) out.push(...deviceViolations(ictx));
  // every mock device belongs to a live selftest object, and each such object has its device
  const mockIds = new Set<number>();
  for (const ictx of st.ctxs)
    for (const o of ictx.objects.objects()) if (o instanceof IommufdSelftest) mockIds.add(o.mockDev!.mockId);
  const alive = mockDevIds(k);
  if (alive.length !== mockIds.size || alive.some((id) => !mockIds.has(id)))
    out.push(`mock devices ${alive.join(",")} alive, selftest objects hold ${[...mockIds].join(",")}`);
  // user->locked_vm is iommufd's alone (type1 charges mm->locked_vm)
  const byUser = new Map<number, number>();
  for (const [p, c] of charged) byUser.set(p.user.uid, (byUser.get(p.user.uid) ?? 0) + c.user);
  for (const u of k.users.values())
    if (u.lockedVm !== (byUser.get(u.uid) ?? 0))
      out.push(`uid ${u.uid}: locked_vm=${u.lockedVm}, iommufd charged ${byUser.get(u.uid) ?? 0}`);
  return out;
}

/** Groups, devices and HWPTs of one context agree with each other and with the IOMMU core. */
function deviceViolations(ictx: IommufdCtx): string[] {
  const out: string[] = [];
  const objs = ictx.objects.objects();
  for (const [gid, ig] of ictx.groups) {
    const devs = objs.filter((o) => o instanceof IommufdDevice && o.igroup === ig);
    if (ig.refs !== devs.length) out.push(`${ictx.name} iommufd_group ${gid}: refs=${ig.refs}, ${devs.length} devices`);
    if (ig.hwpt) {
      if (ig.group.domain !== ig.hwpt.domain)
        out.push(
          `${ictx.name} iommufd_group ${gid}: attached to ${ig.hwpt.describe()} but the group is in ${ig.group.domain.describe()}`,
        );
      for (const d of ig.devices)
        if (!ig.hwpt.holders.get(d.attachedHolder))
          out.push(`${d.describe()}: attached without holding ${ig.hwpt.describe()}`);
    } else {
      if (ig.devices.length) out.push(`${ictx.name} iommufd_group ${gid}: devices attached, no hwpt`);
      // no HWPT: a group iommufd owns must sit in its blocking domain, or its devices' DMA
      // still reaches whatever the last domain mapped (DMA after detach)
      const g = ig.group;
      if (g.owner !== null && g.domain !== g.blockingDomain)
        out.push(
          `${ictx.name} iommufd_group ${gid}: no hwpt attached but DMA goes through ${g.domain.describe()}, not blocked`,
        );
    }
  }
  for (const o of objs) {
    if (o instanceof IommufdHwptNested) {
      if (!o.parent.holders.get(`nested hwpt ${o.id}`)) out.push(`${o.describe()}: does not hold its parent`);
      if (o.fault && !o.fault.holders.get(`hwpt ${o.id}`)) out.push(`${o.describe()}: does not hold its fault`);
    }
    if (!(o instanceof IommufdHwptPaging)) continue;
    const iopt = o.ioas.iopt;
    if (o.inList !== o.ioas.hwptList.includes(o) || o.inList !== iopt.domains.includes(o.adapter))
      out.push(
        `${o.describe()}: on the IOAS list ${o.inList}, domain in the io_pagetable ${iopt.domains.includes(o.adapter)}`,
      );
    if (!o.ioas.holders.get(`hwpt ${o.id}`)) out.push(`${o.describe()}: does not hold its IOAS`);
    if (o.domain instanceof MockDomain) {
      out.push(...mockDomainViolations(o.describe(), o.domain, o.inList ? iopt.areas.all() : []));
      continue;
    }
    // the domain maps exactly the pinned pages of the filled areas
    let want = 0;
    for (const a of iopt.areas.all()) {
      if (!a.filled || !a.pages) continue;
      want += a.lastIndex - a.index + 1;
      for (let i = a.index; i <= a.lastIndex; i++) {
        const pte = o.domain.lookup(a.start - BigInt(a.pageOffset) + BigInt((i - a.index) * 4096));
        if (!pte || pte.page !== a.pages.pageAt(i)) {
          out.push(`${o.describe()}: IOVA 0x${a.start.toString(16)} page ${i} not mapped to its pinned page`);
          break;
        }
      }
    }
    if (o.inList && o.domain.mappedPages !== want)
      out.push(`${o.describe()}: domain maps ${o.domain.mappedPages} pages, the areas ${want}`);
  }
  return out;
}

/** A mock domain's pfn xarray holds exactly the 2 KiB chunks of the filled areas, each the
 * chunk of the area's pinned page (mock_domain_free() WARNs on a non-empty one). */
function mockDomainViolations(name: string, d: MockDomain, areas: readonly IoptArea[]): string[] {
  let want = 0;
  for (const a of areas) {
    if (!a.filled || !a.pages) continue;
    const n = Number(a.length) / MOCK_IO_PAGE_SIZE;
    want += n;
    const first = Number(a.start) / MOCK_IO_PAGE_SIZE;
    for (let i = 0; i < n; i++) {
      const byte = a.startByte + i * MOCK_IO_PAGE_SIZE;
      const e = d.pfns.get(first + i);
      if (!e || e.page !== a.pages.pageAt(Math.floor(byte / 4096)) || e.half !== (byte % 4096) / MOCK_IO_PAGE_SIZE) {
        return [`${name}: mock IOVA 0x${(BigInt(first + i) * 2048n).toString(16)} not mapped to its pinned page`];
      }
    }
  }
  return d.pfns.size === want ? [] : [`${name}: mock domain holds ${d.pfns.size} entries, the areas ${want}`];
}
