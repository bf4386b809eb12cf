#!/usr/bin/env bash
# Re-record the real kernel's answers ("goldens") for the scenario corpus with the oracle
# (../shared/oracle: Linux 6.12 under QEMU, see docs/oracle.md).
#
#   scripts/record-goldens.sh [NAME ...]     # default: every test/scenarios/*.txt
#
# Env: ORACLE_DIR (default ../shared/oracle beside the repository), ORACLE_TMP (the oracle's
# build/output directory, passed through to run.sh). Each scenario takes about 3 s. A run that
# does not reach DONE leaves the old golden in place and makes the script fail.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORACLE=${ORACLE_DIR:-$(cd "$ROOT/../shared/oracle" 2>/dev/null && pwd || true)}
[[ -x $ORACLE/run.sh ]] || { echo "no oracle at '$ORACLE' (set ORACLE_DIR)" >&2; exit 1; }
TMP=${ORACLE_TMP:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio-oracle}
DIR=$ROOT/test/scenarios
names=("$@")
if ((${#names[@]} == 0)); then
	for f in "$DIR"/*.txt; do names+=("$(basename "$f" .txt)"); done
fi
fail=0
for n in "${names[@]}"; do
	n=${n%.txt}
	n=${n##*/}
	src=$DIR/$n.txt
	[[ -f $src ]] || { echo "$n: no $src" >&2; fail=1; continue; }
	if ! ORACLE_TMP=$TMP "$ORACLE/run.sh" custom --script "$src" >"$TMP/out/record-$n.log" 2>&1; then
		echo "$n: run.sh failed (see $TMP/out/record-$n.log)" >&2
		fail=1
		continue
	fi
	steps=$TMP/out/steps-custom-script.txt
	kver=$(sed -n 's/^ORACLE kernel=\([^ ]*\).*/\1/p' "$TMP/out/run-custom-script.log" | head -1)
	if [[ $(tail -1 "$steps") != DONE || -z $kver ]]; then
		echo "$n: the oracle did not reach DONE (see $TMP/out/run-custom-script.log)" >&2
		fail=1
		continue
	fi
	{
		echo "# Linux $kver, oracle custom build (q35, intel-iommu, edu): ../shared/oracle/run.sh custom --script test/scenarios/$n.txt"
		cat "$steps"
	} >"$DIR/$n.golden"
	echo "$n: $(grep -c '^STEP' "$steps") steps recorded"
done
exit $fail
