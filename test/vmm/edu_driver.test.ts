// The userspace edu driver (src/vmm/edu_driver.ts) on the twin, through the raw syscall API
// only: bytes copied by the device land in process memory, the completion interrupts reach
// the MSI eventfd, and DMA the IOMMU refuses moves no byte and is in the fault log.
import { formatEvent } from "../../src/kernel/trace.js";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createTwin } from "../../src/twin.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { checkInvariants } from "../../src/check/invariants.js";
import {
  EDU_BUF_SIZE,
  eduDmaWithIrq,
  eduFactorial,
  eduOps,
  vfioPciDeviceCleanup,
  vfioPciDeviceInit,
  vfioPciDriverInit,
  vfioPciDriverMemcpy,
  vfioPciDriverProbe,
} from "../../src/vmm/edu_driver.js";
import { runEduDemo } from "../../src/cli/edu.js";

const BDF = "0000:00:01.0";

function setup() {
  const twin = createTwin();
  const p = twin.spawn({ name: "edu-test" });
  const dev = vfioPciDeviceInit(p, BDF);
  const mem = p.mmap(16 * 4096);
  const region = dev.dmaMap(mem, 8 * 4096, 0x100000n);
  assert.ok(vfioPciDriverProbe(dev), "the edu driver takes the device");
  vfioPciDriverInit(dev, region);
  const faults = () => IommuCore.of(twin.kernel).faultsOf(BDF);
  return { twin, p, dev, mem, faults };
}

describe("edu driver ops (vfio_pci_driver_ops shape)", () => {
  it("probe/init: identification, limits, MSI vector, bus mastering on", () => {
    const { dev, p } = setup();
    assert.equal(dev.driver.ops, eduOps);
    assert.equal(dev.driver.maxMemcpySize, EDU_BUF_SIZE);
    assert.equal(dev.driver.msi, 0);
    assert.equal(dev.msiEventfds.length, 1);
    assert.equal(dev.configRead(0x04, 2) & 0x6, 0x6);
    vfioPciDeviceCleanup(dev);
    assert.equal(dev.fd, -1);
    void p;
  });

  it("memcpy copies a 4 KiB buffer through the device into process memory", () => {
    const { dev, p, mem, faults } = setup();
    const src = new Uint8Array(4096).map((_, i) => (i * 31 + 7) & 0xff);
    p.write(mem, src);
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x102000n, 4096), 0);
    assert.deepEqual(p.read(mem + 0x2000, 4096), src);
    assert.deepEqual(faults(), []);
  });

  it("memcpy_start returns before the copy, memcpy_wait finishes it; count repeats it", () => {
    const { dev, p, mem, twin } = setup();
    p.write(mem, new Uint8Array([1, 2, 3, 4]));
    const t0 = twin.kernel.clock.now;
    eduOps.memcpyStart(dev, 0x100000n, 0x101000n, 4, 3);
    assert.deepEqual([...p.read(mem + 0x1000, 4)], [0, 0, 0, 0], "nothing yet: the engine takes 100 ms");
    assert.throws(() => eduOps.memcpyStart(dev, 0x100000n, 0x101000n, 4, 1), /in progress/);
    assert.equal(eduOps.memcpyWait(dev), 0);
    assert.deepEqual([...p.read(mem + 0x1000, 4)], [1, 2, 3, 4]);
    assert.equal(twin.kernel.clock.now - t0, 6 * 100e6, "3 copies x 2 transfers x 100 ms of virtual time");
    assert.throws(() => eduOps.memcpyStart(dev, 0x100000n, 0x101000n, 4097, 1), RangeError);
  });

  it("send_msi and the factorial and DMA completion interrupts reach the eventfd", () => {
    const { dev } = setup();
    assert.equal(dev.msiTake(0), 0n);
    eduOps.sendMsi(dev);
    assert.equal(dev.msiTake(0), 1n);
    const f = eduFactorial(dev, 12);
    assert.equal(f.value, 479001600);
    assert.equal(f.interrupts, 1n);
    assert.equal(eduFactorial(dev, 5, false).value, 120);
    assert.equal(dev.msiTake(0), 0n, "no interrupt unless asked for");
    assert.equal(eduDmaWithIrq(dev, 0x100000n, 0x101000n, 8), 2n);
  });

  it("a copy to an IOVA nothing maps: no byte moves, the fault is logged and traced", () => {
    const { dev, p, mem, faults, twin } = setup();
    twin.kernel.trace.enabled = true;
    p.write(mem + 0x7000, new Uint8Array(8).fill(0xee));
    p.write(mem, new Uint8Array(8).fill(0x11));
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x200000n, 8), 0, "the device reports no error");
    assert.deepEqual(
      faults().map((f) => [f.bdf, f.iova, f.write, f.reason]),
      [[BDF, 0x200000n, true, "not-present"]],
    );
    assert.ok(p.read(mem + 0x7000, 8).every((b) => b === 0xee));
    const ev = twin.kernel.trace.events.filter((e) => e.call === "io_page_fault");
    assert.deepEqual(
      ev.map((e) => formatEvent(e)),
      [`io_page_fault: ${BDF} iova=0x200000 write not-present`],
    );
  });

  it("a copy from an unmapped IOVA: the device reads zeros, which it then writes", () => {
    const { dev, p, mem, faults } = setup();
    p.write(mem + 0x1000, new Uint8Array(8).fill(0x55));
    assert.equal(vfioPciDriverMemcpy(dev, 0x300000n, 0x101000n, 8), 0);
    assert.deepEqual([...p.read(mem + 0x1000, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(
      faults().map((f) => [f.iova, f.write, f.reason]),
      [[0x300000n, false, "not-present"]],
    );
  });

  it("after unmap the device can no longer reach the memory", () => {
    const { dev, p, mem, faults } = setup();
    const r = dev.dmaMap(mem + 0x8000, 4096, 0x400000n);
    p.write(mem, new Uint8Array([9, 9, 9, 9]));
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x400000n, 4), 0);
    assert.deepEqual([...p.read(mem + 0x8000, 4)], [9, 9, 9, 9]);
    dev.dmaUnmap(r);
    p.write(mem, new Uint8Array([1, 1, 1, 1]));
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x400000n, 4), 0);
    assert.deepEqual([...p.read(mem + 0x8000, 4)], [9, 9, 9, 9]);
    assert.equal(faults().at(-1)!.iova, 0x400000n);
  });

  it("bus mastering off (remove): DMA never leaves the device, logged as such", () => {
    const { dev, p, mem, faults } = setup();
    eduOps.remove(dev);
    p.write(mem + 0x1000, new Uint8Array([7, 7]));
    dev.driver.initialized = true;
    // the engine still runs, but nothing reaches memory
    eduOps.memcpyStart(dev, 0x100000n, 0x101000n, 2, 1);
    assert.equal(eduOps.memcpyWait(dev), 0);
    assert.deepEqual([...p.read(mem + 0x1000, 2)], [7, 7]);
    assert.deepEqual(
      faults().map((f) => [f.iova, f.write, f.reason]),
      [
        [0x100000n, false, "bus-master-off"],
        [0x101000n, true, "bus-master-off"],
      ],
    );
  });

  it("cleanup closes everything: the kernel's invariants hold after the process exits", () => {
    const { dev, twin, p } = setup();
    vfioPciDeviceCleanup(dev);
    twin.kill(p);
    assert.deepEqual(checkInvariants(twin.kernel), []);
  });
});

describe("the edu driver through iommufd (cdev bound to /dev/iommu, attached to an IOAS)", () => {
  function setupFd() {
    const twin = createTwin();
    const p = twin.spawn({ name: "edu-iommufd" });
    const dev = vfioPciDeviceInit(p, BDF, "iommufd");
    const mem = p.mmap(16 * 4096);
    const region = dev.dmaMap(mem, 8 * 4096, 0x100000n);
    assert.ok(vfioPciDriverProbe(dev));
    vfioPciDriverInit(dev, region);
    const faults = () => IommuCore.of(twin.kernel).faultsOf(BDF);
    return { twin, p, dev, mem, faults };
  }

  it("binds, attaches to an IOAS through an automatic HWPT, and copies through it", () => {
    const { dev, p, mem, faults } = setupFd();
    assert.ok(dev.iommufd >= 0 && dev.ioasId > 0 && dev.devId > 0 && dev.ptId > 0);
    assert.notEqual(dev.ptId, dev.ioasId, "attach names the HWPT it made");
    p.write(mem, new Uint8Array(4096).fill(0x3c));
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x102000n, 4096), 0);
    assert.ok(p.read(mem + 0x2000, 4096).every((b) => b === 0x3c));
    assert.equal(eduFactorial(dev, 6).value, 720);
    assert.equal(eduDmaWithIrq(dev, 0x100000n, 0x101000n, 8), 2n);
    assert.deepEqual(faults(), []);
  });

  it("replace: the same IOVA now reaches the second IOAS's memory; the old mapping is gone", () => {
    const { dev, p, mem, faults } = setupFd();
    const ioas2 = dev.ioasAlloc();
    dev.dmaMap(mem + 0x8000, 0x2000, 0x100000n, ioas2);
    p.write(mem + 0x8000, new Uint8Array([5, 6, 7, 8]));
    const hwpt = dev.attach(ioas2);
    assert.ok(hwpt > 0);
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x101000n, 4), 0);
    assert.deepEqual([...p.read(mem + 0x9000, 4)], [5, 6, 7, 8]);
    assert.deepEqual([...p.read(mem + 0x1000, 4)], [0, 0, 0, 0], "the first IOAS's page is untouched");
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x104000n, 4), 0, "0x104000 is only in the first IOAS");
    assert.deepEqual(
      faults().map((f) => [f.iova, f.write, f.reason]),
      [[0x104000n, true, "not-present"]],
    );
  });

  it("detach: DMA is blocked (reason blocked) and moves no byte; attach again and it flows", () => {
    const { dev, p, mem, faults, twin } = setupFd();
    p.write(mem, new Uint8Array([1, 2, 3, 4]));
    p.write(mem + 0x1000, new Uint8Array([9, 9, 9, 9]));
    dev.detach();
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x101000n, 4), 0);
    assert.deepEqual([...p.read(mem + 0x1000, 4)], [9, 9, 9, 9]);
    assert.deepEqual(
      faults().map((f) => [f.iova, f.write, f.reason]),
      [
        [0x100000n, false, "blocked"],
        [0x101000n, true, "blocked"],
      ],
    );
    dev.attach(dev.ioasId);
    assert.equal(vfioPciDriverMemcpy(dev, 0x100000n, 0x101000n, 4), 0);
    assert.deepEqual([...p.read(mem + 0x1000, 4)], [1, 2, 3, 4]);
    vfioPciDeviceCleanup(dev);
    twin.kill(p);
    assert.deepEqual(checkInvariants(twin.kernel), []);
  });
});

describe("the demo (vfio-twin edu)", () => {
  it("copies, computes 10!, takes the interrupts, and reports the fault", () => {
    const lines: string[] = [];
    const r = runEduDemo((l) => lines.push(l));
    assert.equal(r.copied, true);
    assert.equal(r.factorial, 3628800);
    assert.equal(r.factorialIrqs, 1n);
    assert.equal(r.dmaIrqs, 2n);
    assert.equal(r.msiIrqs, 1n);
    assert.equal(r.faultCopyUntouched, true);
    assert.equal(r.violations, "");
    assert.deepEqual(r.faults, [`${BDF} iova=0x103000 write not-present`]);
    assert.ok(lines.some((l) => l.includes("io_page_fault")));
    assert.ok(lines.some((l) => l.includes("VFIO_DEVICE_SET_IRQS")));
  });

  it("through iommufd: also replace and detach", () => {
    const r = runEduDemo(undefined, false, "iommufd");
    assert.equal(r.copied, true);
    assert.equal(r.factorialIrqs, 1n);
    assert.equal(r.replaced, true);
    assert.equal(r.detachedUntouched, true);
    assert.equal(r.violations, "");
    assert.deepEqual(r.faults.slice(1), [`${BDF} iova=0x100000 read blocked`, `${BDF} iova=0x101000 write blocked`]);
  });

  it("is deterministic: the same virtual time and the same trace on every run", () => {
    const a: string[] = [];
    const b: string[] = [];
    const ra = runEduDemo((l) => a.push(l));
    const rb = runEduDemo((l) => b.push(l));
    assert.equal(ra.virtualMs, rb.virtualMs);
    assert.ok(ra.virtualMs >= 600, `${ra.virtualMs} ms of device time`);
    assert.deepEqual(a, b);
  });
});

describe("time: sleep advances the virtual clock; device timers fire in order", () => {
  it("sleep 300 ms is exactly 300 ms of virtual time and finishes the DMA at 100 ms", () => {
    const { twin, dev, p, mem } = setup();
    const clock = twin.kernel.clock;
    p.write(mem, new Uint8Array([0xab]));
    dev.writel(0x80, 0x100000);
    dev.writel(0x88, 0x40000);
    dev.writel(0x90, 1);
    const t0 = clock.now;
    dev.writel(0x98, 1);
    assert.equal(clock.pending().length, 1, "one device timer armed");
    assert.equal(clock.pending()[0]!.when, t0 + 100e6);
    p.sleep(99.999999);
    assert.equal(dev.readl(0x98) & 1, 1, "1 ns before its time the engine still runs");
    p.sleep(0.000001);
    assert.equal(dev.readl(0x98) & 1, 0);
    p.sleep(300);
    assert.equal(clock.now - t0, 400e6);
    assert.equal(clock.pending().length, 0);
  });
});
