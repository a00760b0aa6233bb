#!/usr/bin/env bash
# Full fine-tuning vs LoRA vs QLoRA through `tuna sft` on randomly initialised
# models of real shapes and random token ids: trainable parameters, peak RSS
# (/usr/bin/time) and tokens/s (median of steps 2..STEPS from metrics.jsonl).
# LoRA and QLoRA use r=16, alpha 32 on all linear layers (dropout 0, PEFT's default).
#   bench/bench_peft.sh [--native] [CONFIG...]   (default: gpt2-124m smollm-135m)
# Env: B (4), T (256), STEPS (4), ROUNDS (2: the methods run alternately that
# many times and tokens/s is the median over all measured steps, because this
# VM's speed drifts), TUNA (build/tuna). --native unsets
# OPENBLAS_CORETYPE for the training commands only (the kernel is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
native=0
if [ "${1:-}" = "--native" ]; then native=1; shift; fi
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(gpt2-124m smollm-135m)
B=${B:-4}; T=${T:-256}; S=${STEPS:-4}; ROUNDS=${ROUNDS:-2}; TUNA=${TUNA:-build/tuna}
[ "$TUNA" = build/tuna ] && make -s build/tuna
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { if [ $native = 1 ]; then env -u OPENBLAS_CORETYPE "$@"; else "$@"; fi; }
core=${OPENBLAS_CORETYPE:-native}; [ $native = 1 ] && core=native
echo "batch ${B}x${T}, ${OMP_NUM_THREADS:-$(nproc)} threads, OpenBLAS core $core, $S steps"
echo "| model | method | trainable params | peak RSS MiB | tokens/s | vs full (tok/s) | vs full (RSS) |"
echo "|---|---|---:|---:|---:|---:|---:|"
for c in "${configs[@]}"; do
    cfg=bench/configs/$c.json
    "$TUNA" init --config "$cfg" --out "$work/$c" --seed 1 >/dev/null
    V=$(grep -o '"vocab_size": *[0-9]*' "$cfg" | grep -o '[0-9]*$')
    awk -v n=$((B * S)) -v t=$T -v v=$V 'BEGIN { srand(3); for (i = 0; i < n; i++) { printf "{\"input_ids\":["; for (j = 0; j < t; j++) printf "%s%d", (j ? "," : ""), int(rand() * v); print "]}" } }' > "$work/data.jsonl"
    for round in $(seq "$ROUNDS"); do
        for method in full lora qlora; do
            extra=()
            [ $method != full ] && extra=(--lora-r 16 --lora-alpha 32 --lora-targets all-linear)
            out=$work/out-$c-$method
            rm -rf "$out"
            run /usr/bin/time -f "%M" -o "$work/rss" "$TUNA" sft --model "$work/$c" --data "$work/data.jsonl" --method $method "${extra[@]}" \
                --steps $S --batch $B --seq-len $T --no-shuffle --quiet --out "$out"
            grep -o '"tokens_per_s":[0-9.e+]*' "$out/metrics.jsonl" | tail -n +2 | grep -o '[0-9.e+]*$' >> "$work/tps-$method"
            cat "$work/rss" >> "$work/rss-$method"
            params=$(grep -o '"trainable_parameters": *[0-9]*' "$out/train_args.json" | grep -o '[0-9]*$' || true)
            [ -z "$params" ] && params=$(grep -o '"parameters": *[0-9]*' "$out/train_args.json" | grep -o '[0-9]*$')
            echo "$params" > "$work/params-$method"
        done
    done
    for method in full lora qlora; do
        tps=$(sort -g "$work/tps-$method" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        rss=$(( $(sort -n "$work/rss-$method" | tail -1) / 1024 ))
        if [ $method = full ]; then full_tps=$tps; full_rss=$rss; fi
        awk -v c=$c -v m=$method -v p=$(cat "$work/params-$method") -v r=$rss -v t=$tps -v ft=$full_tps -v fr=$full_rss \
            'BEGIN { printf "| %s | %s | %d | %d | %.0f | %.2fx | %.0f%% |\n", c, m, p, r, t, t / ft, 100 * r / fr }'
    done
    rm -f "$work"/tps-* "$work"/rss-*
done
