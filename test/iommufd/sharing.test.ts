// Automatic domain selection and sharing (device.c iommufd_device_auto_get_domain()), groups
// with several devices, and cache-coherency enforcement, on machines with more devices than
// the oracle's (each vfio-pci function gets /dev/vfio/devices/vfioN in config order).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EBUSY, EINVAL, ENOENT } from "../../src/uapi/errno.js";
import * as V from "../../src/uapi/vfio.js";
import { EDU_DEVICE, EDU_VENDOR } from "../../src/hw/edu.js";
import type { PciFunctionConfig } from "../../src/hw/machine.js";
import { IommuCore } from "../../src/iommu/iommu.js";
import { createTwin } from "../../src/twin.js";
import { TypedProcess } from "../../src/vmm/typed.js";
import {
  type Env,
  teardown,
  ioasAlloc,
  map,
  unmap,
  destroy,
  rawFields as raw,
  checkAll,
  bindIommufd,
  attachPt as attach,
} from "./helpers.js";

function machine(pci: PciFunctionConfig[]): Env {
  const twin = createTwin({ kvm: false, pci });
  const p = twin.spawn();
  const fd = p.open("/dev/iommu");
  const buf = p.mmap(1 << 20);
  return { twin, p, tp: new TypedProcess(p), fd, buf };
}
const edu = (bdf: string, group: number, coherent = false): PciFunctionConfig => ({
  bdf,
  vendor: EDU_VENDOR,
  device: EDU_DEVICE,
  iommuGroup: group,
  driver: "vfio-pci",
  coherent,
});
function bound(e: Env, n: number): number {
  const d = e.p.open(`/dev/vfio/devices/vfio${n}`);
  assert.ok(d >= 0);
  assert.equal(bindIommufd(e, d).rc, 0);
  return d;
}
const detach = (e: Env, d: number) => raw(e, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, [["u32", 0, 8]], undefined, d).rc;

describe("automatic domains", () => {
  it("are shared by devices of different groups on one IOAS, and go with the last device", () => {
    const e = machine([edu("0000:00:01.0", 1), edu("0000:00:02.0", 2)]);
    const id = ioasAlloc(e);
    assert.equal(map(e, id, 0x100000n, 0x2000n).rc, 0);
    const d0 = bound(e, 0);
    const d1 = bound(e, 1);
    const a0 = attach(e, d0, id);
    const a1 = attach(e, d1, id);
    assert.equal(a0.rc, 0);
    assert.deepEqual(a1, { rc: 0, pt: a0.pt }, "the second device reuses the first's domain");
    const core = IommuCore.of(e.twin.kernel);
    assert.equal(core.group(1)!.domain, core.group(2)!.domain);
    assert.equal(e.p.proc.mm.pinnedVm, 2, "one domain, one pin per page");
    checkAll(e);
    assert.equal(detach(e, d0), 0);
    assert.equal(destroy(e, a0.pt), -EBUSY, "still used by the other device");
    assert.equal(core.group(1)!.domain.type, "blocked");
    assert.equal(detach(e, d1), 0);
    assert.equal(destroy(e, a0.pt), -ENOENT, "destroyed with its last device");
    assert.equal(e.p.proc.mm.pinnedVm, 0);
    teardown(e);
  });

  it("follow the group: a second device of the group joins the group's HWPT or fails", () => {
    const e = machine([edu("0000:00:01.0", 1), edu("0000:00:01.1", 1)]);
    const a = ioasAlloc(e);
    const b = ioasAlloc(e);
    const d0 = bound(e, 0);
    const d1 = bound(e, 1);
    const x = attach(e, d0, a);
    assert.equal(x.rc, 0);
    assert.equal(attach(e, d1, b).rc, -EINVAL, "the group is attached to another HWPT");
    assert.deepEqual(attach(e, d1, a), { rc: 0, pt: x.pt });
    assert.equal(unmap(e, a, 0n, 0xffffffffffffffffn).rc, 0);
    checkAll(e);
    assert.equal(detach(e, d0), 0);
    assert.equal(
      IommuCore.of(e.twin.kernel).group(1)!.domain.type,
      "paging",
      "the other device keeps the group attached",
    );
    assert.equal(detach(e, d1), 0);
    assert.equal(destroy(e, x.pt), -ENOENT);
    teardown(e);
  });

  it("enforce cache coherency for coherent devices; the compat DMA_CC extension reports it", () => {
    const e = machine([edu("0000:00:01.0", 1, true)]);
    const id = ioasAlloc(e);
    const d = bound(e, 0);
    const at = attach(e, d, id);
    assert.equal(at.rc, 0);
    const core = IommuCore.of(e.twin.kernel);
    assert.equal(core.group(1)!.domain.enforceCacheCoherency, true);
    assert.equal(
      raw(e, 0x3b88, [
        ["u32", 0, 12],
        ["u32", 4, id],
        ["u16", 8, 1],
      ]).rc,
      0,
    ); // IOMMU_VFIO_IOAS SET
    assert.equal(e.p.ioctl(e.fd, V.VFIO_CHECK_EXTENSION, V.VFIO_DMA_CC_IOMMU), 1);
    teardown(e);
  });
});
