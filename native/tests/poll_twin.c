/*
 * poll_twin: poll() over a twin fd (iommufd's fault queue, IOMMU_FAULT_QUEUE_ALLOC) together
 * with a pipe of the program's own, under the bridge (test/bridge/driver.test.ts). Prints one
 * line per check and "N passed, M failed".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/iommufd.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	struct iommu_fault_alloc fa = { .size = sizeof fa };
	CHECK(fd >= 0 && ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa) == 0, "IOMMU_FAULT_QUEUE_ALLOC: fault fd %d", fa.out_fault_fd);
	int pfd[2];
	CHECK(pipe(pfd) == 0, "a pipe of the program's own");

	struct pollfd p[2] = { { .fd = (int)fa.out_fault_fd, .events = POLLIN | POLLOUT }, { .fd = pfd[0], .events = POLLIN } };
	int n = poll(p, 2, 0);
	CHECK(n == 1 && p[0].revents == POLLOUT && p[1].revents == 0,
	      "an empty fault queue is writable, not readable: n=%d revents=0x%x,0x%x", n, p[0].revents, p[1].revents);

	p[0].events = POLLIN;
	double t0 = now_ms();
	n = poll(p, 2, 60);
	double waited = now_ms() - t0;
	CHECK(n == 0 && waited >= 55, "nothing to read anywhere: poll waits its timeout (%.0f ms)", waited);

	CHECK(write(pfd[1], "x", 1) == 1, "the pipe gets a byte");
	n = poll(p, 2, 1000);
	CHECK(n == 1 && p[1].revents == POLLIN && p[0].revents == 0, "the pipe is readable, the queue still not: n=%d", n);

	close(pfd[0]);
	close(pfd[1]);
	close((int)fa.out_fault_fd);
	close(fd);
	return CHECK_DONE();
}
