// A device shaped on Intel DSA (Data Streaming Accelerator; Intel DSA Architecture
// Specification rev. 1.x, and the register layout Linux's idxd driver uses,
// drivers/dma/idxd/registers.h, include/uapi/linux/idxd.h): the real ENQCMD user. The twin
// keeps to the subset docs/pasid.md lists: one shared work queue, memmove / fill / no-op
// descriptors with a completion record, PASID-tagged DMA, the software error register.
//
// 8086:0b25, class 0x0880. BAR0 (16 KiB): registers at the spec's offsets
//   0x00 VERSION (RO 0x100)      0x10 GENCAP (RO)           0x20 WQCAP (RO: size, 1 WQ, shared mode)
//   0x90 GENSTS (RO: 0 disabled, 1 enabled)                 0xa0 CMD (WO: command in bits 24:20)
//   0xa8 CMDSTS (RO: error in bits 7:0)                     0xc0-0xdf SWERR (4 qwords; RW1C valid)
//   0x400 WQCFG of WQ 0 (the spec finds it through TABLE_OFFSETS; the twin fixes it here):
//         +0 wq_size (15:0, writable while the WQ is disabled), +8 mode (bit 0, 0 = shared)
//         and pasid_en (bit 28), +24 occupancy (15:0) and wq_state (31:30), read-only
// BAR2 (16 KiB): WQ 0's four portal pages. A shared WQ takes only ENQCMD(S): a 64-byte
// PASID-tagged write, accepted while the device and WQ are enabled, the WQ is in shared mode
// with PASIDs enabled and holds fewer than wq_size descriptors; otherwise retry. Ordinary
// MMIO writes to a portal are dropped.
//
// Accepted descriptors run in order, DSA_OP_DELAY_NS of virtual time apart. Each one's DMA
// (source, destination, completion record) carries the submission's PASID and goes through
// the domain the IOMMU has attached at that PASID; without one every access faults in the
// IOMMU's log. A source or destination fault ends the descriptor with status PAGE_FAULT_NOBOF
// (0x03, bit 7 set for a write) and the fault address; a completion record that cannot be
// written is reported in SWERR (error 0x1a, CRA translation) with the PASID. No interrupts,
// batches, block-on-fault or page requests (see docs/pasid.md).

import { type BarInfo, PCI_CLASS_DEVICE, PCI_REVISION_ID, PciDevice, type TimerHost } from "./pci.js";

export const DSA_VENDOR = 0x8086;
export const DSA_DEVICE = 0x0b25;
export const DSA_BAR0_SIZE = 16 * 1024;
export const DSA_BAR2_SIZE = 16 * 1024;

export const DSA_REG_VERSION = 0x00;
export const DSA_REG_GENCAP = 0x10;
export const DSA_REG_WQCAP = 0x20;
export const DSA_REG_GENSTS = 0x90;
export const DSA_REG_CMD = 0xa0;
export const DSA_REG_CMDSTS = 0xa8;
export const DSA_REG_SWERR = 0xc0;
export const DSA_REG_WQCFG = 0x400;

/** idxd_cmd (registers.h) */
export const IDXD_CMD_ENABLE_DEVICE = 1;
export const IDXD_CMD_DISABLE_DEVICE = 2;
export const IDXD_CMD_RESET_DEVICE = 5;
export const IDXD_CMD_ENABLE_WQ = 6;
export const IDXD_CMD_DISABLE_WQ = 7;
/** CMDSTS error: the command is not valid in this state (the twin's one error code) */
export const IDXD_CMDSTS_ERR_STATE = 0x01;

/** dsa_opcode (include/uapi/linux/idxd.h) */
export const DSA_OPCODE_NOOP = 0;
export const DSA_OPCODE_MEMMOVE = 3;
export const DSA_OPCODE_MEMFILL = 4;
/** descriptor flags */
export const IDXD_OP_FLAG_CRAV = 0x0004;
export const IDXD_OP_FLAG_RCR = 0x0008;
/** completion status */
export const DSA_COMP_SUCCESS = 1;
export const DSA_COMP_PAGE_FAULT_NOBOF = 3;
export const DSA_COMP_BAD_OPCODE = 0x10;
export const DSA_COMP_XFER_ERANGE = 0x13;
export const DSA_COMP_CRA_XLAT = 0x1a;
export const DSA_COMP_CRA_ALIGN = 0x1b;
export const DSA_COMP_STATUS_WRITE = 0x80;

export const DSA_COMPLETION_SIZE = 32;
export const DSA_DESC_SIZE = 64;
export const DSA_WQ_SIZE_MAX = 32;
export const DSA_MAX_XFER = 1 << 21;
export const DSA_OP_DELAY_NS = 1000;

const WQCFG_PASID_EN = 1 << 28;

/** A descriptor as the WQ holds it: its bytes and the PASID it was submitted with. */
interface Queued {
  readonly desc: Uint8Array;
  readonly pasid: number;
}

export class DsaDevice extends PciDevice {
  readonly bars: readonly (BarInfo | null)[] = [
    { size: DSA_BAR0_SIZE, kind: "mem64", prefetchable: false },
    null,
    { size: DSA_BAR2_SIZE, kind: "mem64", prefetchable: false },
    null,
    null,
    null,
  ];
  deviceEnabled = false;
  wqEnabled = false;
  wqSize = 8;
  wqMode = 0; // 0 shared
  wqPasidEn = true;
  cmdsts = 0;
  /** SWERR's four qwords */
  readonly swerr = [0n, 0n, 0n, 0n];
  readonly queue: Queued[] = [];
  private running = false;
  /** descriptors completed (tests, reports) */
  completed = 0;

  constructor(
    bdf: string,
    private readonly timers: TimerHost,
  ) {
    super(bdf, DSA_VENDOR, DSA_DEVICE);
    const c = this.cfg;
    c.setUint16(0x04, 0x0006, true); // memory decode + bus master, as idxd leaves it
    c.setUint8(PCI_REVISION_ID, 0x01);
    c.setUint16(PCI_CLASS_DEVICE, 0x0880, true);
  }

  override get canReset(): boolean {
    return true;
  }

  override reset(): boolean {
    this.resetState();
    return true;
  }

  private resetState(): void {
    this.deviceEnabled = false;
    this.wqEnabled = false;
    this.wqSize = 8;
    this.wqMode = 0;
    this.wqPasidEn = true;
    this.cmdsts = 0;
    this.swerr.fill(0n);
    this.queue.length = 0;
  }

  get occupancy(): number {
    return this.queue.length;
  }

  private reg(off: number): bigint {
    switch (off) {
      case DSA_REG_VERSION:
        return 0x100n;
      case DSA_REG_GENCAP:
        return BigInt(Math.log2(DSA_MAX_XFER)) << 16n; // max_xfer_shift, bits 20:16
      case DSA_REG_WQCAP:
        return BigInt(DSA_WQ_SIZE_MAX) | (1n << 16n) | (1n << 48n);
      case DSA_REG_GENSTS:
        return this.deviceEnabled ? 1n : 0n;
      case DSA_REG_CMDSTS:
        return BigInt(this.cmdsts);
      case DSA_REG_WQCFG:
        return BigInt(this.wqSize);
      case DSA_REG_WQCFG + 8:
        return BigInt((this.wqMode | (this.wqPasidEn ? WQCFG_PASID_EN : 0)) >>> 0);
      case DSA_REG_WQCFG + 24:
        return BigInt(this.queue.length) | ((this.wqEnabled ? 1n : 0n) << 30n);
    }
    if (off >= DSA_REG_SWERR && off < DSA_REG_SWERR + 32 && off % 8 === 0)
      return this.swerr[(off - DSA_REG_SWERR) / 8]!;
    return 0n;
  }

  mmioRead(bar: number, off: number, size: number): bigint {
    if (bar !== 0 || off + size > DSA_BAR0_SIZE) return 0n;
    const base = off & ~7;
    const v = this.reg(base) >> BigInt(8 * (off - base));
    return size >= 8 ? v & 0xffffffffffffffffn : v & ((1n << BigInt(8 * size)) - 1n);
  }

  mmioWrite(bar: number, off: number, size: number, value: bigint): void {
    if (bar !== 0) return; // a plain write to a shared WQ portal is dropped
    const v = Number(value & 0xffffffffn);
    if (off === DSA_REG_CMD && size === 4) return this.command((v >>> 20) & 0x1f);
    if (off === DSA_REG_SWERR && (v & 1) !== 0) {
      this.swerr.fill(0n); // RW1C of the valid bit clears the record
      return;
    }
    if (this.wqEnabled) return; // WQCFG is read-only while the WQ is enabled
    if (off === DSA_REG_WQCFG && size === 4) this.wqSize = Math.min(v & 0xffff, DSA_WQ_SIZE_MAX);
    else if (off === DSA_REG_WQCFG + 8 && size === 4) {
      this.wqMode = v & 1;
      this.wqPasidEn = (v & WQCFG_PASID_EN) !== 0;
    }
  }

  private command(cmd: number): void {
    this.cmdsts = 0;
    switch (cmd) {
      case IDXD_CMD_ENABLE_DEVICE:
        if (this.deviceEnabled) this.cmdsts = IDXD_CMDSTS_ERR_STATE;
        this.deviceEnabled = true;
        return;
      case IDXD_CMD_DISABLE_DEVICE:
        this.deviceEnabled = false;
        this.wqEnabled = false;
        this.queue.length = 0; // aborted
        return;
      case IDXD_CMD_RESET_DEVICE:
        this.resetState();
        return;
      case IDXD_CMD_ENABLE_WQ:
        if (!this.deviceEnabled || this.wqEnabled || this.wqSize === 0) this.cmdsts = IDXD_CMDSTS_ERR_STATE;
        else this.wqEnabled = true;
        return;
      case IDXD_CMD_DISABLE_WQ:
        this.wqEnabled = false;
        this.queue.length = 0;
        return;
      default:
        this.cmdsts = IDXD_CMDSTS_ERR_STATE;
    }
  }

  /** ENQCMD to a portal of BAR2: accept into the shared WQ, or retry. */
  override mmioEnqueue(bar: number, off: number, desc: Uint8Array, pasid: number): boolean {
    if (bar !== 2 || off >= DSA_BAR2_SIZE || desc.length !== DSA_DESC_SIZE) return false;
    if (!this.deviceEnabled || !this.wqEnabled || this.wqMode !== 0 || !this.wqPasidEn) return false;
    if (this.queue.length >= this.wqSize) return false;
    this.queue.push({ desc: desc.slice(), pasid });
    this.kick();
    return true;
  }

  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    this.timers.schedule(DSA_OP_DELAY_NS, `dsa ${this.bdf} wq0`, () => {
      this.running = false;
      const q = this.queue.shift();
      if (q) this.execute(q);
      this.kick();
    });
  }

  /** One descriptor: the operation, then its completion record. */
  private execute(q: Queued): void {
    const dv = new DataView(q.desc.buffer, q.desc.byteOffset, DSA_DESC_SIZE);
    const w1 = dv.getUint32(4, true);
    const flags = w1 & 0xffffff;
    const opcode = w1 >>> 24;
    const compAddr = dv.getBigUint64(8, true);
    const src = dv.getBigUint64(16, true);
    const dst = dv.getBigUint64(24, true);
    const size = dv.getUint32(32, true);
    let status = DSA_COMP_SUCCESS;
    let done = 0;
    let faultAddr = 0n;
    const fault = (addr: bigint, write: boolean) => {
      status = DSA_COMP_PAGE_FAULT_NOBOF | (write ? DSA_COMP_STATUS_WRITE : 0);
      faultAddr = addr;
    };
    if (opcode === DSA_OPCODE_MEMMOVE || opcode === DSA_OPCODE_MEMFILL) {
      if (size > DSA_MAX_XFER) status = DSA_COMP_XFER_ERANGE;
      else if (size > 0) {
        let data: Uint8Array | null = new Uint8Array(size);
        if (opcode === DSA_OPCODE_MEMMOVE) {
          if (!this.dmaLoadPasid(q.pasid, src, data)) {
            fault(src, false);
            data = null;
          }
        } else {
          const pat = q.desc.subarray(16, 24); // the 8-byte pattern shares the source field
          for (let i = 0; i < size; i++) data[i] = pat[i % 8]!;
        }
        if (data) {
          if (this.dmaWritePasid(q.pasid, dst, data)) done = size;
          else fault(dst, true);
        }
      }
    } else if (opcode !== DSA_OPCODE_NOOP) status = DSA_COMP_BAD_OPCODE;
    this.completed++;
    if (!(flags & IDXD_OP_FLAG_RCR)) return;
    if (!(flags & IDXD_OP_FLAG_CRAV)) return;
    if (compAddr % BigInt(DSA_COMPLETION_SIZE) !== 0n)
      return this.softwareError(DSA_COMP_CRA_ALIGN, q, opcode, compAddr);
    const rec = new Uint8Array(DSA_COMPLETION_SIZE);
    const rv = new DataView(rec.buffer);
    rv.setUint8(0, status);
    rv.setUint32(4, done, true);
    rv.setBigUint64(8, faultAddr, true);
    if (!this.dmaWritePasid(q.pasid, compAddr, rec)) this.softwareError(DSA_COMP_CRA_XLAT, q, opcode, compAddr);
  }

  /** SWERR: the first error is kept until software clears it; later ones set overflow. */
  private softwareError(code: number, q: Queued, opcode: number, addr: bigint): void {
    if (this.swerr[0]! & 1n) {
      this.swerr[0] = this.swerr[0]! | 2n;
      return;
    }
    this.swerr[0] =
      1n | // valid
      (1n << 2n) | // desc_valid
      (1n << 3n) | // wq_idx_valid (WQ 0)
      (1n << 5n) | // fault_rw: the completion record is a write
      (BigInt(code) << 8n) |
      (BigInt(opcode) << 32n) |
      (BigInt(q.pasid) << 40n);
    this.swerr[2] = addr;
  }
}
