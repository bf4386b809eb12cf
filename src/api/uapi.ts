// `vfio-twin/uapi`: ioctl numbers, struct descriptors (encode/decode) and errno values of the
// Linux 6.12 uAPI the twin speaks; the same as the `uapi` and `errno` namespaces of `vfio-twin`.

export * from "../uapi/all.js";
export * as errno from "../uapi/errno.js";
