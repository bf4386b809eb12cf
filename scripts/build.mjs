#!/usr/bin/env node
// `tsc -p tsconfig.json` with one addition: the two-speed transform of kernel paths
// (scripts/two_speed.mjs, docs/performance.md). Type errors fail the build as tsc's do; the
// output is tsc's otherwise (same options, same files).

import process from "node:process";
import ts from "typescript";
import { twoSpeed } from "./two_speed.mjs";

const host = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => fail([d]) };
const cfg = ts.getParsedCommandLineOfConfigFile("tsconfig.json", {}, host);
if (!cfg) process.exit(1);
if (cfg.errors.length) fail(cfg.errors);
// a full build each time: the incremental state would describe tsc's output, not this one's
const options = { ...cfg.options, incremental: false, tsBuildInfoFile: undefined };
const program = ts.createProgram({ rootNames: cfg.fileNames, options, projectReferences: cfg.projectReferences });
const diags = [...ts.getPreEmitDiagnostics(program)];
const res = program.emit(undefined, undefined, undefined, false, { before: [twoSpeed] });
diags.push(...res.diagnostics);
if (diags.length) fail(diags);

function fail(ds) {
  const fmt = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: ts.sys.getCurrentDirectory,
    getNewLine: () => "\n",
  };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(ds, fmt));
  process.exit(ds.some((d) => d.category === ts.DiagnosticCategory.Error) ? 2 : 0);
}
