// The flag arguments of the twin's syscalls, decoded as strace decodes them (x86-64 values:
// include/uapi/asm-generic/fcntl.h, mman-common.h, linux/eventfd.h).

import { flags, flagsText, type FlagTable } from "./flags.js";
import { sym, type TVal } from "./value.js";

const OPEN_FLAGS: FlagTable = [
  ["O_CREAT", 0o100],
  ["O_EXCL", 0o200],
  ["O_NOCTTY", 0o400],
  ["O_TRUNC", 0o1000],
  ["O_APPEND", 0o2000],
  ["O_NONBLOCK", 0o4000],
  ["O_DSYNC", 0o10000],
  ["O_DIRECT", 0o40000],
  ["O_LARGEFILE", 0o100000],
  ["O_NOFOLLOW", 0o400000],
  ["O_NOATIME", 0o1000000],
  ["O_CLOEXEC", 0o2000000],
  ["O_PATH", 0o10000000],
  // strace 6.1 prints O_DIRECTORY last: `O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY` (opendir)
  ["O_DIRECTORY", 0o200000],
];
const ACCMODE = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"];

/** open(2) flags: the access mode first, then the other bits. */
export function openFlags(v: number): TVal {
  const rest = v & ~3;
  return sym(ACCMODE[v & 3]! + (rest ? `|${flagsText(OPEN_FLAGS, rest)}` : ""), v);
}

const PROT: FlagTable = [
  ["PROT_READ", 1],
  ["PROT_WRITE", 2],
  ["PROT_EXEC", 4],
  ["PROT_SEM", 8],
];
export function protFlags(v: number): TVal {
  return v === 0 ? sym("PROT_NONE", 0) : sym(flagsText(PROT, v), v);
}

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_FIXED_NOREPLACE = 0x100000;
const MAP_TYPE = ["0", "MAP_SHARED", "MAP_PRIVATE", "MAP_SHARED_VALIDATE"];
const MAP_FLAGS: FlagTable = [
  ["MAP_FIXED", MAP_FIXED],
  ["MAP_ANONYMOUS", MAP_ANONYMOUS],
  ["MAP_32BIT", 0x40],
  ["MAP_GROWSDOWN", 0x100],
  ["MAP_DENYWRITE", 0x800],
  ["MAP_EXECUTABLE", 0x1000],
  ["MAP_LOCKED", 0x2000],
  ["MAP_NORESERVE", 0x4000],
  ["MAP_POPULATE", 0x8000],
  ["MAP_NONBLOCK", 0x10000],
  ["MAP_STACK", 0x20000],
  ["MAP_HUGETLB", 0x40000],
  ["MAP_SYNC", 0x80000],
  ["MAP_FIXED_NOREPLACE", MAP_FIXED_NOREPLACE],
];
/** mmap(2) flags: the mapping type, then the other bits (strace's print_mmap_flags). */
export function mapFlags(v: number): TVal {
  const rest = v & ~3;
  return sym(MAP_TYPE[v & 3]! + (rest ? `|${flagsText(MAP_FLAGS, rest)}` : ""), v);
}

const EFD: FlagTable = [
  ["EFD_SEMAPHORE", 1],
  ["EFD_CLOEXEC", 0o2000000],
  ["EFD_NONBLOCK", 0o4000],
];
export function eventfdFlags(v: number): TVal {
  return flags(EFD, v);
}
