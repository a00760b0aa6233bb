#!/usr/bin/env bash
# Runs every test program in BUILD/tests, then every tests/test_*.sh script
# (given BUILD as its argument; they drive BUILD/tuna from outside, e.g. the
# server with real HTTP clients), in the repository root, and sums their
# verdicts. Each ends with a line "RESULT <passed> <failed> <skipped>".
# A test counts as (at least) one failure when it crashes or exits non-zero,
# prints no RESULT line, ran no check (RESULT 0 0 0; or only skips under CI),
# or skipped anything under CI (CI set, not "false" or "0": nothing may be
# skipped there). A tests/test_*.sh that is not executable is a failure, and
# so is a BUILD folder without test programs or without one passed check. TUNA_TEST_SCRIPTS names another
# folder to take the test_*.sh scripts from (tests/test_run_tests.sh).
set -u
build=${1:-build}
cd "$(dirname "$0")/.."
scripts=${TUNA_TEST_SCRIPTS:-tests}
ci=1; case "${CI:-}" in "" | false | 0) ci=0 ;; esac
shopt -s nullglob
total_p=0; total_f=0; total_s=0; ran=0

# verdict RC P F S : why the test fails although it failed no check ("" if it does not)
verdict() {
  local rc=$1 p=$2 f=$3 s=$4
  if [ "$f" -ne 0 ]; then echo ""
  elif [ "$p" = - ]; then echo "exit $rc without a RESULT line"
  elif [ "$rc" -ne 0 ]; then echo "exit $rc"
  elif [ "$p" -eq 0 ] && { [ "$s" -eq 0 ] || [ $ci = 1 ]; }; then echo "no check ran (RESULT $p $f $s)"
  elif [ "$s" -ne 0 ] && [ $ci = 1 ]; then echo "$s skipped under CI"
  fi
}

for t in "$build"/tests/test_* "$scripts"/test_*.sh; do
  name=$(basename "$t")
  if [ ! -x "$t" ]; then
    case "$t" in
      *.sh) total_f=$((total_f+1)); echo "FAIL $name (not executable: chmod +x $t)" ;;
    esac
    continue
  fi
  ran=$((ran+1))
  log=$(mktemp)
  start=$(date +%s%N)
  case "$t" in
    *.sh) "$t" "$build" >"$log" 2>&1; rc=$? ;;
    *) "$t" >"$log" 2>&1; rc=$? ;;
  esac
  ms=$(( ($(date +%s%N) - start) / 1000000 )); secs="$((ms/1000)).$(( (ms%1000)/100 ))"
  line=$(grep -E '^RESULT [0-9]+ [0-9]+ [0-9]+$' "$log" | tail -1)
  if [ -n "$line" ]; then read -r _ p f s <<<"$line"; else p=-; f=0; s=0; fi
  why=$(verdict "$rc" "$p" "$f" "$s")
  [ "$p" = - ] && p=0
  [ -n "$why" ] && f=1
  total_p=$((total_p+p)); total_f=$((total_f+f)); total_s=$((total_s+s))
  if [ "$f" -ne 0 ]; then
    echo "FAIL $name (exit $rc${why:+, $why}, ${secs}s)"; grep -v '^RESULT' "$log" | tail -40
  else
    echo "ok   $name: $p passed, $s skipped (${secs}s)"
  fi
  grep -E '^SKIP' "$log" | sed 's/^/     /'
  rm -f "$log"
done
if [ $ran -eq 0 ]; then total_f=$((total_f+1)); echo "FAIL no test programs in $build/tests (not built?)"
elif [ $total_p -eq 0 ]; then total_f=$((total_f+1)); echo "FAIL no check passed in any test"; fi
echo "${build}: ${total_p} passed, ${total_f} failed, ${total_s} skipped"
[ "$total_f" -eq 0 ]
