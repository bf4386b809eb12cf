// `vfio-twin/typed`: the typed client over any backend's processes: structs in, structs out,
// an Errno thrown on failure (docs/design.md §1). The struct descriptors and ioctl numbers it
// takes are in `vfio-twin/uapi`.

export { TypedProcess, check, type IoctlOpts, type IoctlResult } from "../vmm/typed.js";
export { Errno, errnoName, errnoByName } from "../uapi/errno.js";
