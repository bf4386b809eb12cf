// vfio-pci's config-space virtualization (drivers/vfio/pci/vfio_pci_config.c). At open
// (vfio_config_init()) the standard header and each capability are copied into `vconfig`,
// and every byte gets the id of what covers it (`map`: the basic header, a capability, or
// unassigned). An access is cut into aligned chunks that stay inside one dword and one
// capability (vfio_config_do_rw()), and each chunk goes through that region's permission
// bits: per bit, "virt" (lives in vconfig, never reaches the device) and "write" (the user
// may change it). Non-virtual bits are read from, and written to, the device.
//
//   basic header   vendor/device, capability pointer, interrupt line/pin, the BARs and the
//                  ROM BAR are virtual; the command register passes through except DisINTx,
//                  which is emulated (writing it masks/unmasks INTx through vfio); cache
//                  line, latency timer and BIST are writable; everything else is read-only.
//                  BAR reads apply sizing semantics (vfio_bar_fixup()).
//   MSI            id from the device, next pointer virtual, flags (low byte), address and
//                  data virtual and writable: the user sees what the user wrote, not what
//                  the kernel programs on SET_IRQS; a flags write is fixed up (enable only
//                  while MSI is on through the ioctl, queue size capped) and written on.
//   other caps     read from the device, id/next from vconfig; writes dropped.
//   unassigned     raw access to the device, both ways (be2net hides registers there).
//
// Accesses must lie inside the 256-byte config space, else -EFAULT. The twin's devices have
// no extended config space and only the capabilities listed in CAP_LENGTH; others are hidden
// from the chain, as vfio_cap_init() hides any capability it gives length 0.

import { EFAULT } from "../../uapi/errno.js";
import {
  PCI_CAPABILITY_LIST,
  PCI_CAP_ID_MSI,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  type PciDevice,
} from "../../hw/pci.js";
import { kzallocBytes } from "../../kernel/slab.js";

const PCI_CAP_ID_BASIC = 0;
const PCI_CAP_ID_INVALID = 0xff;
const PCI_STD_HEADER_SIZEOF = 64;
const PCI_CFG_SPACE_SIZE = 256;
const PCI_CAP_ID_PM = 0x01;
const PCI_CAP_ID_MSIX = 0x11;
const PCI_MSI_FLAGS = 2;
const PCI_MSI_FLAGS_ENABLE = 0x1;
const PCI_MSI_FLAGS_QMASK = 0x0e;
const PCI_MSI_FLAGS_QSIZE = 0x70;
const PCI_MSI_FLAGS_64BIT = 0x80;
const PCI_MSI_FLAGS_MASKBIT = 0x100;

/** pci_cap_length[] for the capabilities the twin's devices can have (MSI is variable) */
const CAP_LENGTH: Readonly<Record<number, number>> = { [PCI_CAP_ID_PM]: 8, [PCI_CAP_ID_MSIX]: 12 };

/** What vfio-pci's config code needs from the core device (vfio_pci_core_device). */
export interface VfioPciConfigOwner {
  readonly hw: PciDevice;
  /** vdev->irq_type is MSI */
  msiActive(): boolean;
  /** vfio_pci_intx_mask() / vfio_pci_intx_unmask(), taken from a DisINTx write */
  intxMask(): void;
  intxUnmask(): void;
  virqDisabled: boolean;
}

type ReadFn = (c: VfioPciConfig, pos: number, count: number, perm: PermBits, offset: number) => number;
type WriteFn = (c: VfioPciConfig, pos: number, count: number, perm: PermBits, offset: number, val: number) => void;

/** struct perm_bits */
interface PermBits {
  readonly virt: Uint8Array | null;
  readonly write: Uint8Array | null;
  readonly readfn: ReadFn | null;
  readonly writefn: WriteFn | null;
}

function bytesOf(a: Uint8Array | null, off: number, count: number): number {
  let v = 0;
  if (a) for (let i = count - 1; i >= 0; i--) v = v * 256 + (a[off + i] ?? 0);
  return v;
}

/** perm_bits with p_setb/p_setw/p_setd applied */
function perms(
  len: number,
  readfn: ReadFn,
  writefn: WriteFn | null,
  set: [number, number, number, number][],
): PermBits {
  const virt = new Uint8Array(len);
  const write = new Uint8Array(len);
  for (const [off, size, v, w] of set)
    for (let i = 0; i < size; i++) {
      virt[off + i] = (v >>> (8 * i)) & 0xff;
      write[off + i] = (w >>> (8 * i)) & 0xff;
    }
  return { virt, write, readfn, writefn };
}

const ALL = 0xffffffff;

// vfio_default_config_read()
const defaultRead: ReadFn = (c, pos, count, perm, offset) => {
  let val = bytesOf(c.vconfig, pos, count);
  const virt = bytesOf(perm.virt, offset, count);
  const full = count === 4 ? ALL : 2 ** (8 * count) - 1;
  if (virt !== full) {
    const phys = c.hw.configRead(pos, count);
    val = ((phys & ~virt) | (val & virt)) >>> 0;
  }
  return val;
};

// vfio_default_config_write()
const defaultWrite: WriteFn = (c, pos, count, perm, offset, val) => {
  const write = bytesOf(perm.write, offset, count);
  if (!write) return; // no writable bits: dropped
  const virt = bytesOf(perm.virt, offset, count);
  if (write & virt) {
    const wv = (write & virt) >>> 0;
    const v = ((bytesOf(c.vconfig, pos, count) & ~wv) | (val & wv)) >>> 0;
    c.setV(pos, count, v);
  }
  if (write & ~virt) {
    const wp = (write & ~virt) >>> 0;
    const phys = ((c.hw.configRead(pos, count) & ~wp) | (val & wp)) >>> 0;
    c.hw.configWrite(pos, count, phys);
  }
};

// vfio_raw_config_read() / _write(): unassigned regions
const rawRead: ReadFn = (c, pos, count) => c.hw.configRead(pos, count);
const rawWrite: WriteFn = (c, pos, count, _p, _o, val) => c.hw.configWrite(pos, count, val);

// vfio_direct_config_read(): a capability read from the device, its id/next from vconfig
const directRead: ReadFn = (c, pos, count, _perm, offset) => {
  let val = c.hw.configRead(pos, count);
  if (offset === 0 && count > 1) {
    const n = Math.min(PCI_MSI_FLAGS, count);
    const mask = n === 2 ? 0xffff : 0xff;
    val = ((val & ~mask) | (bytesOf(c.vconfig, pos, n) & mask)) >>> 0;
  } else if (offset === 1) val = ((val & ~0xff) | c.vconfig[pos]!) >>> 0;
  return val;
};

const isBar = (off: number) => (off >= 0x10 && off < 0x28) || off === PCI_ROM_ADDRESS;

// vfio_basic_config_read()
const basicRead: ReadFn = (c, pos, count, perm, offset) => {
  if (isBar(offset)) c.barFixup();
  return defaultRead(c, pos, count, perm, offset);
};

// vfio_basic_config_write()
const basicWrite: WriteFn = (c, pos, count, perm, offset, val) => {
  // (the BAR restore after a backdoor reset is not modelled: the twin's devices have none)
  defaultWrite(c, pos, count, perm, offset, val);
  if (offset === PCI_COMMAND) {
    // remember the user's memory/io enable for the restore test
    const mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
    c.setV(PCI_COMMAND, 2, (bytesOf(c.vconfig, PCI_COMMAND, 2) & ~mask) | (val & mask));
  }
  if (offset >= PCI_COMMAND && offset <= PCI_COMMAND + 1) {
    // emulate INTx disable
    const o = c.owner;
    const virtDisable = (bytesOf(c.vconfig, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) !== 0;
    if (virtDisable && !o.virqDisabled) {
      o.virqDisabled = true;
      o.intxMask();
    } else if (!virtDisable && o.virqDisabled) {
      o.virqDisabled = false;
      o.intxUnmask();
    }
  }
  if (isBar(offset)) c.bardirty = true;
};

// init_pci_cap_basic_perm()
const BASIC_PERMS = perms(PCI_STD_HEADER_SIZEOF, basicRead, basicWrite, [
  [0x00, 2, 0xffff, 0], // vendor
  [0x02, 2, 0xffff, 0], // device
  [PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE, 0xffff],
  [PCI_STATUS, 2, PCI_STATUS_CAP_LIST, 0],
  [0x0c, 1, 0, 0xff], // cache line size
  [0x0d, 1, 0, 0xff], // latency timer
  [0x0f, 1, 0, 0xff], // BIST
  [0x10, 4, ALL, ALL],
  [0x14, 4, ALL, ALL],
  [0x18, 4, ALL, ALL],
  [0x1c, 4, ALL, ALL],
  [0x20, 4, ALL, ALL],
  [0x24, 4, ALL, ALL],
  [PCI_ROM_ADDRESS, 4, ALL, ALL],
  [PCI_CAPABILITY_LIST, 1, 0xff, 0],
  [PCI_INTERRUPT_LINE, 1, 0xff, 0xff],
  [PCI_INTERRUPT_PIN, 1, 0xff, 0],
]);

const DIRECT_RO: PermBits = { virt: null, write: null, readfn: directRead, writefn: null };
const UNASSIGNED: PermBits = { virt: null, write: null, readfn: rawRead, writefn: rawWrite };

// vfio_msi_config_read()
const msiRead: ReadFn = (c, pos, count, perm, offset) => {
  if (offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS) {
    // the kernel refreshes QMASK at the capability's start, not at its flags (6.12 does
    // so): the id byte in vconfig changes, which no read shows (the id comes from the device)
    const start = c.capStart(pos);
    const f = (bytesOf(c.vconfig, start, 2) & ~PCI_MSI_FLAGS_QMASK) | (c.msiQmax << 1);
    c.setV(start, 2, f);
  }
  return defaultRead(c, pos, count, perm, offset);
};

// vfio_msi_config_write()
const msiWrite: WriteFn = (c, pos, count, perm, offset, val) => {
  defaultWrite(c, pos, count, perm, offset, val);
  if (offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS) {
    const at = c.capStart(pos) + PCI_MSI_FLAGS;
    let flags = bytesOf(c.vconfig, at, 2);
    if (!c.owner.msiActive()) flags &= ~PCI_MSI_FLAGS_ENABLE; // MSI is enabled via ioctl
    if ((flags & PCI_MSI_FLAGS_QSIZE) >> 4 > c.msiQmax) flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (c.msiQmax << 4);
    c.setV(at, 2, flags);
    c.hw.configWrite(at, 2, flags);
  }
};

/** the MSI perm_bits by capability length and flags: the kernel allocates and fills them at
 * every open (vfio_msi_cap_len()), from those two values only; they are never written after,
 * so one per (length, flags) made once is the same table */
const MSI_PERMS = new Map<number, PermBits>();

function msiPermsOf(len: number, flags: number): PermBits {
  const key = len * 0x10000 + (flags & 0xffff);
  let p = MSI_PERMS.get(key);
  if (p === undefined) MSI_PERMS.set(key, (p = msiPerms(len, flags)));
  return p;
}

// init_pci_cap_msi_perm()
function msiPerms(len: number, flags: number): PermBits {
  const set: [number, number, number, number][] = [
    [1, 1, 0xff, 0], // next
    [PCI_MSI_FLAGS, 1, 0xff, 0xff], // the upper byte is reserved
    [4, 4, ALL, ALL], // address
  ];
  if (flags & PCI_MSI_FLAGS_64BIT) {
    set.push([8, 4, ALL, ALL], [12, 2, 0xffff, 0xffff]);
    if (flags & PCI_MSI_FLAGS_MASKBIT) set.push([16, 4, 0, ALL], [20, 4, 0, ALL]);
  } else {
    set.push([8, 2, 0xffff, 0xffff]);
    if (flags & PCI_MSI_FLAGS_MASKBIT) set.push([12, 4, 0, ALL], [16, 4, 0, ALL]);
  }
  return perms(len, msiRead, msiWrite, set);
}

/** vdev->vconfig, vdev->pci_config_map and their state, for one open of the device. */
export class VfioPciConfig {
  readonly vconfig = kzallocBytes(PCI_CFG_SPACE_SIZE);
  readonly map = kzallocBytes(PCI_CFG_SPACE_SIZE);
  bardirty = true;
  /** log2 of the MSI vectors enabled (vdev->msi_qmax: 0 until SET_IRQS enables MSI) */
  msiQmax = 0;
  private msiPerm: PermBits | null = null;

  /** vfio_config_init() */
  constructor(readonly owner: VfioPciConfigOwner) {
    const hw = owner.hw;
    this.map.fill(PCI_CAP_ID_BASIC, 0, PCI_STD_HEADER_SIZEOF);
    this.map.fill(PCI_CAP_ID_INVALID, PCI_STD_HEADER_SIZEOF);
    this.vconfig.set(hw.config.subarray(0, PCI_STD_HEADER_SIZEOF));
    this.capInit();
  }

  get hw(): PciDevice {
    return this.owner.hw;
  }

  setV(pos: number, count: number, v: number): void {
    for (let i = 0; i < count; i++) this.vconfig[pos + i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
  }

  /** vfio_cap_init(): walk the device's chain, copy each capability, hide unknown ones */
  private capInit(): void {
    const hw = this.hw;
    if (!(hw.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return;
    let pos = hw.configRead(PCI_CAPABILITY_LIST, 1);
    let prev = PCI_CAPABILITY_LIST;
    let caps = 0;
    for (let loops = (PCI_CFG_SPACE_SIZE - PCI_STD_HEADER_SIZEOF) / 4; pos && loops--;) {
      const cap = hw.configRead(pos, 1);
      const next = hw.configRead(pos + 1, 1);
      let len = 0;
      if (cap === PCI_CAP_ID_MSI) len = this.msiCapLen(pos);
      else len = CAP_LENGTH[cap] ?? 0;
      if (!len) {
        this.vconfig[prev] = next; // hidden
        pos = next;
        continue;
      }
      this.map.fill(cap, pos, pos + len);
      this.vconfig.set(hw.config.subarray(pos, pos + len), pos);
      prev = pos + 1;
      pos = next;
      caps++;
    }
    if (!caps) this.setV(PCI_STATUS, 2, bytesOf(this.vconfig, PCI_STATUS, 2) & ~PCI_STATUS_CAP_LIST);
  }

  /** vfio_msi_cap_len() */
  private msiCapLen(pos: number): number {
    const flags = this.hw.configRead(pos + PCI_MSI_FLAGS, 2);
    let len = 10;
    if (flags & PCI_MSI_FLAGS_64BIT) len += 4;
    if (flags & PCI_MSI_FLAGS_MASKBIT) len += 10;
    if (!this.msiPerm) this.msiPerm = msiPermsOf(len, flags);
    return len;
  }

  /** vfio_find_cap_start() */
  capStart(pos: number): number {
    const cap = this.map[pos]!;
    if (cap === PCI_CAP_ID_BASIC) return 0;
    while (pos - 1 >= PCI_STD_HEADER_SIZEOF && this.map[pos - 1] === cap) pos--;
    return pos;
  }

  /** vfio_bar_fixup(): the virtual BARs keep only the address bits their size allows */
  barFixup(): void {
    if (!this.bardirty) return;
    const bars = this.hw.bars;
    for (let i = 0; i < 6; i++) {
      const at = 0x10 + 4 * i;
      const b = bars[i];
      // a BAR the host left unassigned reads 0 (pci_resource_start() == 0)
      if (!b || !this.hw.configRead(at, 4)) {
        this.setV(at, 4, 0);
        continue;
      }
      const flags = b.kind === "io" ? 0x1 : (b.prefetchable ? 0x8 : 0) | (b.kind === "mem64" ? 0x4 : 0);
      const mask = b.size >= 2 ** 32 ? 0 : ~(b.size - 1) >>> 0;
      this.setV(at, 4, ((bytesOf(this.vconfig, at, 4) & mask) | flags) >>> 0);
      if (b.kind === "mem64") {
        i++;
        // sizes below 4 GiB leave every upper address bit writable
        this.setV(at + 4, 4, bytesOf(this.vconfig, at + 4, 4));
      }
    }
    this.setV(PCI_ROM_ADDRESS, 4, 0); // no ROM on the twin's devices
    this.bardirty = false;
  }

  /** the bytes left in this dword that belong to the same region (vfio_pci_cap_remaining_dword()) */
  private remainingDword(pos: number): number {
    const cap = this.map[pos];
    let i = 1;
    while ((pos + i) % 4 && this.map[pos + i] === cap) i++;
    return i;
  }

  private permAt(pos: number): { perm: PermBits; capStart: number } {
    const cap = this.map[pos]!;
    if (cap === PCI_CAP_ID_INVALID) return { perm: UNASSIGNED, capStart: pos };
    if (cap === PCI_CAP_ID_BASIC) return { perm: BASIC_PERMS, capStart: 0 };
    const perm = cap === PCI_CAP_ID_MSI && this.msiPerm ? this.msiPerm : DIRECT_RO;
    return { perm, capStart: this.capStart(pos) };
  }

  /**
   * vfio_config_do_rw(): one chunk at `pos`. For a write `val` holds the chunk's bytes
   * (little-endian); returns the chunk's size and, for a read, its value; -EFAULT outside.
   */
  chunk(pos: number, count: number): number {
    if (pos < 0 || pos >= PCI_CFG_SPACE_SIZE || pos + count > PCI_CFG_SPACE_SIZE) return -EFAULT;
    count = Math.min(count, this.remainingDword(pos));
    if (count >= 4 && !(pos % 4)) return 4;
    if (count >= 2 && !(pos % 2)) return 2;
    return 1;
  }

  read(pos: number, count: number): number {
    const { perm, capStart } = this.permAt(pos);
    return perm.readfn ? perm.readfn(this, pos, count, perm, pos - capStart) : 0;
  }

  write(pos: number, count: number, val: number): void {
    const { perm, capStart } = this.permAt(pos);
    perm.writefn?.(this, pos, count, perm, pos - capStart, val);
  }
}
