// What `holders` and `graph` look at: a scenario run on a fresh twin with the trace on. The
// scenario is an oracle script (--script FILE), a counterexample (--replay FILE: the program
// JSON `vfio-twin fuzz` writes, or the interleaving `vfio-twin explore` saves, told apart by
// their content), or by default the demo's scene: a VMM with the edu device assigned (KVM, a
// type1 container, KVM's VFIO device) and a second VMM told EBUSY for the same group.

import { readFileSync } from "node:fs";
import type { Kernel } from "../kernel/kernel.js";
import { isGen, type KGen, type KRet, type Task } from "../kernel/sched.js";
import type { TraceEvent } from "../kernel/trace.js";
import { createTwin } from "../twin.js";
import { ORACLE_PROCESS } from "../vmm/corpus.js";
import { startVm, stopVm } from "../vmm/passthrough.js";
import { runScript } from "../vmm/script.js";
import { parseProgram, type Program, runProgram } from "../check/fuzz.js";
import { type Outcome, runSchedule, type World } from "../check/explorer.js";
import { parseTraceFile, TRACE_FORMAT, type TraceFile, violationKey } from "../check/report.js";
import { builderFor } from "../check/run.js";

export interface SceneSource {
  /** an oracle scenario file */
  readonly script?: string;
  /** a counterexample: a fuzz program or an explore trace (JSON) */
  readonly replay?: string;
  /** the demo scene only: tear the VM down and let both VMMs exit after the EBUSY */
  readonly teardown?: boolean;
}

/** What a hook sees: the kernel as it is now; in an interleaving, the thread that runs. */
export interface SceneHost {
  readonly kernel: Kernel;
  /** the explorer thread whose step is running (interleavings only) */
  readonly thread?: string;
}

/** An explorer counterexample as run: the saved file and the outcome of its schedule. */
export interface Interleaving {
  readonly trace: TraceFile;
  readonly outcome: Outcome;
  /** the same violation as the file saved, on the same schedule */
  readonly reproduced: boolean;
}

export interface Scene {
  readonly kernel: Kernel;
  /** what ran, for titles */
  readonly title: string;
  /** set when the scene was an explore trace */
  readonly interleaving?: Interleaving;
}

/** The hooks of an interleaving's scheduler steps (a scenario of one thread has none). */
export interface StepHooks {
  /** the world is built, before any thread ran */
  built?(host: SceneHost): void;
  /** step `step` (0-based) of thread `thread` is about to run: the earlier step is complete */
  step?(host: SceneHost, step: number, thread: number): void;
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

const PROGRAM = "a fuzz program (the JSON vfio-twin fuzz writes)";
const EXPLORE = `an explore trace (${TRACE_FORMAT}, what vfio-twin explore saves)`;
const KINDS = `${PROGRAM} or ${EXPLORE}`;
/** an exception's message on one line */
const oneLine = (e: unknown) => (e as Error).message.replace(/\s*\n\s*/g, " ").trim();

/** Which counterexample a file is, by its content. */
export function classifyReplay(path: string, text: string): { program: Program } | { explore: TraceFile } {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new SceneError(`${path}: not JSON (${oneLine(e)}); --replay takes ${KINDS}`);
  }
  const o = j as { format?: unknown; steps?: unknown };
  if (j !== null && typeof j === "object" && !Array.isArray(j) && o.format !== undefined) {
    if (o.format !== TRACE_FORMAT)
      throw new SceneError(
        `${path}: format ${JSON.stringify(o.format)} is not ${TRACE_FORMAT}; --replay takes ${KINDS}`,
      );
    try {
      return { explore: parseTraceFile(text) };
    } catch (e) {
      throw new SceneError(`${path}: not an explore trace (${oneLine(e)})`);
    }
  }
  const steps = Array.isArray(j) ? j : j !== null && typeof j === "object" ? o.steps : undefined;
  if (!Array.isArray(steps) || !steps.every((s) => s !== null && typeof s === "object" && "op" in s))
    throw new SceneError(`${path}: neither ${PROGRAM} nor ${EXPLORE}`);
  return { program: parseProgram(text) };
}

/** Resume `r` as the scheduler does, telling `before` at the start of each of its steps. */
function* counted<T>(r: KRet<T>, before: () => void): KGen<T> {
  before();
  if (!isGen(r)) return r;
  for (;;) {
    const s = r.next();
    if (s.done) return s.value;
    yield s.value;
    before();
  }
}

/** Run an explore trace's schedule on its world with the trace on, hooks at every step. */
function runInterleaving(
  path: string,
  t: TraceFile,
  onEvent: ((host: SceneHost, e: TraceEvent) => void) | undefined,
  hooks: StepHooks,
): Scene {
  let build: () => World;
  try {
    build = builderFor(t.world, { design: t.design, broken: t.broken });
  } catch (e) {
    throw new SceneError(`${path}: ${oneLine(e)}`);
  }
  let kernel: Kernel | null = null;
  let steps = 0;
  const traced = (): World => {
    const w = build();
    const k = w.kernel;
    kernel = k;
    hooks.built?.({ kernel: k });
    k.trace.enabled = true;
    k.trace.sink = onEvent ? (e) => onEvent({ kernel: k, ...(k.current ? { thread: k.current.name } : {}) }, e) : null;
    return {
      ...w,
      threads: w.threads.map((th, i) => ({
        ...th,
        path: (task: Task) => counted(th.path(task), () => hooks.step?.({ kernel: k, thread: th.name }, steps++, i)),
      })),
    };
  };
  const outcome = runSchedule(traced, t.schedule);
  const reproduced =
    violationKey(outcome.violations) === violationKey(t.violations) &&
    JSON.stringify(outcome.schedule) === JSON.stringify(t.schedule);
  return {
    kernel: kernel!,
    title: `interleaving ${path} (world ${t.world}, design ${t.design}${t.broken.length ? `, broken: ${t.broken.join(", ")}` : ""})`,
    interleaving: { trace: t, outcome, reproduced },
  };
}

/** Run the scene; `onEvent` sees every trace event as it is recorded, with the twin as it is then. */
export function runScene(
  src: SceneSource,
  onEvent?: (host: SceneHost, e: TraceEvent) => void,
  hooks: StepHooks = {},
): Scene {
  const hook = (twin: { kernel: Kernel }) => {
    twin.kernel.trace.enabled = true;
    twin.kernel.trace.sink = onEvent ? (e) => onEvent(twin, e) : null;
  };
  if (src.replay !== undefined) {
    const kind = classifyReplay(src.replay, read(src.replay));
    if ("explore" in kind) return runInterleaving(src.replay, kind.explore, onEvent, hooks);
    const r = runProgram(kind.program, { prepare: hook });
    return { kernel: r.twin.kernel, title: `program ${src.replay}` };
  }
  const twin = createTwin();
  hook(twin);
  if (src.script !== undefined) {
    const text = read(src.script);
    const p = twin.spawn(ORACLE_PROCESS);
    runScript(text, p);
    return { kernel: twin.kernel, title: `scenario ${src.script}` };
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
  return { kernel: twin.kernel, title: "the demo: qemu with 0000:00:01.0 assigned, a second VMM told EBUSY" };
}
