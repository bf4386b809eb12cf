// IOMMU_FAULT_QUEUE_ALLOC (drivers/iommu/iommufd/fault.c): a FAULT object with its own file
// ("[iommufd-pgfault]"). The file holds a reference on the object and on the iommufd file,
// so DESTROY of the fault is EBUSY while its fd is open, and the iommufd context outlives
// its own fd until the fault fd is closed too. The emulated VT-d has no PRI, so no fault is
// ever delivered: read() returns 0 and every response written names an unknown cookie.

import { EINVAL, EOPNOTSUPP, ESPIPE } from "../uapi/errno.js";
import { iommu_hwpt_page_response, iommu_hwpt_pgfault, type iommu_fault_alloc } from "../uapi/iommufd.js";
import { O_CLOEXEC, O_RDWR, type FileOperations } from "../kernel/fs.js";
import type { Module } from "../kernel/module.js";
import { installFile } from "../kernel/syscalls.js";
import type { IommufdCtx, Ucmd } from "./main.js";
import { IommufdObject } from "./object.js";

export class IommufdFault extends IommufdObject {
  constructor(readonly ictx: IommufdCtx) {
    super(ictx.k, "fault", ictx.name);
  }
  protected destroyObj(): void {
    // nothing is ever queued on the emulated VT-d
  }
}

function faultFops(owner: Module | null): FileOperations {
  return {
    owner,
    name: "iommufd-pgfault",
    release(file) {
      const fault = file.privateData as IommufdFault;
      fault.put("fault file");
      fault.ictx.file.put("fault file");
    },
    read(_file, _buf, count, pos) {
      if (pos || count % iommu_hwpt_pgfault.size) return -ESPIPE;
      return 0;
    },
    write(_file, _buf, count, pos) {
      if (pos || count % iommu_hwpt_page_response.size) return -ESPIPE;
      return count === 0 ? 0 : -EINVAL;
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
