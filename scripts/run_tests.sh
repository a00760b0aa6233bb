#!/usr/bin/env bash
# Runs every test program in BUILD/tests, then every tests/test_*.sh script
# (given BUILD as its argument; they drive BUILD/tuna from outside, e.g. the
# server with real HTTP clients), in the repository root, and sums their
# verdicts. Each ends with a line "RESULT <passed> <failed> <skipped>"; one
# that crashes or exits non-zero without failures counts as one failure.
set -u
build=${1:-build}
cd "$(dirname "$0")/.."
total_p=0; total_f=0; total_s=0; bad=()
for t in "$build"/tests/test_* tests/test_*.sh; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  log=$(mktemp)
  start=$(date +%s%N)
  case "$t" in
    *.sh) "$t" "$build" >"$log" 2>&1; rc=$? ;;
    *) "$t" >"$log" 2>&1; rc=$? ;;
  esac
  ms=$(( ($(date +%s%N) - start) / 1000000 )); secs="$((ms/1000)).$(( (ms%1000)/100 ))"
  line=$(grep -E '^RESULT [0-9]+ [0-9]+ [0-9]+$' "$log" | tail -1)
  if [ -n "$line" ]; then
    read -r _ p f s <<<"$line"
  else
    p=0; f=0; s=0
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  total_p=$((total_p+p)); total_f=$((total_f+f)); total_s=$((total_s+s))
  if [ "$f" -ne 0 ]; then
    bad+=("$name"); echo "FAIL $name (exit $rc, ${secs}s)"; grep -v '^RESULT' "$log" | tail -40
  else
    echo "ok   $name: $p passed, $s skipped (${secs}s)"
    grep -E '^SKIP' "$log" | sed 's/^/     /'
  fi
  rm -f "$log"
done
echo "${build}: ${total_p} passed, ${total_f} failed, ${total_s} skipped"
[ "$total_f" -eq 0 ]
