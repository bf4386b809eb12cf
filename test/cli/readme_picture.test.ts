// The README's picture (docs/demo-graph.svg) is what `vfio-twin graph` draws for the demo now:
// run in a fresh process, as a user would, so object numbering starts where theirs does.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

test("the README's object graph picture is the demo's graph as the code draws it", () => {
  const svg = execFileSync(process.execPath, [`${ROOT}dist/src/cli/main.js`, "graph"], { encoding: "utf8" });
  const committed = readFileSync(`${ROOT}docs/demo-graph.svg`, "utf8");
  assert.ok(
    svg === committed,
    "docs/demo-graph.svg is stale: regenerate it with `node dist/src/cli/main.js graph -o docs/demo-graph.svg`",
  );
});
