// Devices bound to an iommufd (drivers/iommu/iommufd/device.c). IOMMU_GET_HW_INFO lives here.

import { ENOENT, EOPNOTSUPP } from "../uapi/errno.js";
import type { iommu_hw_info } from "../uapi/iommufd.js";
import type { Ucmd } from "./main.js";

type V<T> = T extends { decode(b: Uint8Array): infer R } ? R : never;

/** iommufd_get_hw_info() */
export function getHwInfo(u: Ucmd<V<typeof iommu_hw_info>>): number {
  const cmd = u.cmd;
  if (cmd.flags || cmd.__reserved[0] || cmd.__reserved[1] || cmd.__reserved[2]) return -EOPNOTSUPP;
  const dev = u.ictx.objects.get(cmd.dev_id, "device");
  if (!dev) return -ENOENT;
  dev.put();
  return -ENOENT;
}
