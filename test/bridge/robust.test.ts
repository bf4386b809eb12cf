// The server outlives whatever a client does: SIGKILL in the middle of an ioctl, of a DMA, or
// while it holds pinned mappings; garbage on the socket; a HELLO that lies about the pid; a
// request naming another client's fd. After each, every invariant holds, nothing is leaked,
// and the next client opens the group.
import { describe, it, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import fc from "fast-check";
import { IommuCore } from "../../src/iommu/iommu.js";
import { EBADF, ENOTTY, EPERM } from "../../src/uapi/errno.js";
import { Op, REP_HDR, REQ_HDR, VT_PROTO_VERSION } from "../../src/bridge/proto.js";
import { VFIO_GROUP_GET_STATUS } from "../../src/uapi/vfio.js";
import { clientEnv, hostPrograms, quiesce, runClient, serve, type Served, twinProblems } from "./harness.js";

const progs = hostPrograms();
const skip = typeof progs === "string" ? progs : false;
const BDF = "0000:00:01.0";

/** vfio_script driven line by line: send() resolves with the STEP line a command printed. */
class Driven {
  readonly child: ChildProcess;
  private out = "";
  private waiters: (() => void)[] = [];
  constructor(s: Served) {
    if (typeof progs === "string") throw new Error(progs);
    this.child = spawn(progs.vfioScript, [BDF], { env: clientEnv(s), stdio: ["pipe", "pipe", "inherit"] });
    this.child.stdout!.on("data", (d) => {
      this.out += d;
      for (const w of this.waiters.splice(0)) w();
    });
  }
  async send(line: string): Promise<string> {
    const before = this.out.split("\n").length;
    this.child.stdin!.write(line + "\n");
    const end = Date.now() + 5000;
    while (this.out.split("\n").length <= before || !this.out.endsWith("\n")) {
      if (Date.now() > end) throw new Error(`no answer to ${line}; output so far:\n${this.out}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const lines = this.out.trimEnd().split("\n");
    return lines[lines.length - 1]!;
  }
  kill(): Promise<void> {
    return new Promise((r) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return r();
      this.child.on("exit", () => r());
      this.child.kill("SIGKILL");
    });
  }
}

const SETUP = [
  "open c /dev/vfio/vfio",
  "open g $GROUP",
  "set_container $g $c",
  "set_iommu $c TYPE1v2",
  "get_device_fd d $g $BDF",
];

/** The next client gets the group (not EBUSY) and a clean run. */
async function nextClientWorks(s: Served): Promise<void> {
  if (typeof progs === "string") return;
  const r = await runClient(s, [progs.vfioScript, BDF], "open g $GROUP\ngroup_status $g\n");
  assert.match(r.stdout, /STEP 1 open 0 0 OK/, r.stdout + r.stderr);
  assert.match(r.stdout, /STEP 2 group_status 0 0 OK flags=0x1/);
}

async function healthy(s: Served): Promise<void> {
  await quiesce(s);
  assert.equal(twinProblems(s), "");
  await nextClientWorks(s);
  await quiesce(s);
  assert.equal(twinProblems(s), "");
}

describe("a client killed", { skip }, () => {
  let s: Served;
  beforeEach(async () => (s = await serve()));
  afterEach(() => s.stop());

  it("while it holds pinned DMA mappings releases them all", async () => {
    const d = new Driven(s);
    for (const l of SETUP) assert.match(await d.send(l), / OK/);
    assert.match(await d.send("map_dma $c buf+0 0x100000 0x40000 R|W"), /map_dma 0 0 OK/);
    assert.match(await d.send("proc_status"), /VmLck=256/);
    await d.kill();
    await healthy(s);
  });

  it("in the middle of an ioctl (MAP_DMA being served) leaves nothing behind", async () => {
    const d = new Driven(s);
    for (const l of SETUP) await d.send(l);
    let killed = false;
    s.server.opts.onRequest = (_c, op) => {
      if (op === Op.IOCTL && !killed && pendingMap) {
        killed = true;
        process.kill(d.child.pid!, "SIGKILL");
      }
    };
    let pendingMap = true;
    d.child.stdin!.write("map_dma $c buf+0 0x100000 0x40000 R|W\n");
    await new Promise<void>((r) => d.child.on("exit", () => r()));
    pendingMap = false;
    assert.ok(killed);
    await healthy(s);
  });

  it("in the middle of a DMA: the engine finishes into an IOMMU that no longer maps it", async () => {
    const d = new Driven(s);
    for (const l of [...SETUP, "pwrite $d 0x70000000004 2 0x6", "map_dma $c buf+0 0x100000 0x1000 R|W"])
      assert.match(await d.send(l), / OK/);
    for (const l of ["pwrite $d 0x80 8 0x40000", "pwrite $d 0x88 8 0x100000", "pwrite $d 0x90 8 8"]) await d.send(l);
    assert.match(await d.send("pwrite $d 0x98 8 3"), /pwrite 8 0 OK/); // device -> RAM, 100 ms
    await d.kill();
    await quiesce(s);
    s.twin.advance(200e6);
    const faults = IommuCore.of(s.twin.kernel).faultsOf(BDF);
    assert.equal(faults.length, 1);
    assert.equal(faults[0]!.iova, 0x100000n);
    await healthy(s);
  });
});

/** A raw connection speaking the protocol as this test process (its pid is the peer's). */
class Raw {
  readonly sock: net.Socket;
  private buf = Buffer.alloc(0);
  closed = false;
  constructor(path: string) {
    this.sock = net.connect(path);
    this.sock.on("data", (d) => (this.buf = Buffer.concat([this.buf, d])));
    this.sock.on("close", () => (this.closed = true));
    this.sock.on("error", () => (this.closed = true));
  }
  ready(): Promise<void> {
    return new Promise((r) => this.sock.once("connect", () => r()));
  }
  send(op: number, args: (number | bigint)[], payload = Buffer.alloc(0)): void {
    const b = Buffer.alloc(REQ_HDR + payload.length);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt32LE(op, 4);
    args.forEach((a, i) => b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 8 + 8 * i));
    payload.copy(b, REQ_HDR);
    this.sock.write(b);
  }
  async reply(): Promise<{ rc: number } | null> {
    const end = Date.now() + 2000;
    while (this.buf.length < REP_HDR || this.buf.length < this.buf.readUInt32LE(0)) {
      if (this.closed || Date.now() > end) return null;
      await new Promise((r) => setTimeout(r, 2));
    }
    const len = this.buf.readUInt32LE(0);
    const rc = Number(this.buf.readBigInt64LE(8));
    this.buf = this.buf.subarray(len);
    return { rc };
  }
  async gone(): Promise<boolean> {
    const end = Date.now() + 2000;
    while (!this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
    return this.closed;
  }
}

describe("a misbehaving client", { skip }, () => {
  let s: Served;
  beforeEach(async () => (s = await serve()));
  afterEach(() => s.stop());

  it("sending garbage is disconnected, alone; the server serves the next one", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        const r = new Raw(s.socket);
        await r.ready();
        r.sock.write(bytes);
        // either a short frame it waits for (then we hang up) or a bad one it drops
        r.sock.end();
        assert.ok(await r.gone());
        await quiesce(s);
        assert.equal(twinProblems(s), "");
      }),
      { numRuns: 40 },
    );
    await nextClientWorks(s);
  });

  it("claiming another process's pid is refused (its memory is not this client's)", async () => {
    const r = new Raw(s.socket);
    await r.ready();
    r.send(Op.HELLO, [1, 0, VT_PROTO_VERSION], Buffer.from("liar\0"));
    const rep = await r.reply();
    assert.ok(rep === null || rep.rc === -EPERM);
    assert.ok(await r.gone());
    assert.match(s.server.logLines.join("\n"), /HELLO says pid 1 but the socket's peer is \d+/);
  });

  it("requests before HELLO get EPERM", async () => {
    const r = new Raw(s.socket);
    await r.ready();
    r.send(Op.OPEN, [100, 2], Buffer.from("/dev/vfio/1\0"));
    assert.deepEqual(await r.reply(), { rc: -EPERM });
    r.sock.destroy();
    await quiesce(s);
  });

  it("naming another client's fd reaches only its own table", async () => {
    const d = new Driven(s);
    assert.match(await d.send("open g $GROUP"), /open 0 0 OK/);
    const owner = [...s.server.conns].find((c) => c.proc)!.proc!;
    const [gfd, gfile] = owner.files.entries().find(([, f]) => f.path === "/dev/vfio/1")!;
    const before = [...gfile.holders];
    const r = new Raw(s.socket);
    await r.ready();
    r.send(Op.HELLO, [process.pid, 0, VT_PROTO_VERSION], Buffer.from("other\0"));
    assert.equal((await r.reply())!.rc, 0);
    r.send(Op.IOCTL, [gfd, VFIO_GROUP_GET_STATUS, 0]);
    const rc = (await r.reply())!.rc;
    assert.ok(rc === -EBADF || rc === -ENOTTY, `rc ${rc}`);
    assert.deepEqual([...gfile.holders], before);
    r.sock.destroy();
    await d.kill();
    await healthy(s);
  });

  it("an exception inside a request is that call's EPROTO, logged; the client and server go on", async () => {
    const d = new Driven(s);
    assert.match(await d.send("open c /dev/vfio/vfio"), /open 0 0 OK/);
    let once = true;
    s.server.opts.onRequest = (_c, op) => {
      if (op === Op.IOCTL && once) {
        once = false;
        throw new Error("a twin bug");
      }
    };
    assert.match(await d.send("vfio_api $c"), /vfio_api -1 71 EPROTO/);
    assert.match(await d.send("vfio_api $c"), /vfio_api 0 0 OK/);
    assert.match(s.server.logLines.join("\n"), /internal error: Error: a twin bug/);
    await d.kill();
    await healthy(s);
  });

  it("an EBUSY names who holds the group, by pid and program", async () => {
    const d = new Driven(s);
    assert.match(await d.send("open g $GROUP"), /open 0 0 OK/);
    if (typeof progs === "string") return;
    const r = await runClient(s, [progs.vfioScript, BDF], "open g $GROUP\n");
    assert.match(r.stdout, /STEP 1 open -1 16 EBUSY/);
    const log = s.server.logLines.join("\n");
    assert.match(
      log,
      new RegExp(
        `open /dev/vfio/1 = -EBUSY; held by:\\n/dev/vfio/1:\\n  fd \\d+ of pid ${d.child.pid} \\(vfio_script\\[${d.child.pid}\\]\\)`,
      ),
    );
    assert.match(log, new RegExp(`vfio_script\\[${d.child.pid}\\] connected`));
    await d.kill();
    await healthy(s);
  });

  it("random well-framed requests get an errno, never a crash", async () => {
    const r = new Raw(s.socket);
    await r.ready();
    r.send(Op.HELLO, [process.pid, 0, VT_PROTO_VERSION], Buffer.from("fuzz\0"));
    assert.equal((await r.reply())!.rc, 0);
    // fds this process does not have (so no request touches this test process's memory)
    const fd = fc.integer({ min: 5000, max: 60000 });
    const req = fc.oneof(
      fc.tuple(fc.constant(Op.CLOSE), fc.tuple(fd)),
      fc.tuple(
        fc.constant(Op.IOCTL),
        fc.tuple(fd, fc.bigInt({ min: 0n, max: 2n ** 32n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      ),
      fc.tuple(
        fc.constant(Op.RW),
        fc.tuple(
          fd,
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          fc.integer(),
          fc.integer({ min: 0, max: 3 }),
        ),
      ),
      fc.tuple(fc.constant(Op.DUP), fc.tuple(fd, fd)),
      fc.tuple(
        fc.constant(Op.MUNMAP),
        fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      ),
      fc.tuple(
        fc.constant(Op.MMIO),
        fc.tuple(
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          fc.integer({ min: -1, max: 9 }),
          fc.integer({ min: 0, max: 1 }),
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        ),
      ),
      fc.tuple(fc.constant(Op.SLEEP), fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))),
      fc.tuple(fc.integer({ min: 21, max: 1000 }), fc.tuple(fc.integer())),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(req, { maxLength: 20 }), async (reqs) => {
        for (const [op, args] of reqs) {
          r.send(op, args as (number | bigint)[]);
          const rep = await r.reply();
          assert.ok(rep !== null, `no reply to op ${op}`);
          assert.ok(rep.rc <= 0 || op === Op.SLEEP, `op ${op} rc ${rep.rc}`);
        }
      }),
      { numRuns: 50 },
    );
    r.sock.destroy();
    await quiesce(s);
    assert.equal(twinProblems(s), "");
  });
});
