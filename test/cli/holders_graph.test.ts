// `vfio-twin holders` and `vfio-twin graph` without a browser: exit codes, one-line errors,
// the JSON document, the SVG's content and the page's steps.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { holdersMain } from "../../src/cli/holders.js";
import { graphMain } from "../../src/cli/graph.js";
import { collectSteps } from "../../src/cli/graph_html.js";
import { EXPLORE_TRACE } from "./harness.js";

const SCENARIOS = fileURLToPath(new URL("../../../test/scenarios/", import.meta.url));

/** Run with stdout and stderr captured. */
function run(main: (argv: string[], out: (s: string) => void) => number, argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const e = console.error;
  console.error = (s: string) => err.push(String(s));
  try {
    const rc = main(argv, (s) => out.push(s));
    return { rc, out: out.join("\n"), err };
  } finally {
    console.error = e;
  }
}

test("holders: the demo's group, its EBUSY first, every chain back to qemu", () => {
  const r = run(holdersMain, ["/dev/vfio/1"]);
  assert.equal(r.rc, 0);
  const lines = r.out.split("\n");
  assert.equal(lines[0], '[pid 2] openat(AT_FDCWD, "/dev/vfio/1", O_RDWR) = -1 EBUSY (Device or resource busy)');
  assert.ok(lines.includes("after the demo: qemu with 0000:00:01.0 assigned, a second VMM told EBUSY:"));
  assert.ok(lines.includes("vfio_group 1 (refcount 2)"));
  assert.ok(
    lines.some((l) =>
      /^ {2}<- file \/dev\/vfio\/1 \(vfio-group\) \[group file\], taken by openat\("\/dev\/vfio\/1"\) by qemu\[1\]$/.test(
        l,
      ),
    ),
  );
});

test("holders --json: one document with the objects and the EBUSY events", () => {
  const r = run(holdersMain, ["kvm vm 1", "--json"]);
  assert.equal(r.rc, 0);
  const d = JSON.parse(r.out);
  assert.equal(d.target, "kvm vm 1");
  assert.equal(d.objects[0].object, "kvm vm 1");
  assert.deepEqual(
    d.objects[0].holders.map((h: { ref: string }) => h.ref),
    ["vm file", "kvm device"],
  );
  assert.equal(d.ebusy[0].errno, "EBUSY");
  assert.equal(d.ebusy[0].args.pathname, "/dev/vfio/1");
});

test("holders: user errors are one line and an exit code", () => {
  assert.deepEqual(run(holdersMain, ["/dev/vfio/1", "--frob"]).rc, 2);
  assert.equal(run(holdersMain, []).rc, 2);
  const missing = run(holdersMain, ["/dev/vfio/1", "--script", "/nonexistent/scenario.txt"]);
  assert.equal(missing.rc, 1);
  assert.equal(missing.err.length, 1);
  assert.match(missing.err[0]!, /^vfio-twin holders: \/nonexistent\/scenario\.txt: ENOENT/);
  const dir = run(holdersMain, ["/dev/vfio/1", "--script", SCENARIOS]);
  assert.deepEqual([dir.rc, dir.err], [1, [`vfio-twin holders: ${SCENARIOS}: is a directory`]]);
  const none = run(holdersMain, ["vfio_group 9"]);
  assert.equal(none.rc, 1);
  assert.match(none.err[0]!, /nothing named "vfio_group 9"/);
  assert.equal(run(holdersMain, ["--help"]).rc, 0);
});

test("holders --replay: a fuzz counterexample program", () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-holders-"));
  try {
    const prog = join(dir, "p.json");
    writeFileSync(
      prog,
      JSON.stringify({
        steps: [
          { op: "open", p: 0, path: "/dev/vfio/1" },
          { op: "open", p: 1, path: "/dev/vfio/1" },
        ],
      }),
    );
    const r = run(holdersMain, ["/dev/vfio/1", "--replay", prog]);
    assert.equal(r.rc, 0, r.err.join("\n"));
    assert.match(r.out, /openat\(AT_FDCWD, "\/dev\/vfio\/1", [^)]*\) = -1 EBUSY/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("graph: one SVG with every kind of node of the demo, refcounts and module pins", () => {
  const r = run(graphMain, []);
  assert.equal(r.rc, 0);
  assert.match(r.out, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const s of [
    "qemu[1]",
    "qemu-2[2]",
    "fd 7",
    "file /dev/vfio/1 (vfio-group)",
    "vfio_group 1",
    "vfio_device 0000:00:01.0",
  ])
    assert.ok(r.out.includes(`>${s}<`), s);
  for (const s of ["kvm vm 1", "module vfio_iommu_type1", "refcount 2", "refcnt 1", "group file"])
    assert.ok(r.out.includes(s), s);
  assert.match(r.out, />vfio_container \d+</, "container ids count across the twins of a process");
  assert.ok(!r.out.includes("/dev/null"), "stdio is left out");
  assert.ok(run(graphMain, ["--all"]).out.includes("/dev/null"));
  assert.equal(run(graphMain, ["--html", "--script", "/nonexistent"]).rc, 1);
  assert.equal(run(graphMain, ["extra"]).rc, 2);
});

test("graph --at: the picture after a given call, or after the first EBUSY with its holders outlined", () => {
  const script = `${SCENARIOS}iommufd-teardown.txt`;
  const busy = run(graphMain, ["--script", script, "--at", "ebusy"]);
  assert.equal(busy.rc, 0);
  assert.match(busy.out, /IOMMU_DESTROY, \{size=8, id=3\}\) = -1 EBUSY/);
  assert.match(busy.out, /class="node iommufd holder"/);
  assert.match(
    run(graphMain, ["--script", script, "--at", "1"]).out,
    /font-weight="bold">\[pid 1\] eventfd2\(0, 0\) = 3</,
  );
  assert.equal(run(graphMain, ["--script", script, "--at", "100000"]).rc, 1);
  assert.equal(run(graphMain, ["--at", "zero"]).rc, 2);
});

test("graph --html: a step per traced call; an iommufd scenario's EBUSYs outline their holders", () => {
  const d = collectSteps({ script: `${SCENARIOS}iommufd-teardown.txt` });
  assert.ok(d.steps.length > 10);
  const busy = d.steps.filter((s) => s.busy);
  assert.equal(busy.length, 3);
  for (const s of busy) {
    assert.match(s.holders!, /<- /);
    assert.match(d.svgs[s.svg]!, /class="node [a-z_]+ holder"/);
  }
  assert.ok(d.svgs.length < d.steps.length, "a picture that does not change is stored once");
});

test("graph --html: every step's picture shares one layout, so a box stays where it was", () => {
  const d = collectSteps({ teardown: true });
  const rects = new Set<string>();
  for (const svg of d.svgs) {
    const m = /<g class="node fd[^"]*" id="n-fd_1_3"><rect x="([\d.]+)" y="([\d.]+)"/.exec(svg);
    if (m) rects.add(`${m[1]},${m[2]}`);
  }
  assert.equal(rects.size, 1, [...rects].join(" "));
  assert.equal(new Set(d.svgs.map((s) => /viewBox="([^"]+)"/.exec(s)![1])).size, 1, "one size for every step");
});

function withFiles(files: Record<string, string>, fn: (path: (name: string) => string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-explore-"));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    fn((name) => join(dir, name));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("graph --html --replay: an explore trace's page steps through the interleaving, preemptions marked", () => {
  withFiles({ "t.json": JSON.stringify(EXPLORE_TRACE) }, (path) => {
    const d = collectSteps({ replay: path("t.json") });
    assert.match(
      d.title,
      /^interleaving .*t\.json \(world iommufd-map-vs-destroy, design upstream, broken: iommufd-shortterm-put-early\)$/,
    );
    // context numbers count across the twins of a process
    const rows = d.steps.map((s) => `${s.kind ?? "syscall"}: ${s.line.replace(/ctx \d+/g, "ctx N")}`);
    assert.deepEqual(rows, [
      "world: # world iommufd-map-vs-destroy built; threads: map, destroy",
      "step:   0 [map] start -> iommufd_ioas_map",
      "step:   1 [map] iommufd_ioas_map -> down_read(domains_rwsem of iommufd ctx N)",
      "step:   2 [map] down_read(domains_rwsem of iommufd ctx N) -> down_write(iova_rwsem of iommufd ctx N)",
      "step:   3 [map] down_write(iova_rwsem of iommufd ctx N) -> iommufd_put_object(users dropped)",
      "preempt: ---- preempt: map at iommufd_put_object(users dropped) -> destroy ----",
      "syscall: [destroy] ioctl(3, IOMMU_DESTROY, {size=8, id=1}) = 0",
      "step:   4 [destroy] start -> done",
      "preempt: ---- switch: destroy done -> map ----",
      // the oopsing map is traced too (-EIO, as sysIoctl reports an oops)
      "syscall: [map] ioctl(3, IOMMU_IOAS_MAP, {size=40, flags=IOMMU_IOAS_MAP_FIXED_IOVA|IOMMU_IOAS_MAP_WRITEABLE|IOMMU_IOAS_MAP_READABLE, ioas_id=1, __reserved=0, user_va=0x7efffffe0000, length=4096, iova=0x200000}) = -1 EIO (Input/output error)",
      "step:   5 [map] iommufd_put_object(users dropped) -> done",
      "violation: results: map = -5, destroy = 0",
      "violation: VIOLATION [no-kernel-bugs] use-after-free: read of iommufd ioas 1 of iommufd ctx N.shortterm after its release",
      "violation: reproduced exactly",
    ]);
    const at = (i: number) => d.svgs[d.steps[i]!.svg]!;
    // the world has the IOAS; map's first step holds the iommufd file (fget) and the IOAS;
    // its put drops `users` and is preempted before shortterm_users: IOMMU_DESTROY, broken,
    // does not wait for it and frees the IOAS
    assert.match(at(0), />iommufd ioas 1 of iommufd ctx \d+</);
    assert.match(at(1), /file \/dev\/iommu \(iommufd\)<\/text>.*?refcount 2/s);
    assert.match(at(1), />iommufd ioas 1 of iommufd ctx \d+</);
    assert.match(at(4), />iommufd ioas 1 of iommufd ctx \d+</);
    assert.doesNotMatch(at(6), />iommufd ioas 1 /);
    assert.equal(d.steps[5]!.svg, d.steps[4]!.svg, "a preemption mark shows the graph as the step left it");

    assert.equal(graphMain(["--html", "--replay", path("t.json"), "-o", path("t.html")]), 0);
    const page = readFileSync(path("t.html"), "utf8");
    assert.match(page, /<button id="next-preempt"/);
    assert.match(
      page,
      /---- preempt: map at iommufd_put_object\(users dropped\) -&gt; destroy ----|---- preempt: map at iommufd_put_object\(users dropped\) -> destroy ----/,
    );
    const svg = run(graphMain, ["--replay", path("t.json")]);
    assert.equal(svg.rc, 0);
    assert.doesNotMatch(svg.out, />iommufd ioas 1 /, "the static graph is the one after the interleaving");
  });
});

test("holders --replay: an explore trace, the objects after its interleaving", () => {
  withFiles({ "t.json": JSON.stringify(EXPLORE_TRACE) }, (path) => {
    const r = run(holdersMain, ["/dev/iommu", "--replay", path("t.json")]);
    assert.equal(r.rc, 0, r.err.join("\n"));
    assert.match(r.out, /^after interleaving .*t\.json \(world iommufd-map-vs-destroy/m);
    assert.match(r.out, /^ {2}<- fd 3 \[fd 3 of pid 1\], taken by openat\("\/dev\/iommu"\) by vmm\[1\]$/m);
    const j = run(holdersMain, ["/dev/iommu", "--replay", path("t.json"), "--json"]);
    assert.equal(j.rc, 0);
    const doc = JSON.parse(j.out);
    assert.equal(doc.objects[0].kind, "file");
    assert.deepEqual(doc.ebusy, []);
  });
});

test("--replay: a file that is neither a fuzz program nor an explore trace is one line, exit 1", () => {
  withFiles(
    {
      "text.json": "not json\nat all",
      "obj.json": '{"a": 1}',
      "fmt.json": '{"format": "vfio-twin-explore-trace/9"}',
      "sched.json": JSON.stringify({ ...EXPLORE_TRACE, schedule: [0, -1] }),
      "world.json": JSON.stringify({ ...EXPLORE_TRACE, world: "no-such-world" }),
    },
    (path) => {
      const cases: [string, RegExp][] = [
        ["text.json", /text\.json: not JSON \([^\n]*\); --replay takes a fuzz program .* or an explore trace/],
        ["obj.json", /obj\.json: neither a fuzz program \(the JSON vfio-twin fuzz writes\) nor an explore trace/],
        ["fmt.json", /fmt\.json: format "vfio-twin-explore-trace\/9" is not vfio-twin-explore-trace\/1/],
        ["sched.json", /sched\.json: not an explore trace \(bad schedule\)/],
        ["world.json", /world\.json: unknown world no-such-world/],
      ];
      for (const [file, re] of cases)
        for (const main of [holdersMain, graphMain]) {
          const argv =
            main === holdersMain ? ["/dev/iommu", "--replay", path(file)] : ["--html", "--replay", path(file)];
          const r = run(main, argv);
          assert.equal(r.rc, 1, `${file}: ${r.out}`);
          assert.equal(r.err.length, 1, r.err.join("\n"));
          assert.doesNotMatch(r.err[0]!, /\n/);
          assert.match(r.err[0]!, re);
        }
    },
  );
});
