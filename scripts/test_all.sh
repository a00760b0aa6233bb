#!/usr/bin/env bash
# `make test`: the unit and parity tests (build/), the same rebuilt with
# ASan+UBSan (build-san/), then every libFuzzer target for FUZZ_SECONDS
# (default 5) from its seed corpus; ends with one total line
# "total: N passed, N failed, N skipped" (a fuzz target counts as one test).
set -u
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
scripts/run_tests.sh build | tee "$log" || status=1
line1=$(tail -1 "$log")
if [ $status -eq 0 ]; then
  make --no-print-directory test-san | tee "$log" || status=1
  line2=$(grep -E '^build-san: ' "$log" | tail -1)
else
  line2="build-san: 0 passed, 0 failed, 0 skipped"
fi
fuzz_p=0; fuzz_f=0
if [ $status -eq 0 ]; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-5} scripts/run_fuzz.sh | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fuzz_p=$(grep -c '^Done' "$log"); fuzz_f=$(grep -c 'FAILED' "$log")
fi
sum() { echo "$line1" "$line2" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
p=$(( $(sum passed) + fuzz_p )); f=$(( $(sum failed) + fuzz_f )); s=$(sum skipped)
[ $status -ne 0 ] && [ $f -eq 0 ] && f=1
echo "total: $p passed, $f failed, $s skipped"
exit $status
