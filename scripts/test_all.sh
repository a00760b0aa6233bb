#!/usr/bin/env bash
# `make test`: the unit and parity tests (build/), the same rebuilt with
# ASan+UBSan (build-san/), then every libFuzzer target for FUZZ_SECONDS
# (default 5) from its seed corpus; ends with one total line
# "total: N passed, N failed, N skipped" (a fuzz target counts as one test).
# A tier that ran nothing (no summary line, no check passed, no fuzz target
# done) is a failure: the suite cannot pass by running nothing.
# The tiers' commands can be replaced for scripts/run_tests.sh's own test
# (TUNA_TIER_BUILD, TUNA_TIER_SAN, TUNA_TIER_FUZZ).
set -u
cd "$(dirname "$0")/.."
tier_build=${TUNA_TIER_BUILD:-scripts/run_tests.sh build}
tier_san=${TUNA_TIER_SAN:-make --no-print-directory test-san}
tier_fuzz=${TUNA_TIER_FUZZ:-scripts/run_fuzz.sh}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# (a pipeline's status is tee's: each tier's own comes from PIPESTATUS)
$tier_build | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
line1=$(tail -1 "$log")
if [ $status -eq 0 ]; then
  $tier_san | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  line2=$(grep -E '^build-san: ' "$log" | tail -1)
else
  line2="build-san: 0 passed, 0 failed, 0 skipped"
fi
fuzz_p=0; fuzz_f=0
if [ $status -eq 0 ]; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-5} $tier_fuzz | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fuzz_p=$(grep -c '^Done' "$log"); fuzz_f=$(grep -c 'FAILED' "$log")
fi
# ran_nothing TIER LINE: a tier's summary line missing, or with no check passed
ran_nothing() { ! grep -qE "^$1: [1-9][0-9]* passed" <<<"$2"; }
if [ $status -eq 0 ]; then
  for tier in build build-san; do
    line=$line1; [ $tier = build-san ] && line=$line2
    if ran_nothing $tier "$line"; then echo "FAIL tier $tier ran no tests (${line:-no summary line})"; status=1; fi
  done
  if [ "$fuzz_p" -eq 0 ]; then echo "FAIL no fuzz target ran to its end"; status=1; fi
fi
sum() { echo "$line1" "$line2" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
p=$(( $(sum passed) + fuzz_p )); f=$(( $(sum failed) + fuzz_f )); s=$(sum skipped)
[ $status -ne 0 ] && [ $f -eq 0 ] && f=1
[ $f -ne 0 ] && status=1
echo "total: $p passed, $f failed, $s skipped"
exit $status
