import { test } from "node:test";
import assert from "node:assert/strict";
import { cli } from "../../src/cli/main.js";

test("the demo (the README's main job) passes through DMA, EBUSY and teardown with every invariant holding", async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => lines.push(String(s));
  let rc: number;
  try {
    rc = await cli(["demo"]);
  } finally {
    console.log = log;
  }
  assert.equal(rc, 0);
  const text = lines.join("\n");
  assert.match(
    text,
    /ioctl\(5, KVM_SET_DEVICE_ATTR, \{flags=0, group=KVM_DEV_VFIO_FILE, attr=KVM_DEV_VFIO_FILE_ADD, addr=\[7\]\}\) = 0/,
  );
  assert.match(text, /# memcpy GPA 0x1000 -> 0x3000: the bytes arrived in guest RAM/);
  assert.match(text, /io_page_fault: 0000:00:01\.0 iova=0x210000 write not-present/);
  assert.match(text, /\[pid 2\] openat\(AT_FDCWD, "\/dev\/vfio\/1", O_RDWR\) = -1 EBUSY \(Device or resource busy\)/);
  assert.ok(
    lines.some((l) =>
      /<- file anon_inode:kvm-vfio \(kvm-device\) \[kvm-vfio of vm 1\], taken by ioctl\(5, KVM_SET_DEVICE_ATTR\)/.test(
        l,
      ),
    ),
    "KVM's VFIO device holds the group's file, from the KVM_SET_DEVICE_ATTR that added it",
  );
  assert.equal(lines.at(-1), "# invariants: all invariants hold");
});
