// The syscalls behind the process calls the twin answers outside its syscall layer (a sysfs
// readlink or readdir, a capability drop, a read of /proc/self/status), as the C library makes
// them and strace 6.1 prints them (recorded on this machine: docs/trace.md):
//
//   readlink("/sys/...", "../../../kernel/iommu_groups/1", 4096) = 30
//   openat(AT_FDCWD, "/sys/...", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = 3
//   newfstatat(3, "", {st_mode=S_IFDIR|0755, st_size=0, ...}, AT_EMPTY_PATH) = 0
//   getdents64(3, 0x... /* 4 entries */, 32768) = 112 ... getdents64(3, 0x... /* 0 entries */, 32768) = 0
//   close(3) = 0
//   capget({version=_LINUX_CAPABILITY_VERSION_3, pid=0}, {effective=1<<CAP_IPC_LOCK, ...}) = 0
//   capset(...) = 0
//   openat(AT_FDCWD, "/proc/self/status", O_RDONLY|O_CLOEXEC) = 3, read(3, ...) = n, read(3, "", 8192) = 0, close(3) = 0
//
// The twin's calls return strings, not bytes in a user buffer: where strace prints the buffer's
// address (a failed readlink, getdents64) the trace prints LIBC_BUF, an address in no mapping
// of the process that stands for the C library's own buffer.

import { cstr, int, ptr, raw, str, struct, sym, type TVal } from "./value.js";
import { openFlags } from "./syscall_flags.js";

/** the C library's buffer (readlink's, readdir's): no user mapping of the twin's process */
export const LIBC_BUF = 0x10000000;
/** PATH_MAX: the buffer size the C library (libuv) passes to readlink */
export const READLINK_BUFSIZ = 4096;
/** glibc's opendir buffer, the count getdents64 is given */
export const GETDENTS_BUFSIZ = 32768;
/** the chunk a read of a file of unknown size asks for (libuv's readFile, glibc's stdio) */
export const READ_CHUNK = 8192;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = 0o200000;
export const AT_EMPTY_PATH = 0x1000;
export const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** include/uapi/linux/capability.h, by bit */
const CAP_NAMES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/** A capability set as strace prints one: `1<<CAP_IPC_LOCK|1<<CAP_SYS_RAWIO`, `0` when empty. */
export function capSet(caps: Iterable<number>): TVal {
  const bits = [...caps].sort((a, b) => a - b);
  if (bits.length === 0) return sym("0", 0n);
  let v = 0n;
  for (const b of bits) v |= 1n << BigInt(b);
  return sym(bits.map((b) => `1<<${CAP_NAMES[b] ?? b}`).join("|"), v);
}

/** One syscall for the trace: its name, its arguments by the man page's names, its result. */
export interface LibcCall {
  readonly call: string;
  readonly args: readonly { readonly name: string; readonly value: TVal }[];
  readonly rc: number;
}

const enc = new TextEncoder();
const at = (call: string, args: LibcCall["args"], rc: number): LibcCall => ({ call, args, rc });

/** readlink(2) of a sysfs link: the link's text (its first `READLINK_BUFSIZ` bytes) or -errno. */
export function readlinkCalls(path: string, r: string | number): LibcCall[] {
  const bytes = typeof r === "string" ? enc.encode(r).subarray(0, READLINK_BUFSIZ) : null;
  return [
    at(
      "readlink",
      [
        { name: "pathname", value: cstr(path) },
        { name: "buf", value: bytes ? str(bytes) : ptr(LIBC_BUF) },
        { name: "bufsiz", value: int(READLINK_BUFSIZ) },
      ],
      bytes ? bytes.length : (r as number),
    ),
  ];
}

/** struct linux_dirent64's length for a name: d_ino, d_off, d_reclen, d_type, the name and its
 * NUL, 8-aligned (fs/readdir.c filldir64) */
function direntSize(name: string): number {
  return (19 + enc.encode(name).length + 1 + 7) & ~7;
}

/**
 * opendir, readdir until the end, closedir: the directory opened at `fd` (the lowest free
 * number, what the kernel would hand out), its entries ("." and ".." first, which the C
 * library's callers skip) read in GETDENTS_BUFSIZ chunks.
 */
export function readdirCalls(path: string, fd: number, r: readonly string[] | number): LibcCall[] {
  const open = at(
    "openat",
    [
      { name: "dirfd", value: sym("AT_FDCWD", -100) },
      { name: "pathname", value: cstr(path) },
      { name: "flags", value: openFlags(O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_DIRECTORY) },
    ],
    typeof r === "number" ? r : fd,
  );
  if (typeof r === "number") return [open];
  const calls: LibcCall[] = [open];
  calls.push(
    at(
      "newfstatat",
      [
        { name: "dirfd", value: int(fd) },
        { name: "pathname", value: cstr("") },
        { name: "statbuf", value: raw("{st_mode=S_IFDIR|0755, st_size=0, ...}") },
        { name: "flags", value: sym("AT_EMPTY_PATH", AT_EMPTY_PATH) },
      ],
      0,
    ),
  );
  const getdents = (n: number, bytes: number) =>
    at(
      "getdents64",
      [
        { name: "fd", value: int(fd) },
        { name: "dirp", value: raw(`0x${LIBC_BUF.toString(16)} /* ${n} entries */`) },
        { name: "count", value: int(GETDENTS_BUFSIZ) },
      ],
      bytes,
    );
  let n = 0;
  let bytes = 0;
  for (const name of [".", "..", ...r]) {
    const s = direntSize(name);
    if (bytes + s > GETDENTS_BUFSIZ) {
      calls.push(getdents(n, bytes));
      n = 0;
      bytes = 0;
    }
    n++;
    bytes += s;
  }
  calls.push(getdents(n, bytes), getdents(0, 0));
  calls.push(at("close", [{ name: "fd", value: int(fd) }], 0));
  return calls;
}

const capHeader = (pid: number): TVal =>
  struct([
    ["version", sym("_LINUX_CAPABILITY_VERSION_3", LINUX_CAPABILITY_VERSION_3)],
    ["pid", int(pid)],
  ]);
const capData = (effective: Iterable<number>, permitted: Iterable<number>): TVal =>
  struct([
    ["effective", capSet(effective)],
    ["permitted", capSet(permitted)],
    ["inheritable", capSet([])],
  ]);

/** capget then capset without `cap` (the twin's sets: effective = permitted, inheritable empty). */
export function capDropCalls(before: readonly number[], after: readonly number[], rc: number): LibcCall[] {
  return [
    at(
      "capget",
      [
        { name: "hdrp", value: capHeader(0) },
        { name: "datap", value: capData(before, before) },
      ],
      0,
    ),
    at(
      "capset",
      [
        { name: "hdrp", value: capHeader(0) },
        { name: "datap", value: capData(after, after) },
      ],
      rc,
    ),
  ];
}

/** A whole small file read as the C library reads one of unknown size: open, read chunks until
 * a read returns 0, close. */
export function readFileCalls(path: string, fd: number, text: string): LibcCall[] {
  const data = enc.encode(text);
  const read = (chunk: Uint8Array) =>
    at(
      "read",
      [
        { name: "fd", value: int(fd) },
        { name: "buf", value: str(chunk) },
        { name: "count", value: int(READ_CHUNK) },
      ],
      chunk.length,
    );
  const calls: LibcCall[] = [
    at(
      "openat",
      [
        { name: "dirfd", value: sym("AT_FDCWD", -100) },
        { name: "pathname", value: cstr(path) },
        { name: "flags", value: openFlags(O_RDONLY | O_CLOEXEC) },
      ],
      fd,
    ),
  ];
  for (let i = 0; i < data.length; i += READ_CHUNK) calls.push(read(data.subarray(i, i + READ_CHUNK)));
  calls.push(read(new Uint8Array(0)), at("close", [{ name: "fd", value: int(fd) }], 0));
  return calls;
}
