// Virtual time. Devices schedule delayed work (QEMU timers, the edu DMA engine's 100 ms) on
// this clock; it advances only when userspace sleeps or waits, so a scenario that sleeps
// 300 ms runs in microseconds and the same run always fires the same timers in the same
// order (ties broken by arming order).

/** KTIME_MAX (2^63 - 1 ns), as a Number: the end of time for the kernel's clocks */
export const KTIME_MAX = 2 ** 63 - 1;

export interface Timer {
  readonly when: number;
  readonly seq: number;
  readonly name: string;
  readonly fn: () => void;
  cancelled: boolean;
}

export class Clock {
  /** nanoseconds since boot */
  now = 0;
  private seq = 0;
  private readonly timers: Timer[] = [];
  /** a timer callback threw: the kernel records it as an oops and the clock goes on */
  onOops: (e: unknown, timer: string) => void = (e) => {
    throw e;
  };

  /** Arm fn to run `delayNs` from now. */
  schedule(delayNs: number, name: string, fn: () => void): Timer {
    const t: Timer = { when: this.now + Math.max(0, delayNs), seq: this.seq++, name, fn, cancelled: false };
    this.timers.push(t);
    this.timers.sort((a, b) => a.when - b.when || a.seq - b.seq);
    return t;
  }

  cancel(t: Timer): void {
    t.cancelled = true;
  }

  pending(): readonly Timer[] {
    return this.timers.filter((t) => !t.cancelled);
  }

  /** Advance to now + ns, running every timer that falls due, in order. Time that is not a
   * finite, non-negative number of nanoseconds does not pass (callers answer EINVAL). */
  advance(ns: number): void {
    if (!Number.isFinite(ns) || ns <= 0) return;
    // a longer sleep ends at KTIME_MAX, as timespec64_to_ktime() clamps (include/linux/ktime.h)
    const end = Math.min(this.now + ns, KTIME_MAX);
    for (;;) {
      const t = this.timers[0];
      if (!t || t.when > end) break;
      this.timers.shift();
      if (t.cancelled) continue;
      this.now = Math.max(this.now, t.when);
      try {
        t.fn();
      } catch (e) {
        this.onOops(e, t.name);
      }
    }
    this.now = end;
  }
}
