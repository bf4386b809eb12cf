// vfio-pci's vfio_device_ops (drivers/vfio/pci/vfio_pci_core.c, vfio_pci_config.c,
// vfio_pci_rdwr.c, vfio_pci_intrs.c): device info, region info (BARs, ROM, config space at
// fixed region offsets index << 40), IRQ info and SET_IRQS with eventfd triggers for INTx
// and MSI, reset, read/write of config space and BARs, and mmap of BARs.
//
// Config space is virtualized as vfio_pci_config.c does, in ./vfio_pci_config.ts. INTx is
// masked the way vfio does it for PCI 2.3 devices: the DisINTx bit in the device's command
// register (pci_check_and_mask_intx()); MSI enable on SET_IRQS programs the device's MSI
// capability as the kernel's MSI core does (the user's view of it stays virtual).
//
// Not modelled: MSI-X (the modelled devices have none), ERR/REQ triggers beyond accepting an
// eventfd, hot reset, ioeventfd, VGA, device features (see vfio_main.ts), power states.

import { EBADF, EEXIST, EFAULT, EINVAL, EIO, ENODEV, ENOSPC, ENOTTY, ERANGE } from "../../uapi/errno.js";
import * as V from "../../uapi/vfio.js";
import { eventfdCtx } from "../../kernel/eventfd.js";
import type { File } from "../../kernel/fs.js";
import type { Vma } from "../../kernel/mm.js";
import { PAGE_SIZE } from "../../kernel/mm.js";
import type { KGen } from "../../kernel/sched.js";
import {
  PCI_CAP_ID_MSI,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  type PciDevice,
} from "../../hw/pci.js";
import { Mutex } from "../../kernel/locks.js";
import { VfioPciConfig } from "./vfio_pci_config.js";
import {
  copyIn,
  copyInto,
  copyOut,
  copyStructIn,
  copyStructOut,
  curMm,
  fdget,
  setU64,
  userIn,
  userOff,
  userOut,
  userOutEnd,
} from "../uaccess.js";
import {
  vfioCheckFeature,
  type VfioDevice,
  type VfioDeviceOps,
  VfioInfoCap,
  vfioSetIrqsValidate,
} from "../vfio_main.js";

/** VFIO_PCI_IOEVENTFD_MAX */
export const VFIO_PCI_IOEVENTFD_MAX = 1000;

interface IoEventfd {
  bar: number;
  pos: number;
  data: bigint;
  count: number;
  file: File;
}

const OFFSET_MASK = 2 ** V.VFIO_PCI_OFFSET_SHIFT - 1;
/** staging for one device-fd access of 1, 2, 4 or 8 bytes (copied out before the next) */
const IO1 = new Uint8Array(1);
const IO2 = new Uint8Array(2);
const IO4 = new Uint8Array(4);
const IO8 = new Uint8Array(8);

/** the offsets of one region (a device-fd offset modulo this is the offset within it) */
const OFFSET_SPAN = 2 ** V.VFIO_PCI_OFFSET_SHIFT;
const REGION_INFO_MINSZ = V.vfio_region_info.offsetOfEnd("offset");
const RI = {
  argsz: V.vfio_region_info.offsetOf("argsz"),
  flags: V.vfio_region_info.offsetOf("flags"),
  index: V.vfio_region_info.offsetOf("index"),
  capOffset: V.vfio_region_info.offsetOf("cap_offset"),
  size: V.vfio_region_info.offsetOf("size"),
  offset: V.vfio_region_info.offsetOf("offset"),
} as const;

type IrqType = "none" | "intx" | "msi";

/** struct vfio_pci_core_device */
export class VfioPciCoreDevice {
  /** vconfig and its permission bits, made at open (vfio_config_init()) */
  config: VfioPciConfig | null = null;
  /** the user set DisINTx in the virtual command register (vdev->virq_disabled) */
  virqDisabled = false;
  /** the standard header as pci_save_state() kept it at open (vdev->pci_saved_state) */
  private savedHeader: Uint8Array | null = null;
  irqType: IrqType = "none";
  /** eventfd files per vector (ctx->trigger); each holds a file reference */
  readonly triggers = new Map<number, File>();
  intxMasked = false;
  /** the INTx unmask irqfd (ctx[0].unmask) and the device-request trigger (req_trigger) */
  unmaskFd: File | null = null;
  reqTrigger: File | null = null;
  /** signals delivered per index, for tests */
  readonly delivered = [0, 0, 0, 0, 0];
  readonly igate: Mutex;
  readonly cfgSize = 256;
  /** runtime PM engaged by LOW_POWER_ENTRY (pm_runtime_engaged) and its wake eventfd */
  pmEngaged = false;
  pmWake: File | null = null;
  /** VFIO_DEVICE_IOEVENTFD registrations (the write on signal is not modelled) */
  readonly ioeventfds: IoEventfd[] = [];

  constructor(
    readonly vdev: VfioDevice,
    readonly hw: PciDevice,
  ) {
    this.igate = new Mutex(vdev.k, "vfio_pci_core_device.igate");
  }

  msiActive(): boolean {
    return this.irqType === "msi";
  }

  get msiCap(): number {
    let pos = this.hw.config[0x34]! & 0xfc;
    for (let n = 0; pos && n < 48; n++) {
      if (this.hw.config[pos] === PCI_CAP_ID_MSI) return pos;
      pos = this.hw.config[pos + 1]! & 0xfc;
    }
    return 0;
  }

  /** vfio_pci_get_irq_count() */
  irqCount(index: number): number {
    switch (index) {
      case V.VFIO_PCI_INTX_IRQ_INDEX:
        return this.hw.config[0x3d] ? 1 : 0;
      case V.VFIO_PCI_MSI_IRQ_INDEX: {
        const pos = this.msiCap;
        if (!pos) return 0;
        const flags = this.hw.cfg.getUint16(pos + 2, true);
        return 1 << ((flags & 0x0e) >> 1);
      }
      case V.VFIO_PCI_MSIX_IRQ_INDEX:
        return 0;
      case V.VFIO_PCI_ERR_IRQ_INDEX:
        return 0; // not PCI Express
      case V.VFIO_PCI_REQ_IRQ_INDEX:
        return 1;
      default:
        return 0;
    }
  }

  memoryEnabled(): boolean {
    return this.hw.memoryEnabled();
  }

  // ---- interrupts ----

  /** the IrqSink the device raises into */
  installIrqSink(): void {
    this.hw.irq = {
      msi: (vector) => {
        if (this.irqType !== "msi") return;
        const t = this.triggers.get(vector);
        if (t) this.signal(V.VFIO_PCI_MSI_IRQ_INDEX, t);
      },
      // vfio_intx_handler(): a rising line means the device asserts (its status bit is set
      // with it), so pci_check_and_mask_intx() masks it with DisINTx: AUTOMASKED
      intx: (level) => {
        if (!level || this.irqType !== "intx" || this.intxMasked) return;
        this.pciIntx(false);
        this.intxMasked = true;
        this.sendIntxEventfd();
      },
    };
  }

  /** pci_intx(): DisINTx in the device's command register */
  private pciIntx(enable: boolean): void {
    const cmd = this.hw.configRead(PCI_COMMAND, 2);
    const v = enable ? cmd & ~PCI_COMMAND_INTX_DISABLE : cmd | PCI_COMMAND_INTX_DISABLE;
    if (v !== cmd) this.hw.configWrite(PCI_COMMAND, 2, v);
  }

  /** vfio_send_intx_eventfd() */
  sendIntxEventfd(): void {
    const t = this.triggers.get(0);
    if (this.irqType === "intx" && !this.virqDisabled && t) this.signal(V.VFIO_PCI_INTX_IRQ_INDEX, t);
  }

  /** __vfio_pci_intx_mask(): always masks, pending or not */
  intxMask(): void {
    if (this.irqType !== "intx") {
      this.pciIntx(false); // the physical bit follows the virtual one
      return;
    }
    if (!this.intxMasked) {
      this.pciIntx(false);
      this.intxMasked = true;
    }
  }

  /**
   * __vfio_pci_intx_unmask() -> vfio_pci_intx_unmask_handler(): pci_check_and_unmask_intx()
   * refuses while the device still asserts; vfio then stays masked and signals again.
   */
  intxUnmask(): void {
    if (this.irqType !== "intx") {
      this.pciIntx(true);
      return;
    }
    if (!this.intxMasked || this.virqDisabled) return;
    const pending = (this.hw.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT) !== 0;
    if (pending) {
      this.sendIntxEventfd();
      return;
    }
    this.pciIntx(true);
    this.intxMasked = false;
  }

  /** pci_alloc_irq_vectors(MSI) / pci_free_irq_vectors(): the kernel's MSI core programs the
   * device's capability (address, data, enable) and DisINTx (pci_intx_for_msi()) */
  private hwMsi(enable: boolean, nvec: number): void {
    const pos = this.msiCap;
    if (!pos) return;
    const flags = this.hw.configRead(pos + 2, 2);
    if (enable) {
      this.hw.configWrite(pos + 4, 4, 0xfee00000);
      this.hw.configWrite(pos + 8, 4, 0);
      this.hw.configWrite(pos + 12, 2, 0);
      const qsize = 31 - Math.clz32(nvec * 2 - 1);
      this.hw.configWrite(pos + 2, 2, (flags & ~0x71) | (qsize << 4) | 1);
      this.pciIntx(false);
    } else {
      this.hw.configWrite(pos + 2, 2, flags & ~0x71);
      this.pciIntx(true);
    }
    if (this.config) this.config.msiQmax = enable ? 31 - Math.clz32(nvec * 2 - 1) : this.config.msiQmax;
  }

  private signal(index: number, f: File): void {
    eventfdCtx(f)?.signal();
    this.delivered[index]!++;
  }

  private putTriggers(): void {
    for (const f of this.triggers.values()) f.put("vfio-pci irq trigger");
    this.triggers.clear();
  }

  /** vfio_pci_runtime_pm_exit() */
  pmExit(): void {
    this.pmEngaged = false;
    this.pmWake?.put("vfio-pci pm wake eventfd");
    this.pmWake = null;
  }

  /** pci_clear_master() */
  pciClearMaster(): void {
    const cmd = this.hw.configRead(PCI_COMMAND, 2);
    if (cmd & PCI_COMMAND_MASTER) this.hw.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
  }

  /**
   * vfio_pci_core_enable(), the device side: bus mastering off before the state is saved
   * (pci_save_state() keeps the standard header), and DisINTx cleared for INTx masking.
   */
  coreEnable(): void {
    this.pciClearMaster();
    this.savedHeader = this.hw.config.slice(0, 64);
    const cmd = this.hw.configRead(PCI_COMMAND, 2);
    if (cmd & PCI_COMMAND_INTX_DISABLE) this.hw.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_INTX_DISABLE);
  }

  /**
   * vfio_pci_core_disable(), after the interrupts are off: command = DisINTx, no reset on a
   * device without a reset method, pci_restore_state() of the header saved at open,
   * pci_disable_device() (bus mastering off). The next open finds the command register as
   * the first open did (0x103 on the oracle).
   */
  coreDisable(): void {
    this.virqDisabled = false;
    this.hw.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    if (this.resetWorks()) this.hw.reset();
    const h = this.savedHeader;
    if (h)
      for (let off = 0; off < 64; off += 4) this.hw.configWrite(off, 4, new DataView(h.buffer).getUint32(off, true));
    this.savedHeader = null;
    this.pciClearMaster();
  }

  /** close_device: ioeventfds and runtime PM go with the last close */
  releaseAll(): void {
    this.disableIrqs();
    this.pmExit();
    this.reqTrigger?.put("vfio-pci req trigger");
    this.reqTrigger = null;
    for (const x of this.ioeventfds.splice(0)) x.file.put("vfio-pci ioeventfd");
  }

  /** vfio_pci_core_ioctl_feature() */
  feature(flags: number, arg: number, argsz: number): number {
    const set = V.VFIO_DEVICE_FEATURE_SET;
    switch (flags & V.VFIO_DEVICE_FEATURE_MASK) {
      case V.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
      case V.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: {
        const rc = vfioCheckFeature(flags, argsz, set, 0);
        if (rc !== 1) return rc;
        if ((flags & V.VFIO_DEVICE_FEATURE_MASK) === V.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT) {
          this.pmExit();
          return 0;
        }
        if (this.pmEngaged) return -EINVAL;
        this.pmEngaged = true;
        return 0;
      }
      case V.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: {
        // struct vfio_device_low_power_entry_with_wakeup { s32 wakeup_eventfd; u32 reserved; }
        const rc = vfioCheckFeature(flags, argsz, set, 8);
        if (rc !== 1) return rc;
        const b = copyIn(this.vdev.k, arg, 8);
        if (typeof b === "number") return -EFAULT;
        const fd = new DataView(b.buffer).getInt32(0, true);
        if (fd < 0) return -EINVAL;
        const f = fdget(this.vdev.k, fd);
        if (!f) return -EBADF;
        if (!eventfdCtx(f)) return -EINVAL;
        if (this.pmEngaged) return -EINVAL;
        this.pmEngaged = true;
        this.pmWake = f.get("vfio-pci pm wake eventfd");
        return 0;
      }
      default:
        // PCI_VF_TOKEN: only for SR-IOV PFs (vdev->vf_token); none are modelled
        return -ENOTTY;
    }
  }

  /** vfio_pci_ioctl_get_pci_hot_reset_info(): neither slot nor bus reset on the modelled bus */
  hotResetInfo(arg: number): number {
    const b = copyIn(this.vdev.k, arg, 12);
    if (typeof b === "number") return -EFAULT;
    if (new DataView(b.buffer).getUint32(0, true) < 12) return -EINVAL;
    return -ENODEV;
  }

  /** vfio_pci_ioctl_pci_hot_reset(): the header rules, then ENODEV (no slot or bus reset) */
  hotReset(arg: number): number {
    const b = copyIn(this.vdev.k, arg, 12);
    if (typeof b === "number") return -EFAULT;
    const dv = new DataView(b.buffer);
    if (dv.getUint32(0, true) < 12 || dv.getUint32(4, true)) return -EINVAL;
    // a zero-length group array is only for cdev-opened devices
    if ((dv.getUint32(8, true) !== 0) === this.vdev.cdevOpened) return -EINVAL;
    return -ENODEV;
  }

  /** vfio_pci_ioctl_ioeventfd() + vfio_pci_ioeventfd() */
  ioeventfd(arg: number): number {
    const k = this.vdev.k;
    // struct vfio_device_ioeventfd { u32 argsz, flags; u64 offset, data; s32 fd; u32 reserved; }
    const b = copyIn(k, arg, 32);
    if (typeof b === "number") return -EFAULT;
    const dv = new DataView(b.buffer);
    const argsz = dv.getUint32(0, true);
    const flags = dv.getUint32(4, true);
    const offset = dv.getBigUint64(8, true);
    const data = dv.getBigUint64(16, true);
    const fd = dv.getInt32(24, true);
    if (argsz < 28) return -EINVAL;
    if (flags & ~0xf) return -EINVAL;
    const count = flags & 0xf;
    if (count === 0 || (count & (count - 1)) !== 0) return -EINVAL;
    if (count < 8 && data >= 1n << BigInt(count * 8)) return -EINVAL;
    const bar = Number(offset >> BigInt(V.VFIO_PCI_OFFSET_SHIFT));
    const pos = Number(offset & BigInt(OFFSET_MASK));
    if (bar > 5) return -EINVAL;
    const info = this.hw.bars[bar];
    if (pos + count > (info?.size ?? 0)) return -EINVAL;
    const i = this.ioeventfds.findIndex((x) => x.bar === bar && x.pos === pos && x.data === data && x.count === count);
    if (i >= 0) {
      if (fd !== -1) return -EEXIST;
      this.ioeventfds.splice(i, 1)[0]!.file.put("vfio-pci ioeventfd");
      return 0;
    }
    if (fd < 0) return -ENODEV;
    if (this.ioeventfds.length >= VFIO_PCI_IOEVENTFD_MAX) return -ENOSPC;
    const f = fdget(k, fd);
    if (!f) return -EBADF;
    if (!eventfdCtx(f)) return -EINVAL;
    this.ioeventfds.push({ bar, pos, data, count, file: f.get("vfio-pci ioeventfd") });
    return 0;
  }

  disableIrqs(): void {
    if (this.irqType === "msi") this.hwMsi(false, 0);
    this.putTriggers();
    this.unmaskFd?.put("vfio-pci intx unmask eventfd");
    this.unmaskFd = null;
    this.irqType = "none";
    this.intxMasked = false;
  }

  /** eventfd_ctx_fdget(): the eventfd's file with a reference held by `holder` */
  private eventfdGet(fd: number, holder = "vfio-pci irq trigger"): File | number {
    const f = fdget(this.vdev.k, fd);
    if (!f) return -EBADF;
    if (!eventfdCtx(f)) return -EINVAL;
    return f.get(holder);
  }

  /** vfio_pci_set_irqs_ioctl() */
  setIrqs(flags: number, index: number, start: number, count: number, data: Uint8Array): number {
    const action = flags & V.VFIO_IRQ_SET_ACTION_TYPE_MASK;
    const dataNone = (flags & V.VFIO_IRQ_SET_DATA_NONE) !== 0;
    const dataBool = (flags & V.VFIO_IRQ_SET_DATA_BOOL) !== 0;
    const dataEventfd = (flags & V.VFIO_IRQ_SET_DATA_EVENTFD) !== 0;
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (index === V.VFIO_PCI_INTX_IRQ_INDEX) {
      if (action === V.VFIO_IRQ_SET_ACTION_MASK || action === V.VFIO_IRQ_SET_ACTION_UNMASK) {
        // vfio_pci_set_intx_mask() / _unmask()
        if (this.irqType !== "intx" || start !== 0 || count !== 1) return -EINVAL;
        if (dataEventfd) {
          // masking by eventfd is unimplemented in the kernel too ("XXX implement me")
          if (action === V.VFIO_IRQ_SET_ACTION_MASK) return -ENOTTY;
          // an unmask irqfd: kept (and released) like the kernel's virqfd; the twin's eventfd
          // has no wakeup hook, so signalling it does not unmask by itself
          const fd = dv.getInt32(0, true);
          if (fd < 0) {
            this.unmaskFd?.put("vfio-pci intx unmask eventfd");
            this.unmaskFd = null;
            return 0;
          }
          const f = this.eventfdGet(fd, "vfio-pci intx unmask eventfd");
          if (typeof f === "number") return f;
          this.unmaskFd?.put("vfio-pci intx unmask eventfd");
          this.unmaskFd = f;
          return 0;
        }
        const doIt = dataNone || (dataBool && data[0] !== 0);
        if (doIt && action === V.VFIO_IRQ_SET_ACTION_MASK) this.intxMask();
        else if (doIt) this.intxUnmask();
        return 0;
      }
      if (action !== V.VFIO_IRQ_SET_ACTION_TRIGGER) return -ENOTTY;
      // vfio_pci_set_intx_trigger()
      if (this.irqType === "intx" && !count && dataNone) {
        this.disableIrqs();
        return 0;
      }
      if (!(this.irqType === "intx" || this.irqType === "none") || start !== 0 || count !== 1) return -EINVAL;
      if (dataEventfd) {
        const fd = dv.getInt32(0, true);
        let trig: File | null = null;
        if (fd >= 0) {
          const t = this.eventfdGet(fd);
          if (typeof t === "number") return t;
          trig = t;
        }
        this.putTriggers();
        if (trig) this.triggers.set(0, trig);
        if (this.irqType === "none") {
          // vfio_intx_enable(): masked as the user's DisINTx says; DisINTx follows; a line
          // already high fires as soon as the handler is in (level-triggered)
          this.irqType = "intx";
          this.intxMasked = this.virqDisabled;
          this.pciIntx(!this.intxMasked);
          if (!this.intxMasked && this.hw.intxAsserted()) this.hw.irq?.intx(true);
        }
        return 0;
      }
      if (this.irqType !== "intx") return -EINVAL;
      if (dataNone || (dataBool && data[0])) {
        // vfio_send_intx_eventfd(): not while the user's DisINTx is set
        this.sendIntxEventfd();
      }
      return 0;
    }
    if (index === V.VFIO_PCI_MSI_IRQ_INDEX || index === V.VFIO_PCI_MSIX_IRQ_INDEX) {
      if (action !== V.VFIO_IRQ_SET_ACTION_TRIGGER) return -ENOTTY;
      const want: IrqType = "msi";
      // vfio_pci_set_msi_trigger()
      if (this.irqType === want && !count && dataNone) {
        this.disableIrqs();
        return 0;
      }
      if (!(this.irqType === want || this.irqType === "none")) return -EINVAL;
      if (dataEventfd) {
        // vfio_msi_enable(): pci_alloc_irq_vectors(1, start + count) refuses 0 vectors
        if (this.irqType === "none" && start + count === 0) return -ERANGE;
        const files: (File | null)[] = [];
        for (let i = 0; i < count; i++) {
          const fd = dv.getInt32(4 * i, true);
          if (fd < 0) {
            files.push(null);
            continue;
          }
          const t = this.eventfdGet(fd);
          if (typeof t === "number") {
            for (const f of files) f?.put("vfio-pci irq trigger");
            if (this.irqType === "none") this.disableIrqs();
            return t;
          }
          files.push(t);
        }
        if (this.irqType === "none") this.hwMsi(true, start + count);
        this.irqType = want;
        for (let i = 0; i < count; i++) {
          const old = this.triggers.get(start + i);
          old?.put("vfio-pci irq trigger");
          this.triggers.delete(start + i);
          const f = files[i];
          if (f) this.triggers.set(start + i, f);
        }
        return 0;
      }
      if (this.irqType !== want) return -EINVAL;
      for (let i = start; i < start + count; i++) {
        const t = this.triggers.get(i);
        if (!t) continue;
        if (dataNone || (dataBool && data[i - start])) this.signal(index, t);
      }
      return 0;
    }
    if (index === V.VFIO_PCI_REQ_IRQ_INDEX || index === V.VFIO_PCI_ERR_IRQ_INDEX) {
      if (action !== V.VFIO_IRQ_SET_ACTION_TRIGGER) return -ENOTTY;
      if (index === V.VFIO_PCI_ERR_IRQ_INDEX) return -ENOTTY; // not PCI Express
      // vfio_pci_set_req_trigger() -> vfio_pci_set_ctx_trigger_single()
      if (start !== 0 || count > 1) return -EINVAL;
      const H = "vfio-pci req trigger";
      if (dataNone) {
        if (!this.reqTrigger) return -EINVAL;
        if (count) eventfdCtx(this.reqTrigger)?.signal();
        else {
          this.reqTrigger.put(H);
          this.reqTrigger = null;
        }
        return 0;
      }
      if (dataBool) {
        if (!count) return -EINVAL;
        if (data[0] && this.reqTrigger) eventfdCtx(this.reqTrigger)?.signal();
        return 0;
      }
      if (dataEventfd) {
        if (!count) return -EINVAL;
        const fd = dv.getInt32(0, true);
        if (fd === -1) {
          this.reqTrigger?.put(H);
          this.reqTrigger = null;
          return 0;
        }
        if (fd >= 0) {
          const t = this.eventfdGet(fd, H);
          if (typeof t === "number") return t;
          this.reqTrigger?.put(H);
          this.reqTrigger = t;
          return 0;
        }
      }
      return -EINVAL;
    }
    return -ENOTTY;
  }

  // ---- config space ----

  /** vfio_pci_config_rw(): chunk by chunk through vconfig's permission bits */
  configRw(write: boolean, buf: number, count: number, pos: number): number {
    const cfg = this.config;
    if (!cfg) return -EINVAL;
    const k = this.vdev.k;
    let done = 0;
    while (done < count) {
      const o = pos + done;
      const n = cfg.chunk(o, count - done);
      if (n < 0) return n;
      if (write) {
        const b = copyIn(k, buf + done, n);
        if (typeof b === "number") return -EFAULT;
        let v = 0;
        for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i]!;
        cfg.write(o, n, v);
      } else {
        const v = cfg.read(o, n);
        const b = new Uint8Array(n);
        for (let i = 0; i < n; i++) b[i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
        if (copyOut(k, buf + done, b) < 0) return -EFAULT;
      }
      done += n;
    }
    return count;
  }

  /** vfio_pci_bar_rw() -> vfio_pci_core_do_io_rw() */
  barRw(bar: number, write: boolean, buf: number, count: number, pos: number): number {
    const info = this.hw.bars[bar];
    if (!info) return -EINVAL;
    if (pos >= info.size) return -EINVAL;
    count = Math.min(count, info.size - pos);
    if (!this.memoryEnabled()) return -EIO;
    const k = this.vdev.k;
    let done = 0;
    while (done < count) {
      const o = pos + done;
      const left = count - done;
      const n = o % 8 === 0 && left >= 8 ? 8 : o % 4 === 0 && left >= 4 ? 4 : o % 2 === 0 && left >= 2 ? 2 : 1;
      // the staged bytes in a reused buffer; accesses up to 4 bytes as numbers
      const b = n === 8 ? IO8 : n === 4 ? IO4 : n === 2 ? IO2 : IO1;
      if (write) {
        if (copyInto(k, b, buf + done) < 0) return -EFAULT;
        if (n === 8) {
          let v = 0n;
          for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
          this.hw.mmioWrite(bar, o, 8, v);
        } else {
          let v = 0;
          for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i]!;
          this.hw.mmioWriteN(bar, o, n, v);
        }
      } else {
        if (n === 8) {
          const v = this.hw.mmioRead(bar, o, 8);
          for (let i = 0; i < 8; i++) b[i] = Number((v >> BigInt(8 * i)) & 0xffn);
        } else {
          const v = this.hw.mmioReadN(bar, o, n);
          for (let i = 0; i < n; i++) b[i] = v >>> (8 * i);
        }
        if (copyOut(k, buf + done, b) < 0) return -EFAULT;
      }
      done += n;
    }
    return count;
  }

  /** vfio_pci_rw() */
  rw(write: boolean, buf: number, count: number, pos: number): number {
    const index = Math.floor(pos / 2 ** V.VFIO_PCI_OFFSET_SHIFT);
    const off = pos % 2 ** V.VFIO_PCI_OFFSET_SHIFT;
    if (index >= V.VFIO_PCI_NUM_REGIONS) return -EINVAL;
    switch (index) {
      case V.VFIO_PCI_CONFIG_REGION_INDEX:
        return this.configRw(write, buf, count, off);
      case V.VFIO_PCI_ROM_REGION_INDEX:
        return -EINVAL; // no ROM BAR on the modelled devices
      case V.VFIO_PCI_VGA_REGION_INDEX:
        return -EINVAL;
      default:
        return this.barRw(index, write, buf, count, off);
    }
  }

  /** vfio_pci_core_mmap() */
  mmap(vma: Vma): number {
    const index = Math.floor(vma.pgoff / 2 ** V.VFIO_PCI_OFFSET_SHIFT);
    if (index >= V.VFIO_PCI_NUM_REGIONS) return -EINVAL;
    if (index >= V.VFIO_PCI_ROM_REGION_INDEX) return -EINVAL;
    const info = this.hw.bars[index];
    if (!info || info.kind === "io") return -EINVAL;
    const physLen = Math.ceil(info.size / PAGE_SIZE) * PAGE_SIZE;
    const reqStart = vma.pgoff & OFFSET_MASK;
    if (reqStart + (vma.end - vma.start) > physLen) return -EINVAL;
    // a CPU access to the mapped BAR: aligned dwords, then bytes, each an MMIO access as a
    // number (PciDevice.mmioReadN/mmioWriteN)
    const readInto = (off: number, len: number, out: Uint8Array, at: number): boolean => {
      if (!this.memoryEnabled()) return false;
      const o = off % OFFSET_SPAN;
      let d = 0;
      while (d < len) {
        if (((o + d) & 3) === 0 && len - d >= 4) {
          const v = this.hw.mmioReadN(index, o + d, 4);
          out[at + d] = v;
          out[at + d + 1] = v >>> 8;
          out[at + d + 2] = v >>> 16;
          out[at + d + 3] = v >>> 24;
          d += 4;
        } else {
          out[at + d] = this.hw.mmioReadN(index, o + d, 1);
          d += 1;
        }
      }
      return true;
    };
    vma.io = {
      read: (off, len) => {
        const out = new Uint8Array(len);
        return readInto(off, len, out, 0) ? out : null;
      },
      readInto,
      write: (off, bytes) => {
        if (!this.memoryEnabled()) return false;
        const o = off % OFFSET_SPAN;
        const len = bytes.length;
        let d = 0;
        while (d < len) {
          if (((o + d) & 3) === 0 && len - d >= 4) {
            const v = bytes[d]! | (bytes[d + 1]! << 8) | (bytes[d + 2]! << 16) | (bytes[d + 3]! << 24);
            this.hw.mmioWriteN(index, o + d, 4, v >>> 0);
            d += 4;
          } else {
            this.hw.mmioWriteN(index, o + d, 1, bytes[d]!);
            d += 1;
          }
        }
        return true;
      },
      // ENQCMD's 64-byte write reaches the device as one transaction with its PASID
      enqueue: (off, desc, pasid) => {
        if (!this.memoryEnabled()) return false;
        return this.hw.mmioEnqueue(index, off % 2 ** V.VFIO_PCI_OFFSET_SHIFT, desc, pasid);
      },
    };
    return 0;
  }

  // ---- ioctls ----

  getInfo(arg: number): number {
    const k = this.vdev.k;
    let minsz = V.vfio_device_info.offsetOfEnd("num_irqs");
    const info = copyStructIn(k, V.vfio_device_info, arg, minsz);
    if (typeof info === "number") return info;
    if (info.argsz < minsz) return -EINVAL;
    minsz = Math.min(info.argsz, V.vfio_device_info.size);
    const out = {
      argsz: info.argsz,
      flags: V.VFIO_DEVICE_FLAGS_PCI | (this.resetWorks() ? V.VFIO_DEVICE_FLAGS_RESET : 0),
      num_regions: V.VFIO_PCI_NUM_REGIONS,
      num_irqs: V.VFIO_PCI_NUM_IRQS,
      cap_offset: 0,
      pad: 0,
    };
    return copyStructOut(k, V.vfio_device_info, arg, out, minsz);
  }

  /** vdev->reset_works: pci_probe_reset_function(); the device says whether it can reset */
  resetWorks(): boolean {
    return this.hw.canReset;
  }

  /**
   * A region's capability chain: vfio-pci adds msix_mappable_cap() to the MSI-X BAR and a
   * CAP_TYPE to each device-specific region; the devices here have neither (no MSI-X table,
   * no regions past the config space), so no region has one.
   */
  private regionCaps(_index: number): VfioInfoCap | null {
    return null;
  }

  /**
   * vfio_pci_ioctl_get_region_info(): the struct read and written in place (userIn/userOut,
   * size and offset as numbers: no decoded object, no bigint). Fields the kernel leaves as
   * copied in (index, and cap_offset when there is no chain) go back as they came.
   */
  getRegionInfo(arg: number): number {
    const k = this.vdev.k;
    const minsz = REGION_INFO_MINSZ;
    const mm = curMm(k);
    const u = userIn(mm, arg, minsz);
    if (u === null) return -EFAULT;
    const o = userOff(arg);
    let argsz = u.getUint32(o + RI.argsz, true);
    const index = u.getUint32(o + RI.index, true);
    let capOffset = u.getUint32(o + RI.capOffset, true);
    if (argsz < minsz) return -EINVAL;
    let flags = 0;
    let size = 0;
    switch (index) {
      case V.VFIO_PCI_CONFIG_REGION_INDEX:
        size = this.cfgSize;
        flags = V.VFIO_REGION_INFO_FLAG_READ | V.VFIO_REGION_INFO_FLAG_WRITE;
        break;
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5: {
        const b = this.hw.bars[index];
        if (!b) break;
        size = b.size;
        flags = V.VFIO_REGION_INFO_FLAG_READ | V.VFIO_REGION_INFO_FLAG_WRITE;
        // bar_mmap_supported: memory BARs of at least a page (smaller ones are padded)
        if (b.kind !== "io") flags |= V.VFIO_REGION_INFO_FLAG_MMAP;
        break;
      }
      case V.VFIO_PCI_ROM_REGION_INDEX:
        break;
      default:
        return -EINVAL; // VGA absent, no device-specific regions
    }
    // VFIO_PCI_INDEX_TO_OFFSET(): index < 9 here, so below 2^44
    const offset = index * OFFSET_SPAN;
    const caps = this.regionCaps(index);
    if (caps !== null && caps.size) {
      flags |= V.VFIO_REGION_INFO_FLAG_CAPS;
      if (argsz < V.vfio_region_info.size + caps.size) {
        argsz = V.vfio_region_info.size + caps.size;
        capOffset = 0;
      } else {
        caps.shift(V.vfio_region_info.size);
        if (copyOut(k, arg + V.vfio_region_info.size, caps.buf) < 0) return -EFAULT;
        capOffset = V.vfio_region_info.size;
      }
    }
    const w = userOut(mm, arg, minsz);
    w.setUint32(o + RI.argsz, argsz, true);
    w.setUint32(o + RI.flags, flags, true);
    w.setUint32(o + RI.index, index, true);
    w.setUint32(o + RI.capOffset, capOffset, true);
    setU64(w, o + RI.size, size);
    setU64(w, o + RI.offset, offset);
    return userOutEnd(mm, w, arg, minsz);
  }

  getIrqInfo(arg: number): number {
    const k = this.vdev.k;
    const minsz = V.vfio_irq_info.offsetOfEnd("count");
    const info = copyStructIn(k, V.vfio_irq_info, arg, minsz);
    if (typeof info === "number") return info;
    if (info.argsz < minsz || info.index >= V.VFIO_PCI_NUM_IRQS) return -EINVAL;
    if (info.index === V.VFIO_PCI_ERR_IRQ_INDEX) return -EINVAL; // not PCI Express
    let flags = V.VFIO_IRQ_INFO_EVENTFD;
    if (info.index === V.VFIO_PCI_INTX_IRQ_INDEX) flags |= V.VFIO_IRQ_INFO_MASKABLE | V.VFIO_IRQ_INFO_AUTOMASKED;
    else flags |= V.VFIO_IRQ_INFO_NORESIZE;
    return copyStructOut(k, V.vfio_irq_info, arg, { ...info, flags, count: this.irqCount(info.index) }, minsz);
  }

  *setIrqsIoctl(arg: number): KGen<number> {
    const k = this.vdev.k;
    const minsz = V.vfio_irq_set.offsetOfEnd("count");
    const hdr = copyStructIn(k, V.vfio_irq_set, arg, minsz);
    if (typeof hdr === "number") return hdr;
    const max = this.irqCount(hdr.index);
    const dataSize = vfioSetIrqsValidate(hdr, max, V.VFIO_PCI_NUM_IRQS);
    if (dataSize < 0) return dataSize;
    let data: Uint8Array = new Uint8Array(0);
    if (dataSize) {
      const d = copyIn(k, arg + minsz, dataSize);
      if (typeof d === "number") return d;
      data = d;
    }
    yield* this.igate.lock();
    try {
      return this.setIrqs(hdr.flags, hdr.index, hdr.start, hdr.count, data);
    } finally {
      this.igate.unlock();
    }
  }

  reset(): number {
    if (!this.resetWorks()) return -EINVAL;
    return this.hw.reset() ? 0 : -EINVAL;
  }
}

/** The vfio_device_ops of vfio-pci. */
export const vfioPciOps: VfioDeviceOps = {
  name: "vfio-pci",
  // vfio_pci_open_device() -> vfio_pci_core_enable()
  open_device(vdev) {
    const p = vdev.priv as VfioPciCoreDevice;
    p.coreEnable();
    p.virqDisabled = false;
    p.config = new VfioPciConfig(p);
    p.installIrqSink();
    return 0;
  },
  // vfio_pci_core_close_device() -> vfio_pci_core_disable()
  close_device(vdev) {
    const p = vdev.priv as VfioPciCoreDevice;
    p.pciClearMaster(); // stop the device from further DMA, before anything else
    p.releaseAll();
    p.coreDisable();
    p.hw.irq = null;
  },
  // vfio_pci_core_ioctl()
  ioctl(vdev, cmd, arg) {
    const p = vdev.priv as VfioPciCoreDevice;
    switch (cmd) {
      case V.VFIO_DEVICE_GET_INFO:
        return p.getInfo(arg);
      case V.VFIO_DEVICE_GET_REGION_INFO:
        return p.getRegionInfo(arg);
      case V.VFIO_DEVICE_GET_IRQ_INFO:
        return p.getIrqInfo(arg);
      case V.VFIO_DEVICE_SET_IRQS:
        return p.setIrqsIoctl(arg);
      case V.VFIO_DEVICE_RESET:
        return p.reset();
      case V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO:
        return p.hotResetInfo(arg);
      case V.VFIO_DEVICE_PCI_HOT_RESET:
        return p.hotReset(arg);
      case V.VFIO_DEVICE_IOEVENTFD:
        return p.ioeventfd(arg);
      default:
        return -ENOTTY;
    }
  },
  read: (vdev, buf, count, pos) => (vdev.priv as VfioPciCoreDevice).rw(false, buf, count, pos),
  write: (vdev, buf, count, pos) => (vdev.priv as VfioPciCoreDevice).rw(true, buf, count, pos),
  mmap: (vdev, vma) => (vdev.priv as VfioPciCoreDevice).mmap(vma),
  device_feature: (vdev, flags, arg, argsz) => (vdev.priv as VfioPciCoreDevice).feature(flags, arg, argsz),
  match: (vdev, buf) => vfioPciCoreMatch(vdev.name, buf),
};

const VF_TOKEN_ARG = "vf_token=";
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/;

/**
 * vfio_pci_core_match(): the PCI name, then only blanks and at most one "vf_token=<uuid>".
 * The modelled devices are neither SR-IOV VFs nor PFs, so vfio_pci_validate_vf_token()
 * refuses any token (EINVAL) and accepts its absence.
 */
export function vfioPciCoreMatch(pciName: string, buf: string): number {
  if (!buf.startsWith(pciName)) return 0;
  let rest = buf.slice(pciName.length);
  if (rest === "") return 1;
  if (rest[0] !== " ") return 0; // non-whitespace after the name
  let vfToken = false;
  while (rest !== "") {
    if (rest[0] === " ") {
      rest = rest.slice(1);
      continue;
    }
    if (vfToken || !rest.startsWith(VF_TOKEN_ARG)) return -EINVAL; // unknown or duplicate option
    rest = rest.slice(VF_TOKEN_ARG.length);
    if (rest.length < 36 || !UUID_RE.test(rest)) return -EINVAL; // uuid_parse()
    vfToken = true;
    rest = rest.slice(36);
  }
  return vfToken ? -EINVAL : 1;
}
