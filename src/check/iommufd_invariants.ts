// iommufd's invariants (pins, krefs, accounting, trees, groups/devices/HWPTs against the IOMMU
// core): src/iommufd/invariants.ts states them, the iommufd module registers them in
// Kernel.checks so that checkInvariants() (./invariants.ts) runs them after every test.

export { iommufdViolations } from "../iommufd/invariants.js";
