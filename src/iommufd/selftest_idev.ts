// The selftest object (IOMMUFD_OBJ_SELFTEST, TYPE_IDEV) and its ops (drivers/iommu/iommufd/
// selftest.c): MOCK_DOMAIN / MOCK_DOMAIN_FLAGS make a mock device, bind it to the iommufd
// and attach it to an IOAS or HWPT, like a VFIO device's BIND + ATTACH; MOCK_DOMAIN_REPLACE
// replaces its HWPT; TRIGGER_IOPF reports a page request for it (./fault.ts delivers it).
//
// The object holds the device (its DEVICE object, id out_idev_id, is an ordinary bound
// device); DESTROY of the selftest object (out_stdev_id) detaches, unbinds and removes the
// mock device (iommufd_selftest_destroy()). A mock device's DEVICE object takes no
// reference on the context, so closing the iommufd destroys the selftest object and with it
// the device.

import { EINVAL, ENOENT } from "../uapi/errno.js";
import { IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID } from "../uapi/iommufd.js";
import {
  IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
  test_mock_domain,
  test_mock_domain_replace,
  type test_trigger_iopf,
} from "../uapi/iommufd_test.js";
import {
  type IommufdDevice,
  iommufdDeviceAttach,
  iommufdDeviceBind,
  iommufdDeviceDetach,
  iommufdDeviceReplace,
  iommufdDeviceUnbind,
} from "./device.js";
import type { IommufdCtx } from "./main.js";
import { reportDeviceFault } from "./fault.js";
import { IommufdObject } from "./object.js";
import { setMember, type TestUcmd } from "./selftest_cmd.js";
import { MockDev, mockDevCreate, mockDevDestroy, mockDevHasIommu } from "./selftest_mock_dev.js";

type V<T> = T extends { decode(b: Uint8Array): infer R } ? R : never;

/** struct selftest_obj of TYPE_IDEV */
export class IommufdSelftest extends IommufdObject {
  idev: IommufdDevice | null = null;
  mockDev: MockDev | null = null;

  constructor(readonly ictx: IommufdCtx) {
    super(ictx.k, "selftest", ictx.name);
  }

  /** iommufd_selftest_destroy() */
  protected destroyObj(): void {
    iommufdDeviceDetach(this.idev!);
    iommufdDeviceUnbind(this.idev!);
    mockDevDestroy(this.mockDev!);
  }

  /** iommufd_object_abort(): the creator undid its steps itself */
  protected override abortObj(): void {}
}

/** iommufd_test_mock_domain() */
export function mockDomain(u: TestUcmd, m: V<typeof test_mock_domain>): number {
  const ictx = u.ictx;
  const sobj = new IommufdSelftest(ictx);
  let rc = ictx.objects.alloc(sobj);
  if (rc) return rc;
  const mdev = mockDevCreate(ictx.k, u.cmd.op === IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS ? m.dev_flags : 0);
  if (typeof mdev === "number") {
    ictx.objects.abort(sobj);
    return mdev;
  }
  // iommufd_device_bind(): device_iommu_capable(IOMMU_CAP_CACHE_COHERENCY) is false for a
  // device no IOMMU driver probed
  const idev = mockDevHasIommu(mdev) ? iommufdDeviceBind(ictx, mdev) : -EINVAL;
  if (typeof idev === "number") {
    mockDevDestroy(mdev);
    ictx.objects.abort(sobj);
    return idev;
  }
  const r = iommufdDeviceAttach(idev, u.cmd.id);
  if (r.rc) {
    iommufdDeviceUnbind(idev);
    mockDevDestroy(mdev);
    ictx.objects.abort(sobj);
    return r.rc;
  }
  sobj.idev = idev;
  sobj.mockDev = mdev;
  // userspace must destroy the selftest object to destroy the device
  m.out_hwpt_id = r.ptId;
  m.out_stdev_id = sobj.id;
  m.out_idev_id = idev.id;
  setMember(u, test_mock_domain, m);
  rc = u.respond();
  if (rc) {
    iommufdDeviceDetach(idev);
    iommufdDeviceUnbind(idev);
    mockDevDestroy(mdev);
    ictx.objects.abort(sobj);
    return rc;
  }
  ictx.objects.finalize(sobj);
  return 0;
}

/** iommufd_test_mock_domain_replace(): pt_id is written back (the HWPT now attached). */
export function mockDomainReplace(u: TestUcmd, m: V<typeof test_mock_domain_replace>): number {
  const sobj = u.ictx.objects.get<IommufdSelftest>(u.cmd.id, "selftest");
  if (!sobj) return -ENOENT;
  try {
    const r = iommufdDeviceReplace(sobj.idev!, m.pt_id);
    if (r.rc) return r.rc;
    m.pt_id = r.ptId;
    setMember(u, test_mock_domain_replace, m);
    return u.respond();
  } finally {
    sobj.put();
  }
}

/**
 * iommufd_test_trigger_iopf(): a one-fault page request group (LAST_PAGE, PASID_VALID unless
 * pasid is IOMMU_NO_PASID) goes to iommu_report_device_fault(), whose answer is ignored: with
 * CONFIG_IOMMU_IOPF it reaches the FAULT object of the IOPF-capable HWPT the device is
 * attached to, if any (./fault.ts).
 */
export function triggerIopf(u: TestUcmd, m: V<typeof test_trigger_iopf>): number {
  const idev = u.ictx.objects.get<IommufdDevice>(m.dev_id, "device");
  if (!idev) return -ENOENT;
  try {
    if (!(idev.dev instanceof MockDev)) return -EINVAL;
    const flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE | (m.pasid !== 0 ? IOMMU_PGFAULT_FLAGS_PASID_VALID : 0);
    reportDeviceFault(idev, { flags, pasid: m.pasid, grpid: m.grpid, perm: m.perm, addr: m.addr });
    return 0;
  } finally {
    idev.put();
  }
}
