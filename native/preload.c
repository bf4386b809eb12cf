/*
 * libvfiotwin.so: runs an unmodified program against the twin (docs/bridge.md).
 *
 * Preloaded into a dynamically linked program, it sends the calls the program makes on the
 * twin's files (/dev/vfio/..., /dev/iommu, /dev/kvm, the sysfs paths VMMs read) to the bridge
 * server named by $VFIO_TWIN_SOCKET, and lets every other call through. Each twin fd is a
 * real placeholder fd (/dev/null) at the same number, so numbers, close-on-exec and fork
 * behave as the program expects; the server installs a file only at a number set aside here.
 * The program's memory stays where it is: the server reads and writes it itself
 * (process_vm_readv/writev), so structs with embedded pointers need no marshalling here.
 * A BAR mapping is a PROT_NONE page whose loads and stores native/mmio.c emulates.
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bridge_proto.h"
#include "mmio.h"

#define FD_MAX 65536
#define FD_TWIN 1    /* a twin file behind a placeholder */
#define FD_ADOPTED 2 /* the program's own fd, which the twin also holds (an eventfd) */

/* ------------------------------------------------------------ the real calls -- */

static int (*r_open)(const char *, int, ...);
static int (*r_openat)(int, const char *, int, ...);
static FILE *(*r_fopen)(const char *, const char *);
static int (*r_close)(int);
static int (*r_dup)(int);
static int (*r_dup2)(int, int);
static int (*r_dup3)(int, int, int);
static int (*r_fcntl)(int, int, ...);
static int (*r_ioctl)(int, unsigned long, ...);
static void *(*r_mmap)(void *, size_t, int, int, int, off_t);
static int (*r_munmap)(void *, size_t);
static ssize_t (*r_read)(int, void *, size_t);
static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_pread)(int, void *, size_t, off_t);
static ssize_t (*r_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*r_readlink)(const char *, char *, size_t);
static int (*r_stat)(const char *, struct stat *);
static int (*r_lstat)(const char *, struct stat *);
static int (*r_access)(const char *, int);
static DIR *(*r_opendir)(const char *);
static struct dirent *(*r_readdir)(DIR *);
static struct dirent64 *(*r_readdir64)(DIR *);
static int (*r_closedir)(DIR *);
static int (*r_nanosleep)(const struct timespec *, struct timespec *);
static int (*r_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
static int (*r_usleep)(useconds_t);
static unsigned (*r_sleep)(unsigned);

static long (*r_syscall)(long, ...);
static long syscall_real(long nr, long a, long b, long c, long d, long e, long f)
{
	if (!r_syscall) r_syscall = (__typeof__(r_syscall))dlsym(RTLD_NEXT, "syscall");
	return r_syscall(nr, a, b, c, d, e, f);
}

#define REAL(name)                                                       \
	do {                                                             \
		if (!r_##name) r_##name = (__typeof__(r_##name))dlsym(RTLD_NEXT, #name); \
	} while (0)

static void resolve_all(void);

/* The real call, resolved on first use: other libraries' constructors (libnl's fopen, say)
 * can run before this library's own and already call through these wrappers. */
#define R(name) (r_##name ? r_##name : (resolve_all(), r_##name))

/* ------------------------------------------------------------------ state -- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1;
static int connect_failed;
static unsigned char fdkind[FD_MAX];
static uint32_t fdmaking[32];
static unsigned nfdmaking;
static uint64_t fork_token;
static char *shm;          /* the shared-memory channel, once the server took it */
static uint32_t shm_seq;

struct devmap {
	uintptr_t start;
	size_t len;
};
#define DEVMAP_MAX 64
static struct devmap devmaps[DEVMAP_MAX];

static int twin_fd(int fd) { return fd >= 0 && fd < FD_MAX && fdkind[fd] == FD_TWIN; }
static int known_fd(int fd) { return fd >= 0 && fd < FD_MAX && fdkind[fd] != 0; }

/* Paths the twin answers: its device nodes and the sysfs a VMM reads (the twin is the machine). */
static int twin_path(const char *p)
{
	static const char *const pre[] = {
		"/dev/vfio", "/dev/iommu", "/dev/kvm", "/sys/bus/pci/devices", "/sys/bus/pci/drivers",
		"/sys/kernel/iommu_groups", "/sys/bus/mdev", "/sys/kernel/debug", NULL,
	};
	if (!p || p[0] != '/') return 0;
	for (int i = 0; pre[i]; i++) {
		size_t n = strlen(pre[i]);
		if (!strncmp(p, pre[i], n) && (p[n] == 0 || p[n] == '/')) return 1;
	}
	/* /proc/{self,thread-self,PID}[/task/TID]/fail-nth: the twin's fault injection */
	size_t l = strlen(p);
	return !strncmp(p, "/proc/", 6) && l > 15 && !strcmp(p + l - 9, "/fail-nth");
}

/* A twin path as the twin names it: no repeated '/', no trailing '/', "." steps dropped. */
static const char *canon(const char *p, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *q = p; *q && o + 1 < cap; q++) {
		if (*q == '/' && (q[1] == '/' || (q[1] == '.' && (q[2] == '/' || q[2] == 0)))) {
			if (q[1] == '.') q++;
			continue;
		}
		out[o++] = *q;
	}
	while (o > 1 && out[o - 1] == '/') o--;
	out[o] = 0;
	return out;
}

static int own_status_path(const char *p)
{
	char mine[64];
	if (!p) return 0;
	snprintf(mine, sizeof mine, "/proc/%d/status", (int)getpid());
	return !strcmp(p, "/proc/self/status") || !strcmp(p, "/proc/thread-self/status") || !strcmp(p, mine);
}

/* -------------------------------------------------------------- transport -- */

static int xfer(int out, void *buf, size_t len)
{
	char *b = buf;
	while (len) {
		ssize_t n = out ? send(sock, b, len, MSG_NOSIGNAL) : recv(sock, b, len, 0);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static void lost(void)
{
	static int said;
	if (!said++) {
		static const char m[] = "vfio-twin: lost the bridge server; twin calls fail with EIO\n";
		if (r_write) R(write)(2, m, sizeof m - 1);
	}
	if (sock >= 0) R(close)(sock);
	sock = -1;
	connect_failed = 1;
}

static int64_t rpc_shm(uint32_t op, const uint64_t *a, int na, const void *pay, size_t plen, void *out,
		       size_t outcap, size_t *outlen, uint64_t *aux);

/* What the caller gets of a reply: its rc, the payload length kept, the aux values. */
static int64_t finish(const struct vt_rep *r, size_t keep, size_t *outlen, uint64_t *aux)
{
	if (outlen) *outlen = keep;
	if (aux) aux[0] = r->aux[0], aux[1] = r->aux[1];
	return r->rc;
}

/* One request, one reply, with mu held. Returns rc (>= 0 or -errno). */
static int64_t rpc_locked(uint32_t op, const uint64_t *a, int na, const void *pay, size_t plen,
			  void *out, size_t outcap, size_t *outlen, uint64_t *aux)
{
	struct vt_req q = { .len = (uint32_t)(sizeof q + plen), .op = op };
	struct vt_rep r;
	char hdr[sizeof q + 256];
	for (int i = 0; i < na; i++) q.a[i] = a[i];
	if (sock < 0) return -EIO;
	if (shm) return rpc_shm(op, a, na, pay, plen, out, outcap, outlen, aux);
	if (plen <= 256) { /* one send for the common small request */
		memcpy(hdr, &q, sizeof q);
		if (plen) memcpy(hdr + sizeof q, pay, plen);
		if (xfer(1, hdr, sizeof q + plen)) goto broken;
	} else if (xfer(1, &q, sizeof q) || xfer(1, (void *)pay, plen))
		goto broken;
	if (xfer(0, &r, sizeof r) || r.len < sizeof r) goto broken;
	size_t n = r.len - sizeof r, keep = n < outcap ? n : outcap;
	if (keep && xfer(0, out, keep)) goto broken;
	for (size_t left = n - keep; left;) { /* more than the caller wanted: drain */
		char sink[256];
		size_t k = left < sizeof sink ? left : sizeof sink;
		if (xfer(0, sink, k)) goto broken;
		left -= k;
	}
	return finish(&r, keep, outlen, aux);
broken:
	lost();
	return -EIO;
}

static int hello_locked(uint64_t token);

static double mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

#define SPIN_NS 50000.0 /* how long a client spins for its reply before it sleeps */

static int64_t rpc_shm(uint32_t op, const uint64_t *a, int na, const void *pay, size_t plen, void *out,
		       size_t outcap, size_t *outlen, uint64_t *aux)
{
	struct vt_shm_hdr *h = (struct vt_shm_hdr *)shm;
	struct vt_req q = { .len = (uint32_t)(sizeof q + plen), .op = op };
	if (sizeof q + plen > VT_SHM_AREA) return -E2BIG;
	for (int i = 0; i < na; i++) q.a[i] = a[i];
	memcpy(shm + VT_SHM_REQ, &q, sizeof q);
	if (plen) memcpy(shm + VT_SHM_REQ + sizeof q, pay, plen);
	uint32_t s = ++shm_seq;
	__atomic_store_n(&h->req_seq, s, __ATOMIC_SEQ_CST);
	char bell = 'r';
	/* a server that is polling answers within microseconds: spin for it. One that sleeps needs
	 * the doorbell and a wakeup anyway; spinning then only takes the core it may need (on a
	 * busy machine that made calls slower than the socket alone), so sleep at once. */
	int polling = __atomic_load_n(&h->server_polling, __ATOMIC_SEQ_CST);
	if (!polling && send(sock, &bell, 1, MSG_NOSIGNAL) != 1) goto broken;
	double t0 = 0, budget = polling ? SPIN_NS : 0;
	for (unsigned i = 0; __atomic_load_n(&h->rep_seq, __ATOMIC_ACQUIRE) != s; i++) {
		__builtin_ia32_pause();
		if ((i & 255) != 255 && budget > 0) continue;
		if (!t0) t0 = mono_ns();
		if (mono_ns() - t0 >= budget) {
			/* sleep on the socket: the server rings once it has answered */
			__atomic_store_n(&h->client_blocked, 1, __ATOMIC_SEQ_CST);
			while (__atomic_load_n(&h->rep_seq, __ATOMIC_SEQ_CST) != s) {
				ssize_t n = recv(sock, &bell, 1, 0);
				if (n < 0 && errno == EINTR) continue;
				if (n <= 0) goto broken;
			}
			__atomic_store_n(&h->client_blocked, 0, __ATOMIC_SEQ_CST);
			break;
		}
	}
	struct vt_rep r;
	memcpy(&r, shm + VT_SHM_REP, sizeof r);
	if (r.len < sizeof r || r.len > VT_SHM_AREA) goto broken;
	size_t n = r.len - sizeof r, keep = n < outcap ? n : outcap;
	if (keep) memcpy(out, shm + VT_SHM_REP + sizeof r, keep);
	return finish(&r, keep, outlen, aux);
broken:
	lost();
	return -EIO;
}

/* The shared-memory channel: a memfd the server maps (it takes the fd with pidfd_getfd). */
static int shm_fd_new(void)
{
	int fd = memfd_create("vfio-twin-channel", MFD_CLOEXEC);
	if (fd < 0) return -1;
	if (ftruncate(fd, VT_SHM_SIZE) < 0) {
		R(close)(fd);
		return -1;
	}
	int hi = R(fcntl)(fd, F_DUPFD_CLOEXEC, 900);
	if (hi >= 0) {
		R(close)(fd);
		fd = hi;
	}
	return fd;
}

/* Connect on first use; a forked child says its parent's token (see atfork_child). */
static int ensure_locked(void)
{
	if (sock >= 0) return 0;
	if (connect_failed) return -1;
	const char *path = getenv("VFIO_TWIN_SOCKET");
	if (!path || !*path) return connect_failed = 1, -1;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (s >= 0) R(close)(s);
		fprintf(stderr, "vfio-twin: cannot reach the bridge server at %s: %s\n", path, strerror(errno));
		return connect_failed = 1, -1;
	}
	/* out of the program's way: a high number, as a library's own fd should be */
	int hi = R(fcntl)(s, F_DUPFD_CLOEXEC, 900);
	if (hi >= 0) {
		R(close)(s);
		s = hi;
	}
	sock = s;
	uint64_t token = fork_token;
	fork_token = 0;
	return hello_locked(token);
}

static int hello_locked(uint64_t token)
{
	char comm[64] = "client";
	int f = R(open)("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		ssize_t n = R(read)(f, comm, sizeof comm - 1);
		comm[n > 0 ? n : 0] = 0;
		if (n > 0 && comm[n - 1] == '\n') comm[n - 1] = 0;
		R(close)(f);
	}
	int sfd = getenv("VFIO_TWIN_NO_SHM") ? -1 : shm_fd_new();
	uint64_t a[5] = { (uint64_t)getpid(), token, VT_PROTO_VERSION, (uint64_t)(int64_t)sfd, sfd >= 0 };
	size_t got = 0;
	uint64_t aux[2] = { 0, 0 };
	shm = NULL;
	int64_t rc = rpc_locked(VT_HELLO, a, 5, comm, strlen(comm) + 1, fdmaking, sizeof fdmaking, &got, aux);
	if (sfd >= 0) {
		if (rc >= 0 && aux[0] == 1) {
			void *m = R(mmap)(NULL, VT_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
			shm = m == MAP_FAILED ? NULL : m;
			shm_seq = 0;
		}
		R(close)(sfd); /* the server holds its own copy; the mapping keeps the pages */
	}
	if (rc < 0) {
		fprintf(stderr, "vfio-twin: the bridge server refused this process: %s\n", strerror((int)-rc));
		lost();
		return -1;
	}
	nfdmaking = (unsigned)(got / 4);
	return 0;
}

/* Signals stay blocked during an exchange: a program handler that touched a BAR (an MMIO
 * request of its own) must not interleave with the request in flight or wait on mu. */
static int64_t rpc(uint32_t op, const uint64_t *a, int na, const void *pay, size_t plen, void *out,
		   size_t outcap, size_t *outlen, uint64_t *aux)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&mu);
	int64_t rc = ensure_locked() ? -EIO : rpc_locked(op, a, na, pay, plen, out, outcap, outlen, aux);
	pthread_mutex_unlock(&mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static int fail(int64_t rc)
{
	errno = (int)-rc;
	return -1;
}

/* A placeholder for a twin fd: /dev/null, so a stray read or write by code that does not go
 * through libc's exported calls is harmless. */
static int placeholder(int cloexec) { return R(open)("/dev/null", O_RDWR | (cloexec ? O_CLOEXEC : 0)); }

/* The (fd, kind) pairs a reply carries: numbers the twin now uses. */
static void apply_fd_events(const int32_t *ev, size_t n, const int *reserved, int nres, int *used)
{
	for (size_t i = 0; i + 1 < n; i += 2) {
		int fd = ev[i], kind = ev[i + 1], ours = 0;
		if (fd < 0 || fd >= FD_MAX) continue;
		for (int j = 0; j < nres; j++)
			if (reserved[j] == fd) used[j] = ours = 1;
		if (kind == VT_FD_INSTALLED && !ours) {
			/* an fd-making ioctl this library was not told of: the server picked a number free
			 * on both sides; put a placeholder there */
			int ph = placeholder(1);
			if (ph >= 0 && ph != fd) {
				R(dup3)(ph, fd, O_CLOEXEC);
				R(close)(ph);
			}
		}
		fdkind[fd] = kind == VT_FD_INSTALLED ? FD_TWIN : FD_ADOPTED;
	}
}

/* ------------------------------------------------------------- constructor -- */

static void atfork_prepare(void)
{
	pthread_mutex_lock(&mu);
	fork_token = 0;
	if (sock >= 0) {
		/* the server copies this table now; the child claims the copy with the token */
		int64_t rc = rpc_locked(VT_FORK, NULL, 0, NULL, 0, NULL, 0, NULL, NULL);
		fork_token = rc > 0 ? (uint64_t)rc : 0;
	}
}

static void atfork_parent(void)
{
	fork_token = 0;
	pthread_mutex_unlock(&mu);
}

/* The child is a new twin process whose table is the parent's at fork(): it connects on its
 * own socket and claims that table with the token. */
static void atfork_child(void)
{
	pthread_mutex_init(&mu, NULL);
	if (shm) { /* the parent's channel, shared by inheritance: not ours */
		R(munmap)(shm, VT_SHM_SIZE);
		shm = NULL;
	}
	if (sock >= 0) {
		R(close)(sock);
		sock = -1;
		connect_failed = 0;
		ensure_locked(); /* HELLO with fork_token */
	}
}

static void resolve_all(void)
{
	REAL(open); REAL(openat); REAL(fopen); REAL(close); REAL(dup); REAL(dup2); REAL(dup3);
	REAL(fcntl); REAL(ioctl); REAL(mmap); REAL(munmap); REAL(read); REAL(write); REAL(pread);
	REAL(pwrite); REAL(readlink); REAL(stat); REAL(lstat); REAL(access); REAL(opendir);
	REAL(readdir); REAL(readdir64); REAL(closedir); REAL(nanosleep); REAL(clock_nanosleep);
	REAL(usleep); REAL(sleep);
}

__attribute__((constructor)) static void vt_init(void)
{
	resolve_all();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	/* the server reads and writes this process's memory (process_vm_readv/writev): allow it
	 * where Yama restricts ptrace to ancestors */
	if (getenv("VFIO_TWIN_SOCKET")) prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
	mmio_init(); /* resolves the real signal calls now, so a fault never needs dlsym */
}

/* ------------------------------------------------------------------ files -- */

/* A sysfs attribute or our own /proc status as a real file: the text in a memfd, so stdio
 * (which reads through libc's internal calls, not these wrappers) sees it too. */
static int text_file(const char *text, size_t len, int flags)
{
	int fd = memfd_create("vfio-twin", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (fd < 0) return -1;
	for (size_t off = 0; off < len;) {
		ssize_t n = R(write)(fd, text + off, len - off);
		if (n <= 0) break;
		off += (size_t)n;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/* /proc/self/status with VmLck and VmPin as the twin accounts them (mm->locked_vm and
 * mm->pinned_vm are what type1 and iommufd charge; the real ones stay 0 here). */
static int open_status(int flags)
{
	char buf[8192], out[8400];
	uint64_t aux[2] = { 0, 0 };
	int fd = R(open)("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	ssize_t n = R(read)(fd, buf, sizeof buf - 1);
	R(close)(fd);
	if (n < 0) return -1;
	buf[n] = 0;
	if (rpc(VT_STATUS, NULL, 0, NULL, 0, NULL, 0, NULL, aux) < 0) return text_file(buf, (size_t)n, flags);
	size_t o = 0;
	for (char *line = buf, *nl; *line; line = nl) {
		nl = strchr(line, '\n');
		nl = nl ? nl + 1 : line + strlen(line);
		if (!strncmp(line, "VmLck:", 6))
			o += (size_t)snprintf(out + o, sizeof out - o, "VmLck:\t%8llu kB\n", (unsigned long long)aux[0]);
		else if (!strncmp(line, "VmPin:", 6))
			o += (size_t)snprintf(out + o, sizeof out - o, "VmPin:\t%8llu kB\n", (unsigned long long)aux[1]);
		else if (o + (size_t)(nl - line) < sizeof out) {
			memcpy(out + o, line, (size_t)(nl - line));
			o += (size_t)(nl - line);
		}
	}
	return text_file(out, o, flags);
}

static int twin_open(const char *path, int flags)
{
	/* an attribute opened for reading is its text in a memfd; for writing, the twin's file */
	if (strncmp(path, "/sys/", 5) == 0 && (flags & O_ACCMODE) == O_RDONLY) {
		char text[4096];
		size_t len = 0;
		int64_t rc = rpc(VT_READFILE, NULL, 0, path, strlen(path) + 1, text, sizeof text, &len, NULL);
		if (rc < 0) return fail(rc);
		return text_file(text, len, flags);
	}
	int ph = placeholder(flags & O_CLOEXEC);
	if (ph < 0) return -1;
	if (ph >= FD_MAX) {
		R(close)(ph);
		return fail(-EMFILE);
	}
	uint64_t a[2] = { (uint64_t)ph, (uint64_t)(int64_t)flags };
	int64_t rc = rpc(VT_OPEN, a, 2, path, strlen(path) + 1, NULL, 0, NULL, NULL);
	if (rc < 0) {
		R(close)(ph);
		return fail(rc);
	}
	fdkind[ph] = FD_TWIN;
	return ph;
}

static int vt_open(const char *path, int flags, mode_t mode)
{
	char c[4096];
	if (twin_path(path)) return twin_open(canon(path, c, sizeof c), flags);
	if (own_status_path(path) && sock >= 0) return open_status(flags);
	return R(open)(path, flags, mode);
}

#define MODE_ARG(flags, mode)                                   \
	mode_t mode = 0;                                        \
	if ((flags) & (O_CREAT | __O_TMPFILE)) {                \
		va_list ap;                                     \
		va_start(ap, flags);                            \
		mode = (mode_t)va_arg(ap, int);                 \
		va_end(ap);                                     \
	}

int open(const char *path, int flags, ...) { MODE_ARG(flags, mode); return vt_open(path, flags, mode); }
int open64(const char *path, int flags, ...) { MODE_ARG(flags, mode); return vt_open(path, flags, mode); }
int __open_2(const char *path, int flags) { return vt_open(path, flags, 0); }
int __open64_2(const char *path, int flags) { return vt_open(path, flags, 0); }

/* The directory a dirfd() of a twin directory stands for (see dirfd()). */
static char *dirpath[FD_MAX];

static int vt_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	if (path[0] == '/') return vt_open(path, flags, mode);
	if (dirfd >= 0 && dirfd < FD_MAX && dirpath[dirfd]) {
		char full[4096];
		snprintf(full, sizeof full, "%s/%s", dirpath[dirfd], path);
		return vt_open(full, flags, mode);
	}
	return R(openat)(dirfd, path, flags, mode);
}
int openat(int dirfd, const char *path, int flags, ...)
{
	MODE_ARG(flags, mode);
	return vt_openat(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char *path, int flags, ...)
{
	MODE_ARG(flags, mode);
	return vt_openat(dirfd, path, flags, mode);
}
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }

static FILE *vt_fopen(const char *path, const char *mode)
{
	if (twin_path(path) || (own_status_path(path) && sock >= 0)) {
		int flags = strchr(mode, '+') ? O_RDWR : mode[0] == 'r' ? O_RDONLY : O_WRONLY;
		if (strchr(mode, 'e')) flags |= O_CLOEXEC;
		int fd = vt_open(path, flags, 0);
		return fd < 0 ? NULL : fdopen(fd, mode);
	}
	return R(fopen)(path, mode);
}
FILE *fopen(const char *path, const char *mode) { return vt_fopen(path, mode); }
FILE *fopen64(const char *path, const char *mode) { return vt_fopen(path, mode); }

int close(int fd)
{
	if (fd >= 0 && fd < FD_MAX && dirpath[fd]) {
		free(dirpath[fd]);
		dirpath[fd] = NULL;
	}
	if (known_fd(fd)) {
		rpc(VT_CLOSE, (uint64_t[]){ (uint64_t)fd }, 1, NULL, 0, NULL, 0, NULL, NULL);
		fdkind[fd] = 0;
	}
	return R(close)(fd);
}

/* After the real dup*() made `nfd`: the twin's table follows (dup2 onto a twin fd closes it). */
static int after_dup(int old, int nfd)
{
	if (nfd < 0 || nfd == old) return nfd;
	if (nfd >= FD_MAX) return nfd;
	if (fdkind[nfd]) {
		rpc(VT_CLOSE, (uint64_t[]){ (uint64_t)nfd }, 1, NULL, 0, NULL, 0, NULL, NULL);
		fdkind[nfd] = 0;
	}
	if (known_fd(old)) {
		uint64_t a[2] = { (uint64_t)old, (uint64_t)nfd };
		if (rpc(VT_DUP, a, 2, NULL, 0, NULL, 0, NULL, NULL) >= 0) fdkind[nfd] = fdkind[old];
	}
	return nfd;
}

int dup(int fd) { return after_dup(fd, R(dup)(fd)); }
int dup2(int fd, int nfd)
{
	int was = known_fd(nfd) && nfd != fd;
	int rc = R(dup2)(fd, nfd);
	if (rc < 0 && was) return rc;
	return after_dup(fd, rc);
}
int dup3(int fd, int nfd, int flags) { return after_dup(fd, R(dup3)(fd, nfd, flags)); }

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int rc = R(fcntl)(fd, cmd, arg);
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && known_fd(fd)) return after_dup(fd, rc);
	return rc;
}
int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl(fd, cmd, arg);
}

/* ----------------------------------------------------------------- ioctl -- */

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (!twin_fd(fd)) return R(ioctl)(fd, req, arg);
	int reserved[2], nres = 0, used[2] = { 0, 0 };
	for (unsigned i = 0; i < nfdmaking; i++)
		if (fdmaking[i] == (uint32_t)req) {
			int ph = placeholder(1);
			if (ph >= 0 && ph < FD_MAX) reserved[nres++] = ph;
			else if (ph >= 0) R(close)(ph);
			break;
		}
	int32_t ev[16];
	size_t evlen = 0;
	uint64_t a[3] = { (uint64_t)fd, (uint64_t)req, (uint64_t)(uintptr_t)arg };
	int64_t rc = rpc(VT_IOCTL, a, 3, reserved, sizeof(int) * (size_t)nres, ev, sizeof ev, &evlen, NULL);
	apply_fd_events(ev, evlen / 4, reserved, nres, used);
	for (int j = 0; j < nres; j++)
		if (!used[j]) R(close)(reserved[j]);
	if (rc < 0) return fail(rc);
	return (int)rc;
}

/* --------------------------------------------------------- read and write -- */

static ssize_t twin_rw(int fd, uintptr_t buf, size_t count, off_t pos, int flags)
{
	uint64_t a[5] = { (uint64_t)fd, (uint64_t)buf, (uint64_t)count, (uint64_t)(int64_t)pos,
			  (uint64_t)flags };
	int64_t rc = rpc(VT_RW, a, 5, NULL, 0, NULL, 0, NULL, NULL);
	return rc < 0 ? fail(rc) : (ssize_t)rc;
}

ssize_t read(int fd, void *buf, size_t n) { return twin_fd(fd) ? twin_rw(fd, (uintptr_t)buf, n, 0, 0) : R(read)(fd, buf, n); }
ssize_t write(int fd, const void *buf, size_t n)
{
	return twin_fd(fd) ? twin_rw(fd, (uintptr_t)buf, n, 0, VT_RW_WRITE) : R(write)(fd, buf, n);
}
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return twin_fd(fd) ? twin_rw(fd, (uintptr_t)buf, n, off, VT_RW_POS) : R(pread)(fd, buf, n, off);
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return twin_fd(fd) ? twin_rw(fd, (uintptr_t)buf, n, off, VT_RW_POS | VT_RW_WRITE) : R(pwrite)(fd, buf, n, off);
}
ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

/* ------------------------------------------------------------ mmap, MMIO -- */

static void forget_devmaps(uintptr_t s, size_t len);

static int mmio_cb(void *cookie, uint64_t off, unsigned size, int is_write, uint64_t *val)
{
	uintptr_t start = (uintptr_t)cookie;
	uint64_t a[4] = { start + off, size, (uint64_t)is_write, is_write ? *val : 0 };
	uint64_t aux[2];
	int64_t rc = rpc(VT_MMIO, a, 4, NULL, 0, NULL, 0, NULL, aux);
	if (rc < 0) return -1;
	if (!is_write) *val = aux[0];
	return 0;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fd < 0 || !twin_fd(fd)) {
		void *va = R(mmap)(addr, len, prot, flags, fd, off);
		/* a fixed mapping over a BAR mapping replaces it, as munmap would */
		if (va != MAP_FAILED && (flags & MAP_FIXED)) forget_devmaps((uintptr_t)va, len);
		return va;
	}
	/* the address first (as the program asked, MAP_FIXED* included), then the twin's VMA */
	int keep = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	void *va = R(mmap)(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | keep, -1, 0);
	if (va == MAP_FAILED) return va;
	uint64_t a[6] = { (uint64_t)fd, (uint64_t)(uintptr_t)va, len, (uint64_t)prot, (uint64_t)flags, (uint64_t)off };
	int64_t rc = rpc(VT_MMAP, a, 6, NULL, 0, NULL, 0, NULL, NULL);
	if (rc < 0) {
		R(munmap)(va, len);
		fail(rc);
		return MAP_FAILED;
	}
	size_t plen = (len + 4095) & ~(size_t)4095;
	if (mmio_register((uintptr_t)va, plen, mmio_cb, va) < 0) {
		rpc(VT_MUNMAP, (uint64_t[]){ (uint64_t)(uintptr_t)va, plen }, 2, NULL, 0, NULL, 0, NULL, NULL);
		R(munmap)(va, len);
		errno = ENOMEM;
		return MAP_FAILED;
	}
	pthread_mutex_lock(&mu);
	for (int i = 0; i < DEVMAP_MAX; i++)
		if (!devmaps[i].len) {
			devmaps[i] = (struct devmap){ (uintptr_t)va, plen };
			break;
		}
	pthread_mutex_unlock(&mu);
	return va;
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

/* [s, s + len) no longer maps the device: drop the emulation and the twin's VMA. */
static void forget_devmaps(uintptr_t s, size_t len)
{
	uintptr_t e = s + len;
	int dev = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < DEVMAP_MAX; i++) {
		struct devmap *m = &devmaps[i];
		if (m->len && m->start < e && s < m->start + m->len) {
			dev = 1;
			if (s <= m->start && e >= m->start + m->len) m->len = 0;
		}
	}
	pthread_mutex_unlock(&mu);
	if (dev) {
		mmio_unregister(s, len);
		rpc(VT_MUNMAP, (uint64_t[]){ s, len }, 2, NULL, 0, NULL, 0, NULL, NULL);
	}
}

int munmap(void *addr, size_t len)
{
	int rc = R(munmap)(addr, len);
	if (rc == 0) forget_devmaps((uintptr_t)addr, len);
	return rc;
}

/* ----------------------------------------------------------------- sysfs -- */

ssize_t readlink(const char *path, char *buf, size_t size)
{
	if (!twin_path(path)) return R(readlink)(path, buf, size);
	char t[4096], c[4096];
	path = canon(path, c, sizeof c);
	size_t len = 0;
	int64_t rc = rpc(VT_READLINK, NULL, 0, path, strlen(path) + 1, t, sizeof t, &len, NULL);
	if (rc < 0) return fail(rc);
	if (len > size) len = size;
	memcpy(buf, t, len);
	return (ssize_t)len;
}

static int twin_stat(const char *path, struct stat *st, int follow)
{
	uint64_t aux[2];
	char c[4096];
	path = canon(path, c, sizeof c);
	int64_t rc = rpc(VT_STAT, (uint64_t[]){ (uint64_t)follow }, 1, path, strlen(path) + 1, NULL, 0, NULL, aux);
	if (rc < 0) return fail(rc);
	memset(st, 0, sizeof *st);
	st->st_mode = (mode_t)aux[0];
	st->st_size = (off_t)aux[1];
	st->st_nlink = 1;
	st->st_blksize = 4096;
	st->st_dev = 0x7477; /* "tw" */
	st->st_ino = 1;
	for (const char *p = path; *p; p++) st->st_ino = st->st_ino * 31 + (unsigned char)*p;
	return 0;
}

int stat(const char *path, struct stat *st) { return twin_path(path) ? twin_stat(path, st, 1) : R(stat)(path, st); }
int lstat(const char *path, struct stat *st) { return twin_path(path) ? twin_stat(path, st, 0) : R(lstat)(path, st); }
int stat64(const char *path, struct stat64 *st) { return stat(path, (struct stat *)st); }
int lstat64(const char *path, struct stat64 *st) { return lstat(path, (struct stat *)st); }

int access(const char *path, int mode)
{
	if (!twin_path(path)) return R(access)(path, mode);
	struct stat st;
	if (twin_stat(path, &st, 1) < 0) return -1;
	if ((mode & W_OK) && !(st.st_mode & 0222)) return fail(-EACCES);
	return 0;
}

/* A twin directory: the names, handed out as dirents. */
struct vt_dir {
	uint32_t magic;
	int fd;      /* dirfd(): a placeholder standing for the path, or -1 */
	char *path;
	size_t len, off;
	struct dirent64 ent;
	char names[];
};
#define VT_DIR_MAGIC 0x76746472

DIR *opendir(const char *path)
{
	if (!twin_path(path)) return R(opendir)(path);
	char buf[16384], c[4096];
	path = canon(path, c, sizeof c);
	size_t len = 0;
	int64_t rc = rpc(VT_READDIR, NULL, 0, path, strlen(path) + 1, buf, sizeof buf, &len, NULL);
	if (rc < 0) {
		errno = (int)-rc;
		return NULL;
	}
	static const char dots[] = ".\0..\0";
	struct vt_dir *d = calloc(1, sizeof *d + sizeof dots + len);
	if (!d) return NULL;
	d->magic = VT_DIR_MAGIC;
	d->fd = -1;
	d->path = strdup(path);
	memcpy(d->names, dots, sizeof dots - 1);
	memcpy(d->names + sizeof dots - 1, buf, len);
	d->len = sizeof dots - 1 + len;
	return (DIR *)d;
}

/* Whether d is ours: a real DIR never starts with our magic (glibc's starts with its fd). */
static struct vt_dir *ours(DIR *d) { return d && ((struct vt_dir *)d)->magic == VT_DIR_MAGIC ? (struct vt_dir *)d : NULL; }

static struct dirent64 *vt_next(struct vt_dir *d)
{
	if (d->off >= d->len) return NULL;
	const char *n = d->names + d->off;
	size_t l = strlen(n);
	d->off += l + 1;
	memset(&d->ent, 0, sizeof d->ent);
	d->ent.d_ino = d->off;
	d->ent.d_off = (off_t)d->off;
	d->ent.d_reclen = sizeof d->ent;
	d->ent.d_type = DT_UNKNOWN;
	snprintf(d->ent.d_name, sizeof d->ent.d_name, "%s", n);
	return &d->ent;
}

struct dirent *readdir(DIR *d)
{
	struct vt_dir *v = ours(d);
	return v ? (struct dirent *)vt_next(v) : R(readdir)(d);
}
struct dirent64 *readdir64(DIR *d)
{
	struct vt_dir *v = ours(d);
	return v ? vt_next(v) : R(readdir64)(d);
}
int closedir(DIR *d)
{
	struct vt_dir *v = ours(d);
	if (!v) return R(closedir)(d);
	v->magic = 0;
	if (v->fd >= 0) close(v->fd);
	free(v->path);
	free(v);
	return 0;
}

/* dirfd() of a twin directory: an fd whose openat()s resolve under the directory's path. */
int dirfd(DIR *d)
{
	static int (*real)(DIR *);
	struct vt_dir *v = ours(d);
	if (!v) {
		if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "dirfd");
		return real(d);
	}
	if (v->fd < 0) {
		int fd = R(open)("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fd >= FD_MAX) {
			if (fd >= 0) R(close)(fd);
			return fail(-EMFILE);
		}
		dirpath[fd] = strdup(v->path);
		v->fd = fd;
	}
	return v->fd;
}

/* ------------------------------------------------------------------ time -- */

/* Device time is the twin's: a sleep in a bridged program lets that much device time pass
 * (timers due run, interrupts fire) and returns at once, as the twin's p.sleep() does. */
static int twin_sleep(uint64_t ns)
{
	if (sock < 0 && connect_failed) return -1;
	pthread_mutex_lock(&mu);
	int connected = sock >= 0;
	int64_t rc = connected ? rpc_locked(VT_SLEEP, (uint64_t[]){ ns }, 1, NULL, 0, NULL, 0, NULL, NULL) : -1;
	pthread_mutex_unlock(&mu);
	return connected && rc >= 0 ? 0 : -1;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	if (req && twin_sleep((uint64_t)req->tv_sec * 1000000000ull + (uint64_t)req->tv_nsec) == 0) {
		if (rem) rem->tv_sec = rem->tv_nsec = 0;
		return 0;
	}
	return R(nanosleep)(req, rem);
}
int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
	if (req && flags == 0 && twin_sleep((uint64_t)req->tv_sec * 1000000000ull + (uint64_t)req->tv_nsec) == 0)
		return 0;
	return R(clock_nanosleep)(clk, flags, req, rem);
}
int usleep(useconds_t us) { return twin_sleep((uint64_t)us * 1000) == 0 ? 0 : R(usleep)(us); }
unsigned sleep(unsigned s) { return twin_sleep((uint64_t)s * 1000000000ull) == 0 ? 0 : R(sleep)(s); }

/* ---------------------------------------------------- credentials, rlimit -- */

/* Whether this process already talks to the twin (no connection is made to find out). */
static int is_connected(void)
{
	pthread_mutex_lock(&mu);
	int on = sock >= 0;
	pthread_mutex_unlock(&mu);
	return on;
}

/* The twin is the machine: RLIMIT_MEMLOCK and the capability sets that its accounting and
 * permission checks read are the twin's, so a connected program's setrlimit(RLIMIT_MEMLOCK)
 * and capset() go there (and are answered as the twin's kernel answers them). */
static int connected(void)
{
	pthread_mutex_lock(&mu);
	int ok = ensure_locked() == 0;
	pthread_mutex_unlock(&mu);
	return ok;
}

static int twin_getrlimit(struct rlimit *rl)
{
	uint64_t aux[2];
	int64_t rc = rpc(VT_GETRLIMIT, NULL, 0, NULL, 0, NULL, 0, NULL, aux);
	if (rc < 0) return fail(rc);
	rl->rlim_cur = aux[0];
	rl->rlim_max = aux[1];
	return 0;
}

static int twin_setrlimit(const struct rlimit *rl)
{
	uint64_t a[2] = { rl->rlim_cur, rl->rlim_max };
	int64_t rc = rpc(VT_SETRLIMIT, a, 2, NULL, 0, NULL, 0, NULL, NULL);
	return rc < 0 ? fail(rc) : 0;
}

/* A change connects (the twin's value is the one that counts from then on); a read is the
 * twin's only once connected: a process that never touches the twin keeps its own. */
static int memlock_of_self(int res, pid_t pid, int change)
{
	if (res != RLIMIT_MEMLOCK || (pid != 0 && pid != getpid())) return 0;
	return change ? connected() : is_connected();
}

int getrlimit(__rlimit_resource_t res, struct rlimit *rl)
{
	static int (*real)(__rlimit_resource_t, struct rlimit *);
	if (memlock_of_self(res, 0, 0)) return twin_getrlimit(rl);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "getrlimit");
	return real(res, rl);
}
int setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
	static int (*real)(__rlimit_resource_t, const struct rlimit *);
	if (memlock_of_self(res, 0, 1)) return twin_setrlimit(rl);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "setrlimit");
	return real(res, rl);
}
int getrlimit64(__rlimit_resource_t res, struct rlimit64 *rl) { return getrlimit(res, (struct rlimit *)rl); }
int setrlimit64(__rlimit_resource_t res, const struct rlimit64 *rl) { return setrlimit(res, (const struct rlimit *)rl); }
int prlimit(pid_t pid, __rlimit_resource_t res, const struct rlimit *nw, struct rlimit *old)
{
	static int (*real)(pid_t, __rlimit_resource_t, const struct rlimit *, struct rlimit *);
	if (memlock_of_self(res, pid, nw != NULL)) {
		struct rlimit cur;
		if (twin_getrlimit(&cur) < 0) return -1;
		if (nw && twin_setrlimit(nw) < 0) return -1;
		if (old) *old = cur;
		return 0;
	}
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "prlimit");
	return real(pid, res, nw, old);
}
int prlimit64(pid_t pid, __rlimit_resource_t res, const struct rlimit64 *nw, struct rlimit64 *old)
{
	return prlimit(pid, res, (const struct rlimit *)nw, (struct rlimit *)old);
}

/* capget/capset of this process (version 2 and 3 headers: two u32 words per set). */
static int twin_cap(int set, cap_user_header_t h, cap_user_data_t d)
{
	if (h->pid != 0 && h->pid != getpid()) return -2; /* another process: not ours to answer */
	if (h->version != _LINUX_CAPABILITY_VERSION_3 && h->version != _LINUX_CAPABILITY_VERSION_2) {
		h->version = _LINUX_CAPABILITY_VERSION_3;
		return d ? fail(-EINVAL) : 0;
	}
	if (!d) return 0;
	if (set) {
		uint64_t eff = d[0].effective | (uint64_t)d[1].effective << 32;
		int64_t rc = rpc(VT_CAPSET, (uint64_t[]){ eff }, 1, NULL, 0, NULL, 0, NULL, NULL);
		return rc < 0 ? fail(rc) : 0;
	}
	uint64_t aux[2];
	int64_t rc = rpc(VT_CAPGET, NULL, 0, NULL, 0, NULL, 0, NULL, aux);
	if (rc < 0) return fail(rc);
	for (int i = 0; i < 2; i++)
		d[i].effective = d[i].permitted = d[i].inheritable = (uint32_t)(aux[0] >> (32 * i));
	return 0;
}

int capget(cap_user_header_t h, cap_user_data_t d)
{
	int rc = is_connected() ? twin_cap(0, h, d) : -2;
	return rc != -2 ? rc : (int)syscall_real(SYS_capget, (long)h, (long)d, 0, 0, 0, 0);
}
int capset(cap_user_header_t h, const cap_user_data_t d)
{
	int rc = connected() ? twin_cap(1, h, d) : -2;
	return rc != -2 ? rc : (int)syscall_real(SYS_capset, (long)h, (long)d, 0, 0, 0, 0);
}

long syscall(long nr, ...)
{
	va_list ap;
	long a[6];
	va_start(ap, nr);
	for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
	va_end(ap);
	if ((nr == SYS_capget && is_connected()) || (nr == SYS_capset && connected())) {
		int rc = twin_cap(nr == SYS_capset, (cap_user_header_t)a[0], (cap_user_data_t)a[1]);
		if (rc != -2) return rc;
	}
	if (nr == SYS_prlimit64 && memlock_of_self((int)a[1], (pid_t)a[0], a[2] != 0))
		return prlimit((pid_t)a[0], (__rlimit_resource_t)a[1], (const struct rlimit *)a[2], (struct rlimit *)a[3]);
	return syscall_real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ------------------------------------------------------------------ wait -- */

/* When wait() returns a dead child, Linux has already released its files. A bridged child's
 * socket close may still be in flight to the server, so say it: its exit happens in the twin
 * before this process's next call (the kernel selftest checks page refs right after). */
static void reaped(pid_t pid, int status)
{
	if (pid <= 0 || !(WIFEXITED(status) || WIFSIGNALED(status))) return;
	if (is_connected()) rpc(VT_REAP, (uint64_t[]){ (uint64_t)pid }, 1, NULL, 0, NULL, 0, NULL, NULL);
}

pid_t waitpid(pid_t pid, int *wstatus, int options)
{
	static pid_t (*real)(pid_t, int *, int);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "waitpid");
	int st = 0;
	pid_t r = real(pid, &st, options);
	if (wstatus) *wstatus = st;
	reaped(r, st);
	return r;
}
pid_t wait(int *wstatus) { return waitpid(-1, wstatus, 0); }
pid_t wait4(pid_t pid, int *wstatus, int options, struct rusage *ru)
{
	static pid_t (*real)(pid_t, int *, int, struct rusage *);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "wait4");
	int st = 0;
	pid_t r = real(pid, &st, options, ru);
	if (wstatus) *wstatus = st;
	reaped(r, st);
	return r;
}
pid_t wait3(int *wstatus, int options, struct rusage *ru) { return wait4(-1, wstatus, options, ru); }
int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
	static int (*real)(idtype_t, id_t, siginfo_t *, int);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "waitid");
	int r = real(idtype, id, info, options);
	if (r == 0 && info && !(options & WNOWAIT) &&
	    (info->si_code == CLD_EXITED || info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED))
		reaped(info->si_pid, info->si_code == CLD_EXITED ? 0 : SIGKILL);
	return r;
}

/* ------------------------------------------------------------- fortified -- */

/* Programs built with _FORTIFY_SOURCE (Debian's QEMU) call these where the buffer's size is
 * known at compile time; they must reach the same wrappers. */
extern void __chk_fail(void) __attribute__((noreturn));

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen) __chk_fail();
	return read(fd, buf, n);
}
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen) __chk_fail();
	return pread(fd, buf, n, off);
}
ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen) __chk_fail();
	return pread(fd, buf, n, off);
}
ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen)
{
	if (len > buflen) __chk_fail();
	return readlink(path, buf, len);
}

/* ------------------------------------------------- more stat entry points -- */

/* Rust's std (cloud-hypervisor, crosvm) asks statx; old binaries call __xstat; fstatat with
 * AT_FDCWD or an absolute path is stat. All reach twin_stat() for twin paths. */
int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *sx)
{
	static int (*real)(int, const char *, int, unsigned, struct statx *);
	if (twin_path(path)) {
		struct stat st;
		if (twin_stat(path, &st, !(flags & AT_SYMLINK_NOFOLLOW)) < 0) return -1;
		memset(sx, 0, sizeof *sx);
		sx->stx_mask = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_INO | STATX_SIZE;
		sx->stx_mode = (uint16_t)st.st_mode;
		sx->stx_nlink = 1;
		sx->stx_ino = st.st_ino;
		sx->stx_size = (uint64_t)st.st_size;
		sx->stx_blksize = 4096;
		return 0;
	}
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "statx");
	return real(dirfd, path, flags, mask, sx);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	static int (*real)(int, const char *, struct stat *, int);
	if (twin_path(path)) return twin_stat(path, st, !(flags & AT_SYMLINK_NOFOLLOW));
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "fstatat");
	return real(dirfd, path, st, flags);
}
int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags) { return fstatat(dirfd, path, (struct stat *)st, flags); }

int __xstat(int ver, const char *path, struct stat *st)
{
	static int (*real)(int, const char *, struct stat *);
	if (twin_path(path)) return twin_stat(path, st, 1);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "__xstat");
	return real(ver, path, st);
}
int __lxstat(int ver, const char *path, struct stat *st)
{
	static int (*real)(int, const char *, struct stat *);
	if (twin_path(path)) return twin_stat(path, st, 0);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "__lxstat");
	return real(ver, path, st);
}
int __xstat64(int ver, const char *path, struct stat64 *st) { return __xstat(ver, path, (struct stat *)st); }
int __lxstat64(int ver, const char *path, struct stat64 *st) { return __lxstat(ver, path, (struct stat *)st); }

int faccessat(int dirfd, const char *path, int mode, int flags)
{
	static int (*real)(int, const char *, int, int);
	if (twin_path(path)) return access(path, mode);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "faccessat");
	return real(dirfd, path, mode, flags);
}

ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
	static ssize_t (*real)(int, const char *, char *, size_t);
	if (twin_path(path)) return readlink(path, buf, size);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "readlinkat");
	return real(dirfd, path, buf, size);
}

/* ------------------------------------------------------------------ poll -- */

/* poll() over twin fds (the iommufd fault queue is the pollable one) and the program's own:
 * the twin answers for its fds at once (its paths never sleep), the kernel for the rest, and
 * the wait is ours: short real polls of the program's fds until one side is ready or the
 * timeout ends. Only a twin fd in the set changes anything. */
static int twin_poll_round(struct pollfd *fds, nfds_t n)
{
	int32_t q[128], rev[64];
	int idx[64], m = 0;
	for (nfds_t i = 0; i < n && m < 64; i++)
		if (twin_fd(fds[i].fd)) {
			idx[m] = (int)i;
			q[2 * m] = fds[i].fd;
			q[2 * m + 1] = fds[i].events;
			m++;
		}
	size_t got = 0;
	int64_t rc = rpc(VT_POLL, NULL, 0, q, (size_t)m * 8, rev, sizeof rev, &got, NULL);
	if (rc < 0) return fail(rc);
	int ready = 0;
	for (int j = 0; j < m && (size_t)j * 4 < got; j++) {
		fds[idx[j]].revents = (short)rev[j];
		if (rev[j]) ready++;
	}
	return ready;
}

static int vt_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	static int (*real)(struct pollfd *, nfds_t, int);
	if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "poll");
	int any = 0;
	for (nfds_t i = 0; i < n; i++) any |= twin_fd(fds[i].fd);
	if (!any || n > 256) return real(fds, n, timeout);
	struct pollfd mine[256];
	double end = timeout < 0 ? 0 : mono_ns() + timeout * 1e6;
	for (;;) {
		for (nfds_t i = 0; i < n; i++) {
			mine[i] = fds[i];
			if (twin_fd(fds[i].fd)) mine[i].fd = -1; /* the kernel skips it */
			fds[i].revents = 0;
		}
		int t = twin_poll_round(fds, n);
		if (t < 0) return -1;
		double left = timeout < 0 ? 5e6 : end - mono_ns();
		int wait = t || left <= 0 ? 0 : (int)(left < 5e6 ? left / 1e6 : 5);
		int r = real(mine, n, wait);
		if (r < 0) return -1;
		for (nfds_t i = 0; i < n; i++)
			if (!twin_fd(fds[i].fd)) fds[i].revents = mine[i].revents;
		if (t + r > 0 || (timeout >= 0 && mono_ns() >= end)) return t + r;
	}
}

int poll(struct pollfd *fds, nfds_t n, int timeout) { return vt_poll(fds, n, timeout); }
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof *fds < n) __chk_fail();
	return vt_poll(fds, n, timeout);
}
int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *sigmask)
{
	static int (*real)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int any = 0;
	for (nfds_t i = 0; i < n; i++) any |= twin_fd(fds[i].fd);
	if (!any) {
		if (!real) real = (__typeof__(real))dlsym(RTLD_NEXT, "ppoll");
		return real(fds, n, tmo, sigmask);
	}
	/* the signal mask is not applied while waiting on twin fds (one short poll at a time) */
	return vt_poll(fds, n, tmo ? (int)(tmo->tv_sec * 1000 + tmo->tv_nsec / 1000000) : -1);
}
