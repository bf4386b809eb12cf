/*
 * bridge_bench: the cost of one ioctl as a C program sees it, for bench/bridge.ts.
 *   bridge_bench check N     KVM_CHECK_EXTENSION(KVM_CAP_USER_MEMORY) on /dev/kvm
 *   bridge_bench struct N    KVM_SET_USER_MEMORY_REGION on a VM, slot 0 unchanged (a struct in)
 *   bridge_bench enotty N    an ioctl /dev/kvm does not know: EINVAL (the round trip + dispatch, no work)
 *   bridge_bench pingpong N  64-byte request/32-byte reply over a socketpair to a forked C
 *                            echo: the transport's floor without any server work
 * Prints "ns=<median ns per call over 21 batches>" or "error=<why>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int sv[2];
static int fd_kvm, fd_vm;
static struct kvm_userspace_memory_region slot;

static int op(const char *mode)
{
	if (!strcmp(mode, "check")) return ioctl(fd_kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);
	if (!strcmp(mode, "struct")) return ioctl(fd_vm, KVM_SET_USER_MEMORY_REGION, &slot);
	if (!strcmp(mode, "enotty")) return ioctl(fd_kvm, _IO(KVMIO, 0xff), 0) < 0 && errno == EINVAL ? 0 : -1;
	char q[64] = { 0 }, r[32];
	if (write(sv[0], q, sizeof q) != sizeof q || read(sv[0], r, sizeof r) != sizeof r) return -1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "check";
	long n = argc > 2 ? atol(argv[2]) : 21000;
	if (!strcmp(mode, "pingpong")) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return printf("error=socketpair\n"), 1;
		if (fork() == 0) {
			char q[64], r[32] = { 0 };
			close(sv[0]);
			while (read(sv[1], q, sizeof q) == sizeof q && write(sv[1], r, sizeof r) == sizeof r)
				;
			_exit(0);
		}
		close(sv[1]);
	} else {
		fd_kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (fd_kvm < 0) return printf("error=open /dev/kvm: %s\n", strerror(errno)), 1;
		fd_vm = ioctl(fd_kvm, KVM_CREATE_VM, 0);
		void *mem = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		slot = (struct kvm_userspace_memory_region){ .slot = 0, .memory_size = 0x10000,
							     .userspace_addr = (unsigned long)mem };
		if (fd_vm < 0 || ioctl(fd_vm, KVM_SET_USER_MEMORY_REGION, &slot))
			return printf("error=VM setup: %s\n", strerror(errno)), 1;
	}
	for (int i = 0; i < 2000; i++) op(mode); /* warm up */
	enum { B = 21 };
	double t[B];
	long per = n / B > 0 ? n / B : 1;
	for (int b = 0; b < B; b++) {
		double t0 = now();
		for (long i = 0; i < per; i++)
			if (op(mode) < 0) return printf("error=%s failed: %s\n", mode, strerror(errno)), 1;
		t[b] = (now() - t0) / per;
	}
	qsort(t, B, sizeof t[0], cmp);
	printf("ns=%.0f\n", t[B / 2]);
	fflush(stdout);
	if (!strcmp(mode, "pingpong")) close(sv[0]), wait(NULL);
	return 0;
}
