/* For `make smoke`: a stand-in preload that only calls mmio_init(), to run unmodified
 * programs with the signal interposition active. */
#include "mmio.h"

__attribute__((constructor)) static void smoke_init(void) { mmio_init(); }
