// sysfs attributes through open(2)/read(2) (kernfs): what a VMM's g_file_get_contents() and a
// bridged program's fopen() see, and the errors for writes, directories and missing names.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { EACCES, EISDIR, ENOENT } from "../../src/uapi/errno.js";

const DEV = "/sys/bus/pci/devices/0000:00:01.0";

describe("sysfs files", () => {
  it("read back their text from the file position, then EOF", () => {
    const twin = createTwin();
    const p = twin.spawn();
    const buf = p.mmap(4096);
    const fd = p.open(`${DEV}/vendor`, 0);
    assert.ok(fd >= 3);
    assert.equal(p.readFd(fd, buf, 3), 3);
    assert.equal(p.readFd(fd, buf + 3, 100), 4);
    assert.equal(new TextDecoder().decode(p.read(buf, 7)), "0x1234\n");
    assert.equal(p.readFd(fd, buf, 100), 0);
    assert.equal(p.pread(fd, buf, 100, 2), 5);
    assert.equal(p.close(fd), 0);
    twin.kill(p);
  });

  it("refuse writes (0444), name directories EISDIR and the rest ENOENT", () => {
    const twin = createTwin();
    const p = twin.spawn();
    assert.equal(p.open(`${DEV}/vendor`, 2), -EACCES);
    assert.equal(p.open(DEV, 0), -EISDIR);
    assert.equal(p.open(`${DEV}/nothing`, 0), -ENOENT);
    assert.equal(p.open("", 0), -ENOENT);
    twin.kill(p);
  });
});
