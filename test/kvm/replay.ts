// Replays the KVM part of the oracle's scenario language (shared/oracle/guest/vfio_script.c)
// on a UserProcess and prints the same STEP lines, so a scenario recorded on the real kernel
// can be compared with the twin line by line. Only the verbs KVM's tests use are here:
// kvm_vm kvm_device kvm_has kvm_set kvm_get raw open dup close set_container set_iommu
// get_device_fd.

import type { UserProcess } from "../../src/backend/backend.js";
import { errnoName } from "../../src/uapi/errno.js";
import { ioctlByName } from "../../src/uapi/ioctls.js";
import * as K from "../../src/uapi/kvm.js";
import * as V from "../../src/uapi/vfio.js";

const BUF = 0x10000000;
const RO = 0x20000000;
const SCR = 0x30000000;

export interface ReplayEnv {
  group: string;
  bdf: string;
}

export function replay(p: UserProcess, script: string, env: ReplayEnv): string[] {
  const must = (rc: number) => {
    if (rc < 0) throw new Error(`replay setup: ${rc}`);
  };
  must(p.mmap(1 << 20, { addr: BUF }));
  must(p.mmap(64 << 10, { addr: RO, prot: 1 }));
  must(p.mmap(64 << 10, { addr: SCR }));
  const names = new Map<string, number>();
  const out: string[] = [];
  const lines = script.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    const a = line.split(/\s+/);
    const op = a[0]!;
    const num = (s: string): number => {
      if (s.startsWith("$")) {
        const v = names.get(s.slice(1));
        if (v === undefined) throw new Error(`line ${i + 1}: unknown ${s}`);
        return v;
      }
      return Number(s);
    };
    const va = (s: string): number => {
      const m = /^(buf|ro|scr)\+(.+)$/.exec(s);
      if (!m) return num(s);
      return { buf: BUF, ro: RO, scr: SCR }[m[1] as "buf"] + Number(m[2]);
    };
    const sym = (s: string, t: Record<string, number>) => t[s] ?? num(s);
    const extra: string[] = [];
    let rc: number;
    switch (op) {
      case "kvm_vm": {
        const k = p.open("/dev/kvm");
        rc = k < 0 ? k : p.ioctl(k, K.KVM_CREATE_VM, 0);
        if (rc >= 0) {
          names.set(a[1]!, rc);
          rc = 0;
        }
        break;
      }
      case "kvm_device": {
        const type = sym(a[3]!, { VFIO: K.KVM_DEV_TYPE_VFIO });
        const flags = a[4] ? sym(a[4], { TEST: K.KVM_CREATE_DEVICE_TEST }) : 0;
        p.write(SCR, K.kvm_create_device.encode({ type: type >>> 0, fd: 0xffffffff, flags }));
        rc = p.ioctl(num(a[1]!), K.KVM_CREATE_DEVICE, SCR);
        if (rc === 0) {
          const fd = K.kvm_create_device.decode(p.read(SCR, 12)).fd | 0;
          if (fd !== -1) names.set(a[2]!, fd);
          extra.push(`created=${fd !== -1 ? 1 : 0}`);
        }
        break;
      }
      case "kvm_has":
      case "kvm_set":
      case "kvm_get": {
        const group = sym(a[2]!, { FILE: K.KVM_DEV_VFIO_FILE });
        const attr = sym(a[3]!, { ADD: 1, DEL: 2, SPAPR_TCE: 3 });
        let addr = SCR + 0x100;
        const v = new Uint8Array(4);
        if (op === "kvm_set") {
          const val = a[4]!;
          if (val.startsWith("ptr:")) addr = va(val.slice(4));
          else new DataView(v.buffer).setInt32(0, num(val), true);
        }
        p.write(SCR + 0x100, v);
        p.write(SCR, K.kvm_device_attr.encode({ flags: 0, group, attr: BigInt(attr), addr: BigInt(addr) }));
        const req = { kvm_has: K.KVM_HAS_DEVICE_ATTR, kvm_set: K.KVM_SET_DEVICE_ATTR, kvm_get: K.KVM_GET_DEVICE_ATTR }[
          op
        ];
        rc = p.ioctl(num(a[1]!), req, SCR);
        break;
      }
      case "raw": {
        const req = /^\d|^0x/.test(a[2]!) ? Number(a[2]) : ioctlByName(a[2]!)?.nr;
        if (req === undefined) throw new Error(`line ${i + 1}: unknown ioctl ${a[2]}`);
        p.write(SCR, new Uint8Array(4096));
        let arg: number = SCR;
        for (const t of a.slice(3)) {
          if (t === "null") arg = 0;
          else if (t.startsWith("ptr:")) arg = va(t.slice(4));
          else if (t.startsWith("int:")) arg = num(t.slice(4));
          else {
            const m = /^(u8|u16|u32|u64)@(\d+)=(.+)$/.exec(t);
            if (!m) throw new Error(`line ${i + 1}: raw field ${t}`);
            const size = { u8: 1, u16: 2, u32: 4, u64: 8 }[m[1] as "u8"];
            const b = new Uint8Array(8);
            new DataView(b.buffer).setBigUint64(
              0,
              BigInt.asUintN(64, BigInt(m[3]!.startsWith("$") ? num(m[3]!) : m[3]!)),
              true,
            );
            p.write(SCR + Number(m[2]), b.subarray(0, size));
          }
        }
        rc = p.ioctl(num(a[1]!), req, arg);
        break;
      }
      case "open":
        rc = p.open(a[2] === "$GROUP" ? env.group : a[2]!);
        if (rc >= 0) {
          names.set(a[1]!, rc);
          rc = 0;
        }
        break;
      case "dup":
        rc = p.dup(num(a[2]!));
        if (rc >= 0) {
          names.set(a[1]!, rc);
          rc = 0;
        }
        break;
      case "close":
        rc = p.close(num(a[1]!));
        break;
      case "set_container": {
        const b = new Uint8Array(4);
        new DataView(b.buffer).setInt32(0, num(a[2]!), true);
        p.write(SCR, b);
        rc = p.ioctl(num(a[1]!), V.VFIO_GROUP_SET_CONTAINER, SCR);
        break;
      }
      case "set_iommu":
        rc = p.ioctl(num(a[1]!), V.VFIO_SET_IOMMU, sym(a[2]!, { TYPE1: 1, TYPE1v2: 3 }));
        break;
      case "get_device_fd": {
        const name = a[3] === "$BDF" ? env.bdf : a[3]!;
        p.write(SCR, new TextEncoder().encode(name + "\0"));
        rc = p.ioctl(num(a[2]!), V.VFIO_GROUP_GET_DEVICE_FD, SCR);
        if (rc >= 0) {
          names.set(a[1]!, rc);
          rc = 0;
        }
        break;
      }
      default:
        throw new Error(`line ${i + 1}: verb ${op} not replayed`);
    }
    const e = rc < 0 ? -rc : 0;
    out.push(
      [`STEP ${i + 1} ${op}`, rc < 0 ? "-1" : String(rc), String(e), e ? errnoName(e) : "OK", ...extra].join(" "),
    );
  });
  return out;
}

/** The STEP lines of a recorded oracle output. */
export function goldenSteps(text: string): string[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("STEP "))
    .map((l) => l.trim());
}
