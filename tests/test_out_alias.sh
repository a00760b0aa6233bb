#!/usr/bin/env bash
# No output may overwrite an input, however the path is spelled:
# tests/test_out_alias.sh BUILD_DIR (build or build-san), from the repository
# root. Each command below names one of its inputs as an output (the same
# path, ./x, a symlink, a hard link, an output folder holding an input, two
# outputs naming one file); each must exit 2 with one line naming both
# options, before any work, and leave every input byte-identical. Then
# --overwrite: an existing non-empty output folder is refused without it,
# replaced with it, and left intact when the command fails.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build}
case $build in /*) tuna=$build/tuna ;; *) tuna=$root/$build/tuna ;; esac

. "$root/tests/tap.sh"

tap_tmp alias
cd "$tmp"
cp -r "$root/models/tuna-stories" M
for i in 1 2 3 4 5 6; do
  echo "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell story $i.\"},{\"role\":\"assistant\",\"content\":\"Once upon a time a cat named Tom $i found a red ball.\"}]}"
done >F.jsonl
cp F.jsonl F.orig; cp -r M M.orig
# a LoRA adapter to merge (one step)
"$tuna" sft --model M --data F.jsonl --method lora --steps 1 --batch 1 --quiet --out A >sft.log 2>&1 || bad "adapter for merge" "$(tail -2 sft.log)"

# sums PATH...: one line per file under the paths, with its SHA-256
sums() { find "$@" -type f -print0 | sort -z | xargs -0 sha256sum; }
# refused NAME OPT1 OPT2 PROTECTED CMD...: CMD exits 2 with one error line
# naming OPT1 and OPT2, and leaves PROTECTED (files or folders) as they were
refused() {
  local name=$1 o1=$2 o2=$3 prot=$4; shift 4
  local before rc err; before=$(sums $prot)
  "$tuna" "$@" >out.log 2>err.log; rc=$?
  err=$(cat err.log)
  if [ $rc -eq 2 ] && [ "$(wc -l <err.log)" -eq 1 ] && [[ $err == "tuna: error: "* ]] && [[ $err == *"$o1"* ]] && [[ $err == *"$o2"* ]]
  then ok "$name: refused ($err)"
  else bad "$name: exit $rc, expected 2 and one line naming $o1 and $o2" "$(head -c 300 err.log | tr '\n' ' ')"; fi
  [ "$(sums $prot)" = "$before" ] && ok "$name: $prot unchanged" || bad "$name: $prot changed"
  restore
}
# the shared inputs as they were, so that one case's damage does not spill into the next
restore() {
  cmp -s F.orig F.jsonl || cat F.orig >F.jsonl
  [ "$(cd M && sums .)" = "$(cd M.orig && sums .)" ] || { rm -rf M; cp -r M.orig M; }
}

train=(--steps 1 --batch 1 --quiet)
refused "sft --out M --model M" --out --model M sft --model M --data F.jsonl "${train[@]}" --out M
refused "sft --model ./M --out M" --out --model M sft --model ./M --data F.jsonl "${train[@]}" --out M
refused "sft --model M --out M/../M/" --out --model M sft --model M --data F.jsonl "${train[@]}" --out M/../M/
cp -r M REF
for i in 1 2 3 4; do echo "{\"prompt\":\"Name colour $i.\",\"chosen\":\"Red.\",\"rejected\":\"Blue is a colour, I think.\"}"; done >P.jsonl
refused "dpo --ref-model REF --out ./REF" --out --ref-model REF dpo --model M --ref-model REF --data P.jsonl "${train[@]}" --out ./REF
refused "merge --out M" --out --model M merge --model M --adapter A --out M
refused "merge --out ./A (the adapter)" --out --adapter A merge --model M --adapter A --out ./A
refused "export --format hf --out M" --out --model M export --model M --format hf --out M
refused "convert dtype --out ./M" --out --model M convert dtype --model M --dtype f16 --out ./M
cp F.jsonl train-file.jsonl
refused "data split --out-val ./train-file" --out-val FILE train-file.jsonl data split train-file.jsonl --val 0.5 --out-val ./train-file.jsonl
refused "data split --out-train x --out-val ./x" --out-train --out-val "F.jsonl" data split F.jsonl --out-train x.jsonl --out-val ./x.jsonl
refused "data clean F --dropped F" --dropped FILE F.jsonl data clean F.jsonl --out c.jsonl --dropped F.jsonl
refused "data clean --out c --dropped ./c" --out --dropped F.jsonl data clean F.jsonl --out c.jsonl --dropped ./c.jsonl
refused "eval --data F --out F" --out --data F.jsonl eval --model M --data F.jsonl --out F.jsonl
refused "data tokenize FILE --out ./FILE" --out FILE F.jsonl data tokenize --model M F.jsonl --out ./F.jsonl
refused "eval --out M/config.json" --out --model M eval --model M --data F.jsonl --out M/config.json
refused "eval --out M/tokenizer.model (not there yet)" --out --model M eval --model M --data F.jsonl --out M/tokenizer.model
ln F.jsonl hard.jsonl
refused "eval --out HARDLINK-of-data" --out --data F.jsonl eval --model M --data F.jsonl --out hard.jsonl
ln -s M L
refused "convert dtype --out SYMLINK-to-model" --out --model M convert dtype --model M --dtype f16 --out L
mkdir R; cp F.jsonl R/d.jsonl
for i in 1 2 3 4 5 6; do echo "{\"text\":\"Once upon a time a cat named Tom $i found a red ball.\"}"; done >R/t.jsonl
refused "sft --out R holding --data R/d.jsonl" --out --data R sft --model M --data R/d.jsonl "${train[@]}" --out R
refused "tokenizer train --out R holding --data" --out --data R tokenizer train --data R/t.jsonl --vocab-size 300 --out R

mkdir R2; cp F.jsonl R2/compare.json
refused "compare --report R2 over --eval R2/compare.json" "compare.json" --eval R2 compare --model M --eval R2/compare.json --shots 0 \
  --limit 1 --max-new-tokens 4 --report R2
if "$tuna" compare --model M --adapter A --eval F.jsonl --shots none --limit 1 --max-new-tokens 4 --report A >/dev/null 2>err.log &&
   [ -f A/compare.json ]; then ok "compare --adapter A --report A (the run's own report) still works"
else bad "compare --report into the adapter's run folder" "$(head -c 300 err.log)"; fi

# commands that add their files to a folder: refused where those files exist
cp M/config.json arch.json; cp R/t.jsonl T.jsonl
refused "init --out M (has config.json)" --out --overwrite M init --config arch.json --out M
refused "tokenizer train --out M (has tokenizer.json)" --out --overwrite M tokenizer train --data T.jsonl --vocab-size 300 --out M
if "$tuna" tokenizer train --data T.jsonl --vocab-size 300 --out K >/dev/null 2>err.log && "$tuna" init --config arch.json --out K >/dev/null 2>>err.log &&
   [ -f K/tokenizer.json ] && [ -f K/model.safetensors ]; then ok "tokenizer train then init into one folder still works"
else bad "tokenizer train then init into one folder" "$(head -c 300 err.log)"; fi

# a clean data file in place is allowed: --out FILE is the input, read whole first
cp F.jsonl inplace.jsonl
if "$tuna" data clean inplace.jsonl --out inplace.jsonl >/dev/null 2>err.log && [ -s inplace.jsonl ]; then ok "data clean FILE --out FILE (in place) still works"
else bad "data clean in place" "$(head -c 200 err.log)"; fi
# --resume OUT/checkpoint-N inside --out is the normal resume
if "$tuna" sft --model M --data F.jsonl --steps 2 --batch 1 --save-every 1 --quiet --out run >/dev/null 2>err.log &&
   "$tuna" sft --model M --data F.jsonl --steps 2 --batch 1 --save-every 1 --quiet --out run --resume run/checkpoint-1 >/dev/null 2>err.log
then ok "sft --resume OUT/checkpoint-N --out OUT still works"; else bad "resume inside --out" "$(head -c 300 err.log)"; fi

# ---- --overwrite on an existing non-empty folder
"$tuna" convert dtype --model M --dtype bf16 --out O >/dev/null 2>err.log || bad "convert dtype to a new folder" "$(cat err.log)"
before=$(sums O)
refused "convert dtype --out O (non-empty, no --overwrite)" --out --overwrite O convert dtype --model M --dtype f16 --out O
mkdir -p BAD; echo '{"model_type": ' >BAD/config.json
"$tuna" convert dtype --model BAD --dtype f16 --out O --overwrite >/dev/null 2>err.log; rc=$?
[ $rc -ne 0 ] && [ "$(sums O)" = "$before" ] && ok "convert dtype --overwrite that fails (exit $rc): O intact" \
  || bad "convert dtype --overwrite that fails: exit $rc" "$(ls O | tr '\n' ' ')"
"$tuna" merge --model M --adapter BAD --out O --overwrite >/dev/null 2>err.log; rc=$?
[ $rc -ne 0 ] && [ "$(sums O)" = "$before" ] && ok "merge --overwrite that fails (exit $rc): O intact" || bad "merge --overwrite that fails: exit $rc"
if "$tuna" convert dtype --model M --dtype f16 --out O --overwrite >/dev/null 2>err.log && head -c 4000 O/model.safetensors | grep -aq '"F16"'; then
  ok "convert dtype --overwrite replaced O (f16 weights)"
else bad "convert dtype --overwrite" "$(cat err.log)"; fi
[ -z "$(ls -A . | grep '\.tmp\.')" ] && ok "no temporary folders left" || bad "temporary folders left" "$(ls -A | grep '\.tmp\.')"
for c in "merge --model M --adapter A" "export --model M --format hf"; do
  "$tuna" $c --out O >/dev/null 2>err.log; rc=$?
  [ $rc -eq 2 ] && grep -q -- "--overwrite" err.log && ok "${c%% *} --out O (non-empty): refused, --overwrite named" \
    || bad "${c%% *} --out O (non-empty): exit $rc" "$(head -c 200 err.log)"
  "$tuna" $c --out O --overwrite >/dev/null 2>err.log && [ -f O/model.safetensors ] && [ -f O/config.json ] \
    && ok "${c%% *} --out O --overwrite: replaced" || bad "${c%% *} --out O --overwrite" "$(head -c 200 err.log)"
done
[ "$(cd M && sums .)" = "$(cd "$root/models/tuna-stories" && sums .)" ] && ok "the model folder M survived every case" \
  || bad "M differs from models/tuna-stories"
finish
