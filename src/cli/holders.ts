// `vfio-twin holders PATH|OBJECT [--script FILE | --replay FILE] [--json]`: who holds it, the
// chains of references keeping an object alive back to processes, fds, mappings or kernel
// objects, each with the syscall that took it, after a scenario (the demo's scene by
// default). Every EBUSY the scenario met is listed first with its own holders.

import { parseArgs } from "node:util";
import { formatChains, whoHoldsChains } from "../check/holders.js";
import { formatEvent, type TraceEvent } from "../kernel/trace.js";
import { runScene, SceneError } from "./scene.js";

export const HOLDERS_USAGE = `usage: vfio-twin holders PATH|OBJECT [--script FILE | --replay FILE] [--json]

Who holds it: the references keeping PATH (/dev/vfio/1), an object ("vfio_group 1", "kvm vm 1",
"vfio_container 1", "iommufd ioas 1") or a module ("module vfio", "vfio_pci") alive, back to a
process and fd, a mapping or a kernel object, with the syscall that took each. After a
scenario: the demo's scene by default (a VMM with the edu device assigned, a second VMM told
EBUSY), or:
  --script FILE   an oracle scenario file (test/scenarios/*.txt)
  --replay FILE   a counterexample program (the JSON vfio-twin fuzz writes)
  --json          one JSON document: {target, objects, ebusy}
  -h, --help      this help`;

export function holdersMain(argv: string[], out: (s: string) => void = (s) => console.log(s)): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        script: { type: "string" },
        replay: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    });
  } catch (e) {
    console.error(`vfio-twin holders: ${(e as Error).message.split(". ")[0]}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    out(HOLDERS_USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    console.error(`vfio-twin holders: name one PATH or OBJECT (got ${parsed.positionals.length}); see --help`);
    return 2;
  }
  if (v.script !== undefined && v.replay !== undefined) {
    console.error("vfio-twin holders: --script and --replay exclude each other");
    return 2;
  }
  const target = parsed.positionals[0]!;
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
    if (e instanceof SceneError) {
      console.error(`vfio-twin holders: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const objects = whoHoldsChains(scene.twin.kernel, target);
  if (v.json) {
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

export const holdersCommand = {
  name: "holders",
  summary: "who holds PATH|OBJECT: the chains of references back to processes, with the syscalls that took them",
  run: (args: string[]) => holdersMain(args),
};
