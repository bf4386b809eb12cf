// Hand-written concurrent programs (src/check/random_program.ts) that more than one test
// runs: the random-program tests race them, the snapshot test restores their worlds.
import type { ConcurrentProgram, ThreadOp } from "../../src/check/random_program.js";

/** IOMMU_IOAS_UNMAP of [0, 16 KiB) in the process's i-th IOAS */
export const ioasUnmapOp = (i: number): ThreadOp => ({
  op: "ioctl",
  p: 0,
  fd: { t: "iommufd", i: 0 },
  name: "IOMMU_IOAS_UNMAP",
  fields: { size: { sizeof: 0 }, ioas_id: { id: "ioas", i }, iova: 0, length: 0x4000 },
});

/** The PASID machine (the DSA bound, PASID 5 attached to an IOAS): an IOAS_UNMAP racing the
 * detach of PASID 5 */
export const PASID_DETACH_VS_UNMAP: ConcurrentProgram = {
  machine: "pasid",
  setup: [{ op: "setup", p: 0, kind: "pasid", alt: false }],
  threads: [
    { p: 0, ops: [ioasUnmapOp(0)] },
    {
      p: 0,
      ops: [
        {
          op: "ioctl",
          p: 0,
          fd: { t: "device", i: 0 },
          name: "VFIO_DEVICE_DETACH_IOMMUFD_PT(pasid)",
          fields: { argsz: { sizeof: 0 }, flags: 1, pasid: 5 },
        },
      ],
    },
  ],
  admin: [],
};
