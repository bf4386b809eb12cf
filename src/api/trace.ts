// `vfio-twin/trace`: the syscall trace (`twin.kernel.trace`: set `enabled`, read `events` or
// set a `sink`), its strace-style formatter, and the JSON events the CLI's --json prints.

export * from "../kernel/trace.js";
export { traceEvent, invariantsEvent, faultEvent } from "../cli/json.js";
