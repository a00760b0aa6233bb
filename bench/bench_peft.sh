#!/usr/bin/env bash
# Full fine-tuning vs LoRA vs QLoRA through `tuna sft` on randomly initialised
# models of real shapes and random token ids: trainable parameters, peak RSS
# (/usr/bin/time) and tokens/s (median of steps 2..STEPS from metrics.jsonl).
# LoRA and QLoRA use r=16, alpha 32 on all linear layers (dropout 0, PEFT's default).
# bf16 rows (issue 22): full with --bf16, and LoRA with --bf16 on a bf16-stored
# base (`tuna init --dtype bf16`); PyTorch rows: tools/bench_torch.py's whole
# step (forward, backward, clipping, AdamW) for full and LoRA, in fp32 and
# under torch.autocast bf16 (LoRA's base stored in bf16 there), with the same
# batch, sequence length and thread count. Printed after the table, per model:
# tuna bf16 over tuna fp32, PyTorch fp32 and PyTorch autocast, and whether bf16 ran.
#   bench/bench_peft.sh [--native] [--no-bf16] [--no-torch] [CONFIG...]
#   (default: gpt2-124m smollm-135m)
# Env: B (4), T (256), STEPS (4), ROUNDS (2: the methods run alternately that
# many times and tokens/s is the median over all measured steps, because this
# VM's speed drifts), TUNA (build/tuna). --native unsets
# OPENBLAS_CORETYPE for the training commands only (the kernel is printed).
# --no-bf16 leaves out the bf16 and autocast rows, --no-torch the PyTorch rows.
set -euo pipefail
cd "$(dirname "$0")/.."
native=0 bf16=1 torch=1
while [ $# -gt 0 ]; do
    case "$1" in
        --native) native=1; shift ;;
        --no-bf16) bf16=0; shift ;;
        --no-torch) torch=0; shift ;;
        *) break ;;
    esac
done
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(gpt2-124m smollm-135m)
B=${B:-4}; T=${T:-256}; S=${STEPS:-4}; ROUNDS=${ROUNDS:-2}; TUNA=${TUNA:-build/tuna}
PY=/usr/bin/python3
[ "$TUNA" = build/tuna ] && make -s build/tuna
if [ $torch = 1 ] && ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "bench_peft.sh: $PY has no torch (apt-get install python3-torch), or pass --no-torch" >&2
    exit 2
fi
methods=(full lora qlora)
[ $bf16 = 1 ] && methods+=(full-bf16 lora-bf16)
[ $torch = 1 ] && methods+=(torch-full torch-lora)
[ $torch = 1 ] && [ $bf16 = 1 ] && methods+=(torch-full-bf16 torch-lora-bf16)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { if [ $native = 1 ]; then env -u OPENBLAS_CORETYPE "$@"; else "$@"; fi; }
core=$(run "$TUNA" --version | sed -n 's/.*, kernel \([^,]*\),.*/\1/p')
echo "batch ${B}x${T}, ${OMP_NUM_THREADS:-$(nproc)} threads, OpenBLAS kernel ${core:-unknown} (OPENBLAS_CORETYPE=$( [ $native = 1 ] && echo unset || echo "${OPENBLAS_CORETYPE:-unset}")), $S steps"
run "$TUNA" --version | grep -i -E 'kernel|bf16|gemm' | sed 's/^/  tuna --version: /'
echo "| model | method | trainable params | peak RSS MiB | tokens/s | vs full (tok/s) | vs full (RSS) | vs fp32 (tok/s) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"

label() {
    case $1 in
        full-bf16) echo "full --bf16" ;;
        lora-bf16) echo "lora --bf16, bf16 base" ;;
        torch-full) echo "pytorch full" ;;
        torch-lora) echo "pytorch lora" ;;
        torch-full-bf16) echo "pytorch full, autocast bf16" ;;
        torch-lora-bf16) echo "pytorch lora, autocast bf16, bf16 base" ;;
        *) echo "$1" ;;
    esac
}

# tuna_method C METHOD: one `tuna sft` run; appends its tokens/s (steps 2..S),
# peak RSS, trainable parameters, and for --bf16 rows whether bf16 ran
tuna_method() {
    local c=$1 method=$2 model=$work/$1 base=${2%-bf16} extra=() out=$work/out-$1-$2 params
    [ "$base" != full ] && extra=(--lora-r 16 --lora-alpha 32 --lora-targets all-linear)
    if [ "$method" != "$base" ]; then
        extra+=(--bf16)
        [ "$base" = lora ] && model=$work/$c-bf16
    fi
    rm -rf "$out"
    run /usr/bin/time -f "%M" -o "$work/rss" "$TUNA" sft --model "$model" --data "$work/data.jsonl" --method "$base" \
        "${extra[@]}" --steps "$S" --batch "$B" --seq-len "$T" --no-shuffle --quiet --out "$out" 2> "$work/stderr" \
        || { cat "$work/stderr" >&2; exit 1; }
    grep -o '"tokens_per_s":[0-9.e+]*' "$out/metrics.jsonl" | tail -n +2 | grep -o '[0-9.e+]*$' >> "$work/tps-$method"
    cat "$work/rss" >> "$work/rss-$method"
    params=$(grep -o '"trainable_parameters": *[0-9]*' "$out/train_args.json" | grep -o '[0-9]*$' || true)
    [ -z "$params" ] && params=$(grep -o '"parameters": *[0-9]*' "$out/train_args.json" | grep -o '[0-9]*$')
    echo "$params" > "$work/params-$method"
    # what ran: train_args.json's bf16 is false where the CPU has no bf16 GEMM
    [ "$method" != "$base" ] && { grep -o '"bf16": *[a-z]*' "$out/train_args.json" | grep -o '[a-z]*$' || echo unknown; } \
        | sed 's/^true$/yes/; s/^false$/NO (fp32: no bf16 GEMM on this CPU)/' > "$work/ran-$method"
    return 0
}

# torch_method C METHOD: one tools/bench_torch.py run (warmup 1, S-1 measured
# steps, AdamW), the same figures as tuna_method
torch_method() {
    local c=$1 method=$2 m=${2#torch-} opt=() json
    m=${m%-bf16}
    [ "$method" != "torch-$m" ] && opt=(--autocast bf16)
    [ "$method" = torch-lora-bf16 ] && opt+=(--base-dtype bf16)
    json=$(run /usr/bin/time -f "%M" -o "$work/rss" "$PY" tools/bench_torch.py --config "bench/configs/$c.json" \
        --batch "$B" --seq-len "$T" --steps $((S > 1 ? S - 1 : 1)) --warmup 1 --threads "${OMP_NUM_THREADS:-$(nproc)}" \
        --method "$m" --optim adamw "${opt[@]}" 2> "$work/stderr") || { cat "$work/stderr" >&2; exit 1; }
    echo "$json" >> "$work/torch.jsonl"
    echo "$json" | grep -o '"tokens_per_s_steps": \[[^]]*\]' | grep -o '[0-9][0-9.e+]*' >> "$work/tps-$method"
    cat "$work/rss" >> "$work/rss-$method"
    echo "$json" | grep -o '"trainable_params": *[0-9]*' | grep -o '[0-9]*$' > "$work/params-$method"
    [ "${#opt[@]}" -gt 0 ] && echo "$json" | "$PY" -c 'import json, sys; r = json.load(sys.stdin)
print("linear output", r["linear_out_dtype"] + ", oneDNN", r["onednn_bf16_linear"])' > "$work/ran-$method"
    return 0
}

# summary C M: tuna's M --bf16 row over tuna M fp32 and the PyTorch M rows,
# and whether bf16 ran on each side
summary() {
    local c=$1 m=$2 t ratios
    t=$(cat "$work/med-$m-bf16")
    ratios="$(ratio "$t" "$work/med-$m") tuna $m fp32"
    [ $torch = 1 ] && ratios+=", $(ratio "$t" "$work/med-torch-$m") $(label torch-$m) fp32, $(ratio "$t" "$work/med-torch-$m-bf16") $(label torch-$m-bf16)"
    printf '%s: tuna %s: %.0f tokens/s = %s\n' "$c" "$(label $m-bf16)" "$t" "$ratios"
    echo "  bf16 ran: tuna: $(cat "$work/ran-$m-bf16")$( [ $torch = 1 ] && echo "; pytorch: $(cat "$work/ran-torch-$m-bf16")")"
}
ratio() { awk -v a="$1" -v b="$(cat "$2")" 'BEGIN { printf "%.2fx", a / b }'; }

median() { sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for c in "${configs[@]}"; do
    cfg=bench/configs/$c.json
    "$TUNA" init --config "$cfg" --out "$work/$c" --seed 1 >/dev/null
    [ $bf16 = 1 ] && "$TUNA" init --config "$cfg" --out "$work/$c-bf16" --seed 1 --dtype bf16 >/dev/null
    V=$(grep -o '"vocab_size": *[0-9]*' "$cfg" | grep -o '[0-9]*$')
    awk -v n=$((B * S)) -v t=$T -v v=$V 'BEGIN { srand(3); for (i = 0; i < n; i++) { printf "{\"input_ids\":["; for (j = 0; j < t; j++) printf "%s%d", (j ? "," : ""), int(rand() * v); print "]}" } }' > "$work/data.jsonl"
    for round in $(seq "$ROUNDS"); do
        for method in "${methods[@]}"; do
            case $method in
                torch-*) torch_method "$c" "$method" ;;
                *) tuna_method "$c" "$method" ;;
            esac
        done
    done
    for method in "${methods[@]}"; do
        median "$work/tps-$method" > "$work/med-$method"
        echo $(( $(sort -n "$work/rss-$method" | tail -1) / 1024 )) > "$work/maxrss-$method"
    done
    for method in "${methods[@]}"; do
        impl=; [ "${method#torch-}" != "$method" ] && impl=torch-
        fp32=${method%-bf16}
        awk -v c=$c -v m="$(label "$method")" -v p=$(cat "$work/params-$method") -v r=$(cat "$work/maxrss-$method") \
            -v t=$(cat "$work/med-$method") -v ft=$(cat "$work/med-${impl}full") -v fr=$(cat "$work/maxrss-${impl}full") \
            -v t32=$(cat "$work/med-$fp32") -v bf=$([ "$fp32" != "$method" ] && echo 1 || echo 0) \
            'BEGIN { printf "| %s | %s | %d | %d | %.0f | %.2fx | %.0f%% | %s |\n", c, m, p, r, t, t / ft, 100 * r / fr, bf ? sprintf("%.2fx", t / t32) : "" }'
    done
    if [ $bf16 = 1 ]; then
        for m in full lora; do summary "$c" $m; done
    fi
    rm -f "$work"/tps-* "$work"/rss-* "$work"/med-* "$work"/maxrss-* "$work"/ran-* "$work"/params-*
done
