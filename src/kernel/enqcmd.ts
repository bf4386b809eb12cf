// ENQCMD as the CPU executes it (Intel SDM vol. 2A "ENQCMD"; docs/pasid.md): read the 64-byte
// descriptor from memory, replace its PASID field (bits 19:0 of the first dword) with the
// PASID from IA32_PASID and clear its privilege bit (31), and send it to the portal as one
// non-posted 64-byte write. The device answers accept or retry, which the instruction
// returns in ZF (0 accepted, 1 retry). #GP when IA32_PASID is not valid or the portal is not
// 64-byte aligned; a page fault (the twin: "fault") when either address is not mapped so.
//
// The twin calls this from TwinProcess.enqcmd() (the process's IA32_PASID) and from a vCPU
// (src/kvm/enqcmd.ts: the guest's PASID after KVM's translation table). It is the twin's
// API for an instruction, not a syscall.

import type { MmStruct } from "./mm.js";
import { PROT_WRITE } from "./mm.js";

export type EnqcmdStatus = "accepted" | "retry" | "gp" | "fault";

export const ENQCMD_DESC_SIZE = 64;
const PASID_FIELD = 0xfffff;
const PRIV_BIT = 0x80000000;

/** Submit the descriptor at `descAddr` to the portal at `portalAddr` of `mm` with `pasid`. */
export function enqcmd(mm: MmStruct, portalAddr: number, descAddr: number, pasid: number | null): EnqcmdStatus {
  if (pasid === null) return "gp"; // IA32_PASID.valid clear
  if (portalAddr % ENQCMD_DESC_SIZE !== 0) return "gp";
  const desc = mm.copyFromUser(descAddr, ENQCMD_DESC_SIZE);
  if (typeof desc === "number") return "fault";
  const v = mm.find(portalAddr);
  if (!v || !(v.prot & PROT_WRITE) || portalAddr + ENQCMD_DESC_SIZE > v.end) return "fault";
  const dv = new DataView(desc.buffer, desc.byteOffset, ENQCMD_DESC_SIZE);
  const w0 = dv.getUint32(0, true);
  dv.setUint32(0, ((w0 & ~PASID_FIELD & ~PRIV_BIT) | (pasid & PASID_FIELD)) >>> 0, true);
  // ordinary memory takes no deferrable write: the write is not accepted
  if (!v.io?.enqueue) return "retry";
  return v.io.enqueue(v.pgoff + (portalAddr - v.start), desc, pasid) ? "accepted" : "retry";
}
