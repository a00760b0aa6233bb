#!/usr/bin/env bash
# Sharded checkpoints through the CLI (issue 21, bad input): a bf16 copy of
# the shipped model in 4 shards generates what the single file does, and each
# broken checkpoint is refused on its headers, before any weight is read, with
# one line naming the file and the tensor and exit 2:
#   - a shard the index names is missing;
#   - a shard is cut short (a tensor's bytes run past its file);
#   - the index names a file twice (a copy of a shard under another name: a
#     tensor in two shards);
#   - the index maps a tensor to a shard that does not hold it;
#   - the index names a tensor twice (duplicate key).
# tests/test_stored_shards.sh BUILD_DIR (build or build-san), from the
# repository root. Ends with "RESULT <passed> <failed> <skipped>".
set -u
cd "$(dirname "$0")/.."
root=$PWD
. tests/tap.sh
tap_cli "${1:-build}"
tap_tmp stored_shards

good=$tmp/good
"$tuna" export --model "$model" --format hf --dtype bf16 --shard-size 2MB --out "$good" >/dev/null 2>&1 \
  && [ -f "$good/model-00004-of-00004.safetensors" ] && ok "bf16 copy in 4 shards" || { bad "bf16 copy in 4 shards"; finish; }
gen() { run "$1" "$tuna" generate --model "$2" --prompt "Once upon a time" --max-new-tokens 8; }

gen single "$model"; want=$(cat "$tmp/single.out")
gen sharded "$good"
[ "$rc" = 0 ] && [ "$(cat "$tmp/sharded.out")" = "$want" ] && ok "sharded bf16 generates what the single file does" \
  || bad "sharded bf16 generates what the single file does" "exit $rc: $err"

# case NAME TEXT...: a fresh copy in $d for the caller to break, then
# generate on it must exit 2 with one line holding every TEXT
fresh() { d=$tmp/$1; rm -rf "$d"; cp -r "$good" "$d"; }
refused() {
  local name=$1; shift
  gen "$name" "$d"
  local lines; lines=$(wc -l <"$tmp/$name.err")
  for t in "$@"; do
    if ! grep -qF -- "$t" <<<"$err"; then bad "$name" "exit $rc, stderr: $err (want '$t')"; return; fi
  done
  if [ "$rc" = 2 ] && [ "$lines" = 1 ]; then ok "$name"; else bad "$name" "exit $rc, $lines lines: $err"; fi
}
idx=model.safetensors.index.json

fresh missing; rm "$d/model-00003-of-00004.safetensors"
refused "missing shard" "$idx" "model-00003-of-00004.safetensors, which is missing" "tensor 'model."

fresh cut; truncate -s -100 "$d/model-00002-of-00004.safetensors"
refused "shard cut short" "model-00002-of-00004.safetensors: tensor 'model." "run past the end of the file"

fresh twice; cp "$d/model-00001-of-00004.safetensors" "$d/copy.safetensors"
sed -i 's|"model.embed_tokens.weight": "model-00001-of-00004.safetensors"|"model.embed_tokens.weight": "copy.safetensors"|' "$d/$idx"
refused "a file named twice" "$idx: tensor 'model." "is in two shards" "copy.safetensors"

fresh wrong; sed -i 's|"model.embed_tokens.weight": "model-00001-of-00004.safetensors"|"model.embed_tokens.weight": "model-00002-of-00004.safetensors"|' "$d/$idx"
refused "a tensor mapped to the wrong shard" "$idx: tensor 'model.embed_tokens.weight' is mapped to model-00002-of-00004.safetensors, which does not hold it"

fresh dup; sed -i 's|^\(    "model.embed_tokens.weight": .*\)$|\1\n    "model.embed_tokens.weight": "model-00002-of-00004.safetensors",|' "$d/$idx"
refused "a tensor named twice" "$idx:7: a key given twice" "model.embed_tokens.weight"
finish
