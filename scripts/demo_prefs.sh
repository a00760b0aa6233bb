#!/usr/bin/env bash
# The demo's preference stage (`make demo-prefs`), after `make demo`:
#   1. harder stories that also name a second child, as preference pairs from
#      `tuna data synth --task story-json-prefs`: chosen the correct concise
#      JSON, rejected the other child's name (60%), the answer wrapped in
#      chatter (20%) or malformed JSON (20%);
#   2. the SFT adapter of `make demo` on held-out pairs: preference accuracy
#      (does it give the chosen answer the higher log-probability?) and the
#      JSON fields it generates;
#   3. `tuna dpo`, continuing that adapter (the reference is the SFT model,
#      its log-probabilities computed once);
#   4. the DPO adapter measured the same way, and on the demo's own eval set
#      (what SFT taught must stay).
# Settings (environment): DEMO_OUT (runs/demo, must hold the demo's lora/),
# DEMO_MODEL (models/tuna-stories), DPO_STEPS (60), DPO_TRAIN / DPO_EVAL
# (pairs, 1000 / 100), TUNA (build/tuna), DEMO_CHECK=0 skips the thresholds.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${TUNA:-build/tuna}
model=${DEMO_MODEL:-models/tuna-stories}
out=${DEMO_OUT:-runs/demo}
steps=${DPO_STEPS:-60}
n_train=${DPO_TRAIN:-1000}
n_eval=${DPO_EVAL:-100}
check=${DEMO_CHECK:-1}
sft="$out/lora"
start=$(date +%s)
if [ ! -f "$sft/adapter_model.safetensors" ]; then
  echo "tuna: error: $sft has no SFT adapter: run 'make demo' first (or set DEMO_OUT)" >&2
  exit 2
fi
rm -rf "$out/prefs" "$out/dpo"

echo "== 5. preferences: stories with a second child; which answer is better?"
$T data synth --task story-json-prefs --out "$out/prefs" --train "$n_train" --val 100 --eval "$n_eval" --seed 1 >/dev/null
echo "   $n_train train / 100 val / $n_eval eval pairs from 'tuna data synth --task story-json-prefs', e.g.:"
head -n 1 "$out/prefs/eval.jsonl" | sed -e 's/^.*Story: /   story:    /' \
  -e 's/"}\],"chosen":\[{"role":"assistant","content":"/\n   chosen:   /' -e 's/"}\],"rejected":\[{"role":"assistant","content":"/\n   rejected: /' \
  -e 's/"}\]}$//' -e 's/\\"/"/g'

# measures an adapter: preference accuracy on the held-out pairs, the fields
# it generates for their prompts, and the fields on the demo's eval set
measure() {
  local adapter=$1 prefs base
  prefs=$($T eval --model "$model" --adapter "$adapter" --data "$out/prefs/eval.jsonl" --generate --max-new-tokens 48 \
          --batch 8 --quiet --json)
  base=$($T eval --model "$model" --adapter "$adapter" --data "$out/data/eval.jsonl" --generate --max-new-tokens 48 \
          --batch 8 --quiet --json)
  local acc fields who valid demo
  acc=$(grep -o '"preference":{[^}]*}' <<< "$prefs" | grep -o '"accuracy":[-0-9.e]*' | cut -d: -f2)
  fields=$(grep -o '"json_fields":{"overall":[-0-9.e]*' <<< "$prefs" | sed 's/.*://')
  who=$(grep -o '"who":[-0-9.e]*' <<< "$prefs" | cut -d: -f2)
  valid=$(grep -o '"json_valid":[-0-9.e]*' <<< "$prefs" | cut -d: -f2)
  demo=$(grep -o '"json_fields":{"overall":[-0-9.e]*' <<< "$base" | sed 's/.*://')
  echo "$acc $fields $who $valid $demo"
}

echo
echo "== 6. the SFT adapter ($sft) on the $n_eval held-out pairs"
read -r b_acc b_fields b_who b_valid b_demo < <(measure "$sft")
awk -v a="$b_acc" -v f="$b_fields" -v w="$b_who" 'BEGIN { printf "   preference accuracy %.2f; generated answers: field accuracy %.2f (\"who\" %.2f)\n", a, f, w }'

echo
echo "== 7. DPO (sigmoid loss, beta 0.5), LoRA continuing the SFT adapter; reference = the SFT model"
$T dpo --model "$model" --adapter "$sft" --method lora --data "$out/prefs/train.jsonl" --val "$out/prefs/val.jsonl" \
  --steps "$steps" --batch 16 --lr 1e-4 --beta 0.5 --schedule cosine --warmup 0.1 \
  --eval-every $(( steps / 3 > 0 ? steps / 3 : 1 )) --seq-len 256 --out "$out/dpo"

echo
echo "== 8. after DPO, same measurements"
read -r a_acc a_fields a_who a_valid a_demo < <(measure "$out/dpo")
awk -v ba="$b_acc" -v bf="$b_fields" -v bw="$b_who" -v bv="$b_valid" -v bd="$b_demo" \
    -v aa="$a_acc" -v af="$a_fields" -v aw="$a_who" -v av="$a_valid" -v ad="$a_demo" -v n="$n_eval" 'BEGIN {
  printf "%-44s %12s %10s\n", "", "SFT adapter", "after DPO"
  printf "%-44s %12.2f %10.2f\n", "preference accuracy (" n " held-out pairs)", ba, aa
  printf "%-44s %12.2f %10.2f\n", "two-child stories: JSON field accuracy", bf, af
  printf "%-44s %12.2f %10.2f\n", "two-child stories: \"who\" correct", bw, aw
  printf "%-44s %12.2f %10.2f\n", "two-child stories: valid JSON", bv, av
  printf "%-44s %12.2f %10.2f\n", "demo eval set (one child): field accuracy", bd, ad }'
echo
echo "report: $out/dpo/report.html (DPO loss, rewards, margins and accuracy per step)"
echo "next:   $T chat --model $model --adapter $out/dpo"
echo "        $T export --model $model --adapter $out/dpo --format hf --out $out/dpo-hf   # a Hugging Face folder"
echo "        $T eval --model $model --adapter $out/dpo --data $out/prefs/eval.jsonl --generate --show 3"
echo "done in $(( $(date +%s) - start )) s"
if [ "$check" = 1 ]; then
  awk -v ba="$b_acc" -v aa="$a_acc" -v bw="$b_who" -v aw="$a_who" -v ad="$a_demo" 'BEGIN {
    ok = (aa >= ba + 0.05 && aa >= 0.9 && aw > bw && ad >= 0.95)
    printf "check: preference accuracy %.2f -> %.2f (up >= 0.05, >= 0.90), \"who\" %.2f -> %.2f (up), demo eval fields %.2f (>= 0.95): %s\n",
           ba, aa, bw, aw, ad, ok ? "ok" : "NOT MET"
    exit ok ? 0 : 1 }'
fi
