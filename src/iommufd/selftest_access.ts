// The selftest's in-kernel access (drivers/iommu/iommufd/selftest.c struct selftest_access):
// CREATE_ACCESS makes an ACCESS object through the access API (./access.ts), attached to an
// IOAS, and an anon-inode file "[iommufd_test_staccess]" whose fd is returned; the other
// ops name that fd in `id` (a file of another kind, or no file, is EBADFD):
//
//   ACCESS_REPLACE_IOAS   iommufd_access_replace()
//   ACCESS_PAGES          pin [iova, iova + length) (needs MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_
//                         PAGES), check the pages are the ones behind uptr (EBADE if not),
//                         keep them as an item whose id is returned
//   DESTROY_ACCESS_PAGES  unpin an item
//   ACCESS_RW             copy between uptr and the IOAS through iommufd_access_rw()
//
// An unmap of the IOAS unpins every item it meets (the access's unmap op); closing the fd
// unpins everything and destroys the access. The fd comes from the calling process's fd
// table (installFile(), lowest free number): the kernel reserves it first and installs the
// file last, which nobody can tell apart within one ioctl.

import { EBADE, EBADFD, EFAULT, ENOENT, ENOMEM, EOPNOTSUPP } from "../uapi/errno.js";
import {
  MOCK_ACCESS_RW_SLOW_PATH,
  MOCK_ACCESS_RW_WRITE,
  MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
  MOCK_FLAGS_ACCESS_SYZ,
  MOCK_FLAGS_ACCESS_WRITE,
  test_access_pages,
  type test_access_replace_ioas,
  type test_access_rw,
  test_create_access,
  type test_destroy_access_pages,
} from "../uapi/iommufd_test.js";
import { type File, type FileOperations, O_CLOEXEC, O_RDWR } from "../kernel/fs.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import { installFile } from "../kernel/syscalls.js";
import {
  type IommufdAccess,
  type IommufdAccessOps,
  iommufdAccessAttach,
  iommufdAccessCreate,
  iommufdAccessDestroy,
  iommufdAccessDestroyPath,
  iommufdAccessPinPages,
  iommufdAccessReplace,
  iommufdAccessRw,
  iommufdAccessUnpinPages,
  accessUnpinPagesPath,
} from "./access.js";
import { ULONG_MAX } from "./io_pagetable.js";
import type { KGen } from "../kernel/sched.js";
import type { IommufdCtx } from "./main.js";
import { uaddr } from "./pages.js";
import { setMember, type TestUcmd } from "./selftest_cmd.js";
import { userPage } from "./selftest_md.js";
import { syzConvIova as syzIova } from "./selftest_syz.js";

type V<T> = T extends { decode(b: Uint8Array): infer R } ? R : never;

const STACCESS = "iommufd_test_staccess";
/** kvzalloc() refuses more (the selftest keeps syzkaller under it) */
const MAX_LENGTH = 16n * 1024n * 1024n;
const PAGE = BigInt(PAGE_SIZE);

/** struct selftest_access_item */
interface Item {
  readonly iova: bigint;
  readonly length: bigint;
  readonly id: number;
}

/** struct selftest_access */
export class SelftestAccess {
  access: IommufdAccess | null = null;
  readonly items: Item[] = [];
  nextId = 0;
  constructor(readonly pin: boolean) {}
}

/** iommufd_test_access_unmap(): unpin every item meeting [iova, iova + length) (a path: the
 * unpin waits for the access's and the IOAS's locks). */
function* accessUnmap(st: SelftestAccess, iova: bigint, length: bigint): KGen<void> {
  const last = iova + length - 1n;
  for (const item of [...st.items]) {
    if (iova > item.iova + item.length - 1n || last < item.iova) continue;
    st.items.splice(st.items.indexOf(item), 1);
    yield* accessUnpinPagesPath(st.access!, item.iova, item.length);
  }
}

function staccessFops(ictx: IommufdCtx): FileOperations {
  return {
    owner: ictx.file.fops.owner,
    name: STACCESS,
    // iommufd_test_staccess_release()
    // (a path: the unpins and the access's destroy wait for locks a racing call holds)
    *release(file): KGen<void> {
      const st = file.privateData as SelftestAccess;
      if (st.access) {
        yield* accessUnmap(st, 0n, ULONG_MAX);
        yield* iommufdAccessDestroyPath(st.access);
        st.access = null;
      }
    },
  };
}

/** iommufd_access_get(): the selftest access behind fd, with a file reference, or -EBADFD. */
function staccessGet(proc: Process, fd: number): { file: File; st: SelftestAccess } | number {
  const file = proc.files.lookup(fd);
  if (!file || file.fops.name !== STACCESS || !(file.privateData instanceof SelftestAccess)) return -EBADFD;
  file.get();
  return { file, st: file.privateData };
}

/** iommufd_test_create_access() */
export function accessCreate(u: TestUcmd, m: V<typeof test_create_access>): number {
  if (m.flags & ~MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) return -EOPNOTSUPP;
  const ictx = u.ictx;
  const st = new SelftestAccess((m.flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0);
  const file = ictx.k.allocFile(staccessFops(ictx), `anon_inode:[${STACCESS}]`, O_RDWR | O_CLOEXEC);
  if (typeof file === "number") return file;
  file.privateData = st;
  // get_unused_fd_flags(O_CLOEXEC): any failure there is ENOMEM
  const fd = installFile(u.proc, file);
  if (fd < 0) return -ENOMEM;
  const ops: IommufdAccessOps = { needsPinPages: st.pin, unmap: (iova, length) => accessUnmap(st, iova, length) };
  const access = iommufdAccessCreate(ictx, ops);
  if (typeof access === "number") {
    u.proc.files.close(fd);
    return access;
  }
  let rc = iommufdAccessAttach(access, u.cmd.id);
  if (!rc) {
    m.out_access_fd = fd;
    setMember(u, test_create_access, m);
    rc = u.respond();
  }
  if (rc) {
    iommufdAccessDestroy(access);
    u.proc.files.close(fd); // put_unused_fd() + fput(): nobody saw the fd
    return rc;
  }
  st.access = access;
  return 0;
}

/** iommufd_test_access_replace_ioas() */
export function accessReplaceIoas(u: TestUcmd, m: V<typeof test_access_replace_ioas>): number {
  const g = staccessGet(u.proc, u.cmd.id);
  if (typeof g === "number") return g;
  const rc = iommufdAccessReplace(g.st.access!, m.ioas_id);
  g.file.put();
  return rc;
}

/** iommufd_test_syz_conv_iova(): 0 while the access has no IOAS */
function syzConvIova(access: IommufdAccess, v: bigint): bigint {
  return access.ioas ? syzIova(access.ioas.iopt, v) : 0n;
}

/** iommufd_test_check_pages(): the pinned pages are the pages behind uptr now. */
function checkPages(proc: Process, uptr: bigint, pages: readonly { readonly pfn: number }[]): number {
  for (let i = 0; i < pages.length; i++) {
    const p = userPage(proc, uptr + BigInt(i) * PAGE);
    if (typeof p === "number") return p;
    if (p !== pages[i]) return -EBADE;
  }
  return 0;
}

/** iommufd_test_access_pages() */
export function accessPages(u: TestUcmd, m: V<typeof test_access_pages>): number {
  if (m.length > MAX_LENGTH) return -ENOMEM;
  if (m.flags & ~(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ)) return -EOPNOTSUPP;
  const g = staccessGet(u.proc, u.cmd.id);
  if (typeof g === "number") return g;
  try {
    const st = g.st;
    const access = st.access!;
    if (!st.pin) return -EOPNOTSUPP;
    let iova = m.iova;
    if (m.flags & MOCK_FLAGS_ACCESS_SYZ) iova = syzConvIova(access, m.iova);
    const pages = iommufdAccessPinPages(access, iova, m.length, (m.flags & MOCK_FLAGS_ACCESS_WRITE) !== 0);
    if (typeof pages === "number") return pages;
    // for syzkaller a NULL uptr skips the check
    let rc = m.uptr ? checkPages(u.proc, m.uptr - (iova % PAGE), pages) : 0;
    if (!rc) {
      const item: Item = { iova, length: m.length, id: st.nextId };
      st.nextId = (st.nextId + 1) >>> 0;
      st.items.push(item);
      m.out_access_pages_id = item.id;
      setMember(u, test_access_pages, m);
      rc = u.respond();
      if (rc) st.items.pop();
    }
    if (rc) iommufdAccessUnpinPages(access, iova, m.length);
    return rc;
  } finally {
    g.file.put();
  }
}

/** iommufd_test_access_item_destroy() */
export function accessDestroyPages(u: TestUcmd, m: V<typeof test_destroy_access_pages>): number {
  const g = staccessGet(u.proc, u.cmd.id);
  if (typeof g === "number") return g;
  try {
    const st = g.st;
    const i = st.items.findIndex((x) => x.id === m.access_pages_id);
    if (i < 0) return -ENOENT;
    const [item] = st.items.splice(i, 1);
    iommufdAccessUnpinPages(st.access!, item!.iova, item!.length);
    return 0;
  } finally {
    g.file.put();
  }
}

/** iommufd_test_access_rw() */
export function accessRw(u: TestUcmd, m: V<typeof test_access_rw>): number {
  if (m.length > MAX_LENGTH) return -ENOMEM;
  if (m.flags & ~(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ)) return -EOPNOTSUPP;
  const g = staccessGet(u.proc, u.cmd.id);
  if (typeof g === "number") return g;
  try {
    const access = g.st.access!;
    const write = (m.flags & MOCK_ACCESS_RW_WRITE) !== 0;
    const len = Number(m.length);
    let tmp: Uint8Array = new Uint8Array(len);
    if (write) {
      const b = u.proc.mm.copyFromUser(uaddr(m.uptr), len);
      if (typeof b === "number") return -EFAULT;
      tmp = b;
    }
    const iova = m.flags & MOCK_FLAGS_ACCESS_SYZ ? syzConvIova(access, m.iova) : m.iova;
    // MOCK_ACCESS_RW_WRITE and _SLOW_PATH are IOMMUFD_ACCESS_RW_WRITE and __IOMMUFD_ACCESS_RW_SLOW_PATH
    const rc = iommufdAccessRw(access, iova, tmp, m.flags & (MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH));
    if (rc) return rc;
    if (!write && u.proc.mm.copyToUser(uaddr(m.uptr), tmp) < 0) return -EFAULT;
    return 0;
  } finally {
    g.file.put();
  }
}
