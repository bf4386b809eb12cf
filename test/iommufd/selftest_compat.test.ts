// VFIO container emulation over a mock domain, modelled on tools/testing/selftests/iommu/
// iommufd.c (6.12) FIXTURE(vfio_compat_mock_domain): option_huge_pages, get_info (the IOVA
// range capability is the mock aperture), map, huge_map (type1 v0 cuts mappings, v2 does not).

import { describe, it, afterEach } from "node:test";
import assert from "node:assert/strict";
import { EINVAL, ENOENT } from "../../src/uapi/errno.js";
import * as U from "../../src/uapi/iommufd.js";
import * as V from "../../src/uapi/vfio.js";
import * as T from "../../src/uapi/iommufd_test.js";
import { type Env, setup, teardown, ioasAlloc, raw } from "./helpers.js";
import { BUF, mockDomainOk } from "./selftest_helpers.js";

let e: Env;
afterEach(() => teardown(e));

const SIZE = 0x10000;

function fixture(version: number): number {
  e = setup();
  assert.equal(e.p.mmap(1 << 21, { addr: BUF }), BUF);
  const ioas = ioasAlloc(e);
  mockDomainOk(e, ioas);
  const r = raw(e, U.IOMMU_VFIO_IOAS, U.iommu_vfio_ioas, {
    size: U.iommu_vfio_ioas.size,
    ioas_id: ioas,
    op: U.IOMMU_VFIO_IOAS_SET,
  });
  assert.equal(r.rc, 0);
  assert.equal(e.p.ioctl(e.fd, V.VFIO_SET_IOMMU, version), 0);
  return ioas;
}

function mapDma(iova: bigint, vaddr: number, size: number): number {
  return raw(e, V.VFIO_IOMMU_MAP_DMA, V.vfio_iommu_type1_dma_map, {
    argsz: V.vfio_iommu_type1_dma_map.size,
    flags: V.VFIO_DMA_MAP_FLAG_READ | V.VFIO_DMA_MAP_FLAG_WRITE,
    vaddr: BigInt(vaddr),
    iova,
    size: BigInt(size),
  }).rc;
}

function unmapDma(iova: bigint, size: number, flags = 0): { rc: number; size: bigint } {
  const r = raw(e, V.VFIO_IOMMU_UNMAP_DMA, V.vfio_iommu_type1_dma_unmap, {
    argsz: V.vfio_iommu_type1_dma_unmap.size,
    flags,
    iova,
    size: BigInt(size),
  });
  return { rc: r.rc, size: r.out.size };
}

for (const [name, version] of [
  ["Ver1v2", V.VFIO_TYPE1v2_IOMMU],
  ["Ver1v0", V.VFIO_TYPE1_IOMMU],
] as const)
  describe(`vfio_compat_mock_domain.${name}`, () => {
    it("option_huge_pages: off for type1 v0, on for v2", () => {
      const ioas = fixture(version);
      const r = raw(e, U.IOMMU_OPTION, U.iommu_option, {
        size: U.iommu_option.size,
        option_id: U.IOMMU_OPTION_HUGE_PAGES,
        op: U.IOMMU_OPTION_OP_GET,
        val64: 3n,
        object_id: ioas,
      });
      assert.equal(r.rc, 0);
      assert.equal(r.out.val64, version === V.VFIO_TYPE1_IOMMU ? 0n : 1n);
    });

    it("get_info: page sizes and the mock aperture as the one IOVA range", () => {
      fixture(version);
      const info = e.tp.scratchAddr() + 0x2000;
      const call = (argsz: number) => {
        const b = new Uint8Array(0x100).fill(0xaa);
        b.set(V.vfio_iommu_type1_info.encode({ argsz }).subarray(0, Math.min(argsz, 24)));
        e.p.write(info, b);
        const rc = e.p.ioctl(e.fd, V.VFIO_IOMMU_GET_INFO, info);
        return { rc, out: V.vfio_iommu_type1_info.decode(e.p.read(info, 24)), raw: e.p.read(info, 0x100) };
      };
      const full = call(24);
      assert.equal(full.rc, 0);
      assert.equal(full.out.flags, V.VFIO_IOMMU_INFO_PGSIZES | V.VFIO_IOMMU_INFO_CAPS);
      assert.notEqual(full.out.iova_pgsizes, 0n);
      assert.ok(full.out.argsz > 24);
      const all = call(full.out.argsz);
      assert.equal(all.rc, 0);
      assert.notEqual(all.out.cap_offset, 0);
      const dv = new DataView(all.raw.buffer);
      let off = all.out.cap_offset;
      const seen: number[] = [];
      for (;;) {
        const id = dv.getUint16(off, true);
        seen.push(id);
        if (id === V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
          assert.equal(dv.getUint32(off + 8, true), 1, "nr_iovas");
          assert.equal(dv.getBigUint64(off + 16, true), T.MOCK_APERTURE_START);
          assert.equal(dv.getBigUint64(off + 24, true), T.MOCK_APERTURE_LAST);
        }
        const next = dv.getUint32(off + 4, true);
        if (!next) break;
        off = next;
      }
      assert.deepEqual(seen.sort(), [V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL]);
      assert.ok(
        all.raw.subarray(all.out.argsz).every((x) => x === 0xaa),
        "nothing written past argsz",
      );
    });

    it("map: simple, UNMAP_FLAG_ALL, page by page", () => {
      fixture(version);
      const S = T.MOCK_APERTURE_START;
      assert.equal(mapDma(S, BUF, SIZE), 0);
      assert.deepEqual(unmapDma(S, SIZE), { rc: 0, size: BigInt(SIZE) });
      assert.deepEqual(unmapDma(S, SIZE), { rc: 0, size: 0n }, "unmap of empty is success");
      assert.equal(mapDma(S, BUF, SIZE), 0);
      assert.equal(unmapDma(S, SIZE, V.VFIO_DMA_UNMAP_FLAG_ALL).rc, -EINVAL);
      assert.deepEqual(unmapDma(0n, 0, V.VFIO_DMA_UNMAP_FLAG_ALL), { rc: 0, size: BigInt(SIZE) });
      for (let i = 0; i < 16; i++) assert.equal(mapDma(S + BigInt(i * 0x1000), BUF + i * 0x1000, 0x1000), 0);
      for (const i of [5, 0, 15, 7, 3, 1, 2, 4, 6, 8, 9, 10, 11, 12, 13, 14])
        assert.equal(unmapDma(S + BigInt(i * 0x1000), 0x1000).rc, 0);
    });

    it("huge_map: type1 v0 cuts a mapping into pieces, v2 refuses", () => {
      fixture(version);
      const S = T.MOCK_APERTURE_START;
      const size = 2 << 20;
      assert.equal(mapDma(S, BUF, size), 0);
      const piece = size / 16;
      for (const i of [3, 0, 15, 8, 1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14]) {
        const r = unmapDma(S + BigInt(i * piece), piece);
        assert.equal(r.rc, version === V.VFIO_TYPE1_IOMMU ? 0 : -ENOENT);
      }
    });
  });
