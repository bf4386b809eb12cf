import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "../../src/kernel/kernel.js";
import { EBUSY, EEXIST, ENOENT, EWOULDBLOCK } from "../../src/uapi/errno.js";
import type { FileOperations } from "../../src/kernel/fs.js";
import { sysClose, sysOpen } from "../../src/kernel/syscalls.js";

function boot(): Kernel {
  const k = new Kernel();
  k.modules.provide({
    name: "provider",
    init(_k, m) {
      m.export("provider_fn", (x: number) => x + 1);
      const fops: FileOperations = { owner: m, name: "provider" };
      k.devices.register("/dev/provider", fops, null);
      return 0;
    },
    exit(k2) {
      k2.devices.unregister("/dev/provider");
    },
  });
  k.modules.provide({ name: "user", requires: ["provider"], init: () => 0 });
  k.modules.provide({ name: "broken", init: () => -EBUSY });
  return k;
}

test("symbol_get pins the exporting module until symbol_put, and is counted", () => {
  const k = boot();
  assert.equal(k.modules.load("provider"), 0);
  const fn = k.modules.symbolGet<(x: number) => number>("provider_fn");
  assert.equal(fn!(1), 2);
  assert.equal(k.modules.unload("provider"), -EWOULDBLOCK);
  k.modules.symbolPut("provider_fn");
  assert.equal(k.modules.stats.gets.get("provider_fn"), 1);
  assert.equal(k.modules.stats.puts.get("provider_fn"), 1);
  assert.equal(k.modules.unload("provider"), 0);
  assert.equal(k.modules.symbolGet("provider_fn"), null, "no symbol once unloaded");
  assert.equal(k.modules.stats.misses.get("provider_fn"), 1);
});

test("an open file of a module pins it; a hard dependency blocks its unload", () => {
  const k = boot();
  assert.equal(k.modules.load("provider"), 0);
  const p = k.spawnProcess();
  const fd = sysOpen(k, p, "/dev/provider", 2);
  assert.equal(fd, 3);
  assert.equal(k.modules.unload("provider"), -EWOULDBLOCK);
  assert.equal(sysClose(k, p, fd), 0);
  assert.equal(k.modules.load("user"), 0);
  assert.equal(k.modules.unload("provider"), -EWOULDBLOCK, "used by 'user'");
  assert.equal(k.modules.unload("user"), 0);
  assert.equal(k.modules.unload("provider"), 0);
  assert.equal(sysOpen(k, p, "/dev/provider", 2), -ENOENT, "the node went with the module");
});

test("load errors: unknown, twice, failing init leaves nothing behind", () => {
  const k = boot();
  assert.equal(k.modules.load("nothing"), -ENOENT);
  assert.equal(k.modules.load("provider"), 0);
  assert.equal(k.modules.load("provider"), -EEXIST);
  assert.equal(k.modules.load("broken"), -EBUSY);
  assert.equal(k.modules.loaded.has("broken"), false);
  assert.equal(k.modules.unload("broken"), -ENOENT);
});
