#!/usr/bin/env bash
# kquant_table.sh MODEL_DIR VAL.jsonl OUTDIR [KQUANT_REF] — the k-quant rows of
# README.md: MODEL_DIR exported as each GGUF type; per type the file size,
# the tensor types written, whether llama.cpp (node-llama-cpp) decodes the
# same greedy tokens as `tuna generate` on the .gguf (check.mjs, 2 prompts x
# 40 tokens: how many of the first tokens agree), tuna's loss on VAL.jsonl read from the .gguf, and, with
# KQUANT_REF (tools/kquant-check), whether llama_model_quantize of the F32
# export gives the same tensors byte for byte. Run from tools/gguf-check
# after `npm install`; one tab-separated line per type on stdout.
set -u
model=$1 val=$2 out=$3 ref=${4:-}
tuna=../../build/tuna
mkdir -p "$out"
$tuna export --model "$model" --format gguf --type f32 --out "$out/f32.gguf" >/dev/null
printf 'type\tbytes\ttensor types\tfirst greedy tokens equal (of 40, 2 prompts)\tllama-quantize equal\tloss\n'
for t in f16 q8_0 q4_0 q2_k:10 q3_k_s:11 q3_k_m:12 q3_k_l:13 q4_k_s:14 q4_k_m:15 q5_k_s:16 q5_k_m:17 q6_k:18; do
  name=${t%%:*} ft=${t#*:}
  f="$out/$name.gguf"
  $tuna export --model "$model" --format gguf --type "$name" --out "$f" >/dev/null || { echo "$name: export failed"; continue; }
  types=$($tuna info --model "$f" 2>/dev/null | sed -n 's/^stored dtypes  //p' | sed 's/ tensors ([0-9]* parameters)//g')
  greedy=
  for i in 1 2; do
    p=$([ $i = 1 ] && echo "Once upon a time, there was a little" || echo "The dog ran to the park and")
    node check.mjs "$f" "$f" "$p" 40 > "$out/$name.check$i" 2>/dev/null
    greedy="$greedy${greedy:+, }$(sed -n 's/.*"first_tokens_equal":\([0-9]*\).*/\1/p' "$out/$name.check$i")"
  done
  same=n/a
  if [ -n "$ref" ] && [ "$ft" != "$name" ]; then
    "$ref" quantize "$out/f32.gguf" "$out/$name.llama.gguf" "$ft" >/dev/null 2>&1 &&
      node ../kquant-check/compare.mjs "$f" "$out/$name.llama.gguf" > "$out/$name.cmp" && same=yes || same=NO
  fi
  loss=$($tuna eval --model "$f" --data "$val" 2>/dev/null | awk '$1 == "loss" {print $2}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$(stat -c %s "$f")" "$types" "$greedy" "$same" "$loss"
done
