/*
 * The bridge's wire protocol (docs/bridge.md): one Unix stream connection per client
 * process, one request and one reply at a time. Little-endian, as the client and the server
 * share the machine. src/bridge/proto.ts is the other half; keep both in step.
 */
#ifndef VFIO_TWIN_BRIDGE_PROTO_H
#define VFIO_TWIN_BRIDGE_PROTO_H
#include <stdint.h>

#define VT_PROTO_VERSION 1

enum vt_op {
	VT_HELLO = 1,    /* a0 pid, a1 fork token or 0, a2 version, a3 channel memfd if a4 = 1; payload: comm.
	                  * reply payload: u32 ioctl numbers that create fds */
	VT_OPEN = 2,     /* a0 reserved fd, a1 flags; payload: path */
	VT_CLOSE = 3,    /* a0 fd */
	VT_IOCTL = 4,    /* a0 fd, a1 cmd, a2 arg; payload: s32 reserved fds */
	VT_RW = 5,       /* a0 fd, a1 buf, a2 count, a3 pos, a4 VT_RW_* flags */
	VT_DUP = 6,      /* a0 old fd, a1 new fd (already the client's) */
	VT_MMAP = 7,     /* a0 fd, a1 addr (already reserved PROT_NONE), a2 len, a3 prot, a4 flags, a5 offset */
	VT_MUNMAP = 8,   /* a0 addr, a1 len */
	VT_MMIO = 9,     /* a0 addr, a1 size, a2 is_write, a3 value; reply aux0: value read */
	VT_READLINK = 10,/* payload: path; reply payload: target */
	VT_STAT = 11,    /* payload: path; reply aux0: st_mode, aux1: size */
	VT_READDIR = 12, /* payload: path; reply payload: names, each NUL-terminated */
	VT_STATUS = 13,  /* reply aux0: VmLck kB, aux1: VmPin kB */
	VT_SLEEP = 14,   /* a0 nanoseconds of device time */
	VT_FORK = 15,    /* reply rc: a token the child says in its HELLO */
	VT_READFILE = 16,/* payload: path of a sysfs attribute; reply payload: its text */
	VT_CAPGET = 17,  /* reply aux0: the effective capability set */
	VT_CAPSET = 18,  /* a0 the new effective set (a subset of the current one) */
	VT_GETRLIMIT = 19, /* RLIMIT_MEMLOCK: reply aux0 soft, aux1 hard (~0 for infinity) */
	VT_SETRLIMIT = 20, /* RLIMIT_MEMLOCK: a0 soft, a1 hard */
	VT_REAP = 21,    /* a0 a child pid wait() just reaped: its exit is done in the twin first */
	VT_POLL = 22,    /* payload: (s32 fd, s32 events) pairs; reply payload: s32 revents each */
};

#define VT_RW_WRITE 1
#define VT_RW_POS 2

/* reply payload of fd-taking requests: (fd, kind) pairs of s32 */
#define VT_FD_INSTALLED 1 /* the twin installed a file at fd: keep (or make) a placeholder there */
#define VT_FD_ADOPTED 2   /* the twin now knows the client's own fd (an eventfd it was given) */

/*
 * The shared-memory channel (HELLO a3 = a memfd of VT_SHM_SIZE bytes; the reply's aux0 = 1
 * when the server mapped it). After that, requests and replies travel in the shared pages
 * and the socket only carries one-byte doorbells: the client rings when the server is not
 * polling, the server rings when the client sleeps. Both sides spin a little first, so back
 * to back calls make no system call at all.
 */
#define VT_SHM_SIZE (68 * 1024)
#define VT_SHM_REQ 64                     /* the request frame */
#define VT_SHM_REP (64 + 32 * 1024)       /* the reply frame */
#define VT_SHM_AREA (32 * 1024)           /* the most either frame may take */
struct vt_shm_hdr {
	uint32_t req_seq;        /* the client's last request */
	uint32_t rep_seq;        /* the request the reply in VT_SHM_REP answers */
	uint32_t server_polling; /* the server is spinning: no doorbell needed */
	uint32_t client_blocked; /* the client sleeps on the socket: ring it */
};

struct vt_req {
	uint32_t len; /* header + payload */
	uint32_t op;
	uint64_t a[6];
};

struct vt_rep {
	uint32_t len; /* header + payload */
	uint32_t pad;
	int64_t rc;   /* >= 0, or -errno */
	uint64_t aux[2];
};

#endif
