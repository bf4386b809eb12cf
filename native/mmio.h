/* MMIO emulation for VFIO BAR mappings in the vfio-twin LD_PRELOAD bridge.
 *
 * A BAR mmap()ed by the program is backed by an anonymous PROT_NONE mapping; every load or
 * store there faults, the SIGSEGV handler decodes the x86-64 instruction, forwards the access
 * to the twin's device model through the region's callback, and completes it (register
 * written for a load, RIP advanced) as if the memory were there. A refused access becomes a
 * SIGBUS to the program, as the real kernel's vfio_pci mmap fault path delivers.
 *
 * x86-64 Linux (glibc) only. See mmio.c for the decoded instruction forms. */
#ifndef VFIO_TWIN_MMIO_H
#define VFIO_TWIN_MMIO_H

#include <stddef.h>
#include <stdint.h>

/* returns 0 and fills *val on a read (or consumes *val on a write), -1 for a bus error (SIGBUS to the program) */
typedef int (*mmio_fn)(void *cookie, uint64_t offset, unsigned size, int is_write, uint64_t *val);
int  mmio_register(uintptr_t start, size_t len, mmio_fn fn, void *cookie); /* region already mapped PROT_NONE by the caller; 0 or -1/errno */
void mmio_unregister(uintptr_t start, size_t len);                        /* drop any region overlapping [start, start+len) */
int  mmio_lookup(uintptr_t addr);                                         /* 1 when addr is inside a registered region */
void mmio_init(void);                                                     /* installs the SIGSEGV handler; idempotent */

/* Additions (not part of the original interface). */

/* Most regions registered at once; mmio_register fails with ENOSPC beyond it. */
#define MMIO_MAX_REGIONS 64

/* Call mmio_init() from the preload's constructor: it also resolves libc's sigaction,
 * sigprocmask and pthread_sigmask (dlsym(RTLD_NEXT)) so that nothing on the fault path calls
 * dlsym. mmio_register() calls it too, in case.
 *
 * Linking mmio.c exports wrappers for sigaction, signal, bsd_signal, sysv_signal,
 * __sysv_signal, sigset, sigprocmask and pthread_sigmask. Once mmio_init() ran, SIGSEGV
 * belongs to the MMIO handler: the program's sigaction(SIGSEGV) only changes the disposition
 * recorded for it (returned as oldact, used for faults that are not MMIO), and SIGSEGV is
 * left out of any mask the program sets. SIGBUS is never taken over.
 *
 * Debugging under gdb: `handle SIGSEGV nostop noprint pass`, or every BAR access stops.
 *
 * Values and *val: the low `size` bytes are significant, little-endian as the CPU sees them;
 * a read's *val is masked to `size` bytes before it is written to the register. The callback
 * runs inside the SIGSEGV handler of the faulting thread with all asynchronous signals
 * blocked (an MMIO access is atomic with respect to signals, as on hardware), possibly on
 * several threads at once (serialise the socket), so it must only
 * use async-signal-safe calls (read/write on a socket are fine) and must not touch an MMIO
 * region itself. Do not mmio_unregister() a region (or free its cookie) while another thread may
 * still be inside its callback. */

#endif
