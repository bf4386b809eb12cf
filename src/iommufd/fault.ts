// IOMMU_FAULT_QUEUE_ALLOC (drivers/iommu/iommufd/fault.c): a FAULT object with its own file
// ("[iommufd-pgfault]"). The file holds a reference on the object and on the iommufd file,
// so DESTROY of the fault is EBUSY while its fd is open, and the iommufd context outlives
// its own fd until the fault fd is closed too.
//
// A nested HWPT allocated with the fault (IOMMU_HWPT_FAULT_ID_VALID) gets the page requests
// of the devices attached to it (iommu_report_device_fault() -> iommufd_fault_iopf_handler();
// only the selftest's TRIGGER_IOPF makes one: the emulated VT-d has no PRI). read() hands out
// whole groups as struct iommu_hwpt_pgfault, each group getting a cookie (lowest free from 1)
// that a response written back must name; groups still pending when their device leaves the
// HWPT are answered by the kernel (iommufd_auto_response_faults()).
//
// All of that needs CONFIG_IOMMU_IOPF, which only AMD, Intel SVM and SMMUv3 SVA select: the
// oracle's kernel (tinyconfig + VT-d without SVM) lacks it, so its mock has no IOPF queue,
// attaching a device to a HWPT with a fault fails in iommufd_fault_iopf_enable() with ENODEV
// and iommu_report_device_fault() is the inline that returns -ENODEV without queueing
// (include/linux/iommu.h). setIommuIopf(k, true) builds the other kernel.

import { EFAULT, EINVAL, ENODEV, EOPNOTSUPP, ESPIPE } from "../uapi/errno.js";
import {
  IOMMU_PGFAULT_FLAGS_LAST_PAGE,
  IOMMU_PGFAULT_FLAGS_PASID_VALID,
  IOMMUFD_PAGE_RESP_INVALID,
  IOMMUFD_PAGE_RESP_SUCCESS,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  type iommu_fault_alloc,
} from "../uapi/iommufd.js";
import { O_CLOEXEC, O_RDWR, POLLIN, POLLOUT, POLLRDNORM, type File, type FileOperations } from "../kernel/fs.js";
import type { Kernel } from "../kernel/kernel.js";
import type { Module } from "../kernel/module.js";
import { installFile } from "../kernel/syscalls.js";
import type { IommufdDevice, IommufdGroup } from "./device.js";
import type { IommufdCtx, Ucmd } from "./main.js";
import { IommufdObject } from "./object.js";
import { SideSet } from "../kernel/side_table.js";

/** struct iommu_fault's page request (prm) */
export interface PageRequest {
  readonly flags: number;
  readonly pasid: number;
  readonly grpid: number;
  readonly perm: number;
  readonly addr: bigint;
}

/** struct iopf_group, as iommufd keeps it: the faults of one page request group */
interface IopfGroup {
  /** to_iommufd_handle(group->attach_handle)->idev */
  readonly idev: IommufdDevice;
  /** the HWPT whose attach handle took it */
  readonly hwpt: IommufdObject;
  readonly faults: PageRequest[];
}

export class IommufdFault extends IommufdObject {
  /** fault->deliver: groups not read yet */
  readonly deliver: IopfGroup[] = [];
  /** fault->response: groups read, waiting for their response, by cookie */
  readonly response = new Map<number, IopfGroup>();

  constructor(readonly ictx: IommufdCtx) {
    super(ictx.k, "fault", ictx.name);
  }

  /** iommufd_fault_destroy(): what is left is answered IOMMU_PAGE_RESP_INVALID and freed */
  protected destroyObj(): void {
    this.deliver.length = 0;
    this.response.clear();
  }
}

/** kernels built with CONFIG_IOMMU_IOPF */
const iopfKernels = new SideSet<Kernel>();

/** CONFIG_IOMMU_IOPF for kernel k (default off, as the oracle's kernel). */
export function setIommuIopf(k: Kernel, on: boolean): void {
  if (on) iopfKernels.add(k);
  else iopfKernels.delete(k);
}

/**
 * iommufd_fault_iopf_enable() of a device joining a HWPT with a fault: the mock's
 * dev_enable_feat(IOMMU_DEV_FEAT_IOPF) needs its IOPF queue, which iopf_queue_alloc() gives
 * only with CONFIG_IOMMU_IOPF (ENODEV otherwise); enabling is counted per device in the
 * kernel and never fails twice, so the twin needs no count.
 */
export function iopfEnable(idev: IommufdDevice): number {
  return iopfKernels.has(idev.k) ? 0 : -ENODEV;
}

/** The FAULT object a HWPT reports to (hwpt->fault): only nested HWPTs can have one. */
export function faultOf(hwpt: object): IommufdFault | null {
  return (hwpt as { fault?: IommufdFault | null }).fault ?? null;
}

/**
 * iommu_report_device_fault() of a page request with IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE, for
 * a device of a driver with user_pasid_table (the mock): a request with a PASID goes to the
 * nested domain attached at IOMMU_NO_PASID, one without to whatever is attached there; a
 * domain without an iopf handler (a HWPT without a fault) drops it (the driver's
 * page_response is told, which the twin does not see). True when it was queued.
 */
export function reportDeviceFault(idev: IommufdDevice, req: PageRequest): boolean {
  if (!iopfKernels.has(idev.k)) return false; // !CONFIG_IOMMU_IOPF: -ENODEV, nothing is queued
  const hwpt = idev.igroup.hwpt;
  if (!hwpt || !idev.igroup.devices.includes(idev)) return false;
  if (req.flags & IOMMU_PGFAULT_FLAGS_PASID_VALID && hwpt.type !== "hwpt_nested") return false;
  const fault = faultOf(hwpt);
  if (!fault || !(req.flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE)) return false;
  fault.deliver.push({ idev, hwpt, faults: [req] });
  return true;
}

/** iommufd_auto_response_faults(): the group leaves `hwpt`; its pending requests are answered. */
export function autoResponseFaults(hwpt: IommufdObject, igroup: IommufdGroup): void {
  const fault = faultOf(hwpt);
  if (!fault) return;
  const mine = (g: IopfGroup) => g.hwpt === hwpt && g.idev.igroup === igroup;
  for (let i = fault.deliver.length - 1; i >= 0; i--) if (mine(fault.deliver[i]!)) fault.deliver.splice(i, 1);
  for (const [cookie, g] of fault.response) if (mine(g)) fault.response.delete(cookie);
}

/** xa_alloc() in fault->response (XA_FLAGS_ALLOC1): the lowest free cookie from 1. */
function allocCookie(fault: IommufdFault): number {
  let c = 1;
  while (fault.response.has(c)) c++;
  return c;
}

const FAULT_SIZE = iommu_hwpt_pgfault.size;
const RESPONSE_SIZE = iommu_hwpt_page_response.size;

/** iommufd_fault_fops_read(): whole groups only; EINVAL when the first does not fit. */
function faultRead(file: File, buf: number, count: number, pos: number): number {
  if (pos || count % FAULT_SIZE) return -ESPIPE;
  const fault = file.privateData as IommufdFault;
  const mm = file.k.current!.process!.mm;
  let done = 0;
  let rc = 0;
  while (fault.deliver.length) {
    const g = fault.deliver[0]!;
    if (done >= count || g.faults.length * FAULT_SIZE > count - done) {
      if (done === 0) rc = -EINVAL;
      break;
    }
    fault.deliver.shift();
    const cookie = allocCookie(fault);
    fault.response.set(cookie, g);
    let groupDone = done;
    for (const f of g.faults) {
      // iommufd_compose_fault_message()
      const msg = iommu_hwpt_pgfault.encode({ ...f, dev_id: g.idev.id, length: 0, cookie });
      if (mm.copyToUser(buf + groupDone, msg) < 0) {
        fault.response.delete(cookie);
        fault.deliver.unshift(g);
        rc = -EFAULT;
        break;
      }
      groupDone += FAULT_SIZE;
    }
    if (rc) break;
    done = groupDone;
  }
  return done === 0 ? rc : done;
}

/** iommufd_fault_fops_write(): responses by cookie, SUCCESS or INVALID. */
function faultWrite(file: File, buf: number, count: number, pos: number): number {
  if (pos || count % RESPONSE_SIZE) return -ESPIPE;
  const fault = file.privateData as IommufdFault;
  const mm = file.k.current!.process!.mm;
  let done = 0;
  let rc = 0;
  while (count > done) {
    const b = mm.copyFromUser(buf + done, RESPONSE_SIZE);
    if (typeof b === "number") {
      rc = -EFAULT;
      break;
    }
    const r = iommu_hwpt_page_response.decode(b);
    if (r.code !== IOMMUFD_PAGE_RESP_SUCCESS && r.code !== IOMMUFD_PAGE_RESP_INVALID) {
      rc = -EINVAL;
      break;
    }
    if (!fault.response.delete(r.cookie)) {
      rc = -EINVAL;
      break;
    }
    done += RESPONSE_SIZE;
  }
  return done === 0 ? rc : done;
}

function faultFops(owner: Module | null): FileOperations {
  return {
    owner,
    name: "iommufd-pgfault",
    // iommufd_fault_fops_read()/write() refuse a position and never advance one
    noPos: true,
    release(file) {
      const fault = file.privateData as IommufdFault;
      fault.put("fault file");
      fault.ictx.file.put("fault file");
    },
    read: faultRead,
    write: faultWrite,
    // iommufd_fault_fops_poll(): always writable (responses), readable with a group to read
    poll(file) {
      const fault = file.privateData as IommufdFault;
      return POLLOUT | (fault.deliver.length ? POLLIN | POLLRDNORM : 0);
    },
  };
}

export function faultAlloc(u: Ucmd<ReturnType<typeof iommu_fault_alloc.decode>>): number {
  const cmd = u.cmd;
  if (cmd.flags) return -EOPNOTSUPP;
  const ictx = u.ictx;
  const fault = new IommufdFault(ictx);
  let rc = ictx.objects.alloc(fault);
  if (rc) return rc;
  const f = ictx.k.allocFile(faultFops(ictx.file.fops.owner), "anon_inode:[iommufd-pgfault]", O_RDWR | O_CLOEXEC);
  if (typeof f === "number") {
    ictx.objects.abort(fault);
    return f;
  }
  f.privateData = fault;
  fault.get("fault file");
  ictx.file.get("fault file");
  const fd = installFile(u.proc, f);
  if (fd < 0) {
    // the file's release drops the references it took; then abort the object
    ictx.objects.abort(fault);
    return fd;
  }
  cmd.out_fault_id = fault.id;
  cmd.out_fault_fd = fd;
  rc = u.respond();
  if (rc) {
    // put_unused_fd() + abort: the fd was never visible to the process
    u.proc.files.close(fd);
    ictx.objects.abort(fault);
    return rc;
  }
  ictx.objects.finalize(fault);
  return 0;
}
