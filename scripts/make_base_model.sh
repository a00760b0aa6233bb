#!/usr/bin/env bash
# The recipe of the base model shipped in models/tuna-stories (see its
# README.md): a byte-level BPE tokenizer and a small Llama-architecture model
# pre-trained from scratch by tuna on TinyStories text from ../shared/data.
# Deterministic for a given machine's BLAS; takes about 40 minutes on 2 cores
# (resume an interrupted run with RESUME=WORK_DIR/model/checkpoint-N).
#   scripts/make_base_model.sh [WORK_DIR]     (default runs/base-model)
# The result is WORK_DIR/model (fp32) and models/tuna-stories (bf16, shipped).
set -euo pipefail
cd "$(dirname "$0")/.."
T=build/tuna
shared=${TUNA_SHARED_DATA:-../shared/data}
work=${1:-runs/base-model}
steps=${STEPS:-1400}
mkdir -p "$work"
make -s all

# 1. data: the 2 MiB TinyStories train head as one JSONL record per story
#    (stories end with a "<|endoftext|>" line; the cut-off last story is kept),
#    plus the TinyStories validation head except its last ~100 KB, which is
#    the validation set. The validation head separates paragraphs and stories
#    alike by blank lines, so a story is taken to start at a paragraph that
#    begins "Once upon a time" (most do; the others stay joined to the story
#    before them), and the held-out part starts at such a paragraph too.
esc='{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); gsub(/\r/, "") }'
awk 'function flush() { if (s != "") print "{\"text\":\"" s "\"}"; s = "" }
     $0 == "<|endoftext|>" { flush(); next }
     '"$esc"' { s = (s == "" ? $0 : s "\\n" $0) }
     END { flush() }' "$shared/text/tinystories/tinystories_train_head_2MiB.txt" > "$work/train.jsonl"
vh="$shared/text/tinystories/tinystories_validation_head.txt"
awk -v total="$(wc -c < "$vh")" -v hold=100000 -v val="$work/val.txt" '
     function flush() { if (s != "") print "{\"text\":\"" s "\"}"; s = "" }
     BEGIN { RS = "" }
     { bytes += length($0) + 2 }
     held { print $0 "\n" > val; next }
     /^Once upon a time/ && bytes > total - hold { flush(); held = 1; print $0 "\n" > val; next }
     /^Once upon a time/ { flush() }
     '"$esc"' { gsub(/\n/, "\\n"); s = (s == "" ? $0 : s "\\n" $0) }
     END { flush() }' "$vh" >> "$work/train.jsonl"
echo "train: $(wc -l < "$work/train.jsonl") stories, $(wc -c < "$work/train.jsonl") bytes; val: $(wc -c < "$work/val.txt") bytes"

# 2. tokenizer: 4096 byte-level BPE tokens, <|endoftext|> as BOS/EOS/PAD/UNK;
#    the Alpaca chat template (it ends a response with the EOS token, which
#    pre-training teaches: every story ends with it)
$T tokenizer train --data "$work/train.jsonl" --vocab-size 4096 --special '<|endoftext|>' \
  --chat-template alpaca --model-max-length 1024 --out "$work/tokenizer" --overwrite

# 3. pre-training: 512-token rows (stories concatenated, EOS between them),
#    8 rows per step, cosine schedule, AdamW with weight decay 0.1; validation
#    every 100 steps, the best model kept, stopping after 4 evaluations
#    without improvement
#    A rerun replaces the earlier model (at its first checkpoint); RESUME=DIR
#    continues from one of its checkpoints instead
if [ -n "${RESUME:-}" ]; then continue_args=(--resume "$RESUME"); else continue_args=(--overwrite); fi
$T pretrain --config configs/tuna-stories.json --tokenizer "$work/tokenizer" \
  --data "$work/train.jsonl" --val "$work/val.txt" --seq-len 512 --batch 8 \
  --steps "$steps" --lr 1.5e-3 --warmup 0.03 --weight-decay 0.1 --eval-every 100 --early-stop 4 \
  --save-every 500 --seed 1 --out "$work/model" "${continue_args[@]}"

# 4. the shipped folder: bf16 weights, tokenizer files, generation config
#    (greedy, stop at <|endoftext|>); models/tuna-stories/README.md is the card,
#    kept: the converted files are copied next to it
printf '{\n  "bos_token_id": 0,\n  "eos_token_id": 0,\n  "do_sample": false,\n  "max_length": 1024\n}\n' \
  > "$work/model/generation_config.json"
$T convert dtype --model "$work/model" --dtype bf16 --out "$work/shipped" --overwrite
cp "$work/shipped"/* models/tuna-stories/
echo "validation loss of the shipped (bf16) model:"
$T eval --model models/tuna-stories --data "$work/val.txt" --seq-len 512 --quiet
