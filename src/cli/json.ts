// The events `--json` prints, one JSON object a line, the same shapes for every command:
//
//   {"type":"syscall","seq":4,"pid":1,"t":0,"syscall":"ioctl","args":{"fd":5,
//     "request":"KVM_SET_DEVICE_ATTR","arg":{"flags":0,"group":"KVM_DEV_VFIO_FILE",...}},
//     "result":0,"text":"ioctl(5, KVM_SET_DEVICE_ATTR, {...}) = 0"}
//   {"type":"syscall",...,"syscall":"openat","result":-1,"errno":"EBUSY",
//     "error":"Device or resource busy","holders":[{"object":"vfio_group 1",...}]}
//   {"type":"tracepoint","tracepoint":"io_page_fault","args":{...},...}
//   {"type":"fault","bdf":"0000:00:01.0","iova":"2162688","write":true,"reason":"not-present"}
//   {"type":"invariants","ok":true,"violations":[]}
//
// A syscall event is the trace event's own structured form (TraceEvent.toJSON(),
// docs/trace.md): the arguments by their man-page names as decoded values (a u64 beyond 2^53
// as a decimal string, symbols and flag sets as strace spells them, structs as objects), the
// result, the errno's name and text, and on EBUSY the chains of who holds what was busy.

import { whoHolds } from "../check/holders.js";
import type { Violation } from "../check/invariants.js";
import type { IommuFault } from "../iommu/iommu.js";
import type { Kernel } from "../kernel/kernel.js";
import type { TraceEvent } from "../kernel/trace.js";

/** The JSON event for one trace event; `k` names the holders of a path an open found busy
 * when the trace has no chains of its own. */
export function traceEvent(e: TraceEvent, k?: Kernel): Record<string, unknown> & { type: string } {
  const out: Record<string, unknown> & { type: string } = { type: e.kind, ...e.toJSON() };
  if (e.errno === "EBUSY" && out.holders === undefined) {
    const path = e.call === "openat" ? e.arg("pathname") : undefined;
    out.holders = k && path?.k === "str" && path.text !== undefined ? whoHolds(k, path.text) : null;
  }
  return out;
}

export function invariantsEvent(v: readonly Violation[]): { type: string; ok: boolean; violations: Violation[] } {
  return { type: "invariants", ok: v.length === 0, violations: [...v] };
}

export function faultEvent(f: IommuFault): Record<string, unknown> & { type: string } {
  return { type: "fault", bdf: f.bdf, iova: f.iova, write: f.write, reason: f.reason, domain: f.domain };
}
