// errno values of x86-64 Linux (include/uapi/asm-generic/errno-base.h and errno.h).
// Kernel paths return -errno; userspace sees -1 and errno, the raw twin API returns -errno.

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const ENOEXEC = 8;
export const EBADF = 9;
export const ECHILD = 10;
export const EAGAIN = 11;
export const EWOULDBLOCK = EAGAIN;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const ENOTBLK = 15;
export const EBUSY = 16;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ETXTBSY = 26;
export const EFBIG = 27;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const EROFS = 30;
export const EMLINK = 31;
export const EPIPE = 32;
export const EDOM = 33;
export const ERANGE = 34;
export const EDEADLK = 35;
export const ENAMETOOLONG = 36;
export const ENOLCK = 37;
export const ENOSYS = 38;
export const EPROTO = 71;
export const ENOTEMPTY = 39;
export const ELOOP = 40;
export const ENOMSG = 42;
export const EBADE = 52;
export const EOVERFLOW = 75;
export const EBADFD = 77;
export const EMSGSIZE = 90;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;
export const ETIMEDOUT = 110;
export const EALREADY = 114;
export const EINPROGRESS = 115;

const NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  15: "ENOTBLK",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  31: "EMLINK",
  32: "EPIPE",
  33: "EDOM",
  34: "ERANGE",
  35: "EDEADLK",
  36: "ENAMETOOLONG",
  37: "ENOLCK",
  38: "ENOSYS",
  71: "EPROTO",
  39: "ENOTEMPTY",
  40: "ELOOP",
  42: "ENOMSG",
  52: "EBADE",
  75: "EOVERFLOW",
  77: "EBADFD",
  90: "EMSGSIZE",
  95: "EOPNOTSUPP",
  98: "EADDRINUSE",
  110: "ETIMEDOUT",
  114: "EALREADY",
  115: "EINPROGRESS",
};

/** "EINVAL" for 22; "E<n>" for a number the table does not name. */
export function errnoName(errno: number): string {
  return NAMES[errno] ?? `E${errno}`;
}

export function errnoByName(name: string): number | undefined {
  for (const k in NAMES) if (NAMES[k] === name) return Number(k);
  return undefined;
}

/** An errno raised to userspace by the typed client layer (never inside the kernel model). */
export class Errno extends Error {
  constructor(
    readonly errno: number,
    readonly call: string,
  ) {
    super(`${call}: ${errnoName(errno)} (${errno})`);
    this.name = "Errno";
  }
  get code(): string {
    return errnoName(this.errno);
  }
}
