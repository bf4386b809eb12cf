// What `holders` and `graph` look at: a scenario run on a fresh twin with the trace on. The
// scenario is an oracle script (--script FILE), a fuzzer/explorer counterexample program
// (--replay FILE, the JSON `vfio-twin fuzz` writes), or by default the demo's scene: a VMM
// with the edu device assigned (KVM, a type1 container, KVM's VFIO device) and a second VMM
// told EBUSY for the same group.

import { readFileSync } from "node:fs";
import type { TraceEvent } from "../kernel/trace.js";
import { createTwin, type Twin } from "../twin.js";
import { ORACLE_PROCESS } from "../vmm/corpus.js";
import { startVm, stopVm } from "../vmm/passthrough.js";
import { runScript } from "../vmm/script.js";
import { parseProgram, runProgram } from "../check/fuzz.js";

export interface SceneSource {
  /** an oracle scenario file */
  readonly script?: string;
  /** a fuzz/explorer counterexample program (JSON) */
  readonly replay?: string;
  /** the demo scene only: tear the VM down and let both VMMs exit after the EBUSY */
  readonly teardown?: boolean;
}

export interface Scene {
  readonly twin: Twin;
  /** what ran, for titles */
  readonly title: string;
}

/** A user error (a missing or unreadable file): one line, no stack. */
export class SceneError extends Error {}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new SceneError(
      `${path}: ${(e as NodeJS.ErrnoException).code === "EISDIR" ? "is a directory" : (e as Error).message}`,
    );
  }
}

/** Run the scene; `onEvent` sees every trace event as it is recorded, with the twin as it is then. */
export function runScene(src: SceneSource, onEvent?: (twin: Twin, e: TraceEvent) => void): Scene {
  const hook = (twin: Twin) => {
    twin.kernel.trace.enabled = true;
    twin.kernel.trace.sink = onEvent ? (e) => onEvent(twin, e) : null;
  };
  if (src.replay !== undefined) {
    const text = read(src.replay);
    let prog;
    try {
      prog = parseProgram(text);
    } catch (e) {
      throw new SceneError(`${src.replay}: not a program (${(e as Error).message})`);
    }
    const r = runProgram(prog, { prepare: hook });
    return { twin: r.twin, title: `program ${src.replay}` };
  }
  const twin = createTwin();
  hook(twin);
  if (src.script !== undefined) {
    const text = read(src.script);
    const p = twin.spawn(ORACLE_PROCESS);
    runScript(text, p);
    return { twin, title: `scenario ${src.script}` };
  }
  const qemu = twin.spawn({ name: "qemu", memlock: 64 << 20 });
  const vm = startVm(qemu, { bdf: "0000:00:01.0" });
  const other = twin.spawn({ name: "qemu-2" });
  other.open(vm.vfio.groupPath);
  if (src.teardown) {
    stopVm(qemu, vm);
    twin.kill(qemu);
    twin.kill(other);
  }
  return { twin, title: "the demo: qemu with 0000:00:01.0 assigned, a second VMM told EBUSY" };
}
