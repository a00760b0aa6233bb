#!/usr/bin/env bash
# Builds every fuzz/fuzz_*.c as a libFuzzer target (clang, ASan+UBSan) linked
# with the library sources, and runs each for FUZZ_SECONDS (default 20) on its
# seed corpus fuzz/corpus/<name>/ (if present). Exit non-zero on any crash.
# FUZZ_MERGE=1 (make fuzz-long) afterwards merges the run's new inputs into
# fuzz/corpus/<name>/ with -merge=1 (kept only when they add coverage) and
# appends a line per target to build-fuzz/summary.tsv. FUZZ_TARGETS="a b"
# runs only those targets. Findings are saved as build-fuzz/<name>-crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
merge=${FUZZ_MERGE:-0}
out=build-fuzz
mkdir -p "$out"
flags="-std=c11 -D_GNU_SOURCE -w -g -O1 -fopenmp -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp"
san="-fsanitize=address,undefined"
libs="-lopenblas -ldnnl -lcurl -lcrypto -lyaml -lpcre2-8 -ljansson -lutf8proc -lmicrohttpd -lpthread -lm"
status=0
# the library once (instrumented for coverage, not linked with libFuzzer's
# main), then each target links against those objects
objdir="$out/obj"
mkdir -p "$objdir"
echo "fuzz: compiling the library"
if ! ls src/*/*.c | grep -v '^src/cli/' | \
     xargs -P "$(nproc)" -I{} sh -c 'o="$0/$(echo "{}" | tr / _).o"; clang $1 -fsanitize=fuzzer-no-link,$2 -c "{}" -o "$o"' "$objdir" "$flags" "${san#-fsanitize=}"; then
  echo "fuzz: library FAILED to build"; exit 1
fi
objs=$(ls src/*/*.c | grep -v '^src/cli/' | sed "s|/|_|g; s|^|$objdir/|; s|\$|.o|")
count() { ls "$1" 2>/dev/null | wc -l; }
# merge_corpus NAME: new inputs of the run that reach new edges go into the
# committed corpus (-use_counters=0: hit-count buckets kept ~3x more files
# for the same edges); prints "files-before files-after KB-after"
merge_corpus() {
  local name=$1 keep="fuzz/corpus/$1" before
  mkdir -p "$keep"; before=$(count "$keep")
  "$out/$name" -merge=1 -use_counters=0 -rss_limit_mb=2048 "$keep" "$out/corpus-$name" >"$out/$name.merge.log" 2>&1 ||
    { echo "fuzz: $name merge FAILED"; tail -5 "$out/$name.merge.log"; }
  echo "$before $(count "$keep") $(du -sk "$keep" | cut -f1)"
}
for f in fuzz/fuzz_*.c; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .c)
  [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]] && continue
  echo "fuzz: building $name"
  if ! clang $flags -fsanitize=fuzzer,${san#-fsanitize=} "$f" $objs $libs -o "$out/$name"; then echo "fuzz: $name FAILED to build"; status=1; continue; fi
  corpus="$out/corpus-$name"; mkdir -p "$corpus"
  [ -d "fuzz/corpus/$name" ] && cp -n fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: running $name for ${secs}s"
  result=ok
  if ! "$out/$name" -max_total_time="$secs" -rss_limit_mb=2048 -artifact_prefix="$out/$name-" \
       -print_final_stats=1 "$corpus" >"$out/$name.log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -30 "$out/$name.log"; status=1; result=FAILED
  else
    grep -E '^Done|#[0-9]+.*DONE' "$out/$name.log" | tail -1 || true
  fi
  if [ "$merge" = 1 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$out/$name.log" | tail -1)
    sizes=$(merge_corpus "$name")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "${took:-?}" "${runs:-?}" "${sizes// /$'\t'}" "$result" |
      tee -a "$out/summary.tsv"
  fi
done
exit $status
