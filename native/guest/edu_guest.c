/*
 * edu_guest: runs inside the e2e guest (scripts/e2e-qemu.sh), a static program that drives the
 * edu device QEMU passes through from the twin (-device vfio-pci,host=0000:00:01.0):
 *   - finds the device by vendor/device id in sysfs (1234:11e8), turns on memory decode and bus
 *     mastering through its config file, maps BAR0 through resource0;
 *   - reads the identification register, runs a factorial and polls its status;
 *   - has the device DMA a buffer in guest RAM (guest physical address from /proc/self/pagemap)
 *     into its own memory and back, and checks the bytes;
 *   - raises the completion interrupt (DMA with the interrupt bit) and acknowledges it;
 *   - asks for a DMA from an address outside guest RAM (128 MiB), which the IOMMU must refuse.
 * One line per check, then "edu_guest: N passed, M failed".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond, ...)                                   \
	do {                                                   \
		if (cond) passed++, printf("edu_guest: ok   ");    \
		else failed++, printf("edu_guest: FAIL ");         \
		printf(__VA_ARGS__);                               \
		printf("\n");                                      \
		fflush(stdout);                                    \
	} while (0)

static volatile uint32_t *bar;
static uint32_t rd(unsigned off) { return bar[off / 4]; }
static void wr(unsigned off, uint32_t v) { bar[off / 4] = v; }

static unsigned hexfile(const char *dir, const char *name)
{
	char p[512], b[32] = { 0 };
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_RDONLY);
	if (fd < 0) return 0;
	ssize_t n = read(fd, b, sizeof b - 1);
	close(fd);
	return n > 0 ? (unsigned)strtoul(b, NULL, 16) : 0;
}

/* The guest physical address of a (locked) page of ours, from /proc/self/pagemap. */
static uint64_t gpa(void *va)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)va / 4096) * 8) != 8) return 0;
	close(fd);
	if (!(e >> 63)) return 0; /* not present */
	return (e & ((1ull << 55) - 1)) * 4096 + (uintptr_t)va % 4096;
}

static int wait_idle(unsigned reg, uint32_t bit, int ms)
{
	struct timespec t = { 0, 1000000 };
	for (int i = 0; i < ms; i++) {
		if (!(rd(reg) & bit)) return 1;
		nanosleep(&t, NULL);
	}
	return 0;
}

static void dma(uint64_t src, uint64_t dst, uint32_t count, uint32_t cmd)
{
	wr(0x80, (uint32_t)src), wr(0x84, (uint32_t)(src >> 32));
	wr(0x88, (uint32_t)dst), wr(0x8c, (uint32_t)(dst >> 32));
	wr(0x90, count), wr(0x94, 0);
	wr(0x98, cmd);
}

int main(void)
{
	char dev[300] = "";
	DIR *d = opendir("/sys/bus/pci/devices");
	for (struct dirent *e; d && (e = readdir(d));) {
		char p[300];
		snprintf(p, sizeof p, "/sys/bus/pci/devices/%s", e->d_name);
		if (e->d_name[0] != '.' && hexfile(p, "vendor") == 0x1234 && hexfile(p, "device") == 0x11e8)
			snprintf(dev, sizeof dev, "%s", p);
	}
	CHECK(dev[0], "found 1234:11e8 at %s", dev);
	if (!dev[0]) return 1;

	char p[400];
	snprintf(p, sizeof p, "%s/config", dev);
	int cfg = open(p, O_RDWR);
	uint16_t cmd = 0;
	pread(cfg, &cmd, 2, 4);
	cmd |= 0x6; /* memory decode, bus master */
	CHECK(pwrite(cfg, &cmd, 2, 4) == 2, "command register 0x%x through %s", cmd, p);

	snprintf(p, sizeof p, "%s/resource0", dev);
	int r0 = open(p, O_RDWR | O_SYNC);
	bar = mmap(NULL, 0x100000, PROT_READ | PROT_WRITE, MAP_SHARED, r0, 0);
	CHECK(bar != MAP_FAILED, "BAR0 mapped through resource0");
	if (bar == MAP_FAILED) return 1;

	CHECK(rd(0x0) == 0x010000ed, "identification register: 0x%08x", rd(0x0));
	wr(0x4, 0x0f0f0f0f);
	CHECK(rd(0x4) == 0xf0f0f0f0, "liveness register inverts: 0x%08x", rd(0x4));

	wr(0x8, 10);
	CHECK(wait_idle(0x20, 1, 2000) && rd(0x8) == 3628800, "factorial of 10: %u", rd(0x8));

	uint8_t *buf = aligned_alloc(4096, 8192);
	mlock(buf, 8192);
	for (int i = 0; i < 64; i++) buf[i] = (uint8_t)(i * 7 + 3);
	memset(buf + 4096, 0, 64);
	uint64_t a = gpa(buf), b = gpa(buf + 4096);
	CHECK(a && b, "guest physical addresses: 0x%llx, 0x%llx", (unsigned long long)a, (unsigned long long)b);

	dma(a, 0x40000, 64, 1); /* RAM -> device */
	CHECK(wait_idle(0x98, 1, 2000), "DMA RAM -> device done");
	dma(0x40000, b, 64, 3 | 4); /* device -> RAM, with the completion interrupt */
	CHECK(wait_idle(0x98, 1, 2000), "DMA device -> RAM done");
	CHECK(memcmp(buf, buf + 4096, 64) == 0, "the bytes came back through the device: %02x %02x .. %02x",
	      buf[4096], buf[4097], buf[4096 + 63]);
	uint32_t st = rd(0x24);
	CHECK(st & 0x100, "interrupt status after the DMA: 0x%x (DMA completion)", st);
	wr(0x64, st); /* acknowledge: the line goes down */
	CHECK(rd(0x24) == 0, "interrupt acknowledged");

	/* outside guest RAM (128 MiB) and inside the device's 28-bit DMA mask: QEMU mapped no
	 * IOVA there, the IOMMU refuses it (the twin logs the fault) */
	memset(buf + 4096, 0x55, 64);
	dma(0x0c000000, 0x40000, 64, 1);
	CHECK(wait_idle(0x98, 1, 2000), "DMA from 0xc000000 (outside guest RAM) finished");
	dma(0x40000, b, 64, 3);
	wait_idle(0x98, 1, 2000);
	int zeros = 1;
	for (int i = 0; i < 64; i++) zeros &= buf[4096 + i] == 0;
	CHECK(zeros, "the device read zeros where the IOMMU refused the page");

	printf("edu_guest: %d passed, %d failed\n", passed, failed);
	fflush(stdout);
	return failed != 0;
}
