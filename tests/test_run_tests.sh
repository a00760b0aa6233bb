#!/usr/bin/env bash
# scripts/run_tests.sh itself: it must not pass a suite that ran nothing or
# skipped its way through CI. Runs it on temporary build folders holding fake
# test programs (shell scripts) and a temporary scripts folder
# (TUNA_TEST_SCRIPTS), with CI unset and CI=true, and checks each verdict.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tuna-run-tests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0

# fake NAME BODY [BODY2] : a folder $tmp/NAME with build/tests/test_fake
# running BODY (empty: no test program at all), test_more running BODY2 if
# given, and an empty scripts folder
fake() {
  mkdir -p "$tmp/$1/build/tests" "$tmp/$1/scripts"
  if [ -n "$2" ]; then
    printf '#!/bin/sh\n%s\n' "$2" >"$tmp/$1/build/tests/test_fake"
    chmod +x "$tmp/$1/build/tests/test_fake"
  fi
  if [ -n "${3:-}" ]; then
    printf '#!/bin/sh\n%s\n' "$3" >"$tmp/$1/build/tests/test_more"
    chmod +x "$tmp/$1/build/tests/test_more"
  fi
}

# expect WHAT NAME CI(0|1) RC-WANTED GREP-PATTERN : runs scripts/run_tests.sh on $tmp/NAME
expect() {
  local what=$1 name=$2 ci=$3 want=$4 pattern=$5 out rc
  if [ "$ci" = 1 ]; then
    out=$(CI=true TUNA_TEST_SCRIPTS="$tmp/$name/scripts" scripts/run_tests.sh "$tmp/$name/build" 2>&1); rc=$?
  else
    out=$(env -u CI TUNA_TEST_SCRIPTS="$tmp/$name/scripts" scripts/run_tests.sh "$tmp/$name/build" 2>&1); rc=$?
  fi
  if { [ "$want" = 0 ] && [ $rc -eq 0 ]; } || { [ "$want" != 0 ] && [ $rc -ne 0 ]; }; then
    if grep -qE -- "$pattern" <<<"$out"; then
      passed=$((passed+1)); echo "ok - $what"; return
    fi
  fi
  failed=$((failed+1))
  echo "not ok - $what: exit $rc, wanted $([ "$want" = 0 ] && echo 0 || echo non-zero) and /$pattern/; output:"
  sed 's/^/    /' <<<"$out"
}

fake silent 'exit 0'
expect "a program that exits 0 without a RESULT line fails" silent 0 1 '^FAIL test_fake \(exit 0, exit 0 without a RESULT line'
fake nothing 'echo "RESULT 0 0 0"'
expect "RESULT 0 0 0 (no check ran) fails" nothing 0 1 '^FAIL test_fake .*no check ran'
fake good 'echo "RESULT 3 0 0"'
expect "RESULT 3 0 0 passes" good 0 0 '^ok   test_fake: 3 passed.*$'
expect "RESULT 3 0 0 passes under CI" good 1 0 ': 3 passed, 0 failed, 0 skipped$'
fake someskip 'echo "SKIP shared thing: absent"; echo "RESULT 2 0 1"'
expect "a skip outside CI passes, shown" someskip 0 0 '^     SKIP shared thing: absent'
expect "a skip under CI fails" someskip 1 1 '^FAIL test_fake .*1 skipped under CI'
fake allskip 'echo "RESULT 0 0 2"' 'echo "RESULT 1 0 0"'
expect "a program with only skips outside CI passes" allskip 0 0 '^ok   test_fake: 0 passed, 2 skipped'
expect "a program with only skips under CI fails" allskip 1 1 '^FAIL test_fake .*no check ran'
fake noneok 'echo "RESULT 0 0 2"'
expect "a build folder where no check passed fails (outside CI too)" noneok 0 1 '^FAIL no check passed in any test'
fake badexit 'echo "RESULT 5 0 0"; exit 3'
expect "a non-zero exit without failed checks fails" badexit 0 1 '^FAIL test_fake \(exit 3'
fake crash 'echo "RESULT 5 0 0"; kill -SEGV $$'
expect "a crash after its RESULT line fails" crash 0 1 '^FAIL test_fake \(exit 139'
fake failing 'echo "RESULT 4 2 0"; exit 1'
expect "failed checks are counted" failing 0 1 ': 4 passed, 2 failed, 0 skipped$'
fake empty ''
expect "a build folder without test programs fails" empty 0 1 '^FAIL no test programs in'
fake script 'echo "RESULT 1 0 0"'
printf '#!/bin/sh\necho "RESULT 2 0 0"\n' >"$tmp/script/scripts/test_a.sh"
chmod +x "$tmp/script/scripts/test_a.sh"
expect "an executable tests/test_*.sh runs and counts" script 0 0 ': 3 passed, 0 failed, 0 skipped$'
printf '#!/bin/sh\necho "RESULT 2 0 0"\n' >"$tmp/script/scripts/test_b.sh"
expect "a tests/test_*.sh that is not executable fails" script 0 1 '^FAIL test_b.sh \(not executable'

# scripts/test_all.sh (make test): a failing tier fails the whole run
# all_expect WHAT RC-WANTED PATTERN BUILD-TIER SAN-TIER FUZZ-TIER (commands)
all_expect() {
  local what=$1 want=$2 pattern=$3 out rc
  out=$(TUNA_TIER_BUILD="$4" TUNA_TIER_SAN="$5" TUNA_TIER_FUZZ="$6" scripts/test_all.sh 2>&1); rc=$?
  if { [ "$want" = 0 ] && [ $rc -eq 0 ]; } || { [ "$want" != 0 ] && [ $rc -ne 0 ]; } && grep -qE -- "$pattern" <<<"$out"; then
    passed=$((passed+1)); echo "ok - $what"; return
  fi
  failed=$((failed+1))
  echo "not ok - $what: exit $rc, wanted $([ "$want" = 0 ] && echo 0 || echo non-zero) and /$pattern/; output:"
  sed 's/^/    /' <<<"$out"
}
tier() { # tier NAME P F RC : a fake tier command printing its summary line
  printf '#!/bin/sh\necho "%s: %s passed, %s failed, 0 skipped"\nexit %s\n' "$1" "$2" "$3" "$4" >"$tmp/tier-$1-$4"
  chmod +x "$tmp/tier-$1-$4"; echo "$tmp/tier-$1-$4"
}
fz=$tmp/fuzz-ok; printf '#!/bin/sh\necho "Done 100 runs in 1 second(s)"\n' >"$fz"; chmod +x "$fz"
all_expect "test_all: every tier passing passes" 0 '^total: 8 passed, 0 failed' "$(tier build 3 0 0)" "$(tier build-san 4 0 0)" "$fz"
all_expect "test_all: a failing first tier fails make test" 1 '^total: .* [1-9][0-9]* failed' "$(tier build 3 1 1)" "$(tier build-san 4 0 0)" "$fz"
all_expect "test_all: a failing sanitizer tier fails make test" 1 '^total: .* [1-9][0-9]* failed' "$(tier build 3 0 0)" "$(tier build-san 4 2 1)" "$fz"
all_expect "test_all: a tier that ran nothing fails" 1 'FAIL tier build-san ran no tests' "$(tier build 3 0 0)" "$(tier build-san 0 0 0)" "$fz"

echo "RESULT $passed $failed 0"
[ "$failed" -eq 0 ]
