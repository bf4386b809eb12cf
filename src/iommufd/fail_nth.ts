// The fail-nth countdown is the kernel's (../kernel/fail_nth.ts); iommufd's paths and its
// selftest's /proc/self/task/<tid>/fail-nth use it from here.
export { failNthRemaining, failNthSteps, setFailNth, shouldFail } from "../kernel/fail_nth.js";
