// One round of poll(2) in the twin (src/kernel/poll.ts): an eventfd is readable with a count
// and writable below its maximum, a file without ->poll is ready both ways, a closed fd is
// POLLNVAL, a negative fd is skipped, and revents only carry what was asked (plus ERR/HUP).
import { it } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { POLLNVAL, sysPollOnce } from "../../src/kernel/poll.js";
import { POLLIN, POLLOUT } from "../../src/kernel/fs.js";

it("poll once: eventfd, a file without ->poll, a bad fd, a negative fd", () => {
  const twin = createTwin();
  const p = twin.spawn();
  const k = twin.kernel;
  const efd = p.eventfd(0o4000);
  const kvm = p.open("/dev/kvm");
  const q = (fd: number, events = POLLIN | POLLOUT) => sysPollOnce(k, p.proc, [{ fd, events }])[0];
  assert.equal(q(efd), POLLOUT);
  const buf = p.mmap(4096);
  p.write(buf, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
  assert.equal(p.writeFd(efd, buf, 8), 8);
  assert.equal(q(efd), POLLIN | POLLOUT);
  assert.equal(q(efd, POLLIN), POLLIN);
  assert.equal(q(kvm, POLLIN), POLLIN, "no ->poll: DEFAULT_POLLMASK, masked by what was asked");
  assert.equal(q(999), POLLNVAL);
  assert.equal(q(-1), 0);
  twin.kill(p);
});
