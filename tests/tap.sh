# tests/tap.sh — the verdict helpers of the tests/test_*.sh scripts (sourced,
# not run): ok / bad count a check and print it, absent records something
# outside the repository that is missing (a SKIP line outside CI, a failure
# under CI=true, as check.h's test_absent), finish prints the
# "RESULT <passed> <failed> <skipped>" line scripts/run_tests.sh reads and
# exits 1 when a check failed.
passed=0; failed=0; skipped=0
ok()  { passed=$((passed+1)); echo "ok - $1"; }
bad() { failed=$((failed+1)); echo "not ok - $1${2:+: $2}"; }
in_ci() { [ -n "${CI:-}" ] && [ "$CI" != false ] && [ "$CI" != 0 ]; }
absent() {
  if in_ci; then bad "$1" "absent (required under CI=true)"; else skipped=$((skipped+1)); echo "SKIP $1"; fi
}
finish() { echo "RESULT $passed $failed $skipped"; [ "$failed" -eq 0 ]; exit; }

# tap_cli BUILD: $tuna, the CLI of the build folder BUILD (relative to the
# repository root, or absolute), and $model, the shipped model.
tap_cli() {
  case $1 in /*) tuna=$1/tuna ;; *) tuna=$root/$1/tuna ;; esac
  model=$root/models/tuna-stories
}
# run NAME CMD...: runs CMD, its exit code in $rc, stdout in $tmp/NAME.out,
# stderr in $tmp/NAME.err and in $err
run() {
  local name=$1; shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
  err=$(cat "$tmp/$name.err")
}
# expect NAME CODE TEXT: the last run exited CODE and its stderr holds TEXT
expect() {
  if [ "$rc" = "$2" ] && grep -qF -- "$3" <<<"$err"; then ok "$1"
  else bad "$1" "exit $rc (want $2), stderr: $(tail -c 400 <<<"$err") (want '$3')"; fi
}
# tap_tmp NAME [CLEANUP]: a fresh folder $tmp (under $TMPDIR or /tmp), removed
# at exit unless KEEP is set; CLEANUP (shell code) runs first at exit
tap_tmp() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/tuna-$1.XXXXXX") || { bad "mktemp"; finish; }
  # shellcheck disable=SC2064
  trap "${2:-:}; [ -n \"\${KEEP:-}\" ] || { chmod -R u+w \"\$tmp\" 2>/dev/null; rm -rf \"\$tmp\"; }" EXIT
}
