/*
 * edu_poll: a small C driver of the edu device through the legacy VFIO path, run under the
 * bridge by test/bridge/driver.test.ts. It checks what the scenario runner cannot: a poll()
 * on its own eventfd wakes when the device's DMA completion interrupt comes (device time
 * following wall time, no sleep() called), BAR0 through mmap() (MMIO emulation), DMA into
 * malloc'd memory, and a fork()ed child using the inherited device fd. Prints one line per
 * check and "N passed, M failed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define CFG 0x70000000000ull
int main(void)
{
	int c = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	int g = open("/dev/vfio/1", O_RDWR | O_CLOEXEC);
	CHECK(c >= 0 && g >= 0, "container %d and group %d open", c, g);
	CHECK(ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) == 0, "SET_CONTAINER");
	CHECK(ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0, "SET_IOMMU TYPE1v2");
	int d = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, "0000:00:01.0");
	CHECK(d > g, "GET_DEVICE_FD gives a real fd number (%d)", d);
	CHECK(fcntl(d, F_GETFD) == FD_CLOEXEC, "the device fd is close-on-exec, as the kernel makes it");

	uint16_t cmd = 0x6; /* memory + bus master */
	CHECK(pwrite(d, &cmd, 2, CFG + 4) == 2, "command register through config space");

	/* BAR0 through a mapping: every load and store reaches the device model */
	volatile uint32_t *bar = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
	CHECK(bar != MAP_FAILED, "mmap of BAR0");
	if (bar == MAP_FAILED) return 1;
	CHECK(bar[0] == 0x010000ed, "identification register through the mapping: 0x%x", bar[0]);
	bar[1] = 0x12345678; /* liveness: reads back inverted */
	CHECK(bar[1] == ~0x12345678u, "liveness register inverts what was stored: 0x%x", bar[1]);

	/* DMA from and to malloc'd memory, mapped at IOVA 0x100000 */
	uint8_t *buf = aligned_alloc(4096, 8192);
	for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(0xa0 + i);
	memset(buf + 4096, 0, 4096);
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof map, .flags = 3, .vaddr = (uintptr_t)buf,
					       .iova = 0x100000, .size = 8192 };
	CHECK(ioctl(c, VFIO_IOMMU_MAP_DMA, &map) == 0, "MAP_DMA of malloc'd memory");

	/* MSI on its own eventfd, waited for with poll(): no sleep, so only wall time moves the
	 * device's clock */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *irq = (struct vfio_irq_set *)irqbuf;
	*irq = (struct vfio_irq_set){ .argsz = sizeof irqbuf, .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1,
				      .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER };
	memcpy(irq->data, &efd, sizeof efd);
	CHECK(ioctl(d, VFIO_DEVICE_SET_IRQS, irq) == 0, "SET_IRQS: MSI to the program's own eventfd");
	bar[0x80 / 4] = 0x100000, bar[0x84 / 4] = 0;        /* src: IOVA */
	bar[0x88 / 4] = 0x40000, bar[0x8c / 4] = 0;         /* dst: the device's buffer */
	bar[0x90 / 4] = 8, bar[0x94 / 4] = 0;
	bar[0x98 / 4] = 1 | 4;                              /* RAM -> device, interrupt when done */
	double t0 = now_ms();
	struct pollfd p = { .fd = efd, .events = POLLIN };
	int n = poll(&p, 1, 5000);
	double waited = now_ms() - t0;
	uint64_t count = 0;
	CHECK(n == 1 && read(efd, &count, 8) == 8 && count == 1,
	      "poll() woke on the DMA completion MSI after %.0f ms (device time follows wall time)", waited);
	bar[0x64 / 4] = 0x100; /* acknowledge */
	bar[0x80 / 4] = 0x40000, bar[0x88 / 4] = 0x101000;  /* device -> RAM, page two */
	bar[0x98 / 4] = 3 | 4;
	n = poll(&p, 1, 5000);
	CHECK(n == 1 && read(efd, &count, 8) == 8, "second DMA completion");
	CHECK(memcmp(buf, buf + 4096, 8) == 0, "the bytes made the round trip through the device: %02x..%02x",
	      buf[4096], buf[4103]);

	/* a fork()ed child shares the device file: its config read is the same device */
	pid_t child = fork();
	if (child == 0) {
		uint16_t vendor = 0;
		_exit(pread(d, &vendor, 2, CFG) == 2 && vendor == 0x1234 ? 0 : 1);
	}
	int st = -1;
	waitpid(child, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a fork()ed child reads the device through the inherited fd");

	/* the group cannot be opened twice: EBUSY */
	int g2 = open("/dev/vfio/1", O_RDWR);
	CHECK(g2 < 0 && errno == EBUSY, "a second open of the group: %s", g2 < 0 ? strerror(errno) : "opened");

	munmap((void *)bar, 0x1000);
	return CHECK_DONE();
}
