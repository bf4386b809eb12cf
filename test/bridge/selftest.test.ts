// The kernel's own iommufd selftest (tools/testing/selftests/iommu/iommufd.c of Debian's
// linux-source-6.12, built for this host by ../shared/oracle/build.sh host, unmodified) runs
// against the twin through the bridge, and each of its 190 tests must end as it ends on the
// real 6.12 kernel under the oracle (goldens/iommufd_selftest.custom-6.12-noviommu.tap: 162
// pass; the 28 that fail there are version skew, ../shared/oracle/guest/
// selftest-expected-failures.txt). Then the whole twin is checked. About 75 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostPrograms, quiesce, ROOT, runClient, serve, twinProblems } from "./harness.js";

const progs = hostPrograms();
const HUGE = "/proc/sys/vm/nr_hugepages";

/** The MAP_HUGETLB tests need 160 huge pages reserved, as the oracle's init.sh does. */
function hugePages(): string | null {
  try {
    if (Number(readFileSync(HUGE, "utf8")) < 160) writeFileSync(HUGE, "160");
    const n = Number(readFileSync(HUGE, "utf8"));
    return n >= 160 ? null : `only ${n} huge pages could be reserved (${HUGE})`;
  } catch (e) {
    return `cannot reserve huge pages: ${(e as Error).message}`;
  }
}

/** "ok N name" / "not ok N name" lines of a TAP run, by test name. */
function results(tap: string): Map<string, boolean> {
  const m = new Map<string, boolean>();
  for (const l of tap.split("\n")) {
    const r = /^(ok|not ok) \d+ (\S+)/.exec(l);
    if (r) m.set(r[2]!, r[1] === "ok");
  }
  return m;
}

const skip = typeof progs === "string" ? progs : false;

test(
  "the kernel's iommufd selftest ends on the twin as on the real 6.12 kernel",
  { skip, timeout: 600_000 },
  async () => {
    if (typeof progs === "string") return;
    const why = hugePages();
    assert.equal(why, null, `${why}: run as root, or reserve them by hand`);
    const kernel = results(
      readFileSync(join(ROOT, "test/bridge/goldens/iommufd_selftest.custom-6.12-noviommu.tap"), "utf8"),
    );
    assert.equal(kernel.size, 190);
    const s = await serve();
    try {
      const r = await runClient(s, [progs.selftest]);
      const twin = results(r.stdout);
      const differ = [...kernel].filter(([name, ok]) => twin.get(name) !== ok);
      const detail = (name: string) => {
        const i = r.stdout.indexOf(`RUN           ${name} ...`);
        return r.stdout
          .slice(i, r.stdout.indexOf("\n#          ", i + 1) + 1)
          .split("\n")
          .slice(0, 4)
          .join("\n");
      };
      assert.deepEqual(
        differ.map(([n, ok]) => `${n}: kernel ${ok ? "ok" : "not ok"}, twin ${twin.get(n) ? "ok" : "not ok"}`),
        [],
        differ.map(([n]) => detail(n)).join("\n"),
      );
      assert.equal([...twin.values()].filter(Boolean).length, 162);
      await quiesce(s);
      assert.equal(twinProblems(s), "");
    } finally {
      await s.stop();
    }
  },
);

// iommufd_fail_nth decides by /sys/kernel/debug/fail* whether fault injection is there. The
// oracle's kernel has no debugfs: every test skips, and so on the default machine. With the
// fault-injection debugfs, fail-nth arms the twin's injection and every test sweeps its
// fallible steps: each failure must be an errno leaving nothing behind.
for (const [name, config, want] of [
  ["skips every test on the default machine, as on the oracle's kernel", {}, /skip:7 error:0/],
  [
    "passes every test with fault-injection debugfs",
    { faultInjectionDebugfs: true },
    /pass:7 fail:0 xfail:0 xpass:0 skip:0/,
  ],
] as const) {
  test(`iommufd_fail_nth ${name}`, { skip, timeout: 120_000 }, async () => {
    if (typeof progs === "string") return;
    const s = await serve(config);
    try {
      const r = await runClient(s, [progs.failNth]);
      assert.match(r.stdout, want, r.stdout.slice(-2000));
      assert.equal(r.code, 0);
      await quiesce(s);
      assert.equal(twinProblems(s), "");
    } finally {
      await s.stop();
    }
  });
}
