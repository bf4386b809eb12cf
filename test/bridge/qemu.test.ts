// Debian's QEMU, unmodified, assigns the twin's edu device to a guest through the bridge
// (scripts/e2e-qemu.sh prepares the pieces and runs the same thing with a report): the stock
// Debian 6.12 kernel boots and native/guest/edu_guest.c drives the device from inside: BAR0,
// factorial, DMA through guest RAM and back, the completion interrupt, a DMA outside guest
// RAM that the IOMMU refuses. After QEMU exits, normally or SIGKILLed while the guest runs,
// the twin holds nothing of it and the group opens again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { IommuCore } from "../../src/iommu/iommu.js";
import { clientEnv, hostPrograms, quiesce, runClient, serve, type Served, twinProblems } from "./harness.js";

const TMP = process.env.ORACLE_TMP ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "vfio-oracle");
const KERNEL = join(TMP, "out/bzImage-debian");
const INITRD = join(TMP, "out/e2e/initramfs.cpio.gz");
const haveQemu = spawnSync("sh", ["-c", "command -v qemu-system-x86_64"]).status === 0;
const skip =
  haveQemu && existsSync(KERNEL) && existsSync(INITRD)
    ? false
    : "QEMU or the e2e guest is not here: prepare them with `scripts/e2e-qemu.sh --prepare` (root: apt-get, downloads)";

const QEMU = [
  "qemu-system-x86_64",
  ...["-machine", "q35,accel=tcg", "-cpu", "max", "-m", "128", "-nographic", "-no-reboot", "-nic", "none"],
  ...["-kernel", KERNEL, "-initrd", INITRD, "-append", "console=ttyS0 quiet panic=-1"],
  ...["-device", "vfio-pci,host=0000:00:01.0", "-trace", "vfio_intx_interrupt"],
];

async function groupOpensAgain(s: Served): Promise<void> {
  const progs = hostPrograms();
  if (typeof progs === "string") return;
  const r = await runClient(s, [progs.vfioScript, "0000:00:01.0"], "open g $GROUP\n");
  assert.match(r.stdout, /STEP 1 open 0 0 OK/);
  await quiesce(s);
}

test("QEMU passes the twin's edu device to a guest that drives it", { skip, timeout: 180_000 }, async () => {
  const s = await serve({}, { wallClock: true });
  try {
    const r = await runClient(s, QEMU);
    const out = r.stdout + r.stderr;
    assert.match(out, /^edu_guest: 14 passed, 0 failed/m, out.slice(-3000));
    assert.match(out, /^vfio_intx_interrupt/m);
    assert.equal(r.code, 0);
    await quiesce(s);
    const faults = IommuCore.of(s.twin.kernel).faultsOf("0000:00:01.0");
    assert.deepEqual(
      faults.map((f) => [f.iova, f.write, f.reason]),
      [[0xc000000n, false, "not-present"]],
    );
    assert.equal(twinProblems(s), "");
    await groupOpensAgain(s);
    assert.equal(twinProblems(s), "");
  } finally {
    await s.stop();
  }
});

test(
  "QEMU SIGKILLed while the guest drives the device leaves nothing in the twin",
  { skip, timeout: 180_000 },
  async () => {
    const s = await serve({}, { wallClock: true });
    try {
      const c = spawn(QEMU[0]!, QEMU.slice(1), { env: clientEnv(s), stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      const killed = new Promise<void>((res) => {
        const look = (d: Buffer) => {
          out += d;
          // the guest has the device doing DMA into QEMU's pinned guest RAM
          if (/DMA RAM -> device done/.test(out)) c.kill("SIGKILL");
        };
        c.stdout.on("data", look);
        c.stderr.on("data", look);
        c.on("close", () => res());
      });
      await killed;
      assert.equal(c.signalCode, "SIGKILL", out.slice(-2000));
      await quiesce(s);
      assert.equal(twinProblems(s), "");
      await groupOpensAgain(s);
      assert.equal(twinProblems(s), "");
    } finally {
      await s.stop();
    }
  },
);
