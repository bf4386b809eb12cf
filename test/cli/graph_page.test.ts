// The graph page in a real browser: Debian's chromium, driven by playwright-core. The page
// loads without console errors, stepping changes the picture, and the EBUSY step outlines its
// holders. Skipped, saying so, where chromium is not installed (.ci/run installs it).

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { graphMain } from "../../src/cli/graph.js";
import { EXPLORE_TRACE } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const skip = existsSync(CHROMIUM)
  ? false
  : `no chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH): the browser test of the graph page did not run`;

type Page = Awaited<ReturnType<Awaited<ReturnType<typeof import("playwright-core").chromium.launch>>["newPage"]>>;

/** A scratch directory and chromium; `load` opens a file, collecting console errors and warnings. */
async function inChromium(
  fn: (dir: string, load: (file: string) => Promise<{ page: Page; errors: string[] }>) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-page-"));
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    await fn(dir, async (file) => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const errors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
      await page.goto(pathToFileURL(file).href);
      return { page, errors };
    });
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  "the graph page steps through the demo in chromium and outlines the EBUSY's holders",
  { skip, timeout: 120_000 },
  () =>
    inChromium(async (dir, load) => {
      const file = join(dir, "demo.html");
      assert.equal(graphMain(["--html", "-o", file]), 0);
      const { page, errors } = await load(file);
      const graph = page.locator("#graph");
      const current = page.locator("#trace li.current");
      assert.equal(await page.locator("#graph svg").count(), 1, "a picture is shown");
      assert.match(await current.innerText(), /openat\(AT_FDCWD, "\/dev\/kvm", O_RDWR\) = 3/);
      const first = await graph.innerHTML();
      assert.ok(first.includes("/dev/kvm") && !first.includes("kvm vm 1"));

      // stepping: KVM_GET_API_VERSION changes nothing, KVM_CREATE_VM adds the VM and its file
      await page.click("#next");
      assert.equal(await graph.innerHTML(), first, "a call that takes no reference leaves the picture");
      await page.keyboard.press("ArrowRight");
      assert.match(await current.innerText(), /KVM_CREATE_VM/);
      const vm = await graph.innerHTML();
      assert.notEqual(vm, first, "the picture changed");
      assert.ok(vm.includes("kvm vm 1") && vm.includes("anon_inode:kvm-vm"));
      await page.click("#prev");
      assert.equal(await graph.innerHTML(), first, "stepping back shows the earlier picture");

      // the EBUSY: its holders outlined, the chains printed
      await page.click("#next-busy");
      assert.match(await current.innerText(), /\[pid 2\] openat\(AT_FDCWD, "\/dev\/vfio\/1", O_RDWR\) = -1 EBUSY/);
      const held = await page.locator("#graph .node.holder").evaluateAll((ns) => ns.map((n) => n.id));
      for (const id of ["n-proc_1", "n-fd_1_7"]) assert.ok(held.includes(id), `${id} is outlined: ${held.join()}`);
      assert.ok(!held.includes("n-proc_2"), "the process told EBUSY holds nothing");
      assert.ok(
        held.some((id) => /^n-obj_/.test(id)),
        "objects on the chain are outlined",
      );
      assert.ok((await page.locator("#graph .edge.holder").count()) > 0, "so are the references");
      assert.match(await page.locator("#holders").innerText(), /who holds it:\nvfio_group 1 \(refcount 2\)/);

      await page.click("#last");
      assert.match(await current.innerText(), /exit_group/);
      assert.deepEqual(errors, []);
    }),
);

test(
  "the page of an explore trace steps through its interleaving in chromium, preemptions marked",
  { skip, timeout: 120_000 },
  () =>
    inChromium(async (dir, load) => {
      const trace = join(dir, "trace.json");
      writeFileSync(trace, JSON.stringify(EXPLORE_TRACE));
      const file = join(dir, "explore.html");
      assert.equal(graphMain(["--html", "--replay", trace, "-o", file]), 0);
      const { page, errors } = await load(file);
      const graph = page.locator("#graph");
      const current = page.locator("#trace li.current");
      assert.match(await current.innerText(), /^# world iommufd-map-vs-destroy built/);
      assert.ok(await page.locator("#next-preempt").isVisible(), "an interleaving has the preemption button");
      assert.equal(await page.locator("#trace li.preempt").count(), 2);

      await page.click("#next-preempt");
      assert.match(
        await current.innerText(),
        /---- preempt: map at iommufd_put_object\(users dropped\) -> destroy ----/,
      );
      const before = await graph.innerHTML();
      assert.ok(before.includes("iommufd ioas 1 of iommufd ctx"), "map is preempted with the IOAS still there");
      await page.keyboard.press("ArrowRight");
      assert.match(await current.innerText(), /^\[destroy\] ioctl\(3, IOMMU_DESTROY, \{size=8, id=1\}\) = 0$/);
      const after = await graph.innerHTML();
      assert.ok(!after.includes("iommufd ioas 1 of iommufd ctx"), "IOMMU_DESTROY freed it under map");

      await page.click("#last");
      assert.equal(await current.getAttribute("class"), "violation current");
      assert.equal(await page.locator("#trace li.violation").count(), 3);
      assert.match(await page.locator("#trace").innerText(), /VIOLATION \[no-kernel-bugs\] use-after-free/);
      assert.deepEqual(errors, []);
    }),
);
