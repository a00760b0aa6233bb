#!/usr/bin/env bash
# Whole optimizer steps of full fine-tuning (forward, backward, clipping,
# AdamW) through `tuna sft`, on a randomly initialised model of the given
# shape and random token ids: tokens/s per step (median of the measured steps)
# and peak RSS, with `tuna plan`'s prediction beside it.
#   bench/bench_sft.sh [CONFIG] [BATCH] [SEQ] [STEPS]   (defaults: gpt2-124m 4 256 4)
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-bench/configs/gpt2-124m.json}; B=${2:-4}; T=${3:-256}; S=${4:-4}
make -s build/tuna
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build/tuna init --config "$cfg" --out "$work/model" --seed 1 >/dev/null
V=$(grep -o '"vocab_size": *[0-9]*' "$cfg" | grep -o '[0-9]*$')
awk -v n=$((B * S)) -v t=$T -v v=$V 'BEGIN { srand(3); for (i = 0; i < n; i++) { printf "{\"input_ids\":["; for (j = 0; j < t; j++) printf "%s%d", (j ? "," : ""), int(rand() * v); print "]}" } }' > "$work/data.jsonl"
plan=$(build/tuna plan --model "$work/model" --batch $B --seq-len $T --data "$work/data.jsonl" --json | grep -o '"peak_rss_bytes":[0-9]*' | grep -o '[0-9]*$')
/usr/bin/time -f "%M" -o "$work/rss" build/tuna sft --model "$work/model" --data "$work/data.jsonl" --steps $S --batch $B --seq-len $T --lr 1e-5 --no-shuffle --quiet --out "$work/out"
tps=$(grep -o '"tokens_per_s":[0-9.e+]*' "$work/out/metrics.jsonl" | tail -n +2 | grep -o '[0-9.e+]*$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
rss=$(cat "$work/rss")
echo "sft $(basename "$cfg" .json) batch ${B}x${T}, ${OMP_NUM_THREADS:-$(nproc)} threads, OpenBLAS core ${OPENBLAS_CORETYPE:-native}: ${tps} tokens/s (median of steps 2..$S), peak RSS $((rss / 1024)) MiB, plan predicted $((plan / 1048576)) MiB"
