// The twin's trace against real strace: test/trace/strace-goldens/program.strace is what strace
// printed for stracedProgram on this machine's kernel through the host backend
// (scripts/record-strace-goldens.sh). The twin runs the same program and must print the same
// lines, fd numbers and addresses aside (renamed in order of appearance on both sides). Where
// strace 6.1 leaves an ioctl argument undecoded (a pointer, a hex number, an unnamed request)
// the twin decodes it: those lines must match in everything else.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createTwin } from "../../src/twin.js";
import { formatEvent } from "../../src/kernel/trace.js";
import { stracedProgram } from "./strace_program.js";

const GOLDEN = fileURLToPath(new URL("../../../test/trace/strace-goldens/program.strace", import.meta.url));

interface Call {
  name: string;
  args: string[];
  ret: string;
}

/** Split `name(a, {b, c}, "d, e") = ret` at its top-level commas. */
export function parseLine(line: string): Call {
  const m = /^(\w+)\((.*)\) = (.*)$/.exec(line);
  if (!m) throw new Error(`not a strace line: ${line}`);
  const args: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = "";
  const body = m[2]!;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (quoted) {
      if (c === "\\") {
        cur += c + body[++i];
        continue;
      }
      if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "{" || c === "[" || c === "(") depth++;
    else if (c === "}" || c === "]" || c === ")") depth--;
    else if (c === "," && depth === 0) {
      args.push(cur.trim());
      cur = "";
      continue;
    }
    cur += c;
  }
  if (cur.trim()) args.push(cur.trim());
  return { name: m[1]!, args, ret: m[3]! };
}

/** Where each call takes an fd, by argument index. */
const FD_ARG: Record<string, number> = {
  close: 0,
  ioctl: 0,
  read: 0,
  write: 0,
  pread64: 0,
  pwrite64: 0,
  dup: 0,
  mmap: 4,
  newfstatat: 0,
  getdents64: 0,
};
const FD_RESULT = new Set(["openat", "eventfd2", "dup"]);

/** fds and addresses renamed in order of first appearance: fd#1, map#1+0x10. */
export function normalize(lines: readonly string[]): string[] {
  const fds = new Map<string, string>();
  const maps: { base: bigint; len: bigint; name: string }[] = [];
  let nfd = 0;
  const addr = (tok: string): string => {
    const v = BigInt(tok);
    const m = maps.find((x) => v >= x.base && v < x.base + x.len);
    // an address in no mapping of the program's is the C library's (readlink's buffer): the
    // twin's stands for it (src/trace/libc_calls.ts LIBC_BUF)
    return m ? (v === m.base ? m.name : `${m.name}+0x${(v - m.base).toString(16)}`) : "libc-buffer";
  };
  return lines.map((line) => {
    const c = parseLine(line);
    const fdAt = FD_ARG[c.name];
    if (fdAt !== undefined && c.args[fdAt] !== "-1" && fds.has(c.args[fdAt]!)) c.args[fdAt] = fds.get(c.args[fdAt]!)!;
    let ret = c.ret;
    if (FD_RESULT.has(c.name) && /^\d+$/.test(ret)) fds.set(ret, (ret = `fd#${++nfd}`));
    if (c.name === "mmap" && /^0x/.test(ret)) {
      const name = `map#${maps.length + 1}`;
      maps.push({ base: BigInt(ret), len: BigInt(c.args[1]!), name });
      ret = name;
    }
    const args = c.args.map((a) => a.replace(/0x[0-9a-f]{8,}/g, addr));
    return `${c.name}(${args.join(", ")}) = ${ret}`;
  });
}

/** Requests strace 6.1 prints without decoding their argument (or without a name). */
const STRACE_UNDECODED = new Set([
  "KVM_CREATE_DEVICE",
  "KVM_SET_DEVICE_ATTR",
  "KVM_HAS_DEVICE_ATTR",
  "VFIO_CHECK_EXTENSION",
  "VFIO_GROUP_GET_STATUS",
]);

function goldenLines(): string[] {
  return readFileSync(GOLDEN, "utf8")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"));
}

function twinLines(): string[] {
  const twin = createTwin();
  const p = twin.spawn();
  twin.kernel.trace.enabled = true;
  stracedProgram(p);
  return twin.kernel.trace.events.map((e) => formatEvent(e, { pid: false }));
}

test("the twin's trace of the program is strace's, line for line", () => {
  const want = normalize(goldenLines());
  const got = normalize(twinLines());
  assert.equal(got.length, want.length, got.join("\n"));
  let beyond = 0;
  for (let i = 0; i < want.length; i++) {
    const w = parseLine(want[i]!);
    const g = parseLine(got[i]!);
    if (w.name === "ioctl" && (STRACE_UNDECODED.has(w.args[1]!) || w.args[1]!.startsWith("_IOC("))) {
      // strace leaves it undecoded: the rest must match, and the twin must decode it
      beyond++;
      assert.equal(g.args[0], w.args[0], got[i]);
      if (!w.args[1]!.startsWith("_IOC(")) assert.equal(g.args[1], w.args[1], got[i]);
      else assert.match(g.args[1]!, /^IOMMU_/, got[i]);
      assert.match(g.args[2]!, /^\{.*\}$|^[A-Z]/, `${got[i]}: the twin decodes the argument`);
      assert.equal(g.ret, w.ret, got[i]);
      continue;
    }
    assert.equal(got[i], want[i]);
  }
  assert.equal(beyond, 6, "the lines strace leaves undecoded");
});

test("the normalizer renames fds and addresses by order of appearance", () => {
  assert.deepEqual(
    normalize([
      'openat(AT_FDCWD, "/dev/null", O_RDWR) = 17',
      "mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000",
      "read(17, 0x7f0000001010, 8) = -1 EAGAIN (Resource temporarily unavailable)",
    ]),
    [
      'openat(AT_FDCWD, "/dev/null", O_RDWR) = fd#1',
      "mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = map#1",
      "read(fd#1, map#1+0x10, 8) = -1 EAGAIN (Resource temporarily unavailable)",
    ],
  );
});
