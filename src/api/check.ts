// `vfio-twin/check`: what can be asserted about a twin: every invariant, who holds an object,
// leaks since a baseline, the explorer of interleavings and the fuzzer.

export { checkInvariants, formatViolations, leakedSince, holders, type Violation } from "../check/invariants.js";
export * from "../check/holders.js";
export { checkVfioInvariants, checkVfioQuiescent } from "../check/vfio_invariants.js";
/** every interleaving of concurrent kernel paths (src/check/explorer.ts) */
export * as explorer from "../check/explorer.js";
export { explore } from "../check/explorer.js";
/** random multi-process programs with shrinking (src/check/fuzz.ts) */
export * as fuzzer from "../check/fuzz.js";
export { fuzz, runProgram, parseProgram, programJson } from "../check/fuzz.js";
/** named worlds, broken variants, a whole exploration and its replay (docs/explorer.md) */
export { runExplore, replayTrace, type RunOptions, type RunReport } from "../check/run.js";
export { VARIANTS, variantByName, type Variant } from "../check/variants.js";
export { WORLDS, worldByName, type WorldDef } from "../check/worlds.js";
export { faultSweep, twinDigest } from "../check/fault.js";
