#!/usr/bin/env bash
# DPO, measured two ways; one JSON line each (also written under OUT):
#  quality  the demo's preference stage (scripts/demo_prefs.sh at its default
#           size) after the demo's SFT adapter: wall time, DPO tokens/s
#           (median step), preference accuracy and generated-field accuracy
#           before/after; runs `make demo` first when OUT has no SFT adapter.
#  memory   peak RSS of full fine-tuning on a 29.5M-parameter random Llama
#           (118 MB of f32 weights): tuna sft on 2 rows vs tuna dpo on 1 pair
#           (the same 2 rows) with the reference = the start, and with
#           --ref-model: the reference must cost no second model copy.
#   bench/bench_dpo.sh [quality|memory|all] [--native]   (OUT=runs/bench-dpo)
# --native unsets OPENBLAS_CORETYPE for the runs (the kernel is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
what=all
native=0
for a in "$@"; do
  case "$a" in
    --native) native=1 ;;
    quality|memory|all) what=$a ;;
    *) echo "usage: bench/bench_dpo.sh [quality|memory|all] [--native]" >&2; exit 2 ;;
  esac
done
out=${OUT:-runs/bench-dpo}
mkdir -p "$out"
make -s all
envp=(env)
[ $native = 1 ] && envp=(env -u OPENBLAS_CORETYPE)
run() { "${envp[@]}" "$@"; }
core=$(run build/bench/bench_train --config configs/tuna-stories.json --batch 1 --seq-len 16 --steps 1 --warmup 0 --json 2>/dev/null \
       | grep -o '"openblas_core":"[^"]*"' | cut -d'"' -f4)
threads=${OMP_NUM_THREADS:-$(nproc)}

if [ "$what" != memory ]; then
  if [ ! -f "$out/demo/lora/adapter_model.safetensors" ]; then
    DEMO_OUT="$out/demo" run bash scripts/demo.sh > "$out/demo.log" 2>&1
  fi
  start=$(date +%s.%N)
  status=0
  DEMO_OUT="$out/demo" run bash scripts/demo_prefs.sh > "$out/prefs.log" 2>&1 || status=$?
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  tps=$(grep -o '"tokens_per_s":[0-9.]*' "$out/demo/dpo/metrics.jsonl" | cut -d: -f2 | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  row() { grep -F "$1" "$out/prefs.log" | awk '{ print $(NF - 1) "," $NF }'; }
  IFS=, read -r pa_b pa_a < <(row "preference accuracy (")
  IFS=, read -r f_b f_a < <(row "two-child stories: JSON field accuracy")
  IFS=, read -r w_b w_a < <(row "two-child stories: \"who\" correct")
  IFS=, read -r d_b d_a < <(row "demo eval set (one child)")
  line="{\"bench\":\"dpo_quality\",\"wall_s\":$wall,\"exit\":$status,\"openblas_core\":\"$core\",\"threads\":$threads,"
  line+="\"dpo_tokens_per_s_median\":$tps,\"preference_accuracy\":[$pa_b,$pa_a],\"two_child_fields\":[$f_b,$f_a],"
  line+="\"two_child_who\":[$w_b,$w_a],\"demo_eval_fields\":[$d_b,$d_a]}"
  echo "$line" | tee "$out/quality.json"
  [ $status = 0 ] || { tail -n 20 "$out/prefs.log"; exit $status; }
fi

if [ "$what" != quality ]; then
  m="$out/mem"
  rm -rf "$m" && mkdir -p "$m"
  cat > "$m/config.json" <<'EOF'
{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":4096,"hidden_size":512,"intermediate_size":1376,
 "num_hidden_layers":8,"num_attention_heads":8,"num_key_value_heads":8,"max_position_embeddings":512,"rms_norm_eps":1e-5,
 "tie_word_embeddings":false,"initializer_range":0.02}
EOF
  build/tuna init --config "$m/config.json" --out "$m/model" --seed 1 >/dev/null
  build/tuna init --config "$m/config.json" --out "$m/ref" --seed 2 >/dev/null
  awk 'BEGIN { srand(3); for (i = 0; i < 16; i++) {
         p = ""; c = ""; r = ""
         for (k = 0; k < 24; k++) p = p (k ? "," : "") int(3 + rand() * 4000)
         for (k = 0; k < 40; k++) { c = c (k ? "," : "") int(3 + rand() * 4000); r = r (k ? "," : "") int(3 + rand() * 4000) }
         printf "{\"prompt_ids\":[%s],\"chosen_ids\":[%s],\"rejected_ids\":[%s]}\n", p, c, r
         printf "{\"input_ids\":[%s,%s]}\n", p, c > "/dev/stderr" } }' > "$m/prefs.jsonl" 2> "$m/sft.jsonl"
  common="--method full --steps 4 --lr 1e-5 --seq-len 64 --no-shuffle --quiet"
  rss() { /usr/bin/time -f "%M" "${envp[@]}" "$@" 2>&1 >/dev/null | tail -n 1; }
  sft_kb=$(rss build/tuna sft --model "$m/model" --data "$m/sft.jsonl" --out "$m/o_sft" --batch 2 --micro-batch 2 $common)
  dpo_kb=$(rss build/tuna dpo --model "$m/model" --data "$m/prefs.jsonl" --out "$m/o_dpo" --batch 1 --micro-batch 1 $common)
  ref_kb=$(rss build/tuna dpo --model "$m/model" --ref-model "$m/ref" --data "$m/prefs.jsonl" --out "$m/o_ref" --batch 1 --micro-batch 1 $common)
  params=$(build/tuna info --model "$m/model" | awk '/^parameters/ { gsub(/[^0-9]/, "", $2); print $2 }')
  line="{\"bench\":\"dpo_memory\",\"parameters\":${params:-0},\"weights_mb\":$(awk -v p="${params:-0}" 'BEGIN { printf "%.1f", p * 4 / 1e6 }'),"
  line+="\"peak_rss_mb\":{\"sft_full_2_rows\":$(( sft_kb / 1024 )),\"dpo_full_1_pair\":$(( dpo_kb / 1024 )),\"dpo_full_1_pair_ref_model\":$(( ref_kb / 1024 ))}}"
  echo "$line" | tee "$out/memory.json"
fi
