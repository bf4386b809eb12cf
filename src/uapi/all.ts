// Every uAPI definition the twin has, in one namespace (vfio-twin's `uapi` export).
export * from "./ioctl.js";
export * from "./struct.js";
export * from "./ioctls.js";
export * from "./vfio.js";
export * from "./iommufd.js";
export * from "./kvm.js";
export * from "./iommufd_test.js";
