#!/usr/bin/env bash
# bench/bench_gguf_stored.sh — peak RSS of `tuna generate` on GGUF files: the
# shipped model (or MODEL) exported as q8_0, q4_0 and f16, then generated from
# under /usr/bin/time -f %M (file-backed pages included). A GGUF is loaded as
# stored (its weights used in place from the mapped file); to compare with
# an fp32 load, run the same script with TUNA pointing at a build that loads
# GGUF files in fp32 (before issue 21's GGUF slice).
#
#   bench/bench_gguf_stored.sh          TUNA=build/tuna MODEL=models/tuna-stories
# Not part of `make test`.
set -u
cd "$(dirname "$0")/.." || exit 1
tuna=${TUNA:-build/tuna} model=${MODEL:-models/tuna-stories}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-8s %12s %14s\n' type "file bytes" "peak RSS KiB"
for type in q8_0 q4_0 f16; do
  f=$tmp/model_$type.gguf
  "$tuna" export --model "$model" --format gguf --type "$type" --out "$f" >/dev/null 2>&1 || { echo "export $type failed" >&2; exit 1; }
  /usr/bin/time -f %M -o "$tmp/rss" "$tuna" generate --model "$f" --prompt 'Once upon a time' --max-new-tokens 32 \
    --seed 1 >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  printf '%-8s %12s %14s\n' "$type" "$(stat -c %s "$f")" "$(tail -1 "$tmp/rss")"
done
