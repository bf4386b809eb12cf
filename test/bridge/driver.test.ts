// A C driver of the edu device (native/tests/edu_poll.c, built here with the system headers)
// through the bridge: a poll() on its own eventfd wakes on the DMA completion MSI with device
// time following wall time, BAR0 through mmap(), DMA into malloc'd memory, a fork()ed child on
// the inherited device fd, EBUSY for a second group open; then the whole twin is checked.
// And `vfio-twin run` itself: the exit code passes through, bad usage is exit 2.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { quiesce, ROOT, runClient, serve, twinProblems, uapiInclude } from "./harness.js";

function build(name: string, include: string[] = []): string {
  const out = join(ROOT, `dist/native/${name}`);
  const r = spawnSync(
    process.env.CC ?? "cc",
    ["-O2", "-Wall", ...include.flatMap((d) => ["-isystem", d]), "-o", out, join(ROOT, `native/tests/${name}.c`)],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  return out;
}

test("a C edu driver: poll() wakes on its MSI, BAR mmap, DMA, fork, EBUSY", async () => {
  const bin = build("edu_poll");
  // wall clock on: nothing in the driver sleeps, so only wall time moves the device's clock
  const s = await serve({}, { wallClock: true });
  try {
    const r = await runClient(s, [bin]);
    assert.match(r.stdout, /^16 passed, 0 failed$/m, r.stdout + r.stderr);
    assert.equal(r.code, 0);
    await quiesce(s);
    assert.equal(twinProblems(s), "");
  } finally {
    await s.stop();
  }
});

test("vfio-twin run passes the exit code through and rejects bad usage with 2", () => {
  const cli = join(ROOT, "dist/src/cli/main.js");
  const run = (...a: string[]) => spawnSync(process.execPath, [cli, "run", ...a], { encoding: "utf8" });
  assert.equal(run("--", "sh", "-c", "exit 3").status, 3);
  assert.equal(run("--", "sh", "-c", "kill -9 $$").status, 137);
  const bad = run("--frobnicate", "--", "true");
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, "vfio-twin run: unknown option --frobnicate (see vfio-twin run --help)\n");
  assert.equal(run().status, 2);
  const nofile = run("--machine", "/nonexistent.json", "--", "true");
  assert.equal(nofile.status, 1);
  assert.equal(nofile.stderr, "vfio-twin run: /nonexistent.json: no such machine file\n");
});

// The sysfs and /dev discovery a VMM does, by an unmodified Python (its os module goes
// through stat/fstatat/statx, opendir/readdir, readlink, open): the twin's machine, not the host's.
const py = spawnSync("sh", ["-c", "command -v python3"]).status === 0;
test("sysfs and /dev discovery by an unmodified python3", { skip: py ? false : "no python3 here" }, () => {
  const cli = join(ROOT, "dist/src/cli/main.js");
  const script = [
    "import os",
    "d = '/sys/bus/pci/devices/0000:00:01.0'",
    "print(os.path.isdir(d), os.path.exists('/dev/vfio/1'), os.path.exists('/dev/vfio/2'))",
    "print(os.readlink(d + '/iommu_group'), sorted(os.listdir('/sys/bus/pci/devices')))",
    "print(open(d + '/vendor').read().strip(), open(d + '/device').read().strip())",
    "print(sorted(os.listdir(d + '/vfio-dev')), os.stat('/dev/vfio/devices/vfio0').st_mode & 0o170000 == 0o020000)",
    "fd = os.open('/dev/vfio/1', os.O_RDWR); os.close(fd); print('opened')",
  ].join("\n");
  const r = spawnSync(process.execPath, [cli, "run", "--check", "--", "python3", "-c", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      "True True False",
      "../../../kernel/iommu_groups/1 ['0000:00:01.0']",
      "0x1234 0x11e8",
      "['vfio0'] True",
      "opened",
      "",
    ].join("\n"),
  );
  assert.match(r.stderr, /left in the twin after the run: nothing/);
});

// poll() over a twin fd (the iommufd fault queue) and a pipe of the program's own.
const uapi = uapiInclude();
test(
  "poll() over a twin fd and the program's own",
  { skip: uapi ? false : "no 6.12 uapi headers (scripts/build-clients.sh)" },
  () => {
    const bin = build("poll_twin", [uapi!]);
    const cli = join(ROOT, "dist/src/cli/main.js");
    const r = spawnSync(process.execPath, [cli, "run", "--check", "--", bin], { encoding: "utf8" });
    assert.match(r.stdout, /^6 passed, 0 failed$/m, r.stdout + r.stderr);
    assert.equal(r.status, 0);
    assert.match(r.stderr, /left in the twin after the run: nothing/);
  },
);
