#!/usr/bin/env bash
# Recipe files (issue 23): tests/test_recipe.sh BUILD_DIR.
#   - a YAML and a JSON recipe give the options their keys name (lora_r and
#     lora-r alike; flags true/false; a list joined for one value; data as
#     paths or {path, weight}); the command line wins wherever it stands,
#     and its --data replaces the recipe's list;
#   - an unknown key, a wrong type and a bad value are refused with exit 2
#     naming FILE:LINE;
#   - OUT/recipe.yaml holds the resolved run: `--config OUT/recipe.yaml`
#     with a new --out, or --overwrite, repeats it bit for bit (adapter bytes
#     and losses); --dry-run's recipe read back prints the same recipe;
#   - pretrain: --config ARCH.json (an HF config) is still the architecture,
#     --arch names it, and a recipe's arch key does too;
#   - every file in recipes/ validates for the command on its first line,
#     the demo's recipe is the demo's old flags and runs a few steps;
#   - every option of the table is a key and is in its command's --help.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"
[ -x "$tuna" ] || { bad "$tuna is built"; finish; }
tap_tmp recipe
export XDG_CACHE_HOME=$tmp/cache
mkdir -p "$XDG_CACHE_HOME"
"$tuna" data synth --out "$tmp/data" --train 24 --val 8 --eval 2 --seed 1 >/dev/null 2>&1 || bad "tuna data synth"
train=$tmp/data/train.jsonl val=$tmp/data/val.jsonl
for k in 1 2 3 4 5 6 7 8; do echo '{"text": "Once upon a time there was a little cat who liked to play in the sun."}'; done >"$tmp/text.jsonl"
# value KEY FILE: the value on KEY's line of a printed recipe
value() { sed -n "s/^$1: //p" "$2"; }

# --- keys, types, overrides -------------------------------------------------
cat >"$tmp/r.yaml" <<YAML
model: $model
data:
  - {path: $train, weight: 0.7}
  - path: $val
    weight: 0.3
lora-r: 8
lora_alpha: 16
method: lora
lora_targets: [q_proj, v_proj]
bf16: false
pack: true
lr: 3e-4
out: $tmp/never
YAML
run yaml "$tuna" sft --config "$tmp/r.yaml" --dry-run
[ "$rc" = 0 ] && [ "$(value lora_r "$tmp/yaml.out")" = 8 ] && [ "$(value lora_alpha "$tmp/yaml.out")" = 16 ] &&
  [ "$(value lora_targets "$tmp/yaml.out")" = '"q_proj,v_proj"' ] && [ "$(value bf16 "$tmp/yaml.out")" = false ] &&
  [ "$(value pack "$tmp/yaml.out")" = true ] && [ "$(value lr "$tmp/yaml.out")" = 0.0003 ] &&
  grep -qF "  - {path: \"$val\", weight: 0.3}" "$tmp/yaml.out" && ok "a YAML recipe sets its keys (lora-r and lora_r, a list, flags, data with weights)" ||
  bad "YAML recipe" "rc $rc: $(cat "$tmp/yaml.out" "$tmp/yaml.err")"
run over "$tuna" sft --lr 1e-4 --config "$tmp/r.yaml" --data "$train" --lora-r 4 --dry-run
[ "$rc" = 0 ] && [ "$(value lr "$tmp/over.out")" = 0.0001 ] && [ "$(value lora_r "$tmp/over.out")" = 4 ] &&
  [ "$(value data "$tmp/over.out")" = "[\"$train\"]" ] && ok "the command line wins, before or after --config; its --data replaces the recipe's" ||
  bad "command-line override" "rc $rc: $(cat "$tmp/over.out" "$tmp/over.err")"
printf '{"model": "%s", "data": ["%s"], "out": "%s",\n "method": "lora", "lora_r": 4, "rslora": true, "batch": 2}\n' "$model" "$train" "$tmp/never" >"$tmp/r.json"
run json "$tuna" sft --config "$tmp/r.json" --dry-run
[ "$rc" = 0 ] && [ "$(value lora_r "$tmp/json.out")" = 4 ] && [ "$(value rslora "$tmp/json.out")" = true ] &&
  [ "$(value micro_batch "$tmp/json.out")" = 2 ] && ok "a JSON recipe" || bad "JSON recipe" "rc $rc: $(cat "$tmp/json.out" "$tmp/json.err")"

# bad NAME LINE-TEXT WANT: r.yaml with LINE-TEXT appended (line 14) is refused with WANT
bad_key() {
  { cat "$tmp/r.yaml"; printf '%s\n' "$2"; } >"$tmp/bad.yaml"
  run "$1" "$tuna" sft --config "$tmp/bad.yaml" --dry-run
  expect "$1: exit 2, $3" 2 "$3"
}
bad_key unknown 'lora_rr: 16' "bad.yaml:14: unknown key 'lora_rr' (tuna sft options: model, adapter, data"
bad_key flag 'rslora: maybe' "bad.yaml:14: 'rslora' is a flag: true or false (got 'maybe')"
bad_key mapping 'warmup: {steps: 1}' "bad.yaml:14: 'warmup' takes a value, not a mapping"
bad_key number 'eps: tiny' "bad.yaml:14: --eps: 'tiny' is not a number"
bad_key twice 'lora_r: 4' "bad.yaml:14: key 'lora_r' given twice (first on line 6 as 'lora-r')"
bad_key nested 'config: other.yaml' "bad.yaml:14: 'config' in a recipe: recipes do not nest"
printf 'data:\n  - {path: a.jsonl, weigth: 1}\n' >"$tmp/bad2.yaml"
run field "$tuna" sft --config "$tmp/bad2.yaml" --dry-run
expect "an unknown key in a data item: its line" 2 "bad2.yaml:2: unknown key 'weigth' in an item of 'data' (path, weight)"
printf 'model: m\n  data: [x\n' >"$tmp/syntax.yaml"
run syntax "$tuna" sft --config "$tmp/syntax.yaml"
expect "a YAML syntax error: its line" 2 "syntax.yaml:2: "
printf '{"model": "m",\n "lora_r": [1, {"a": 2}]}\n' >"$tmp/bad.json"
run jtype "$tuna" sft --config "$tmp/bad.json"
expect "a wrong type in a JSON recipe: its line" 2 "bad.json:2: 'lora_r' takes one value or a list of plain values"

# --- recipe.yaml repeats the run --------------------------------------------
sft=(sft --model "$model" --data "$train" --val "$val" --method lora --lora-r 4 --steps 2 --batch 2 --seq-len 256 --lr 2e-3
     --schedule cosine --warmup 0.05 --quiet)
losses() { grep -o '"loss":[0-9.e+-]*' "$1/metrics.jsonl"; grep -o '"eval_loss":[0-9.e+-]*' "$1/metrics.jsonl"; }
run first "$tuna" "${sft[@]}" --out "$tmp/a"
[ "$rc" = 0 ] && [ -s "$tmp/a/recipe.yaml" ] && ok "sft writes OUT/recipe.yaml" || bad "first run" "$err"
run again "$tuna" sft --config "$tmp/a/recipe.yaml" --out "$tmp/b"
[ "$rc" = 0 ] && cmp -s "$tmp/a/adapter_model.safetensors" "$tmp/b/adapter_model.safetensors" && [ -n "$(losses "$tmp/a")" ] &&
  [ "$(losses "$tmp/a")" = "$(losses "$tmp/b")" ] && ok "--config OUT/recipe.yaml --out NEW: the same adapter bytes and losses" ||
  bad "re-run from recipe.yaml" "rc $rc: $err"
cp "$tmp/a/adapter_model.safetensors" "$tmp/first.safetensors"
run over "$tuna" sft --config "$tmp/a/recipe.yaml" --overwrite
[ "$rc" = 0 ] && cmp -s "$tmp/first.safetensors" "$tmp/a/adapter_model.safetensors" && ok "--config OUT/recipe.yaml --overwrite: the same adapter bytes" ||
  bad "re-run over OUT" "rc $rc: $err"
for cmd in sft dpo pretrain; do
  case $cmd in
    pretrain) args=(--arch "$model/config.json" --tokenizer "$model" --data "$train" --out "$tmp/x" --steps 5) ;;
    *) args=(--model "$model" --data "$train" --out "$tmp/x" --method lora --val-split 0.1 --eval-every 2 --seed 7) ;;
  esac
  "$tuna" "$cmd" "${args[@]}" --dry-run >"$tmp/$cmd.1.yaml" 2>"$tmp/$cmd.err" &&
    "$tuna" "$cmd" --config "$tmp/$cmd.1.yaml" --dry-run >"$tmp/$cmd.2.yaml" 2>>"$tmp/$cmd.err" && cmp -s "$tmp/$cmd.1.yaml" "$tmp/$cmd.2.yaml" &&
    ok "$cmd: the resolved recipe read back resolves to itself" || bad "$cmd recipe round trip" "$(cat "$tmp/$cmd.err")"
done

# --- pretrain's --config ARCH.json, --arch, arch: -----------------------------
pre=(--tokenizer "$model" --data "$tmp/text.jsonl" --seq-len 16 --batch 2 --steps 2 --quiet)
run p_old "$tuna" pretrain --config "$model/config.json" "${pre[@]}" --out "$tmp/p1"
run p_arch "$tuna" pretrain --arch "$model/config.json" "${pre[@]}" --out "$tmp/p2"
printf 'arch: %s\nsteps: 2\n' "$model/config.json" >"$tmp/p.yaml"
run p_rec "$tuna" pretrain --config "$tmp/p.yaml" --tokenizer "$model" --data "$tmp/text.jsonl" --seq-len 16 --batch 2 --quiet --out "$tmp/p3"
cmp -s "$tmp/p1/model.safetensors" "$tmp/p2/model.safetensors" && cmp -s "$tmp/p1/model.safetensors" "$tmp/p3/model.safetensors" &&
  grep -q "^arch: \"$model/config.json\"" "$tmp/p1/recipe.yaml" &&
  ok "pretrain: --config ARCH.json, --arch ARCH.json and a recipe's arch: the same model" || bad "pretrain's architecture" "$(cat "$tmp"/p_*.err)"
run p_two "$tuna" pretrain --config "$tmp/p.yaml" --config "$model/config.json"
expect "pretrain: a recipe and an architecture both as --config" 2 "name the architecture with --arch"

# --- recipes/ -----------------------------------------------------------------
n=0
for f in recipes/*.yaml; do
  cmd=$(sed -n '1s/^# tuna \([a-z]*\) --config .*/\1/p' "$f")
  run check "$tuna" "${cmd:-missing}" --config "$f" --dry-run
  [ -n "$cmd" ] && [ "$rc" = 0 ] && n=$((n+1)) || bad "$f validates as tuna ${cmd:-(no '# tuna CMD --config' first line)}" "$err"
done
[ "$n" -ge 4 ] && ok "the $n recipes in recipes/ validate" || bad "recipes/ holds 4 recipes or more ($n)"
# scripts/demo.sh's flags before it took recipes/demo.yaml: the same run
run demo_flags "$tuna" sft --model models/tuna-stories --data runs/demo/data/train.jsonl --val runs/demo/data/val.jsonl --method lora \
  --lora-r 16 --lora-alpha 32 --lora-targets all-linear --steps 500 --batch 16 --lr 2e-3 --schedule cosine --warmup 0.05 \
  --eval-every 100 --seq-len 256 --cache-dir runs/demo/cache --out runs/demo/lora --dry-run
run demo_recipe "$tuna" sft --config recipes/demo.yaml --dry-run
cmp -s "$tmp/demo_flags.out" "$tmp/demo_recipe.out" && ok "recipes/demo.yaml is the demo's run" || bad "demo recipe" "$(diff "$tmp/demo_flags.out" "$tmp/demo_recipe.out")"
run demo "$tuna" sft --config recipes/demo.yaml --data "$train" --val "$val" --steps 1 --batch 4 --cache-dir "$tmp/cache" --quiet --out "$tmp/demo"
[ "$rc" = 0 ] && [ -s "$tmp/demo/adapter_model.safetensors" ] && ok "recipes/demo.yaml runs (1 step of 4 rows)" || bad "demo recipe run" "$err"

# --- the table: every option a key, every key in --help ---------------------
for cmd in sft dpo pretrain grpo; do
  printf 'no_such_option: 1\n' >"$tmp/k.yaml"
  run keys "$tuna" "$cmd" --config "$tmp/k.yaml"
  keys=$(sed -n 's/.*(tuna [a-z]* options: \(.*\))$/\1/p' <<<"$err" | tr -d ',')
  "$tuna" "$cmd" --help >"$tmp/help" 2>&1; "$tuna" sft --help >>"$tmp/help" 2>&1
  missing=""
  for k in $keys; do grep -q -- "--${k//_/-}\b" "$tmp/help" || missing="$missing $k"; done
  [ -n "$keys" ] && [ -z "$missing" ] && ok "$cmd: its $(wc -w <<<"$keys") recipe keys are options in --help" || bad "$cmd keys in --help" "keys '$keys', missing:$missing"
done
finish
