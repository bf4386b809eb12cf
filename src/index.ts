// vfio-twin's public entry: createTwin() and the syscall boundary types. See README.md.

export { createTwin, Twin, TwinProcess, type TwinConfig } from "./twin.js";
export type { Backend, UserProcess, MmapOptions, SpawnOptions } from "./backend/backend.js";
export { ProcessExited, Segfault, PROT_READ, PROT_WRITE } from "./backend/backend.js";
export { createHost, hostAvailable, koffiAvailable, HostBackend, HostProcess } from "./backend/host.js";
export { Errno, errnoName, errnoByName } from "./uapi/errno.js";
export * as errno from "./uapi/errno.js";
export * as uapi from "./uapi/all.js";
