// /dev/null (drivers/char/mem.c): reads return 0 bytes, writes swallow everything. Every
// spawned process gets it on fds 0, 1 and 2, so its first open(2) returns 3 as a real
// process's does.

import type { FileOperations } from "./fs.js";

export const nullFops: FileOperations = {
  owner: null,
  name: "null",
  read: () => 0,
  write: (_f, _buf, count) => count,
};
