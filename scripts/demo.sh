#!/usr/bin/env bash
# The quick start's main job (`make demo`): the whole story of fine-tuning on
# the small story model tuna pre-trained (models/tuna-stories), offline:
#   1. the base model only continues text;
#   2. a task it cannot do (story -> JSON), and the cheap options first:
#      zero-shot and 3-shot prompting;
#   3. a LoRA fine-tune with a live progress line (recipes/demo.yaml);
#   4. the fine-tuned model on the same eval set, beside the prompting rows,
#      and report.html with the curves, the table and sample answers.
# Everything goes to one run folder; a second run reuses its token cache.
# Settings (environment): DEMO_OUT (runs/demo), DEMO_MODEL
# (models/tuna-stories), DEMO_STEPS (LoRA steps, 500), DEMO_TRAIN / DEMO_EVAL
# (examples, 2000 / 100), TUNA (the CLI, build/tuna), DEMO_CHECK=0 to skip the
# quality thresholds (for the fast test's tiny step count), DEMO_SFT_FLAGS
# (more options for step 3's tuna sft, e.g. --bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${TUNA:-build/tuna}
model=${DEMO_MODEL:-models/tuna-stories}
out=${DEMO_OUT:-runs/demo}
steps=${DEMO_STEPS:-500}
n_train=${DEMO_TRAIN:-2000}
n_eval=${DEMO_EVAL:-100}
check=${DEMO_CHECK:-1}
start=$(date +%s)

# keep the token cache, replace everything else
mkdir -p "$out"
find "$out" -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} +

echo "== 1. the base model: $model (pre-trained by tuna on TinyStories; see its README.md)"
$T info --model "$model" | grep -E '^(architecture|layers|hidden size|vocab|parameters|dtype)'
$T data synth --out "$out/data" --train "$n_train" --val 100 --eval "$n_eval" --seed 1 >/dev/null
echo "-- asked the first eval instruction, it continues the story instead of answering:"
$T eval --model "$model" --data "$out/data/eval.jsonl" --limit 1 --generate --max-new-tokens 48 --show 1 --quiet \
  | sed -n '/^\[prompt\]/,$p'

echo
echo "== 2. the task: read a story, answer in JSON (who, animal, where, feeling);"
echo "   $n_train train / 100 val / $n_eval eval examples from 'tuna data synth'. First the cheap options:"
echo "   zero-shot and 3-shot prompting of the base model on the $n_eval eval examples"
$T compare --model "$model" --train "$out/data/train.jsonl" --eval "$out/data/eval.jsonl" --shots 0,3 \
  --metric json_fields --max-new-tokens 48 --batch 8 --report "$out/base" | tail -n +2

echo
echo "== 3. LoRA fine-tuning (r 16, all linear layers; the base stays frozen): recipes/demo.yaml"
# the recipe holds the run; the settings above replace its paths, steps and cadence
$T sft --config recipes/demo.yaml --model "$model" --data "$out/data/train.jsonl" --val "$out/data/val.jsonl" \
  --steps "$steps" --eval-every $(( steps / 5 > 0 ? steps / 5 : 1 )) \
  --cache-dir "$out/cache" --out "$out/lora" ${DEMO_SFT_FLAGS:-}

echo
echo "== 4. the fine-tuned model on the same eval set, beside prompting"
$T compare --model "$model" --adapter "$out/lora" --eval "$out/data/eval.jsonl" --shots none \
  --append "$out/base/compare.json" --metric json_fields --max-new-tokens 48 --batch 8 --report "$out/lora" \
  | sed -n '/^setting/,/^report/p' | grep -v '^report'
# the fine-tuned row of compare.json (one key per line): its field accuracy and JSON validity
read -r ft_fields ft_valid < <(awk '/"name": / { row = $2 } row ~ /fine-tuned/ && /"metric": [0-9]/ { gsub(/,/, "", $2); f = $2 }
  row ~ /fine-tuned/ && /"json_valid": [0-9]/ && v == "" { gsub(/,/, "", $2); v = $2 } END { print f + 0, v + 0 }' "$out/lora/compare.json")
echo
echo "report: $out/lora/report.html (loss curves, the comparison, sample answers before and after)"
echo "next:   $T chat --model $model --adapter $out/lora"
echo "        $T serve --model $model --adapter story-json=$out/lora   # OpenAI API + chat page on http://127.0.0.1:8080"
echo "        $T merge --model $model --adapter $out/lora --out $out/merged"
echo "        $T export --model $model --adapter $out/lora --format gguf --type q8_0 --out $out/story-json.gguf   # for llama.cpp"
echo "        $T eval --model $model --adapter $out/lora --data $out/data/eval.jsonl --generate --show 3"
echo "done in $(( $(date +%s) - start )) s"
if [ "$check" = 1 ]; then
  awk -v f="$ft_fields" -v v="$ft_valid" 'BEGIN { ok = (v >= 0.95 && f >= 0.80);
    printf "check: fine-tuned valid JSON %.1f%% (>= 95%%), field accuracy %.1f%% (>= 80%%): %s\n", 100 * v, 100 * f, ok ? "ok" : "NOT MET";
    exit ok ? 0 : 1 }'
fi
