#!/usr/bin/env bash
# The quick start's main job (until the shipped-model demo lands): create a
# small model, describe it, and measure its loss; then, when ../shared/data is
# present, convert the real pre-trained llama2.c stories260K model, measure it
# on TinyStories text, and fine-tune it on Alpaca instructions (full, then
# LoRA, merged; and the NF4-quantized base).
# Everything goes to runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
T=build/tuna
out=runs/demo
rm -rf "$out"; mkdir -p "$out"

echo "== 1. a randomly initialised Llama-architecture model, made by the build"
$T init --config configs/tiny-llama.json --out "$out/tiny" --seed 1
$T info --model "$out/tiny"
# pre-tokenized eval data: 16 sequences of 64 ids drawn deterministically
awk 'BEGIN { srand(7); for (i = 0; i < 16; i++) { printf "{\"input_ids\":["; for (j = 0; j < 64; j++) printf "%s%d", (j ? "," : ""), int(rand() * 512); print "]}" } }' > "$out/random.jsonl"
echo "-- eval on random ids (an untrained model is near log(512) = 6.238):"
$T eval --model "$out/tiny" --data "$out/random.jsonl"

shared=${TUNA_SHARED_DATA:-../shared/data}
ck="$shared/llama2c/stories260K/stories260K.bin"
if [ -f "$ck" ]; then
  echo
  echo "== 2. the real pre-trained llama2.c stories260K, converted to an HF folder"
  $T convert llama2c --checkpoint "$ck" --tokenizer "$shared/llama2c/stories260K/tok512.bin" --out "$out/stories260K"
  $T info --model "$out/stories260K"
  head -c 20000 "$shared/text/tinystories/tinystories_validation_head.txt" | awk 'length($0) > 40' | head -32 > "$out/stories.txt"
  $T tokenize --model "$out/stories260K" --file "$out/stories.txt" --add-special --json \
    | sed 's/^/{"input_ids":/; s/$/}/' > "$out/stories.jsonl"
  echo "-- eval on $(wc -l < "$out/stories.jsonl") lines of TinyStories validation text:"
  $T eval --model "$out/stories260K" --data "$out/stories.jsonl"
  echo "-- greedy continuation with the KV cache:"
  $T generate --model "$out/stories260K" --prompt "Once upon a time" --max-new-tokens 48 --temperature 0

  echo
  echo "== 3. full fine-tuning of stories260K on 999 Alpaca instructions (response-only loss)"
  alpaca="$shared/sft/llamafactory_demo/alpaca_en_demo.json"
  $T data inspect --model "$out/stories260K" --template alpaca --seq-len 256 "$alpaca" | grep -E '^(\.\.|\/| +format|truncated|counted|examples|last)'
  $T sft --model "$out/stories260K" --data "$alpaca" --template alpaca --val-split 0.05 \
    --steps 40 --batch 8 --seq-len 256 --lr 5e-4 --schedule cosine --warmup 0.1 \
    --cache-dir "$out/cache" --out "$out/sft"
  echo "-- validation loss per evaluation:"
  grep -o '"step":[0-9]*,"eval_loss":[0-9.]*' "$out/sft/metrics.jsonl" | sed 's/"step":/  step /; s/,"eval_loss":/  val loss /'
  echo "-- open $out/sft/report.html for the curves"

  echo
  echo "== 4. LoRA (r 8, all linear layers) on the same data: the base stays frozen, only the adapter is trained"
  $T sft --model "$out/stories260K" --data "$alpaca" --template alpaca --val-split 0.05 \
    --method lora --lora-r 8 --lora-alpha 16 --lora-targets all-linear \
    --steps 40 --batch 8 --seq-len 256 --lr 3e-3 --schedule cosine --warmup 0.1 \
    --cache-dir "$out/cache" --out "$out/lora"
  echo "-- validation loss per evaluation (LoRA):"
  grep -o '"step":[0-9]*,"eval_loss":[0-9.]*' "$out/lora/metrics.jsonl" | sed 's/"step":/  step /; s/,"eval_loss":/  val loss /'
  ls -l "$out/lora/adapter_model.safetensors" "$out/lora/adapter_config.json" | awk '{print "  " $5 " bytes  " $NF}'
  echo "-- the adapter merged into the base: a plain model folder with the same outputs"
  $T merge --model "$out/stories260K" --adapter "$out/lora" --out "$out/lora-merged"
  echo "-- TinyStories loss: base + adapter (unmerged), merged, and the base with its linears in NF4 (QLoRA storage):"
  $T eval --model "$out/stories260K" --adapter "$out/lora" --data "$out/stories.jsonl" | head -1 | sed 's/^/  adapter /'
  $T eval --model "$out/lora-merged" --data "$out/stories.jsonl" | head -1 | sed 's/^/  merged  /'
  $T eval --model "$out/stories260K" --quant nf4 --data "$out/stories.jsonl" | head -1 | sed 's/^/  nf4 base /'
else
  echo "(shared data not found at $shared: skipping the stories260K part)"
fi
