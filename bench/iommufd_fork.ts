// The child process of bench/iommufd.ts's through-ioctl steady rows (ioctlSteadyForked()):
// one ioctlSteadyRun() in a fresh process, its result as JSON on stdout.
// argv: the number of live areas, then "number" or "bigint" (how the client passes u64s).

import { ioctlSteadyRun } from "./iommufd.js";

const n = Number(process.argv[2]);
if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`iommufd_fork: bad area count ${process.argv[2]}`);
process.stdout.write(JSON.stringify(ioctlSteadyRun(n, process.argv[3] === "bigint")));
