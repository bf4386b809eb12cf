// A process's user address space (mm/mmap.c, mm/gup.c in miniature).
//
// Addresses are numbers: user space ends at TASK_SIZE (2^47 - 4 KiB on x86-64 with 4-level
// paging), well inside the 2^53 that a double holds exactly. Anything at or above TASK_SIZE
// is not user memory and faults, as access_ok() would have it.
//
// Anonymous memory is a set of Page objects allocated on first touch (zero-filled). A Page is
// the struct page of the model: the IOMMU maps IOVAs to Page objects, so a device's DMA
// writes the very bytes the process reads, and a pinned page outlives an munmap as it does
// in Linux (the pin holds it). Device memory (an mmap of a BAR) is a VMA with io hooks.

import { EEXIST, EFAULT, EINVAL, ENOMEM } from "../uapi/errno.js";
import type { File } from "./fs.js";
import type { EncodeValue, StructDesc } from "../uapi/struct.js";

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const TASK_SIZE = 2 ** 47 - PAGE_SIZE;
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

let nextPfn = 0x100;

/** struct page: 4 KiB of memory with a count of FOLL_PIN pins. Devices and the kernel reach
 * its bytes through load()/store(), so a page whose memory lives elsewhere (a bridged
 * process's own page, src/bridge/remote_mm.ts) is the same kind of object to the IOMMU. */
export class Page {
  pins = 0;
  private dv: DataView | null = null;
  private bytes: Uint8Array | null;
  constructor(
    /** its memory (null: 4 KiB of zeros, allocated on first use) */
    data: Uint8Array | null = null,
    /** the page frame number: unique; a bridged huge page's frames are contiguous */
    readonly pfn = nextPfn++,
  ) {
    this.bytes = data;
  }

  /** its bytes: a page that is only faulted in and pinned (MAP_DMA of untouched memory)
   * never allocates them; the first read or write does */
  get data(): Uint8Array {
    return (this.bytes ??= new Uint8Array(PAGE_SIZE));
  }

  /** out[at, at + n) = this page's bytes [off, off + n); false when the memory is gone */
  load(off: number, n: number, out: Uint8Array, at: number): boolean {
    out.set(this.data.subarray(off, off + n), at);
    return true;
  }

  /** this page's bytes [off, off + n) = src[at, at + n); false when the memory is gone */
  store(off: number, n: number, src: Uint8Array, at: number): boolean {
    this.data.set(src.subarray(at, at + n), off);
    return true;
  }

  /** A pfn with no struct page behind it (is_invalid_reserved_pfn()): not charged as locked. */
  get reserved(): boolean {
    return false;
  }

  /** A DataView over this page's bytes, made on first use and kept (the user-memory layer's
   * structs are decoded and encoded in place through it). Only for pages with their own data. */
  get view(): DataView {
    return (this.dv ??= new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength));
  }
}

const NO_BYTES = new Uint8Array(0);

/** what an anonymous page never touched reads as, through the user-memory layer (read only:
 * a write faults the real page in) */
const ZERO_PAGE_OBJ = new Page(new Uint8Array(PAGE_SIZE), 0);

/**
 * A page of device memory behind a VM_PFNMAP mapping (a BAR mmap'ed from a VFIO device): what
 * vfio_iommu_type1's vaddr_get_pfns() maps through follow_fault_pfn() when pinning fails, for
 * peer-to-peer DMA. A DMA through it is an access to the device's BAR.
 */
export class IoPage extends Page {
  constructor(
    readonly io: VmaIo,
    /** the byte offset into the device region */
    readonly offset: number,
  ) {
    super(NO_BYTES);
  }
  override load(off: number, n: number, out: Uint8Array, at: number): boolean {
    const b = this.io.read(this.offset + off, n);
    if (!b) return false;
    out.set(b, at);
    return true;
  }
  override store(off: number, n: number, src: Uint8Array, at: number): boolean {
    return this.io.write(this.offset + off, src.subarray(at, at + n));
  }
  override get reserved(): boolean {
    return true;
  }
}

/** Device memory behind a VMA (vm_ops of an mmap'ed BAR): reads and writes go to the device. */
export interface VmaIo {
  /** read `len` bytes at `off` into the mapping; null for a bus error (SIGBUS) */
  read(off: number, len: number): Uint8Array | null;
  /** the same into out[at, at + len) without an array of its own (optional: the fast path of
   * a CPU load from device memory; read() serves where it is absent); false for a bus error */
  readInto?(off: number, len: number, out: Uint8Array, at: number): boolean;
  write(off: number, bytes: Uint8Array): boolean;
  /** A 64-byte deferrable memory write tagged with a PASID (what ENQCMD sends): true when the
   * device accepted it, false for retry; absent on memory that takes no such write. */
  enqueue?(off: number, desc: Uint8Array, pasid: number): boolean;
}

export class Vma {
  /** anonymous pages by page index from `start` */
  readonly pages: Map<number, Page> | null;
  constructor(
    public start: number,
    public end: number,
    public prot: number,
    /** set by the file's mmap operation for device memory */
    public io: VmaIo | null = null,
    /** vm_file: a mapping of a file holds a reference to it */
    readonly file: File | null = null,
    /** byte offset into the file/device of `start` */
    public pgoff = 0,
  ) {
    this.pages = io ? null : new Map();
  }

  page(addr: number, create: boolean): Page | null {
    const idx = (addr - this.start) >>> PAGE_SHIFT;
    let p = this.pages!.get(idx);
    if (!p && create) {
      p = new Page();
      this.pages!.set(idx, p);
    }
    return p ?? null;
  }
}

export interface MmapOpts {
  addr?: number;
  prot: number;
  /** MAP_FIXED_NOREPLACE when addr is given (what the oracle's runner uses) */
  io?: VmaIo;
  file?: File;
  pgoff?: number;
}

const BOUNCE = new Uint8Array(64);
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
/** the in-page offset of an address: its low 12 bits. `&` is exact for every safe integer (its
 * ToInt32 keeps the low 32 bits), where `%` on a double above 2^31 takes a slow path. */
const PAGE_LOW = PAGE_SIZE - 1;

/** The copying path's staging buffer for structs (page-crossing, device memory, a bridged
 * client's memory), with its DataView made once; a struct is decoded in place from it. */
const STAGE = new Uint8Array(PAGE_SIZE);
const STAGE_VIEW = new DataView(STAGE.buffer);

/**
 * dst[dstOff..] = src[srcOff, srcOff + n). Small copies (ioctl structs) go byte by byte
 * through a bounce buffer (so views of the same page may overlap, as with set()):
 * subarray() would allocate a view and, on a small fresh Uint8Array, move its bytes off the
 * JS heap (src/uapi/struct.ts), which costs more than the copy.
 */
function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, n: number): void {
  if (srcOff === 0 && n === src.length) {
    // all of src (a caller's struct into a page): set() without a view
    dst.set(src, dstOff);
    return;
  }
  if (n > 64) {
    dst.set(src.subarray(srcOff, srcOff + n), dstOff);
    return;
  }
  for (let i = 0; i < n; i++) BOUNCE[i] = src[srcOff + i]!;
  for (let i = 0; i < n; i++) dst[dstOff + i] = BOUNCE[i]!;
}

export class MmStruct {
  /** sorted by start, non-overlapping */
  readonly vmas: Vma[] = [];
  /** mm->locked_vm in pages (type1 accounting, mlock) */
  lockedVm = 0;
  /** mm->pinned_vm in pages (iommufd's per-mm accounting) */
  pinnedVm = 0;
  private hint = 0x7f0000000000;
  /** called when a VMA holding a file goes away (fput of vm_file) */
  onVmaClose: ((v: Vma) => void) | null = null;

  // The user-memory layer's caches (mmap_lock's view of the last access): the last VMA found,
  // and the last anonymous page reached with the widest access its VMA allows. Any change to
  // the VMAs drops both (invalidate()); pages are only ever added to a live VMA.
  private lastVma: Vma | null = null;
  private lastPageAddr = -1;
  private lastPage: Page | null = null;
  /** PROT_WRITE when lastPage's VMA allows writes, else PROT_READ */
  private lastPageNeed = 0;
  /** the in-page offset of the address userView() last answered for */
  viewOff = 0;

  private invalidate(): void {
    this.lastVma = null;
    this.lastPageAddr = -1;
    this.lastPage = null;
  }

  find(addr: number): Vma | null {
    const last = this.lastVma;
    if (last !== null && addr >= last.start && addr < last.end) return last;
    const m = this.findVma(addr);
    if (m !== null) this.lastVma = m;
    return m;
  }

  private findVma(addr: number): Vma | null {
    const v = this.vmas;
    let lo = 0;
    let hi = v.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = v[mid]!;
      if (addr < m.start) hi = mid - 1;
      else if (addr >= m.end) lo = mid + 1;
      else return m;
    }
    return null;
  }

  /** mmap(2): returns the address or -errno. Lengths round up to pages. */
  mmap(length: number, o: MmapOpts): number {
    if (length === 0) return -EINVAL;
    // a negative length is a size_t near 2^64: PAGE_ALIGN overflows, ENOMEM (mm/mmap.c)
    if (!Number.isSafeInteger(length) || length < 0) return -ENOMEM;
    const len = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    let addr: number;
    if (o.addr !== undefined) {
      addr = o.addr;
      if (addr % PAGE_SIZE !== 0) return -EINVAL;
      if (addr + len > TASK_SIZE || addr < PAGE_SIZE) return -ENOMEM;
      if (this.overlaps(addr, addr + len)) return -EEXIST;
    } else {
      addr = this.hint - len;
      while (this.overlaps(addr, addr + len)) addr -= len;
      if (addr < PAGE_SIZE) return -ENOMEM;
      this.hint = addr;
    }
    const vma = new Vma(addr, addr + len, o.prot, o.io ?? null, o.file ?? null, o.pgoff ?? 0);
    this.invalidate();
    this.insert(vma);
    return addr;
  }

  /** munmap(2): unmaps whole pages of [addr, addr+length), splitting VMAs as needed. */
  munmap(addr: number, length: number): number {
    if (addr % PAGE_SIZE !== 0 || !(length > 0) || addr + length > TASK_SIZE) return -EINVAL;
    const end = addr + Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    this.invalidate();
    const keep: Vma[] = [];
    for (const v of this.vmas) {
      if (v.end <= addr || v.start >= end) {
        keep.push(v);
        continue;
      }
      if (v.start < addr) keep.push(this.slice(v, v.start, addr));
      if (v.end > end) keep.push(this.slice(v, end, v.end));
      if (v.file && this.onVmaClose) {
        // the split halves took their own file references in slice(); drop the original's
        this.onVmaClose(v);
      }
    }
    this.vmas.length = 0;
    this.vmas.push(...keep);
    return 0;
  }

  /** Remove every mapping (exit_mmap). */
  exitMmap(): void {
    this.invalidate();
    const all = this.vmas.splice(0);
    for (const v of all) if (v.file && this.onVmaClose) this.onVmaClose(v);
  }

  /** A part of v as a new VMA sharing its pages (the twin's split_vma). */
  private slice(v: Vma, start: number, end: number): Vma {
    if (v.file) v.file.get("vma");
    const n = new Vma(start, end, v.prot, v.io, v.file, v.pgoff + (start - v.start));
    if (v.pages) {
      const shift = (start - v.start) >>> PAGE_SHIFT;
      for (const [idx, p] of v.pages) {
        const addr = v.start + idx * PAGE_SIZE;
        if (addr >= start && addr < end) n.pages!.set(idx - shift, p);
      }
    }
    return n;
  }

  private overlaps(start: number, end: number): boolean {
    for (const v of this.vmas) if (v.start < end && start < v.end) return true;
    return false;
  }

  private insert(vma: Vma): void {
    let i = 0;
    while (i < this.vmas.length && this.vmas[i]!.start < vma.start) i++;
    this.vmas.splice(i, 0, vma);
  }

  /**
   * Walk [addr, addr+len) calling f(vma, vaddr, chunkOffsetInRequest, chunkLen) per piece
   * that stays within one page; returns false (a fault) at the first hole or when the
   * protection lacks `need`.
   */
  private walk(
    addr: number,
    len: number,
    need: number,
    f: (v: Vma, a: number, off: number, n: number) => boolean,
  ): boolean {
    if (!Number.isSafeInteger(addr) || addr < 0 || len < 0 || addr + len > TASK_SIZE) return false;
    let off = 0;
    let v: Vma | null = null;
    while (off < len) {
      const a = addr + off;
      if (!v || a >= v.end || a < v.start) v = this.find(a);
      if (!v || !accessible(v.prot, need)) return false;
      const n = Math.min(len - off, PAGE_SIZE - (a & PAGE_LOW), v.end - a);
      if (!f(v, a, off, n)) return false;
      off += n;
    }
    return true;
  }

  /**
   * The user-memory layer's fast path: the DataView of the anonymous page that holds all of
   * [addr, addr + len) with `need` allowed, `viewOff` set to addr's offset in it; null when
   * the range is not within one anonymous page (page-crossing, device memory, a hole, a
   * protection fault: the copying path decides those). A read of a page never touched gets
   * a view of zeros that must not be written; a write faults the page in.
   */
  userView(addr: number, len: number, need: number): DataView | null {
    const p = this.userPage(addr, len, need);
    return p === null ? null : p.view;
  }

  /** The device-memory VMA holding all of [addr, addr + len) within one page, `need`
   * allowed: an access that is one chunk of walk(), made without it. */
  private deviceChunk(addr: number, len: number, need: number): Vma | null {
    if (!(len > 0 && addr >= 0 && addr + len <= TASK_SIZE && Number.isSafeInteger(addr))) return null;
    if ((addr & PAGE_LOW) + len > PAGE_SIZE) return null;
    const v = this.find(addr);
    if (v === null || v.io === null || addr + len > v.end || !accessible(v.prot, need)) return null;
    return v;
  }

  /** userView()'s page: the Page (ZERO_PAGE_OBJ for a read of an absent page), or null. */
  private userPage(addr: number, len: number, need: number): Page | null {
    const off = addr & PAGE_LOW;
    // the last page again: an address whose page base is that page's (a user page, so below
    // TASK_SIZE) is an integer in range (a fraction, NaN or anything past 2^53 never equals
    // it), so the range checks below are implied
    if (addr - off === this.lastPageAddr && len > 0 && off + len <= PAGE_SIZE && need <= this.lastPageNeed) {
      this.viewOff = off;
      return this.lastPage;
    }
    return this.userPageLookup(addr, len, need, off);
  }

  /** userPage() past the last page (kept apart so the fast path above stays small enough for
   * V8 to inline into the ioctl paths that call it twice) */
  private userPageLookup(addr: number, len: number, need: number, off: number): Page | null {
    if (!(len > 0 && addr >= 0 && addr + len <= TASK_SIZE && Number.isSafeInteger(addr))) return null;
    if (off + len > PAGE_SIZE) return null;
    const base = addr - off;
    const v = this.find(addr);
    if (v === null || v.io !== null || !accessible(v.prot, need)) return null;
    const p = v.page(base, need === PROT_WRITE);
    this.viewOff = off;
    if (p === null) return ZERO_PAGE_OBJ;
    this.lastPageAddr = base;
    this.lastPage = p;
    this.lastPageNeed = accessible(v.prot, PROT_WRITE) ? PROT_WRITE : PROT_READ;
    return p;
  }

  /**
   * copy_from_user() of a struct, decoded: the value, or null for a fault. `len` bytes are
   * read and the struct's bytes past them are zero, as copy_struct_from_user() leaves them. Within one anonymous page the struct is decoded in
   * place from the page (a codec compiled once per layout); otherwise the bytes are copied to
   * a staging buffer first (copyFromUserInto: device memory, page crossings, a bridged
   * client's memory) and decoded in place from there.
   */
  readStruct<V>(desc: StructDesc<V>, addr: number, len = desc.size): V | null {
    if (desc.compiled && len <= PAGE_SIZE && desc.size <= PAGE_SIZE) {
      if (len === desc.size) {
        const dv = this.userView(addr, len, PROT_READ);
        if (dv !== null) return desc.decodeView(dv, this.viewOff, this.viewOff + len);
      }
      // staged: the user's len bytes, zero after them up to sizeof (copy_struct_from_user())
      if (!this.copyFromUserInto(STAGE, addr, len)) return null;
      if (len < desc.size) STAGE.fill(0, len, desc.size);
      return desc.decodeView(STAGE_VIEW, 0, Math.max(len, desc.size));
    }
    const b = this.copyFromUser(addr, len);
    return typeof b === "number" ? null : desc.decode(b);
  }

  /**
   * copy_to_user() of the first `len` bytes of `value` encoded as `desc` (absent fields and
   * padding zero): 0 or -EFAULT. The whole struct within one anonymous page is encoded in
   * place; anything else is encoded into the staging buffer and copied.
   */
  writeStruct<V>(desc: StructDesc<V>, addr: number, value: EncodeValue<V>, len = desc.size): number {
    if (desc.compiled && len === desc.size) {
      const dv = this.userView(addr, len, PROT_WRITE);
      if (dv !== null) {
        desc.encodeWhole(dv, value, this.viewOff);
        return 0;
      }
      if (len <= PAGE_SIZE) {
        desc.encodeWhole(STAGE_VIEW, value, 0);
        return this.copyToUser(addr, STAGE, len);
      }
    }
    return this.copyToUser(addr, desc.encode(value, Math.max(len, desc.size)), len);
  }

  /** get_user() of a u32: the value, or -EFAULT (a u32 is never negative). */
  getU32(addr: number): number {
    const dv = this.userView(addr, 4, PROT_READ);
    if (dv !== null) return dv.getUint32(this.viewOff, true);
    return this.copyFromUserInto(STAGE, addr, 4) ? STAGE_VIEW.getUint32(0, true) : -EFAULT;
  }

  /** copy_from_user(): the bytes, or -EFAULT if any byte is not readable user memory. */
  copyFromUser(addr: number, len: number): Uint8Array | number {
    const out = new Uint8Array(len);
    return this.copyFromUserInto(out, addr, len) ? out : -EFAULT;
  }

  copyFromUserInto(dst: Uint8Array, addr: number, len: number): boolean {
    const p = this.userPage(addr, len, PROT_READ);
    if (p !== null) {
      // the common case (an ioctl struct inside one anonymous page): walk()'s one chunk
      copyBytes(dst, 0, p.data, this.viewOff, len);
      return true;
    }
    const d = this.deviceChunk(addr, len, PROT_READ);
    if (d !== null) {
      // one MMIO access (a driver's readl): one call to the device, into dst itself
      const off = d.pgoff + (addr - d.start);
      if (d.io!.readInto) return d.io!.readInto(off, len, dst, 0);
      const b = d.io!.read(off, len);
      if (!b) return false;
      dst.set(b);
      return true;
    }
    return this.walk(addr, len, PROT_READ, (v, a, off, n) => {
      if (v.io) {
        const b = v.io.read(v.pgoff + (a - v.start), n);
        if (!b) return false;
        dst.set(b, off);
        return true;
      }
      const p = v.page(a, false);
      if (p) copyBytes(dst, off, p.data, a & PAGE_LOW, n);
      else dst.fill(0, off, off + n);
      return true;
    });
  }

  /** copy_to_user(): 0, or -EFAULT if any byte is not writable user memory (nothing is
   * written then: the twin checks the whole range first, a stricter kernel than Linux). */
  copyToUser(addr: number, bytes: Uint8Array, len = bytes.length): number {
    const p = this.userPage(addr, len, PROT_WRITE);
    if (p !== null) {
      copyBytes(p.data, this.viewOff, bytes, 0, len);
      return 0;
    }
    const d = this.deviceChunk(addr, len, PROT_WRITE);
    if (d !== null) {
      // one MMIO access (a driver's writel): one call to the device
      const ok = d.io!.write(d.pgoff + (addr - d.start), len === bytes.length ? bytes : bytes.subarray(0, len));
      return ok ? 0 : -EFAULT;
    }
    if (!this.walk(addr, len, PROT_WRITE, () => true)) return -EFAULT;
    // device memory can refuse the store (a BAR whose memory decode is off faults)
    const ok = this.walk(addr, len, PROT_WRITE, (v, a, off, n) => {
      if (v.io) return v.io.write(v.pgoff + (a - v.start), bytes.subarray(off, off + n));
      copyBytes(v.page(a, true)!.data, a & PAGE_LOW, bytes, off, n);
      return true;
    });
    return ok ? 0 : -EFAULT;
  }

  /**
   * clear_user() (arch/x86/include/asm/uaccess_64.h): zeroes [addr, addr + len), or -EFAULT
   * with nothing written where any byte is not writable. An anonymous page never touched
   * already reads as zeros and stays absent, so clearing a large range costs the VMAs and
   * the pages present in it, not its length.
   */
  clearUser(addr: number, len: number): number {
    if (len === 0) return 0;
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || addr < 0 || len < 0) return -EFAULT;
    const end = addr + len;
    if (end > TASK_SIZE) return -EFAULT;
    const parts: Vma[] = [];
    for (let a = addr; a < end;) {
      const v = this.find(a);
      if (!v || !accessible(v.prot, PROT_WRITE)) return -EFAULT;
      parts.push(v);
      a = v.end;
    }
    for (const v of parts) {
      const s = Math.max(addr, v.start);
      const e = Math.min(end, v.end);
      if (v.io) {
        for (let a = s; a < e; a += PAGE_SIZE - (a % PAGE_SIZE)) {
          const n = Math.min(e - a, PAGE_SIZE - (a % PAGE_SIZE));
          if (!v.io.write(v.pgoff + (a - v.start), ZERO_PAGE.subarray(0, n))) return -EFAULT;
        }
        continue;
      }
      for (const [idx, p] of v.pages!) {
        const pa = v.start + idx * PAGE_SIZE;
        const from = Math.max(s, pa);
        const to = Math.min(e, pa + PAGE_SIZE);
        if (from < to) p.store(from - pa, to - from, ZERO_PAGE, 0);
      }
    }
    return 0;
  }

  /**
   * pin_user_pages(FOLL_LONGTERM): one Page per page of [addr, addr + n pages), faulted in,
   * each pin counted; -EFAULT for an unmapped page, device memory, or a write pin of memory
   * without PROT_WRITE. Nothing stays pinned on failure.
   */
  pinPages(addr: number, npages: number, write: boolean): Page[] | number {
    if (addr % PAGE_SIZE !== 0) return -EINVAL;
    // mm/gup.c check_vma_flags(): a write pin needs VM_WRITE, a read pin VM_READ
    const need = write ? PROT_WRITE : PROT_READ;
    // sized up front when small (push() onto [] reserves 17 slots: ~150 B for one page)
    const out: Page[] = npages <= 64 ? new Array<Page>(npages) : [];
    for (let i = 0; i < npages; i++) {
      const a = addr + i * PAGE_SIZE;
      const v = a + PAGE_SIZE <= TASK_SIZE ? this.find(a) : null;
      if (!v || v.io || (v.prot & need) !== need) {
        for (let j = 0; j < i; j++) out[j]!.pins--;
        return -EFAULT;
      }
      const p = v.page(a, true)!;
      p.pins++;
      out[i] = p;
    }
    return out;
  }

  /** follow_fault_pfn() on a VM_PFNMAP mapping: the device page at addr, or null when addr
   * is not device memory mapped with `write` allowed if asked. One per call, as a pfn is. */
  pfnmapPage(addr: number, write: boolean): Page | null {
    const v = this.find(addr);
    if (!v || !v.io || addr % PAGE_SIZE !== 0 || (write && !(v.prot & PROT_WRITE))) return null;
    return new IoPage(v.io, v.pgoff + (addr - v.start));
  }

  /** The Page at addr without pinning (for tests and invariants), faulting it in. */
  pageAt(addr: number): Page | null {
    const v = this.find(addr);
    if (!v || v.io) return null;
    return v.page(addr, true);
  }
}

export function unpinPages(pages: readonly Page[]): void {
  for (const p of pages) p.pins--;
}

/** Whether a user access of kind `need` succeeds on a mapping with `prot`. x86 page tables
 * cannot express write-only: a read faults only on a VMA without any of READ/WRITE/EXEC
 * (arch/x86/mm/fault.c access_error()); a write needs PROT_WRITE. */
function accessible(prot: number, need: number): boolean {
  if (need === PROT_READ) return (prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
  return (prot & need) === need;
}
