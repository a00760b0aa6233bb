#!/usr/bin/env bash
# tuna info, tuna plan and the memory check before training (issue 21 items 3
# and 4), through the CLI: tests/test_info_plan.sh BUILD_DIR (build or
# build-san), from the repository root.
#   - info reads headers only: on a sharded bf16 copy of the shipped model
#     whose last shard's data block is cut short, info prints everything it
#     prints for the intact model (counts, dtypes per group, memory), while
#     generate on that copy fails;
#   - plan takes sft's options (memory ones used, the others ignored), names
#     a command (dpo, generate, ...), every method; its JSON keys, and exact
#     byte counts where they follow from the shapes;
#   - sft / dpo / pretrain with too little memory (TUNA_MEM_AVAILABLE): exit 2
#     before any weight is read (the cut copy gives the memory line, not a
#     load error) and before the output folder exists, one line naming the
#     memory needed, the memory available and settings that fit;
#     --no-mem-check passes through;
#   - an untied embedding used in place counts one lookup chunk of rows;
#   - partial checkpointing: plan --checkpoint-layers K frees one block's
#     activations per block past the first; with --max-memory (or too little
#     memory available) plan picks the fewest blocks that fit, sft picks the
#     same, says so, records it in train_args.json and runs; a limit below
#     what all blocks checkpointed need is refused naming --max-memory.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"

[ -x "$tuna" ] || { bad "$tuna is built"; finish; }
tap_tmp info_plan
export XDG_CACHE_HOME=$tmp/cache
mkdir -p "$XDG_CACHE_HOME"
data=$root/tests/fixtures/parity/llama_gqa/data.jsonl   # pre-tokenized, ids < 4096

# a json key's number from a one-line object
num() { grep -o "\"$1\":[0-9.e+-]*" "$2" | head -1 | cut -d: -f2; }

# --- info: headers only ---
run info "$tuna" info --model "$model"
[ "$rc" = 0 ] && grep -q '^parameters     3148224 (3.15 M)' "$tmp/info.out" && grep -q '^stored dtypes  BF16 56 tensors (3148224 parameters)' "$tmp/info.out" &&
  grep -q '^  block linears      BF16, 2359296 parameters, 4.50 MiB' "$tmp/info.out" && grep -q '^  embeddings         BF16, 786432 parameters' "$tmp/info.out" &&
  grep -q '^  sft --method qlora' "$tmp/info.out" && grep -q '^  generate --quant nf4' "$tmp/info.out" &&
  ok "info: parameters, stored dtypes per group, memory per method" || bad "info on the shipped model" "$(cat "$tmp/info.out" "$tmp/info.err")"
"$tuna" export --model "$model" --format hf --dtype bf16 --shard-size 2MB --out "$tmp/sharded" >/dev/null 2>&1
shards=$(ls "$tmp/sharded"/model-*-of-*.safetensors 2>/dev/null | wc -l)
[ "$shards" -ge 2 ] && [ -f "$tmp/sharded/model.safetensors.index.json" ] && ok "a sharded bf16 copy ($shards shards)" || bad "sharded copy" "$shards shards"
last=$(ls "$tmp/sharded"/model-*-of-*.safetensors | tail -1)
truncate -s 4096 "$last"   # its header stays whole, its data block is gone
run info_cut "$tuna" info --model "$tmp/sharded"
grep -v '^dtype ' "$tmp/info.out" > "$tmp/a"; grep -v '^dtype ' "$tmp/info_cut.out" > "$tmp/b"
[ "$rc" = 0 ] && cmp -s "$tmp/a" "$tmp/b" && ok "info on shards whose data is cut: the same output (no weight read)" ||
  bad "info on the cut shards" "exit $rc: $(diff "$tmp/a" "$tmp/b" | head -5) $err"
grep -q "in $shards files" "$tmp/info_cut.out" && ok "info counts the shard files" || bad "info: files" "$(grep '^dtype' "$tmp/info_cut.out")"
run gen_cut "$tuna" generate --model "$tmp/sharded" --prompt "Once" --max-new-tokens 2
[ "$rc" != 0 ] && ok "generate on the cut shards fails (exit $rc)" || bad "generate on cut shards" "exit 0"
run info_json "$tuna" info --model "$tmp/sharded" --quant nf4 --json
[ "$rc" = 0 ] && [ "$(num parameters "$tmp/info_json.out")" = 3148224 ] && [ "$(num quantized_parameters "$tmp/info_json.out")" = 2359296 ] &&
  [ "$(num weight_files "$tmp/info_json.out")" = "$shards" ] && grep -q '"stored_dtypes":{"BF16":{"tensors":56,"parameters":3148224}}' "$tmp/info_json.out" &&
  grep -q '"block_linears":{"parameters":2359296,"dtype":"BF16","bytes":4718592}' "$tmp/info_json.out" && grep -q '"sft_qlora":' "$tmp/info_json.out" &&
  ok "info --json --quant nf4: counts, dtypes, groups, NF4 from shapes" || bad "info --json" "$(cat "$tmp/info_json.out" "$tmp/info_json.err")"

# GGUF: its metadata and tensor table; llama2.c: its 28-byte header
"$tuna" export --model "$model" --format gguf --type q8_0 --out "$tmp/m.gguf" >/dev/null 2>&1
run info_gguf "$tuna" info --model "$tmp/m.gguf"
[ "$rc" = 0 ] && grep -q '^stored dtypes  Q8_0 43 tensors (3145728 parameters); F32 13 tensors (2496 parameters)' "$tmp/info_gguf.out" &&
  grep -q '^parameters     3148224 ' "$tmp/info_gguf.out" && ok "info on a GGUF file: Q8_0 and F32 tensors counted" || bad "info gguf" "$(cat "$tmp/info_gguf.out" "$tmp/info_gguf.err")"
l2c=$root/../shared/data/llama2c/stories260K/stories260K.bin
if [ -f "$l2c" ]; then
  run info_l2c "$tuna" info --model "$l2c"
  [ "$rc" = 0 ] && grep -q '^parameters     260032 ' "$tmp/info_l2c.out" && grep -q '^stored dtypes  F32 47 tensors' "$tmp/info_l2c.out" &&
    ok "info on a llama2.c checkpoint: from its header" || bad "info llama2c" "$(cat "$tmp/info_l2c.out" "$tmp/info_l2c.err")"
else absent "../shared/data/llama2c/stories260K/stories260K.bin"; fi

# --- plan: sft's options, every method, exact bytes ---
run plan_paste "$tuna" plan --model "$model" --method lora --lora-r 16 --lora-alpha 32 --lr 2e-4 --steps 3 --out "$tmp/x" --quiet \
  --data "$data" --batch 4 --micro-batch 2 --seq-len 64 --json
[ "$rc" = 0 ] && ok "plan takes a pasted sft command line" || bad "plan with sft's options" "$err"
for k in command method weights_bytes frozen_bytes trainable_bytes gradients_bytes optimizer_bytes activation_bytes adapter_bytes \
         data_bytes baseline_bytes load_bytes peak_rss_bytes micro_batch rows seq_len; do
  grep -q "\"$k\":" "$tmp/plan_paste.out" || bad "plan --json has $k" "$(cat "$tmp/plan_paste.out")"
done
ok "plan --json keys"
# LoRA r 16 on q_proj, v_proj: 6 layers x 16 x ((192+192) + (192+64)) = 61440 fp32 weights
[ "$(num frozen_bytes "$tmp/plan_paste.out")" = 6296448 ] && [ "$(num trainable_bytes "$tmp/plan_paste.out")" = 245760 ] &&
  [ "$(num optimizer_bytes "$tmp/plan_paste.out")" = 491520 ] && [ "$(num micro_batch "$tmp/plan_paste.out")" = 2 ] &&
  ok "plan lora: the bf16 base as stored (6296448 bytes), 61440 trained weights" || bad "plan lora bytes" "$(cat "$tmp/plan_paste.out")"
run plan_q "$tuna" plan --model "$model" --method qlora --lora-targets all-linear --grad-checkpoint --json
run info_q "$tuna" info --model "$model" --quant nf4 --json
[ "$(num frozen_bytes "$tmp/plan_q.out")" = "$(num weight_bytes "$tmp/info_q.out")" ] &&
  ok "plan qlora: frozen = info's NF4 block linears + the rest as stored" || bad "qlora frozen" "$(num frozen_bytes "$tmp/plan_q.out") vs $(num weight_bytes "$tmp/info_q.out")"
prev=
for m in full lora qlora ia3 prompt; do
  run "plan_$m" "$tuna" plan --model "$model" --method "$m" --json
  [ "$rc" = 0 ] && [ -n "$(num peak_rss_bytes "$tmp/plan_$m.out")" ] || bad "plan --method $m" "$err"
done
[ "$(num trainable_bytes "$tmp/plan_full.out")" = 12592896 ] && [ "$(num frozen_bytes "$tmp/plan_full.out")" = 0 ] &&
  ok "plan full: every weight fp32 (12592896 bytes), trained" || bad "plan full" "$(cat "$tmp/plan_full.out")"
[ "$(num seq_len "$tmp/plan_prompt.out")" = 512 ] && grep -q '"rows":8' "$tmp/plan_prompt.out" &&
  [ "$(num trainable_bytes "$tmp/plan_prompt.out")" = $((20 * 192 * 4)) ] && ok "plan prompt: 20 virtual tokens x 192" || bad "plan prompt" "$(cat "$tmp/plan_prompt.out")"
run plan_ck "$tuna" plan --model "$model" --method lora --grad-checkpoint --json
a1=$(num activation_bytes "$tmp/plan_lora.out"); a2=$(num activation_bytes "$tmp/plan_ck.out")
[ "$a2" -lt "$a1" ] && ok "plan --grad-checkpoint keeps fewer activations" || bad "checkpointing" "$a1 vs $a2"
run plan_dpo "$tuna" plan dpo --model "$model" --method lora --micro-batch 2 --beta 0.1 --max-len 128 --json
[ "$rc" = 0 ] && grep -q '"command":"dpo"' "$tmp/plan_dpo.out" && grep -q '"rows":4' "$tmp/plan_dpo.out" && [ "$(num reference_bytes "$tmp/plan_dpo.out")" -gt 0 ] &&
  ok "plan dpo: 2 rows per pair, its reference pass" || bad "plan dpo" "$(cat "$tmp/plan_dpo.out") $err"
# pre-tokenized pairs: rows as long as the longest pair (7 + 10 ... = 17 tokens), 146 tokens held
run plan_dpo2 "$tuna" plan dpo --model "$model" --data "$root/tests/fixtures/dpo/full_sigmoid/data.jsonl" --max-len 128 --json
[ "$(num seq_len "$tmp/plan_dpo2.out")" = 17 ] && [ "$(num data_bytes "$tmp/plan_dpo2.out")" = $((8 * 146 + 12 * 16 * 17)) ] &&
  ok "plan dpo --data: T from the longest pair, the pairs' tokens counted" || bad "plan dpo --data" "$(cat "$tmp/plan_dpo2.out") $err"
run plan_gen "$tuna" plan generate --model "$model" --quant nf4 --json
run plan_gen2 "$tuna" plan generate --model "$model" --json
[ "$(num frozen_bytes "$tmp/plan_gen.out")" -lt "$(num frozen_bytes "$tmp/plan_gen2.out")" ] && [ "$(num frozen_bytes "$tmp/plan_gen2.out")" = 6296448 ] &&
  ok "plan generate: as stored, and smaller with --quant nf4" || bad "plan generate" "$(cat "$tmp/plan_gen.out" "$tmp/plan_gen2.out")"
# an untied embedding used in place: one lookup chunk (32 rows) resident, not the table
run plan_untied "$tuna" plan generate --model "$root/tests/fixtures/parity/llama_gqa" --json
[ "$(num frozen_bytes "$tmp/plan_untied.out")" = $((281856 - 100 * 64 * 4 + 32 * 64 * 4)) ] &&
  ok "plan: an untied embedding counts 32 rows (llama_gqa, fp32, 64 wide)" || bad "plan untied embedding" "$(cat "$tmp/plan_untied.out")"
run plan_cfg "$tuna" plan pretrain --config "$model/config.json" --json
[ "$rc" = 0 ] && [ "$(num trainable_bytes "$tmp/plan_cfg.out")" = 12592896 ] && ok "plan pretrain from a config.json" || bad "plan pretrain" "$err"
run plan_bad "$tuna" plan --model "$model" --frobnicate
expect "plan: an unknown option is refused" 2 "unknown option or missing value '--frobnicate'"
run plan_badm "$tuna" plan --model "$model" --method dora
expect "plan: an unknown method is refused" 2 "--method 'dora' is not available"
run plan_badc "$tuna" plan bake --model "$model"
expect "plan: an unknown command is refused" 2 "'bake' is not a command plan knows"

# --- refused before loading ---
run refuse env TUNA_MEM_AVAILABLE=64M "$tuna" sft --model "$tmp/sharded" --data "$data" --out "$tmp/run1" --steps 1 --quiet
expect "sft that cannot fit: exit 2 before reading a weight" 2 "sft: this run needs about"
grep -q "but 64 MiB are available (TUNA_MEM_AVAILABLE)" <<<"$err" && grep -q "settings that fit: .*--method lora" <<<"$err" &&
  [ "$(wc -l < "$tmp/refuse.err")" = 1 ] && ok "one line: needed, available, settings that fit" || bad "refusal text" "$err"
ls -a "$tmp" | grep -q 'run1' && bad "no output folder" "$(ls -a "$tmp")" || ok "no output folder created"
run refuse_dpo env TUNA_MEM_AVAILABLE=1M "$tuna" dpo --model "$model" --data "$root/tests/fixtures/dpo/full_sigmoid/data.jsonl" --out "$tmp/run2"
expect "dpo that cannot fit: exit 2" 2 "dpo: this run needs about"
grep -q "no setting fits" <<<"$err" && ok "nothing fits in 1 MiB: said so" || bad "no setting fits" "$err"
run refuse_pre env TUNA_MEM_AVAILABLE=8M "$tuna" pretrain --config "$model/config.json" --tokenizer "$model" --data "$data" --out "$tmp/run3"
expect "pretrain that cannot fit: exit 2" 2 "pretrain: this run needs about"
run pass_cut env TUNA_MEM_AVAILABLE=64M "$tuna" sft --model "$tmp/sharded" --data "$data" --out "$tmp/run4" --steps 1 --quiet --no-mem-check
[ "$rc" != 0 ] && ! grep -q "this run needs" <<<"$err" && ok "--no-mem-check: goes on to load (and meets the cut shard)" || bad "--no-mem-check on cut shards" "exit $rc: $err"
run pass env TUNA_MEM_AVAILABLE=64M "$tuna" sft --model "$model" --data "$data" --out "$tmp/run5" --steps 1 --batch 2 --quiet --no-mem-check
[ "$rc" = 0 ] && [ -f "$tmp/run5/model.safetensors" ] && ok "--no-mem-check: the run goes through" || bad "--no-mem-check run" "exit $rc: $err"
run fits env TUNA_MEM_AVAILABLE=64G "$tuna" sft --model "$model" --data "$data" --out "$tmp/run6" --steps 1 --batch 2 --quiet
[ "$rc" = 0 ] && ok "enough memory: the run goes through" || bad "run with room" "exit $rc: $err"

# --- partial checkpointing: the fewest blocks that fit a limit ---
lopts=(--model "$model" --data "$data" --batch 8 --seq-len 24 --method lora)   # 24: the data's longest row
for k in 0 1 2 6 7; do run "plan_ck$k" "$tuna" plan "${lopts[@]}" --checkpoint-layers $k --json; done
a0=$(num activation_bytes "$tmp/plan_ck0.out"); a1=$(num activation_bytes "$tmp/plan_ck1.out")
a2=$(num activation_bytes "$tmp/plan_ck2.out"); a6=$(num activation_bytes "$tmp/plan_ck6.out")
run plan_gc "$tuna" plan "${lopts[@]}" --grad-checkpoint --json
[ -n "$a6" ] && [ "$a1" = "$a0" ] && [ "$a2" -lt "$a1" ] && [ $((a0 - a6)) = $((5 * (a1 - a2))) ] &&
  [ "$(num activation_bytes "$tmp/plan_gc.out")" = "$a6" ] && [ "$(num checkpoint_layers "$tmp/plan_gc.out")" = 6 ] &&
  ok "plan --checkpoint-layers: each block past the first frees one block's activations; 6 of 6 = --grad-checkpoint" ||
  bad "plan --checkpoint-layers" "$a0 $a1 $a2 $a6 $(cat "$tmp/plan_gc.out")"
run plan_ck7 "$tuna" plan "${lopts[@]}" --checkpoint-layers 7
expect "plan --checkpoint-layers past the model's blocks is refused" 2 "the model has 6 blocks"
p3=$(num peak_rss_bytes "$tmp/plan_ck2.out"); p6=$(num peak_rss_bytes "$tmp/plan_ck6.out")
run plan_ck3 "$tuna" plan "${lopts[@]}" --checkpoint-layers 3 --json
lim=$(( $(num peak_rss_bytes "$tmp/plan_ck3.out") + 1000 ))   # fits with 3 blocks, not with 2
run plan_max "$tuna" plan "${lopts[@]}" --max-memory "$lim" --json
[ "$rc" = 0 ] && [ "$(num checkpoint_layers "$tmp/plan_max.out")" = 3 ] && [ "$p3" -gt "$lim" ] &&
  [ "$(num peak_rss_bytes "$tmp/plan_max.out")" -le "$lim" ] && ok "plan --max-memory: the fewest checkpointed blocks that fit (3)" ||
  bad "plan --max-memory" "$lim: $(cat "$tmp/plan_max.out") $err"
run fit_ck env TUNA_MEM_AVAILABLE=64G "$tuna" sft "${lopts[@]}" --max-memory "$lim" --out "$tmp/run7" --steps 1
[ "$rc" = 0 ] && grep -q "note: sft: .*(--max-memory): checkpointing 3 of 6 blocks" <<<"$err" &&
  grep -q '"checkpoint_layers": *3' "$tmp/run7/train_args.json" && ok "sft --max-memory: checkpoints 3 of 6 blocks, says so, records it" ||
  bad "sft --max-memory" "exit $rc: $err $(grep -o '"checkpoint_layers[^,]*' "$tmp/run7/train_args.json" 2>&1)"
run fit_env env TUNA_MEM_AVAILABLE="$lim" "$tuna" sft "${lopts[@]}" --out "$tmp/run8" --steps 1 --quiet
[ "$rc" = 0 ] && [ ! -s "$tmp/fit_env.err" ] && grep -q '"checkpoint_layers": *3' "$tmp/run8/train_args.json" &&
  ok "too little memory available: the same 3 blocks checkpointed (--quiet: no note)" || bad "sft fit to TUNA_MEM_AVAILABLE" "exit $rc: $err"
run fit_none "$tuna" sft "${lopts[@]}" --max-memory $((p6 - 1000)) --out "$tmp/run9" --steps 1
expect "sft --max-memory below every setting: refused" 2 "are available (--max-memory)"
run fit_bad "$tuna" sft "${lopts[@]}" --max-memory lots --out "$tmp/run9"
expect "sft --max-memory needs a size" 2 "--max-memory needs a size"
run fit_k "$tuna" sft "${lopts[@]}" --checkpoint-layers 9 --out "$tmp/run9" --steps 1
expect "sft --checkpoint-layers past the model's blocks is refused" 2 "--checkpoint-layers 9: the model has 6 blocks"

finish
