/* The C tests' checks (native/tests/): one line per check, then "N passed, M failed". */
#ifndef VFIO_TWIN_TESTS_CHECK_H
#define VFIO_TWIN_TESTS_CHECK_H
#include <stdio.h>
#include <time.h>

static int passed, failed;
#define CHECK(cond, ...)                                   \
	do {                                                   \
		if (cond) passed++, printf("ok   ");               \
		else failed++, printf("FAIL ");                    \
		printf(__VA_ARGS__);                               \
		printf("\n");                                      \
	} while (0)

static inline double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

#define CHECK_DONE() (printf("%d passed, %d failed\n", passed, failed), failed != 0)
#endif
