#!/usr/bin/env bash
# Builds every fuzz/fuzz_*.c as a libFuzzer target (clang, ASan+UBSan) linked
# with the library sources, and runs each for FUZZ_SECONDS (default 20) on its
# seed corpus fuzz/corpus/<name>/ (if present). Exit non-zero on any crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
out=build-fuzz
mkdir -p "$out"
srcs=$(ls src/*/*.c | grep -v '^src/cli/')
flags="-std=c11 -D_GNU_SOURCE -w -g -O1 -fopenmp -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp"
libs="-lopenblas -lpcre2-8 -ljansson -lutf8proc -lmicrohttpd -lpthread -lm"
status=0
for f in fuzz/fuzz_*.c; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .c)
  echo "fuzz: building $name"
  if ! clang $flags "$f" $srcs $libs -o "$out/$name"; then echo "fuzz: $name FAILED to build"; status=1; continue; fi
  corpus="$out/corpus-$name"; mkdir -p "$corpus"
  [ -d "fuzz/corpus/$name" ] && cp -n fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: running $name for ${secs}s"
  if ! "$out/$name" -max_total_time="$secs" -rss_limit_mb=2048 "$corpus" >"$out/$name.log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -30 "$out/$name.log"; status=1
  else
    grep -E '^Done|#[0-9]+.*DONE' "$out/$name.log" | tail -1 || true
  fi
done
exit $status
