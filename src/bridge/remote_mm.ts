// A bridged client's address space: its own memory, reached where it lives.
//
// copy_from_user/copy_to_user read and write the client's pages with process_vm_readv/writev;
// pin_user_pages checks each page against the client's mappings (/proc/PID/maps: present, and
// writable for a write pin, as check_vma_flags() wants) and hands the IOMMU a RemotePage per
// page, so device DMA reads and writes the very bytes the client sees. Device mappings (an
// mmap of a BAR) stay the twin's own VMAs, with io hooks, as in MmStruct: the client's page
// there is PROT_NONE and each access comes back as an MMIO request (native/mmio.c).
//
// The user-memory layer (MmStruct.readStruct/writeStruct/getU32) is the same one the twin's own
// processes use: the client's memory is never one of this mm's anonymous pages, so every struct
// takes the layer's copying path: one process_vm_readv/writev into the staging buffer, whose
// DataView is made once, and the struct's compiled codec decodes or encodes it there in place.
//
// One difference from Linux, documented in docs/bridge.md: a pin holds the client's page by
// address, not the physical page. After the client unmaps or replaces the memory (or exits)
// the pinned page reads what is now there, or faults; Linux would keep the old page alive.

import { EFAULT, EINVAL } from "../uapi/errno.js";
import { MmStruct, Page, PAGE_SIZE, PROT_READ, PROT_WRITE, TASK_SIZE } from "../kernel/mm.js";
import { readFileSync } from "node:fs";
import { remoteCopy } from "./ffi.js";

const NO_DATA = new Uint8Array(0);

/** The object behind a shared mapping (dev:inode, /proc/PID/maps) and the page's offset in it. */
interface SharedBacking {
  readonly obj: string;
  readonly off: number;
}

/** Bridged frames live above the twin's own (which count up from 0x100). */
let nextRemotePfn = 2 ** 40;
const HUGE_PAGES = 512; // a 2 MiB huge page in 4 KiB frames

/** A page of a bridged client: its bytes are the client's, at `addr`. */
export class RemotePage extends Page {
  constructor(
    public mm: RemoteMm,
    public addr: number,
    pfn: number,
    /** set for MAP_SHARED memory: another process mapping the object reaches the same page */
    readonly shared: SharedBacking | null,
  ) {
    super(NO_DATA, pfn);
  }

  override load(off: number, n: number, out: Uint8Array, at: number): boolean {
    return this.mm.transfer(false, this.addr + off, out, at, n);
  }

  override store(off: number, n: number, src: Uint8Array, at: number): boolean {
    return this.mm.transfer(true, this.addr + off, src, at, n);
  }
}

interface Mapping {
  start: number;
  end: number;
  prot: number;
  /** dev:inode of a MAP_SHARED mapping of an object, and its file offset at `start` */
  shared: { obj: string; off: number } | null;
  /** MAP_HUGETLB memory: its frames are contiguous within each 2 MiB page */
  huge: boolean;
}

/** Every live bridged address space, to find another holder of a shared page. */
const live = new Set<RemoteMm>();
/** The pages of shared objects, by "dev:inode@offset". */
const sharedPages = new Map<string, RemotePage>();
/** The first frame of each huge page, by its owner and index. */
const hugeBase = new Map<string, number>();

/** A frame number: fresh, or within the huge page holding `at` (contiguous there, as the
 * 2 MiB of one huge page are). */
function pfnFor(huge: boolean, owner: string, at: number): number {
  if (!huge) return nextRemotePfn++;
  const key = owner + Math.floor(at / (HUGE_PAGES * PAGE_SIZE));
  let base = hugeBase.get(key);
  if (base === undefined) {
    base = Math.ceil(nextRemotePfn / HUGE_PAGES) * HUGE_PAGES;
    nextRemotePfn = base + HUGE_PAGES;
    hugeBase.set(key, base);
  }
  return base + (Math.floor(at / PAGE_SIZE) % HUGE_PAGES);
}

export class RemoteMm extends MmStruct {
  /** set at process exit: the memory is gone, every access faults */
  dead = false;
  /** page identity (struct page) by page address, for pins and MD_CHECK_MAP */
  private readonly pageCache = new Map<number, RemotePage>();

  constructor(readonly pid: number) {
    super();
    live.add(this);
  }

  /** Copy between the client and buf[at, at + n); false on any fault. */
  transfer(write: boolean, addr: number, buf: Uint8Array, at: number, n: number): boolean {
    if (n === 0) return true;
    if (this.dead || !(addr >= 0) || addr + n > TASK_SIZE) return false;
    return remoteCopy(this.pid, write, addr, buf, at, n) === n;
  }

  private overlapsDevice(addr: number, len: number): boolean {
    for (const v of this.vmas) if (v.start < addr + len && addr < v.end) return true;
    return false;
  }

  override copyFromUserInto(dst: Uint8Array, addr: number, len: number): boolean {
    if (this.vmas.length !== 0 && this.overlapsDevice(addr, len)) return super.copyFromUserInto(dst, addr, len);
    return this.transfer(false, addr, dst, 0, len);
  }

  override copyToUser(addr: number, bytes: Uint8Array, len = bytes.length): number {
    if (this.vmas.length !== 0 && this.overlapsDevice(addr, len)) return super.copyToUser(addr, bytes, len);
    return this.transfer(true, addr, bytes, 0, len) ? 0 : -EFAULT;
  }

  /** clear_user() of the client's own memory: zeros written through process_vm_writev, as
   * the kernel touches every page of it (the twin's sparse clear knows only its own pages). */
  override clearUser(addr: number, len: number): number {
    const zeros = new Uint8Array(Math.min(len, 1 << 20));
    for (let off = 0; off < len; off += zeros.length) {
      const rc = this.copyToUser(addr + off, zeros, Math.min(zeros.length, len - off));
      if (rc < 0) return rc;
    }
    return 0;
  }

  /** /proc/PID/maps as read during the current request (the client is in the call) */
  private mapsCache: Mapping[] | null = null;

  /** A new request: the client may have mapped or unmapped memory since the last one. */
  newRequest(): void {
    this.mapsCache = null;
  }

  /** The client's mappings now, sorted (what /proc/PID/maps says), read once per request. */
  mappings(): Mapping[] {
    if (this.dead) return [];
    return (this.mapsCache ??= this.readMaps());
  }

  /** /proc/PID/maps read now, whatever the cache holds. */
  readMaps(): Mapping[] {
    let text: string;
    try {
      text = readFileSync(`/proc/${this.pid}/maps`, "latin1");
    } catch {
      return [];
    }
    const out: Mapping[] = [];
    for (const line of text.split("\n")) {
      const dash = line.indexOf("-");
      const sp = line.indexOf(" ");
      if (dash < 0 || sp < 0) continue;
      const perms = line.slice(sp + 1, sp + 5);
      const start = parseInt(line.slice(0, dash), 16);
      // the vsyscall page sits above user space; nothing pins it
      if (start >= TASK_SIZE) continue;
      // "start-end perms offset dev inode path"
      const f = line.slice(sp + 6).split(/\s+/);
      const ino = f[2] ?? "0";
      out.push({
        start,
        end: parseInt(line.slice(dash + 1, sp), 16),
        prot: (perms[0] === "r" ? PROT_READ : 0) | (perms[1] === "w" ? PROT_WRITE : 0),
        shared: perms[3] === "s" && ino !== "0" ? { obj: `${f[1]}:${ino}`, off: parseInt(f[0] ?? "0", 16) } : null,
        huge: line.includes("/anon_hugepage"),
      });
    }
    return out;
  }

  /**
   * The struct page behind addr. Private memory: one per (this mm, address). MAP_SHARED
   * memory: one per (object, offset), the same page for every process mapping the object,
   * as in Linux (a fork's child and its parent share the pages of a MAP_SHARED buffer).
   */
  private page(addr: number, m: Mapping): RemotePage {
    if (m.shared) {
      const off = m.shared.off + (addr - m.start);
      const key = `${m.shared.obj}@${off}`;
      let p = sharedPages.get(key);
      if (p) {
        if (p.mm.dead) {
          p.mm = this;
          p.addr = addr;
        }
        return p;
      }
      p = new RemotePage(this, addr, pfnFor(m.huge, `${m.shared.obj}#`, off), { obj: m.shared.obj, off });
      sharedPages.set(key, p);
      return p;
    }
    let p = this.pageCache.get(addr);
    if (!p) this.pageCache.set(addr, (p = new RemotePage(this, addr, pfnFor(m.huge, `${this.pid}:`, addr), null)));
    return p;
  }

  override pinPages(addr: number, npages: number, write: boolean): Page[] | number {
    if (addr % PAGE_SIZE !== 0) return -EINVAL;
    const need = write ? PROT_WRITE : PROT_READ;
    const maps = this.mappings();
    const out: Page[] = [];
    // the first mapping ending above addr (binary search: a VMM has hundreds)
    let lo = 0;
    let hi = maps.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (maps[mid]!.end <= addr) lo = mid + 1;
      else hi = mid;
    }
    let i = lo;
    for (let k = 0; k < npages; k++) {
      const a = addr + k * PAGE_SIZE;
      while (i < maps.length && maps[i]!.end <= a) i++;
      const m = maps[i];
      // device memory (a BAR the twin maps) is VM_IO | VM_PFNMAP: gup refuses it
      if (!m || m.start > a || (m.prot & need) !== need || a + PAGE_SIZE > TASK_SIZE || this.find(a)) {
        for (const p of out) p.pins--;
        return -EFAULT;
      }
      const p = this.page(a, m);
      p.pins++;
      out.push(p);
    }
    return out;
  }

  override pageAt(addr: number): Page | null {
    const a = addr - (addr % PAGE_SIZE);
    for (const m of this.mappings()) if (m.start <= a && a < m.end) return this.find(a) ? null : this.page(a, m);
    return null;
  }

  /**
   * exit_mmap(). Pinned pages of MAP_SHARED memory stay reachable as in Linux (the pin holds
   * the page, and the page is the shared object's): each moves to another live client that
   * maps the same object (the parent of a fork, typically), at its address there. Pinned
   * private pages have no other holder: they fault from now on.
   */
  override exitMmap(): void {
    super.exitMmap();
    this.dead = true;
    live.delete(this);
    this.pageCache.clear();
    for (const key of [...hugeBase.keys()]) if (key.startsWith(`${this.pid}:`)) hugeBase.delete(key);
    const mine = [...sharedPages].filter(([, p]) => p.mm === this);
    if (mine.length === 0) return;
    const others = [...live].map((mm) => ({ mm, maps: mm.readMaps().filter((m) => m.shared) }));
    for (const [key, p] of mine) {
      const s = p.shared!;
      const inside = (m: Mapping) =>
        m.shared!.obj === s.obj && s.off >= m.shared!.off && s.off < m.shared!.off + (m.end - m.start);
      let moved = false;
      for (const o of others) {
        const m = o.maps.find(inside);
        if (!m) continue;
        p.mm = o.mm;
        p.addr = m.start + (s.off - m.shared!.off);
        moved = true;
        break;
      }
      if (!moved && p.pins === 0) sharedPages.delete(key);
    }
  }
}
