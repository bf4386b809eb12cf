// `vfio-twin/iommu`: the IOMMU core of a twin, `IommuCore.of(twin.kernel)`: its groups and
// domains, and the fault log (`faults`, `faultsOf(bdf)`) every refused device access lands in.

export {
  IommuCore,
  IommuGroup,
  IommuDevice,
  type IommuFault,
  type IommuFaultReason,
  type IommuCap,
  type ResvRegion,
  type PciFunction,
} from "../iommu/iommu.js";
