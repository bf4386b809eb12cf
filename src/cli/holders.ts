// `vfio-twin holders PATH|OBJECT [--script FILE | --replay FILE] [--json]`: who holds it, the
// chains of references keeping an object alive back to processes, fds, mappings or kernel
// objects, each with the syscall that took it, after a scenario (the demo's scene by
// default). Every EBUSY the scenario met is listed first with its own holders.

import { formatChains, whoHoldsChains } from "../check/holders.js";
import { formatEvent, type TraceEvent } from "../kernel/trace.js";
import { type Command, type Invocation, type Options, runArgv, UsageError, UserError } from "./command.js";
import { runScene, SceneError } from "./scene.js";

const SCRIPT_OPTIONS: Options = {
  script: { type: "string", value: "FILE", help: "an oracle scenario file (test/scenarios/*.txt)" },
  replay: {
    type: "string",
    value: "FILE",
    help: "a counterexample: a fuzz program or an explore trace (the JSON vfio-twin fuzz or explore writes)",
  },
};

export const holdersCommand: Command = {
  name: "holders",
  summary: "who holds PATH|OBJECT: the chains of references back to processes, with the syscalls that took them",
  args: "PATH|OBJECT",
  options: SCRIPT_OPTIONS,
  details:
    'PATH is a node (/dev/vfio/1), OBJECT an object ("vfio_group 1", "kvm vm 1", "vfio_container 1", ' +
    '"iommufd ioas 1") or a module ("module vfio", "vfio_pci"): the references keeping it alive, back to a ' +
    "process and fd, a mapping or a kernel object, with the syscall that took each, after the demo's scene " +
    "(a VMM with the edu device assigned, a second VMM told EBUSY) or the given scenario. " +
    "With --json: one JSON document {target, scene, objects, ebusy}.",
  run: (inv) => holdersRun(inv, (s) => console.log(s)),
};

/** The command on argv with its output to `out` (tests). */
export function holdersMain(argv: string[], out: (s: string) => void = (s) => console.log(s)): number {
  return runArgv(holdersCommand, argv, out, holdersRun);
}

function holdersRun(inv: Invocation, out: (s: string) => void): number {
  const v = inv.values as { script?: string; replay?: string };
  if (v.script !== undefined && v.replay !== undefined)
    throw new UsageError("--script and --replay exclude each other");
  const target = inv.positionals[0]!;
  const busy: TraceEvent[] = [];
  let scene;
  try {
    scene = runScene(
      {
        ...(v.script !== undefined ? { script: v.script } : {}),
        ...(v.replay !== undefined ? { replay: v.replay } : {}),
      },
      (_t, e) => {
        if (e.errno === "EBUSY") busy.push(e);
      },
    );
  } catch (e) {
    if (e instanceof SceneError) throw new UserError(e.message);
    throw e;
  }
  const objects = whoHoldsChains(scene.kernel, target);
  if (inv.json) {
    out(JSON.stringify({ target, scene: scene.title, objects, ebusy: busy }));
    return objects.length ? 0 : 1;
  }
  for (const e of busy) {
    out(formatEvent(e));
    for (const l of formatChains(e.holders ?? []).split("\n")) out(`  ${l}`);
  }
  if (objects.length === 0) {
    console.error(
      `vfio-twin holders: nothing named ${JSON.stringify(target)} after ${scene.title} (a path such as /dev/vfio/1, an object such as "vfio_group 1" or "kvm vm 1", or a module)`,
    );
    return 1;
  }
  if (busy.length) out("");
  out(`after ${scene.title}:`);
  out(formatChains(objects));
  return 0;
}
