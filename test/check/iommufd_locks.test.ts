// iommufd's locks (docs/explorer.md, "iommufd's locks"): VFIO's cdev attach, replace and
// detach are paths down to ioas->mutex, igroup->lock, domains_rwsem, iova_rwsem and the pages
// mutex; an access's pin and unpin take its ioas_lock, iova_rwsem for read and the pages
// mutex; lookups, finalize and remove take the object table's xa_lock (a spinlock); DESTROY
// waits for a short-term user between the halves of its put. All in the kernel's order; the
// worlds racing them explore clean to completion: every interleaving where one waits for a
// lock another holds across a yield (an attach behind an unmap's domains_rwsem, a pin behind
// an unmap's iova_rwsem, a DESTROY behind a put) ends without a deadlock splat, and nothing
// sleeps under the xa_lock (sleeping-while-atomic would be a failure).
import { test } from "node:test";
import assert from "node:assert/strict";
import { explore, runSchedule } from "../../src/check/explorer.js";
import { worldByName } from "../../src/check/worlds.js";
import type { Kernel } from "../../src/kernel/kernel.js";

const ORDER: [string, string][] = [
  ["iommufd_ioas.mutex", "iommufd_group.lock"], // auto_get_domain -> hw_pagetable_attach
  ["iommufd_group.lock", "io_pagetable.iova_rwsem"], // attach -> reserved regions
  ["iommufd_ioas.mutex", "io_pagetable.domains_rwsem"], // hwpt_paging_alloc -> add_domain
  ["io_pagetable.domains_rwsem", "io_pagetable.iova_rwsem"],
  ["io_pagetable.iova_rwsem", "iopt_pages.mutex"], // fill / unfill of each area
  ["iommufd_ioas.mutex", "iommufd_ctx.objects.xa_lock"], // auto_get_domain's finalize
  ["iommufd_access.ioas_lock", "io_pagetable.iova_rwsem"], // access pin / unpin (read)
  ["iommufd_access.ioas_lock", "io_pagetable.domains_rwsem"], // access attach / replace
  ["access_driver.lock", "iommufd_access.ioas_lock"], // the world's driver: its unmap callback unpins
];

test("attach vs map then unmap, detach vs unmap and close, two attaches: clean to completion, in the kernel's lock order", () => {
  const seen = new Set<string>();
  for (const [name, max] of [
    ["iommufd-attach-vs-map-unmap", 2500],
    ["iommufd-detach-vs-unmap-close", 1500],
    ["iommufd-two-attach-auto-domain", 80],
    ["iommufd-access-pin-vs-unmap", 300],
    ["iommufd-destroy-vs-map-unmap", 30],
    ["iommufd-replace-vs-map", 800],
    ["iommufd-hwpt-alloc-vs-unbind", 30],
    ["iommufd-access-replace-vs-pin", 300],
  ] as const) {
    let k: Kernel | null = null;
    const r = explore(
      () => {
        const w = worldByName(name)!.build({});
        k = w.kernel;
        return w;
      },
      { maxExecutions: max },
    );
    assert.equal(r.complete, true, `${name}: ${r.executions} executions`);
    assert.deepEqual(r.failures, [], name);
    assert.deepEqual(k!.lockdep.inversions, [], name);
    for (const [a, b] of ORDER) if (k!.lockdep.ordered(a, b)) seen.add(`${a} -> ${b}`);
    if (name === "iommufd-attach-vs-map-unmap") assert.deepEqual([...r.outcomes.keys()], ["[0,0]"]);
    if (name === "iommufd-two-attach-auto-domain") assert.deepEqual([...r.outcomes.keys()], ["[0,0]"]);
    // the pin first (then unpinned by the driver or, from the unmap's unlock window, by its
    // callback) or the unmap first (ENOENT): the unmap always completes
    if (name === "iommufd-access-pin-vs-unmap") assert.deepEqual([...r.outcomes.keys()].sort(), ["[-2,0]", "[0,0]"]);
    // DESTROY: EBUSY while a call holds the IOAS, 0 between or after them (the map then
    // ENOENT), and 0 after waiting when it came between the halves of a put
    if (name === "iommufd-destroy-vs-map-unmap")
      assert.deepEqual([...r.outcomes.keys()].sort(), ["[-2,0]", "[0,-16]", "[0,0]"]);
    if (name === "iommufd-replace-vs-map") assert.deepEqual([...r.outcomes.keys()], ["[0,0]"]);
    // HWPT_ALLOC first (the unbind waits for its short-term hold of the device), or the
    // unbind first (ENOENT)
    if (name === "iommufd-hwpt-alloc-vs-unbind") assert.deepEqual([...r.outcomes.keys()].sort(), ["[-2,0]", "[0,0]"]);
    // the pin before the replace (the replace's unmap of everything has the driver unpin it),
    // or after it (the page is not in the second IOAS: ENOENT), or while the access is between
    // IOASes (ioas NULL: ENOENT); the replace always succeeds
    if (name === "iommufd-access-replace-vs-pin") assert.deepEqual([...r.outcomes.keys()].sort(), ["[-2,0]", "[0,0]"]);
  }
  // every edge of the kernel's order was taken in some execution (the last world's kernel
  // alone need not show them all: collected per world above)
  assert.deepEqual([...seen].sort(), ORDER.map(([a, b]) => `${a} -> ${b}`).sort());
});

test("IOMMU_DESTROY between the halves of IOAS_MAP's put waits on destroy_wait, then frees the IOAS", () => {
  const w = worldByName("iommufd-map-vs-destroy")!;
  // map to its put's window (users dropped), then DESTROY: it erases the id and waits; map
  // drops shortterm_users; DESTROY wakes and destroys
  const r = runSchedule(() => w.build({}), [0, 0, 0, 0, 1, 0, 1]);
  const destroy = r.steps.filter((s) => s.thread === 1).map((s) => `${s.from} -> ${s.to}`);
  assert.match(destroy[0]!, /^start -> wait_event\(destroy_wait of iommufd ctx \d+\)$/);
  assert.match(destroy[1]!, /^wait_event\(destroy_wait of iommufd ctx \d+\) -> done$/);
  assert.deepEqual(r.results, [0, 0]);
  assert.deepEqual(r.violations, []);
  // the broken variant frees at once: the put's second half is a use after free
  const bad = runSchedule(() => w.build({ broken: ["iommufd-shortterm-put-early"] }), [0, 0, 0, 0, 1, 0]);
  assert.match(bad.violations.map((v) => v.message).join("\n"), /use-after-free: read of iommufd ioas 1 .*\.shortterm/);
});

test("a cdev's unbind waits for an IOMMU_HWPT_ALLOC that holds its device short-term (REMOVE_WAIT_SHORTTERM)", () => {
  const w = worldByName("iommufd-hwpt-alloc-vs-unbind")!;
  // HWPT_ALLOC looks the device up and waits for ioas->mutex's yield; the close's unbind
  // then waits on destroy_wait until HWPT_ALLOC's put
  const r = runSchedule(() => w.build({}), [0, 1, 1, 0, 0, 0, 1, 1]);
  const close = r.steps.filter((s) => s.thread === 1).map((s) => s.to);
  assert.match(close[1]!, /^wait_event\(destroy_wait of iommufd ctx \d+\)$/);
  assert.deepEqual(r.results, [0, 0]);
  assert.deepEqual(r.violations, []);
});
