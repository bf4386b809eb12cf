// IOMMU_TEST_CMD (drivers/iommu/iommufd/selftest.c iommufd_test()): CONFIG_IOMMUFD_TEST's
// back door into iommufd, as 6.12 defines it. The ops are a table (IOMMU_TEST_OPS); each row
// names the union member it reads (src/uapi/iommufd_test.ts) and its handler. An unknown op
// is EOPNOTSUPP. The command is in the ioctl table only while the kernel is built with
// CONFIG_IOMMUFD_TEST (TwinConfig.iommufdTest, default on as in the oracle's kernel):
// without it _IOC_NR 0xa0 lies past the table and answers ENOTTY.
//
// Per kernel state (module globals in the kernel): whether the test command exists, and
// iommufd_test_memory_limit (SET_TEMP_MEMORY_LIMIT; it sizes pages.c's pfn batches, which
// the twin does not have, so it changes no answer).

import { EINVAL, EOPNOTSUPP, EOVERFLOW, ENOENT } from "../uapi/errno.js";
import * as T from "../uapi/iommufd_test.js";
import type { StructDesc } from "../uapi/struct.js";
import type { Kernel } from "../kernel/kernel.js";
import type { KRet } from "../kernel/sched.js";
import { getIoas } from "./ioas.js";
import { accessCreate, accessDestroyPages, accessPages, accessReplaceIoas, accessRw } from "./selftest_access.js";
import { member, type TestUcmd } from "./selftest_cmd.js";
import { selftestState } from "./selftest_config.js";
import { mockDomain, mockDomainReplace, triggerIopf } from "./selftest_idev.js";
import { mdCheckIotlb, mdCheckMap, mdCheckRefs, mdDirty } from "./selftest_md.js";

export { iommufdTestEnabled, setIommufdTest } from "./selftest_config.js";

/** iommufd_test_memory_limit */
export function iommufdTestMemoryLimit(k: Kernel): number {
  return selftestState(k).memoryLimit;
}

/** iommufd_test_add_reserved() */
function addReserved(u: TestUcmd, m: { start: bigint; length: bigint }): number {
  if (!m.length) return -EINVAL;
  const last = m.start + m.length - 1n;
  if (last > 0xffffffffffffffffn) return -EOVERFLOW;
  const io = getIoas(u.ictx, u.cmd.id);
  if (!io) return -ENOENT;
  const rc = io.iopt.reserveIova(m.start, last, null);
  io.put();
  return rc;
}

/** IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: at least sizeof(unsigned long) + sizeof(u32) */
function setTempMemoryLimit(u: TestUcmd, m: { limit: number }): number {
  if (m.limit < 8 + 4) return -EINVAL;
  selftestState(u.ictx.k).memoryLimit = m.limit;
  return 0;
}

export interface TestOp<V = any> {
  readonly op: number;
  readonly name: string;
  /** the union member the op reads (and writes back) */
  readonly member: StructDesc<V>;
  readonly run: (u: TestUcmd, m: V) => KRet<number>;
}

function row<V>(op: number, name: string, desc: StructDesc<V>, run: (u: TestUcmd, m: V) => KRet<number>): TestOp {
  return { op, name, member: desc, run };
}

/** iommufd_test()'s switch, by op number */
export const IOMMU_TEST_OPS: readonly TestOp[] = [
  row(T.IOMMU_TEST_OP_ADD_RESERVED, "ADD_RESERVED", T.test_add_reserved, addReserved),
  row(T.IOMMU_TEST_OP_MOCK_DOMAIN, "MOCK_DOMAIN", T.test_mock_domain, mockDomain),
  row(T.IOMMU_TEST_OP_MD_CHECK_MAP, "MD_CHECK_MAP", T.test_check_map, mdCheckMap),
  row(T.IOMMU_TEST_OP_MD_CHECK_REFS, "MD_CHECK_REFS", T.test_check_refs, mdCheckRefs),
  row(T.IOMMU_TEST_OP_CREATE_ACCESS, "CREATE_ACCESS", T.test_create_access, accessCreate),
  row(T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, "DESTROY_ACCESS_PAGES", T.test_destroy_access_pages, accessDestroyPages),
  row(T.IOMMU_TEST_OP_ACCESS_PAGES, "ACCESS_PAGES", T.test_access_pages, accessPages),
  row(T.IOMMU_TEST_OP_ACCESS_RW, "ACCESS_RW", T.test_access_rw, accessRw),
  row(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, "SET_TEMP_MEMORY_LIMIT", T.test_memory_limit, setTempMemoryLimit),
  row(T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, "MOCK_DOMAIN_REPLACE", T.test_mock_domain_replace, mockDomainReplace),
  row(T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, "ACCESS_REPLACE_IOAS", T.test_access_replace_ioas, accessReplaceIoas),
  row(T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, "MOCK_DOMAIN_FLAGS", T.test_mock_domain, mockDomain),
  row(T.IOMMU_TEST_OP_DIRTY, "DIRTY", T.test_dirty, mdDirty),
  row(T.IOMMU_TEST_OP_MD_CHECK_IOTLB, "MD_CHECK_IOTLB", T.test_check_iotlb, mdCheckIotlb),
  row(T.IOMMU_TEST_OP_TRIGGER_IOPF, "TRIGGER_IOPF", T.test_trigger_iopf, triggerIopf),
];

const BY_OP = new Map(IOMMU_TEST_OPS.map((o) => [o.op, o]));

/** iommufd_test() */
export function iommufdTest(u: TestUcmd): KRet<number> {
  const o = BY_OP.get(u.cmd.op);
  if (!o) return -EOPNOTSUPP;
  return o.run(u, member(u, o.member));
}
