// poll(2) without waiting (fs/select.c do_pollfd() for one round): each fd's ->poll masked by
// the events asked for plus POLLERR|POLLHUP, POLLNVAL for an fd that is not open. The twin's
// kernel paths never sleep, so waiting is the caller's: a bridged program's poll() asks again
// until its timeout (native/preload.c).

import { DEFAULT_POLLMASK } from "./fs.js";
import type { Kernel } from "./kernel.js";
import type { Process } from "./process.js";

export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

/** The revents of each (fd, events) pair, now. */
export function sysPollOnce(k: Kernel, p: Process, fds: readonly { fd: number; events: number }[]): number[] {
  return fds.map(({ fd, events }) => {
    if (fd < 0) return 0;
    const f = p.files.lookup(fd);
    if (!f) return POLLNVAL;
    const mask = f.fops.poll ? k.withTask(p.mainTask, () => f.fops.poll!(f)) : DEFAULT_POLLMASK;
    return mask & (events | POLLERR | POLLHUP);
  });
}
