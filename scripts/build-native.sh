#!/usr/bin/env bash
# Build the bridge's preload library (native/) with the system C compiler into dist/native/.
# No binary is committed; `vfio-twin run` calls this when the library is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist/native
mkdir -p "$out"
${CC:-cc} -shared -fPIC -O2 -g -Wall -Wextra -Werror -o "$out/libvfiotwin.so.tmp" \
	native/preload.c native/mmio.c -ldl -lpthread
mv "$out/libvfiotwin.so.tmp" "$out/libvfiotwin.so"
