import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { formatHolders, whoHolds } from "../../src/check/holders.js";

test("whoHolds names the processes and fds holding a node open", () => {
  const twin = createTwin();
  const a = twin.spawn({ name: "libvirtd" });
  const b = twin.spawn({ name: "qemu" });
  const fd = a.open("/dev/kvm");
  a.sendFd(fd, b);
  a.dup(fd);
  const hs = whoHolds(twin.kernel, "/dev/kvm");
  assert.deepEqual(
    hs.map((h) => `${h.holder} ${h.process}`),
    ["fd 3 of pid 1 libvirtd[1]", "fd 3 of pid 2 qemu[2]", "fd 4 of pid 1 libvirtd[1]"],
  );
  assert.match(formatHolders("/dev/kvm", hs), /fd 3 of pid 2 \(qemu\[2\]\)/);
  twin.kill(a);
  twin.kill(b);
  assert.equal(formatHolders("/dev/kvm", whoHolds(twin.kernel, "/dev/kvm")), "/dev/kvm: not open");
});
