/* MMIO emulation for BAR mappings (native/mmio.c): loads and stores on a PROT_NONE region
 * are decoded from the faulting instruction and sent to a callback. */
#ifndef VFIO_TWIN_MMIO_H
#define VFIO_TWIN_MMIO_H
#include <stddef.h>
#include <stdint.h>
/* returns 0 and fills *val on a read (or consumes *val on a write), -1 for a bus error (SIGBUS to the program) */
typedef int (*mmio_fn)(void *cookie, uint64_t offset, unsigned size, int is_write, uint64_t *val);
int mmio_register(uintptr_t start, size_t len, mmio_fn fn, void *cookie);
void mmio_unregister(uintptr_t start, size_t len);
int mmio_lookup(uintptr_t addr);
void mmio_init(void);
#endif
