import { test } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { ProcessExited } from "../../src/backend/backend.js";
import { EBADF, EISDIR, ENOENT, EWOULDBLOCK } from "../../src/uapi/errno.js";
import { KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY, KVM_CREATE_VM, KVM_GET_API_VERSION } from "../../src/uapi/kvm.js";
import { checkInvariants, formatViolations } from "../../src/check/invariants.js";
import type { File } from "../../src/kernel/fs.js";

function files(twin: ReturnType<typeof createTwin>, path: string): File[] {
  return [...twin.kernel.objects].filter((o) => o.kind === "file" && (o as File).path === path) as File[];
}

test("open returns the lowest free fd after stdio; unknown paths are ENOENT", () => {
  const twin = createTwin();
  const p = twin.spawn();
  assert.equal(p.open("/dev/kvm"), 3);
  assert.equal(p.open("/dev/kvm"), 4);
  assert.equal(p.open("/dev/nope"), -ENOENT);
  assert.equal(p.close(3), 0);
  assert.equal(p.open("/dev/kvm"), 3);
});

test("dup shares one open file; the last close releases it and unpins the module", () => {
  const twin = createTwin();
  const kvm = twin.kernel.modules.loaded.get("kvm")!;
  const p = twin.spawn();
  const fd = p.open("/dev/kvm");
  const fd2 = p.dup(fd);
  assert.equal(fd2, fd + 1);
  const [f] = files(twin, "/dev/kvm");
  assert.equal(f!.refs, 2);
  assert.equal(kvm.refcnt, 1);
  assert.equal(p.close(fd), 0);
  assert.equal(p.ioctl(fd, KVM_GET_API_VERSION), -EBADF);
  assert.equal(p.ioctl(fd2, KVM_GET_API_VERSION), 12);
  assert.equal(f!.dead, false);
  assert.equal(p.close(fd2), 0);
  assert.equal(f!.dead, true);
  assert.equal(kvm.refcnt, 0);
  assert.equal(p.close(fd2), -EBADF);
  assert.deepEqual(checkInvariants(twin.kernel), []);
});

test("an fd passed to another process keeps the file alive after the sender closes it", () => {
  const twin = createTwin();
  const priv = twin.spawn({ name: "libvirtd", uid: 0 });
  const vmm = twin.spawn({ name: "qemu" });
  const fd = priv.open("/dev/kvm");
  const theirs = priv.sendFd(fd, vmm);
  assert.equal(theirs, 3);
  assert.equal(priv.close(fd), 0);
  assert.equal(vmm.ioctl(theirs, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), 1);
  assert.equal(files(twin, "/dev/kvm").length, 1);
  twin.kill(vmm);
  assert.equal(files(twin, "/dev/kvm").length, 0);
  assert.equal(priv.sendFd(99, vmm), -EBADF);
});

test("process exit closes every fd: the VM is destroyed and kvm can be unloaded", () => {
  const twin = createTwin();
  const k = twin.kernel;
  const p = twin.spawn();
  const sys = p.open("/dev/kvm");
  const vm = p.ioctl(sys, KVM_CREATE_VM, 0);
  assert.ok(vm > sys);
  assert.equal(p.close(sys), 0);
  // the VM file still pins kvm
  assert.equal(k.modules.unload("kvm"), -EWOULDBLOCK);
  twin.kill(p);
  assert.equal([...k.objects].filter((o) => o.kind === "kvm").length, 0);
  assert.equal(k.modules.unload("kvm"), 0);
  assert.throws(() => p.open("/dev/kvm"), ProcessExited, "an exited process makes no calls");
  assert.equal(formatViolations(checkInvariants(k)), "all invariants hold");
});

test("open of a directory of nodes is EISDIR, as open(2) without O_DIRECTORY on a directory", () => {
  const p = createTwin().spawn();
  assert.equal(p.open("/dev"), -EISDIR);
  assert.equal(p.open("/dev/vfio"), -EISDIR);
  assert.equal(p.open("/dev/vfio/"), -EISDIR);
  assert.equal(p.open("/dev/vf"), -ENOENT);
});
