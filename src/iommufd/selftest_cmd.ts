// One IOMMU_TEST_CMD being executed (drivers/iommu/iommufd/iommufd_test.h struct
// iommu_test_cmd): the command's union as the member an op reads, and written back.

import type { IommuTestCmd } from "../uapi/iommufd_test.js";
import type { StructDesc } from "../uapi/struct.js";
import type { Ucmd } from "./main.js";

export type TestUcmd = Ucmd<IommuTestCmd>;

const UNION = new Uint8Array(48);
const UNION_VIEW = new DataView(UNION.buffer);

/** The union member `desc` of the command, decoded from its 48 bytes. */
export function member<V>(u: TestUcmd, desc: StructDesc<V>): V {
  u.cmd.data.forEach((v, i) => UNION_VIEW.setBigUint64(8 * i, v, true));
  return desc.decode(UNION);
}

/** Write the member back into the command (before u.respond()). */
export function setMember<V>(u: TestUcmd, desc: StructDesc<V>, value: V): void {
  u.cmd.data.forEach((v, i) => UNION_VIEW.setBigUint64(8 * i, v, true));
  desc.encodeInto(UNION, value as Partial<V>);
  for (let i = 0; i < 6; i++) u.cmd.data[i] = UNION_VIEW.getBigUint64(8 * i, true);
}
