#!/usr/bin/env bash
# Build the C clients the bridge tests run, as ordinary host binaries (never committed):
# ../shared/oracle/build.sh host makes the 6.12 uapi headers (from Debian's linux-source-6.12),
# the oracle's scenario runner and the kernel's iommufd selftest; iommufd_fail_nth is built
# beside them the same way. About a minute the first time, nothing after. Without the oracle
# beside the repo the bridge tests that need these programs skip and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
ORACLE=../shared/oracle
TMP=${ORACLE_TMP:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio-oracle}
OUT=$TMP/out/host
if [[ ! -f $ORACLE/build.sh ]]; then
	echo "build-clients: no $ORACLE: the bridge's C-client tests will skip"
	exit 0
fi
if [[ ! -x $OUT/vfio_script || ! -x $OUT/iommufd_selftest ]]; then
	bash "$ORACLE/build.sh" host
fi
if [[ ! -x $OUT/iommufd_fail_nth ]]; then
	HDR=$(cat "$OUT/uapi-include-dir")
	SRC=$TMP/src/usr/src/linux-source-6.12
	gcc -O2 -Wall -isystem "$HDR" -Wno-unused-function -include "$ORACLE/guest/selftest-compat.h" \
		-o "$OUT/iommufd_fail_nth" "$SRC/tools/testing/selftests/iommu/iommufd_fail_nth.c"
fi
