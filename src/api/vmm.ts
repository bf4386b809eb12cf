// `vfio-twin/vmm`: userspace flows over any backend's processes: QEMU's legacy VFIO setup
// (vfioLegacySetup), a passthrough VM, the edu device's userspace driver, and the oracle's
// scenario language (runScript).

export * from "../vmm/vfio_legacy.js";
export * from "../vmm/passthrough.js";
export * from "../vmm/edu_driver.js";
export { runScript, runScriptSteps, parseCNumber, type ScriptOptions, type ScriptStep } from "../vmm/script.js";
export { loadCorpus, runOnTwin, ORACLE_PROCESS, MUST_MATCH, type CorpusEntry } from "../vmm/corpus.js";
export { compareRun, type Comparison, type Mismatch } from "../vmm/fidelity.js";
