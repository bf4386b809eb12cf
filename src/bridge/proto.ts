// The bridge's wire protocol, the server's half (native/bridge_proto.h is the client's; keep
// both in step). One request, one reply; little-endian; see docs/bridge.md.

export const VT_PROTO_VERSION = 1;

export const enum Op {
  HELLO = 1,
  OPEN = 2,
  CLOSE = 3,
  IOCTL = 4,
  RW = 5,
  DUP = 6,
  MMAP = 7,
  MUNMAP = 8,
  MMIO = 9,
  READLINK = 10,
  STAT = 11,
  READDIR = 12,
  STATUS = 13,
  SLEEP = 14,
  FORK = 15,
  READFILE = 16,
  CAPGET = 17,
  CAPSET = 18,
  GETRLIMIT = 19,
  SETRLIMIT = 20,
  REAP = 21,
  POLL = 22,
}

export const OP_NAMES: Record<number, string> = {
  1: "hello",
  2: "open",
  3: "close",
  4: "ioctl",
  5: "rw",
  6: "dup",
  7: "mmap",
  8: "munmap",
  9: "mmio",
  10: "readlink",
  11: "stat",
  12: "readdir",
  13: "status",
  14: "sleep",
  15: "fork",
  16: "readfile",
  17: "capget",
  18: "capset",
  19: "getrlimit",
  20: "setrlimit",
  21: "reap",
  22: "poll",
};

export const VT_RW_WRITE = 1;
export const VT_RW_POS = 2;
export const VT_FD_INSTALLED = 1;
export const VT_FD_ADOPTED = 2;

/** struct vt_req: u32 len, u32 op, u64 a[6] */
export const REQ_HDR = 56;
/** struct vt_rep: u32 len, u32 pad, s64 rc, u64 aux[2] */
export const REP_HDR = 32;
/** a request larger than this is garbage (paths and fd lists are small) */
export const REQ_MAX = 64 << 10;
