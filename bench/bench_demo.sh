#!/usr/bin/env bash
# The full `make demo` (scripts/demo.sh at its default size) timed, with its
# metrics collected into one JSON line: wall time, LoRA training tokens/s,
# and per setting (zero-shot, 3-shot, fine-tuned) JSON validity, field
# accuracy, mean prompt tokens and generation tokens/s.
#   bench/bench_demo.sh [--native]     (output under runs/bench-demo)
# --native unsets OPENBLAS_CORETYPE for the demo only (the kernel is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
native=0
if [ "${1:-}" = "--native" ]; then native=1; shift; fi
out=${DEMO_OUT:-runs/bench-demo}
make -s all
run() { if [ $native = 1 ]; then env -u OPENBLAS_CORETYPE "$@"; else "$@"; fi; }
core=$(run build/bench/bench_train --config configs/tuna-stories.json --batch 1 --seq-len 16 --steps 1 --warmup 0 --json 2>/dev/null \
       | grep -o '"openblas_core":"[^"]*"' | cut -d'"' -f4)
rm -rf "$out"   # a cold run: no token cache
start=$(date +%s.%N)
status=0
DEMO_OUT="$out" run bash scripts/demo.sh > "$out.log" 2>&1 || status=$?
wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
lora_tps=$(grep -o '"tokens_per_s":[0-9.]*' "$out/lora/metrics.jsonl" | cut -d: -f2 | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
rows=$(awk '/"name": / { gsub(/[",]/, "", $2); row = $2 }
            /^   "metric": [0-9]/ { gsub(/,/, "", $2); m[row] = $2 }
            /"json_valid": [0-9]/ && !(row in v) { gsub(/,/, "", $2); v[row] = $2 }
            /^   "mean_prompt_tokens": / { gsub(/,/, "", $2); p[row] = $2 }
            /^   "tokens_per_s": / { gsub(/,/, "", $2); t[row] = $2 }
            END { n = 0; for (r in m) { printf "%s\"%s\":{\"json_fields\":%s,\"json_valid\":%s,\"mean_prompt_tokens\":%s,\"tokens_per_s\":%s}",
                                       (n++ ? "," : ""), r, m[r], v[r], p[r], t[r] } }' "$out/lora/compare.json")
line="{\"wall_s\":$wall,\"exit\":$status,\"openblas_core\":\"$core\",\"threads\":${OMP_NUM_THREADS:-$(nproc)},\"lora_tokens_per_s_median\":$lora_tps,\"rows\":{$rows}}"
echo "$line" | tee "$out/bench.json"
tail -n 12 "$out.log"
exit $status
