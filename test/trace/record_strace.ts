// The recording side of the strace goldens: runs stracedProgram on the real kernel through the
// host backend, between two marker opens. scripts/record-strace-goldens.sh runs this under
// strace and keeps the lines between the markers.

import { createHost } from "../../src/backend/host.js";
import { BEGIN_MARK, END_MARK, stracedProgram } from "./strace_program.js";

const host = createHost();
const p = host.spawn();
p.open(BEGIN_MARK);
stracedProgram(p);
p.open(END_MARK);
host.kill(p);
