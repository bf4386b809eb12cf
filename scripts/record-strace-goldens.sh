#!/usr/bin/env bash
# Record what real strace prints for test/trace/strace_program.ts run on this machine's kernel
# through the host backend: the goldens the twin's strace formatter is tested against
# (test/trace/strace_golden.test.ts).
#
#   scripts/record-strace-goldens.sh          # writes test/trace/strace-goldens/program.strace
#
# Needs strace (Debian: apt-get install strace) and koffi. Node's other threads make calls
# too: only the thread that opened the begin marker is kept, from that marker to the end one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)" >&2; exit 1; }
npx tsc -p tsconfig.json
OUT=test/trace/strace-goldens
mkdir -p "$OUT"
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT
strace -f -qq -e signal=none -e trace=openat,close,ioctl,mmap,munmap,read,write,pread64,pwrite64,eventfd2,dup,prlimit64,readlink,newfstatat,getdents64 \
	-o "$RAW" node dist/test/trace/record_strace.js
{
	echo "# strace $(strace -V | head -1 | awk '{print $4}'), Linux $(uname -r): test/trace/strace_program.ts via the host backend"
	awk '
		/\/vfio-twin-strace-begin"/ { tid = $1; on = 1; next }
		on && $1 == tid && /\/vfio-twin-strace-end"/ { on = 0 }
		on && $1 == tid { $1 = ""; sub(/^ /, ""); print }
	' "$RAW"
} >"$OUT/program.strace"
echo "wrote $OUT/program.strace ($(($(wc -l <"$OUT/program.strace") - 1)) calls)"
