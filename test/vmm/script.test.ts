import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { BUF_ADDR, parseCNumber, RO_ADDR, runScript, SCR_ADDR } from "../../src/vmm/script.js";
import { ORACLE_PROCESS } from "../../src/vmm/corpus.js";

function run(text: string): string[] {
  const twin = createTwin();
  const p = twin.spawn(ORACLE_PROCESS);
  const out = runScript(text, p);
  twin.kill(p);
  return out;
}

/** the STEP lines only */
const steps = (text: string) => run(text).filter((l) => l.startsWith("STEP"));

describe("parseCNumber", () => {
  it("reads C's base-0 numbers: hex, octal, decimal, signs, full 64 bits", () => {
    assert.equal(parseCNumber("0x10"), 16n);
    assert.equal(parseCNumber("010"), 8n);
    assert.equal(parseCNumber("0"), 0n);
    assert.equal(parseCNumber("-1"), -1n);
    assert.equal(parseCNumber("-0x10"), -16n);
    assert.equal(parseCNumber("+5"), 5n);
    assert.equal(parseCNumber("0xffffffffffffffff"), -1n); // stored as int64, all bits kept
    assert.equal(BigInt.asUintN(64, parseCNumber("18446744073709551615")!), 2n ** 64n - 1n);
  });
  it("rejects junk, empty strings and out-of-range values", () => {
    for (const s of ["", "0x", "12abc", "08", "-", "18446744073709551616", "-9223372036854775809", "1.5", "x1"])
      assert.equal(parseCNumber(s), null, s);
    assert.equal(parseCNumber("-9223372036854775808"), -(2n ** 63n));
  });
});

describe("runScript", () => {
  it("prints INFO first and DONE last, and skips blank and comment lines (line numbers count them)", () => {
    const out = run("# a comment\n\n   \nraw $NONE KVM_GET_API_VERSION\n");
    assert.equal(out[0], "INFO bdf=0000:00:01.0 group=/dev/vfio/1 cdev=/dev/vfio/devices/vfio0");
    assert.deepEqual(out.slice(1), ["STEP 4 raw -1 9 EBADF", "DONE"]);
  });

  it("discovers $GROUP and $CDEV from sysfs: empty for a device the machine lacks", () => {
    const twin = createTwin();
    const p = twin.spawn(ORACLE_PROCESS);
    const out = runScript("open g $GROUP\nopen d $CDEV", p, { bdf: "0000:00:09.0" });
    assert.deepEqual(out, [
      "INFO bdf=0000:00:09.0 group= cdev=-",
      "STEP 1 open -1 2 ENOENT",
      "STEP 2 open -1 2 ENOENT",
      "DONE",
    ]);
  });

  it("names handles: open prints rc 0 and $name gives the fd; the first fd is 3 as in the C runner", () => {
    assert.deepEqual(steps("open k /dev/kvm\nraw $k KVM_GET_API_VERSION null\npoke buf $k\npeek buf"), [
      "STEP 1 open 0 0 OK",
      "STEP 2 raw 12 0 OK",
      "STEP 3 poke 0 0 OK",
      "STEP 4 peek 0 0 OK val=0x3",
    ]);
  });

  it("reports PARSE_ERROR for unknown verbs, names, symbols and bad numbers", () => {
    assert.deepEqual(steps("nosuch\nclose $x\nraw 0 NOPE\nmap_dma 0 buf 0 0 R|Q\npoke buf 0x\nsleep 10001"), [
      "STEP 1 nosuch PARSE_ERROR",
      "STEP 2 close PARSE_ERROR",
      "STEP 3 raw PARSE_ERROR",
      "STEP 4 map_dma PARSE_ERROR",
      "STEP 5 poke PARSE_ERROR",
      "STEP 6 sleep PARSE_ERROR",
    ]);
  });

  it("still issues the syscall of a command with a parse error, as the C runner does", () => {
    // `poke buf 0x`: strtoull parses "0" before the junk, the store happens, then PARSE_ERROR
    assert.deepEqual(steps("poke buf 7\npoke buf 0x\npeek buf"), [
      "STEP 1 poke 0 0 OK",
      "STEP 2 poke PARSE_ERROR",
      "STEP 3 peek 0 0 OK val=0x0",
    ]);
  });

  it("maps buf, ro and scr at the oracle's addresses; faults are rc -1 EFAULT", () => {
    const out = steps(
      [
        `poke ${BUF_ADDR + 8} 0x55`,
        "peek buf+8",
        "peek buf+0xffffe",
        "peek ro",
        "poke ro 1",
        `peek ${RO_ADDR + 0x10000}`,
        "poke scr+0xfffc 0x1234",
        `peek ${SCR_ADDR + 0xfffc}`,
      ].join("\n"),
    );
    assert.deepEqual(out, [
      "STEP 1 poke 0 0 OK",
      "STEP 2 peek 0 0 OK val=0x55",
      "STEP 3 peek -1 14 EFAULT",
      "STEP 4 peek 0 0 OK val=0x0",
      "STEP 5 poke -1 14 EFAULT",
      "STEP 6 peek -1 14 EFAULT",
      "STEP 7 poke 0 0 OK",
      "STEP 8 peek 0 0 OK val=0x1234",
    ]);
  });

  it("raw: stores fields into the zeroed scr before the call and prints ?fields after it", () => {
    assert.deepEqual(
      steps("open k /dev/kvm\nraw $k KVM_GET_API_VERSION u64@0=-1 ?u32@4 ?u8@8\nraw $k KVM_GET_API_VERSION ?u64@0"),
      ["STEP 1 open 0 0 OK", "STEP 2 raw -1 22 EINVAL u32@4=0xffffffff u8@8=0x0", "STEP 3 raw -1 22 EINVAL u64@0=0x0"],
    );
  });

  it("prints what the twin answers, whatever the request (/dev/kvm: EINVAL, as kvm_arch_dev_ioctl)", () => {
    assert.deepEqual(steps("open k /dev/kvm\nraw $k 0xaeff null\nraw $k VFIO_DEVICE_FEATURE"), [
      "STEP 1 open 0 0 OK",
      "STEP 2 raw -1 22 EINVAL",
      "STEP 3 raw -1 22 EINVAL",
    ]);
  });

  it("cap_drop and proc_status go through UserProcess.capDrop/procStatus; caps >= 64 skip capset as in C", () => {
    const twin = createTwin();
    const p = twin.spawn(ORACLE_PROCESS);
    assert.deepEqual(runScript("cap_drop IPC_LOCK\ncap_drop 99\nproc_status", p).slice(1, -1), [
      "STEP 1 cap_drop 0 0 OK",
      "STEP 2 cap_drop 0 0 OK",
      "STEP 3 proc_status 0 0 OK VmLck=0 VmPin=0",
    ]);
    assert.equal(p.proc.capable(14), false);
    assert.deepEqual(steps("cap_drop NOPE"), ["STEP 1 cap_drop PARSE_ERROR"]);
  });

  it("kvm_vm leaves /dev/kvm open and names the VM fd", () => {
    assert.deepEqual(steps("kvm_vm vm\npoke buf $vm\npeek buf\nraw $vm KVM_CHECK_EXTENSION int:89"), [
      "STEP 1 kvm_vm 0 0 OK",
      "STEP 2 poke 0 0 OK",
      "STEP 3 peek 0 0 OK val=0x4",
      "STEP 4 raw 1 0 OK",
    ]);
  });
});
