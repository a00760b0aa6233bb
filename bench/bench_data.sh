#!/usr/bin/env bash
# Data pipeline throughput: formatting (chat template) + tokenizing + masking,
# in MB/s of JSONL input, and peak RSS, for `tuna data tokenize` on a JSONL
# file made by repeating the shared Alpaca demo until it reaches SIZE_MB
# (default 64). `data tokenize` streams record by record, so peak RSS stays
# flat whatever the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-64}
shared=${TUNA_SHARED_DATA:-../shared/data}
tokdir=$shared/tokenizers/SmolLM2-135M-Instruct
src=$shared/sft/llamafactory_demo/alpaca_en_demo.json
[ -f "$src" ] && [ -d "$tokdir" ] || { echo "bench_data: shared data not found at $shared"; exit 0; }
make -s build/tuna
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# one JSONL line per Alpaca record, then repeated
node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));for(const x of r)console.log(JSON.stringify(x));' "$src" > "$work/one.jsonl"
while [ "$(stat -c %s "$work/big.jsonl" 2>/dev/null || echo 0)" -lt $((size_mb * 1048576)) ]; do cat "$work/one.jsonl" >> "$work/big.jsonl"; done
bytes=$(stat -c %s "$work/big.jsonl")
start=$(date +%s%N)
/usr/bin/time -f "%M" -o "$work/rss" build/tuna data tokenize --model "$tokdir" "$work/big.jsonl" --out "$work/out.jsonl" --seq-len 2048 2>"$work/log" || { cat "$work/log"; exit 1; }
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "data tokenize: $((bytes / 1048576)) MB of Alpaca records as JSONL, SmolLM2 tokenizer + ChatML template"
echo "  $(tail -1 "$work/log" | sed 's/^[^:]*: //')"
echo "  ${ms} ms = $(awk -v b=$bytes -v ms=$ms 'BEGIN{printf "%.1f", b/1048576/(ms/1000)}') MB/s (render, tokenize, mask, write JSONL), peak RSS $(( $(cat "$work/rss") / 1024 )) MiB"
