// vfio-twin's public entry: createTwin(), the syscall boundary (docs/design.md §1), the host
// backend and the uAPI. The rest of the public surface is in subpath exports, one file each
// in src/api/ (package.json "exports"; README.md, "Using it from a script"):
//   vfio-twin/typed   the typed client (TypedProcess, Errno)
//   vfio-twin/check   invariants, who holds it, leaks, the explorer, the fuzzer
//   vfio-twin/trace   the syscall trace, its formatter and its JSON events
//   vfio-twin/iommu   the IOMMU core and its fault log
//   vfio-twin/vmm     vfioLegacySetup, a passthrough VM, the edu driver, runScript
//   vfio-twin/host    the host backend (also here)
//   vfio-twin/bridge  the server for unmodified C programs
//   vfio-twin/uapi    ioctl numbers, struct descriptors, errno (also here as `uapi`, `errno`)

export { createTwin, Twin, TwinProcess, type TwinConfig } from "./twin.js";
export type { Backend, UserProcess, MmapOptions, SpawnOptions, ProcStatus } from "./backend/backend.js";
export { ProcessExited, Segfault, PROT_READ, PROT_WRITE } from "./backend/backend.js";
export { createHost, hostAvailable, koffiAvailable, HostBackend, HostProcess } from "./backend/host.js";
export { Errno, errnoName, errnoByName } from "./uapi/errno.js";
export * as errno from "./uapi/errno.js";
export * as uapi from "./uapi/all.js";
