#!/usr/bin/env bash
# npm run e2e:qemu: Debian's QEMU (unmodified, TCG) assigns the twin's edu device to a guest
# through the bridge (-device vfio-pci,host=0000:00:01.0, the container/group path), the
# oracle's stock Debian 6.12 kernel boots with a busybox initramfs, and native/guest/edu_guest.c
# drives the device from inside: BAR0, factorial, DMA through guest RAM, the completion
# interrupt, a DMA outside guest RAM. Prints QEMU's VFIO trace, the guest's output, the twin's
# IOMMU fault log and the invariants after QEMU exits; exit status 0 only if all is well.
#   scripts/e2e-qemu.sh --prepare   only fetch and build the pieces (QEMU, kernel, initramfs)
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=${ORACLE_TMP:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio-oracle}
E=$TMP/out/e2e
ORACLE=../shared/oracle

# the pieces: QEMU and the stock kernel + busybox through the oracle's build script
if ! command -v qemu-system-x86_64 >/dev/null || [[ ! -f $TMP/out/bzImage-debian || ! -x $TMP/bb/bin/busybox ]]; then
	[[ -f $ORACLE/build.sh ]] || { echo "e2e-qemu: no $ORACLE/build.sh to fetch QEMU and the guest kernel"; exit 1; }
	bash "$ORACLE/build.sh" debian
fi
mkdir -p "$E"
if [[ ! -f $E/initramfs.cpio.gz || native/guest/edu_guest.c -nt $E/initramfs.cpio.gz || native/guest/init.sh -nt $E/initramfs.cpio.gz ]]; then
	R=$E/root
	rm -rf "$R"; mkdir -p "$R"/{bin,dev,proc,sys,tmp}
	cp "$TMP/bb/bin/busybox" "$R/bin/busybox"
	${CC:-cc} -static -O2 -Wall -o "$R/edu_guest" native/guest/edu_guest.c
	install -m 755 native/guest/init.sh "$R/init"
	(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$E/initramfs.cpio.gz"
fi
[[ ${1:-} == --prepare ]] && { echo "e2e-qemu: pieces ready in $E and $TMP/out"; exit 0; }

[[ -f dist/src/cli/main.js ]] || node scripts/build.mjs
LOG=$E/run.log
set +e
node dist/src/cli/main.js run --check -- qemu-system-x86_64 \
	-machine q35,accel=tcg -cpu max -m 128 -nographic -no-reboot -nic none \
	-kernel "$TMP/out/bzImage-debian" -initrd "$E/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1" \
	-device vfio-pci,host=0000:00:01.0 \
	-trace 'vfio_region_mmap' -trace 'vfio_intx_*' -trace 'vfio_msi_*' -trace 'vfio_get_device' \
	-trace 'vfio_listener_region_add_ram' >"$LOG" 2>&1
rc=$?
set -e
echo "== QEMU's VFIO trace"
grep -aE '^vfio_' "$LOG" || true
echo "== QEMU's own messages"
grep -aE '^qemu-system' "$LOG" | sort | uniq -c || true
echo "== the guest"
grep -aE '^(guest|edu_guest):' "$LOG" || true
echo "== the twin after QEMU exited"
grep -aE '^vfio-twin:|^  ' "$LOG" || true
grep -q '^edu_guest: [0-9]* passed, 0 failed' "$LOG" && grep -q 'invariants after the run: ok' "$LOG" &&
	grep -q 'left in the twin after the run: nothing' "$LOG" && grep -q 'iova=0xc000000 read not-present' "$LOG" && [[ $rc == 0 ]] && {
	echo "e2e-qemu: ok"
	exit 0
}
echo "e2e-qemu: FAILED (QEMU exit $rc; whole log: $LOG)"
exit 1
