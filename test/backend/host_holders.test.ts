import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync } from "node:fs";
import { hostHolders } from "../../src/backend/host_holders.js";

test("on the real kernel, who holds a path: every process's fds on it, from /proc", () => {
  const fd = openSync("/dev/null", "r");
  try {
    const [held] = hostHolders("/dev/null");
    assert.equal(held!.object, "file /dev/null");
    const mine = held!.holders.find((h) => h.ref === `fd ${fd} of pid ${process.pid}`);
    assert.ok(mine, "this process's fd is among them");
    assert.equal(mine.heldBy[0]!.kind, "process");
    assert.match(mine.heldBy[0]!.holder, new RegExp(`\\[${process.pid}\\]$`));
  } finally {
    closeSync(fd);
  }
  assert.deepEqual(hostHolders("/nonexistent/vfio-twin"), []);
});
