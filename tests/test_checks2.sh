#!/usr/bin/env bash
# Follow-ups of the late checks (issue 19), through the CLI:
# tests/test_checks2.sh BUILD_DIR (build or build-san), from the repository
# root. Each case is a command and what it must print and exit with:
#   - an output path that is a device, a FIFO or a folder where a file is
#     expected (a file where a folder is) is refused before any work, exit 2,
#     and is still what it was (the device is our own mknod'd node, never one
#     in /dev; a FIFO when not root); a symbolic link to a regular file
#     writes the file it points at and stays a link;
#   - sft --val-split: examples without a counted token in the validation
#     share are reported with the data file's name;
#   - a folder that cannot be created for lack of room (ENOSPC from mkdir,
#     made by an LD_PRELOAD shim built here) exits 1, not 2: checkpoint
#     folder, adapter folder, tokenizer folder;
#   - generate: the prompt plus --max-new-tokens past the context is a
#     warning (RoPE: goes on; learned positions: says where it stops);
#   - sft --method prompt: the virtual tokens count in the context check.
# The models are made here by tuna init (16 positions, the tokenizer of
# models/tuna-stories) so that each case takes a fraction of a second.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"
stories=$model

[ -x "$tuna" ] || { bad "$tuna is built"; finish; }
tap_tmp checks2
export XDG_CACHE_HOME=$tmp/cache   # no token cache entry from another run
mkdir -p "$XDG_CACHE_HOME"

# model NAME CONFIG_JSON: a small model made by tuna init, with a tokenizer
model() {
  echo "$2" >"$tmp/$1.json"
  "$tuna" init --config "$tmp/$1.json" --out "$tmp/$1" >/dev/null &&
    cp "$stories"/tokenizer.json "$stories"/tokenizer_config.json "$stories"/special_tokens_map.json "$tmp/$1/"
}
model llama16 '{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":4096,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"max_position_embeddings":16,"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true,"bos_token_id":0,"eos_token_id":0}' ||
  bad "tuna init makes the 16-position llama"
model gpt16 '{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_embd":32,"n_head":2,"n_layer":1,"n_positions":16,"n_ctx":16,"vocab_size":4096,"tie_word_embeddings":true,"bos_token_id":0,"eos_token_id":0}' ||
  bad "tuna init makes the 16-position GPT-2"
for i in 1 2 3 4 5 6; do echo "{\"input_ids\":[1,2,3,4,5,6,7,8,9,$i],\"labels\":[-100,2,3,4,5,6,7,8,9,$i]}"; done >"$tmp/ten.jsonl"
printf '%s\n' '{"text":"one"}' '{"text":"two"}' '{"text":"three"}' >"$tmp/text.jsonl"

# ---- 1: outputs that are not regular files are refused, and left as they were ----
# our own character device (the same numbers as /dev/full) when root, else a FIFO
if [ "$(id -u)" = 0 ] && mknod "$tmp/node" c 1 7 2>/dev/null; then node_kind="a character device"; node_test=-c
else mkfifo "$tmp/node"; node_kind="a FIFO (named pipe)"; node_test=-p; fi
mkfifo "$tmp/fifo"
mkdir "$tmp/dir"
still() { # still NAME TEST PATH: PATH still passes test(1)'s TEST
  [ "$2" "$3" ] && ok "$1: $3 is left as it was" || bad "$1: $3 is left as it was" "$(ls -ld "$3")"
}
run gguf_node "$tuna" export --model "$tmp/llama16" --format gguf --out "$tmp/node"
expect "export gguf --out a device: refused" 2 "$tmp/node: is $node_kind, not a regular file: tuna writes its outputs by replacing a file"
still "export gguf --out a device" $node_test "$tmp/node"
run gguf_dir "$tuna" export --model "$tmp/llama16" --format gguf --out "$tmp/dir"
expect "export gguf --out a folder: refused before any work" 2 "$tmp/dir: is a folder, not a regular file"
run clean_fifo "$tuna" data clean "$tmp/text.jsonl" --out "$tmp/kept.jsonl" --dropped "$tmp/fifo"
expect "data clean --dropped a FIFO: refused" 2 "$tmp/fifo: is a FIFO (named pipe), not a regular file"
still "data clean --dropped a FIFO" -p "$tmp/fifo"
[ ! -e "$tmp/kept.jsonl" ] && ok "data clean: nothing written when an output is refused" || bad "data clean: nothing written when an output is refused"
run split_node "$tuna" data split "$tmp/text.jsonl" --out-train "$tmp/t.jsonl" --out-val "$tmp/node"
expect "data split --out-val a device: refused" 2 "$tmp/node: is $node_kind, not a regular file"
still "data split --out-val a device" $node_test "$tmp/node"
run eval_node "$tuna" eval --model "$tmp/llama16" --data "$tmp/ten.jsonl" --out "$tmp/node"
expect "eval --out a device: refused" 2 "$tmp/node: is $node_kind, not a regular file"
still "eval --out a device" $node_test "$tmp/node"
run sft_node "$tuna" sft --model "$tmp/llama16" --data "$tmp/ten.jsonl" --out "$tmp/node" --steps 1 --quiet
expect "sft --out a device: refused (a folder is written)" 2 "$tmp/node: is $node_kind, not a folder"
still "sft --out a device" $node_test "$tmp/node"
# a FIFO inside a folder output: the folder is not empty, so it is refused
# (test_atomic_dir covers atomic_file_open's own refusal of a FIFO)
mkdir "$tmp/synth"; mkfifo "$tmp/synth/train.jsonl"
run synth_fifo "$tuna" data synth --out "$tmp/synth" --train 3 --val 1 --eval 1
expect "data synth: a folder holding a FIFO is not replaced" 2 "is not empty (add --overwrite"
still "data synth" -p "$tmp/synth/train.jsonl"
# a checkpoint folder's name taken by a device: refused, not discarded (atomic_dir_commit's
# check). A run resumed in its own --out writes its checkpoints there (a new run's are staged)
"$tuna" sft --model "$tmp/llama16" --data "$tmp/ten.jsonl" --out "$tmp/ck_run" --steps 2 --save-every 1 --quiet 2>/dev/null
if [ "$node_test" = -c ]; then mknod "$tmp/ck_run/checkpoint-2" c 1 7; else mkfifo "$tmp/ck_run/checkpoint-2"; fi
run ck_node "$tuna" sft --model "$tmp/llama16" --data "$tmp/ten.jsonl" --out "$tmp/ck_run" --steps 3 --save-every 1 --quiet --resume "$tmp/ck_run/checkpoint-1"
expect "sft: a device named like the checkpoint is refused" 2 "$tmp/ck_run/checkpoint-2: is $node_kind, not a folder"
still "sft checkpoint" $node_test "$tmp/ck_run/checkpoint-2"
# a symbolic link to a regular file: the file it points at is written, the link stays
echo old >"$tmp/target.jsonl"; ln -s "$tmp/target.jsonl" "$tmp/link.jsonl"
run clean_link "$tuna" data clean "$tmp/text.jsonl" --out "$tmp/link.jsonl"
if [ "$rc" = 0 ] && [ -L "$tmp/link.jsonl" ] && [ "$(wc -l <"$tmp/target.jsonl")" = 3 ]; then ok "data clean --out a link: the target is written, the link stays"
else bad "data clean --out a link: the target is written, the link stays" "exit $rc, $(ls -l "$tmp/link.jsonl"), target: $(head -c 80 "$tmp/target.jsonl") $err"; fi
ln -s "$tmp/nowhere" "$tmp/dangling"
run dangling "$tuna" export --model "$tmp/llama16" --format gguf --out "$tmp/dangling"
expect "export --out a link to nothing: refused" 2 "$tmp/dangling: is a symbolic link to a missing file"

# ---- 2: --val-split share with examples without a counted token ----
for i in $(seq 1 40); do
  if [ $((i % 2)) = 0 ]; then echo "{\"input_ids\":[1,$i,3,4],\"labels\":[-100,-100,-100,-100]}"
  else echo "{\"input_ids\":[1,$i,3,4],\"labels\":[-100,$i,3,4]}"; fi
done >"$tmp/nocount.jsonl"
run val_split "$tuna" sft --model "$tmp/llama16" --data "$tmp/nocount.jsonl" --val-split 0.5 --out "$tmp/vs_run" --steps 1
expect "sft --val-split: the validation share's examples without counted tokens name the data file" 0 \
  "$tmp/nocount.jsonl (--val-split share): "

# ---- 3: no room for a folder: exit 1 (failure), not 2 (bad input) ----
# mkdir fails with ENOSPC for paths containing $NOSPC_MKDIR, after $NOSPC_SKIP such calls
cat >"$tmp/nospc.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
int mkdir(const char *path, mode_t mode) {
    static int seen;
    const char *pat = getenv("NOSPC_MKDIR"), *skip = getenv("NOSPC_SKIP");
    if (pat && strstr(path, pat) && seen++ >= (skip ? atoi(skip) : 0)) { errno = ENOSPC; return -1; }
    int (*real)(const char *, mode_t) = (int (*)(const char *, mode_t))dlsym(RTLD_NEXT, "mkdir");
    return real(path, mode);
}
EOF
# (an ASan build must be told that a library comes before its runtime)
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
if ${CC:-cc} -shared -fPIC -o "$tmp/nospc.so" "$tmp/nospc.c" -ldl 2>"$tmp/cc.err"; then
  run nospc_ck env NOSPC_MKDIR=.checkpoint- LD_PRELOAD="$tmp/nospc.so" "$tuna" sft --model "$tmp/llama16" --data "$tmp/ten.jsonl" --out "$tmp/ns_ck" --steps 2 --save-every 1 --quiet
  expect "sft: no room for the checkpoint folder: exit 1" 1 ".checkpoint-1.tmp: cannot create: No space left on device"
  # the CLI creates the run's staging folder .ns_lora.run-PID (first call), the adapter save creates it again (second): that one fails
  run nospc_lora env NOSPC_MKDIR=ns_lora NOSPC_SKIP=1 LD_PRELOAD="$tmp/nospc.so" "$tuna" sft --model "$tmp/llama16" --data "$tmp/ten.jsonl" --method lora --out "$tmp/ns_lora" --steps 1 --quiet
  expect "sft --method lora: no room for the adapter folder: exit 1" 1 "cannot create: No space left on device"
  run nospc_tok env NOSPC_MKDIR=ns_tok LD_PRELOAD="$tmp/nospc.so" "$tuna" tokenizer train --data "$tmp/text.jsonl" --vocab-size 300 --out "$tmp/ns_tok"
  expect "tokenizer train: no room for the folder: exit 1" 1 "ns_tok: cannot create directory: No space left on device"
else bad "the mkdir shim builds" "$(cat "$tmp/cc.err")"; fi

# ---- 5: generate past the context ----
run gen_rope "$tuna" generate --model "$tmp/llama16" --prompt "once upon a time" --max-new-tokens 20
expect "generate, RoPE: prompt + --max-new-tokens past the context is a warning" 0 \
  "--max-new-tokens 20 run past the model's context of 16 positions (max_position_embeddings): generation goes on past it"
run gen_learned "$tuna" generate --model "$tmp/gpt16" --prompt "once upon a time" --max-new-tokens 20 --json
expect "generate, learned positions: says where generation stops" 0 "--max-new-tokens 20 run past the model's 16 learned positions: generation stops after"
run gen_short "$tuna" generate --model "$tmp/llama16" --prompt "once upon a time" --max-new-tokens 2
if [ "$rc" = 0 ] && ! grep -q warning <<<"$err"; then ok "generate: within the context, no warning"; else bad "generate: within the context, no warning" "$err"; fi

# ---- 6: prompt tuning's virtual tokens take positions ----
run pt_rope "$tuna" sft --model "$tmp/llama16" --data "$tmp/ten.jsonl" --method prompt --num-virtual-tokens 8 --out "$tmp/pt_rope" --steps 1 --quiet
expect "sft --method prompt, RoPE: sequences + virtual tokens past the context are a warning" 0 \
  "ten.jsonl: 6 of 6 sequences (with 8 virtual tokens) are longer than the model's context of 16 positions"
run pt_learned "$tuna" sft --model "$tmp/gpt16" --data "$tmp/ten.jsonl" --method prompt --num-virtual-tokens 8 --out "$tmp/pt_learned" --steps 1 --quiet
expect "sft --method prompt, learned positions: an error before training" 2 \
  "ten.jsonl: 6 of 6 sequences (with 8 virtual tokens) are longer than the model's 16 learned positions (longest 18 tokens)"

finish
