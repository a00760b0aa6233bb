#!/usr/bin/env bash
# Checks made early and error texts that say what is true (issue 19, items 7
# and 8), through the CLI: tests/test_late_checks.sh BUILD_DIR (build or
# build-san), from the repository root. Each case is a command and what it
# must print and exit with:
#   - an out-of-vocabulary label in pre-tokenized data: FILE:LINE, exit 2,
#     before the output folder exists;
#   - sequences / prompts longer than max_position_embeddings: one warning
#     saying how many and the limit (sft, eval, eval --generate, generate);
#   - data inspect prints a bounded excerpt of a huge example;
#   - data clean in place keeps the file's permission bits;
#   - a file as --model is "not a folder"; a \u0000 escape names NUL; an
#     overflowing number is refused showing its text; a GGUF export error
#     names the output file (not its temporary name) and the reason;
#   - a write that fails for lack of room exits 1 (failure), not 2 (bad
#     input): `ulimit -f` with SIGXFSZ ignored makes write() fail with EFBIG,
#     as a full disk fails with ENOSPC, without a special file system.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"

[ -x "$tuna" ] || { bad "$tuna is built"; finish; }
tap_tmp late
export XDG_CACHE_HOME=$tmp/cache   # no token cache entry from another run
mkdir -p "$XDG_CACHE_HOME"


# ---- 7a: out-of-vocabulary labels found with the file and line, before any output ----
printf '%s\n' '{"input_ids":[1,2,3,4],"labels":[-100,2,3,4]}' '{"input_ids":[1,2,3,4],"labels":[-100,2,99999,4]}' >"$tmp/oov.jsonl"
run oov "$tuna" sft --model "$model" --data "$tmp/oov.jsonl" --out "$tmp/oov_run" --steps 2 --quiet
expect "sft: an out-of-vocabulary label is FILE:LINE, exit 2" 2 "oov.jsonl:2: label 99999"
[ ! -e "$tmp/oov_run" ] && ok "sft: no output folder after the label error" || bad "sft: no output folder after the label error" "$(ls "$tmp/oov_run")"
run oov_eval "$tuna" eval --model "$model" --data "$tmp/oov.jsonl"
expect "eval: an out-of-vocabulary label is FILE:LINE, exit 2" 2 "oov.jsonl:2: label 99999"

# ---- 7b: longer than the model's context (1024 positions): a warning ----
# ids LO HI: the JSON list LO..HI; rep N TEXT: TEXT N times (awk: no Python needed)
ids() { awk -v lo="$1" -v hi="$2" 'BEGIN { printf "["; for (i = lo; i <= hi; i++) printf "%s%d", (i > lo ? "," : ""), i; printf "]" }'; }
rep() { awk -v n="$1" -v t="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", t }'; }
{ echo "{\"input_ids\":$(ids 1 1299),\"labels\":$(ids 1 1299)}"; echo "{\"input_ids\":$(ids 1 99),\"labels\":$(ids 1 99)}"; } >"$tmp/long.jsonl"
{ echo "{\"prompt\":\"$(rep 400 'once upon a time ')\",\"completion\":\"the end\"}"; echo '{"prompt":"hi","completion":"the end"}'; } >"$tmp/longprompt.jsonl"
echo "{\"prompt\":\"$(rep 40000 'once upon a time ')\",\"completion\":\"the end\"}" >"$tmp/huge.jsonl"
ctx_warn="longer than the model's context of 1024 positions (max_position_embeddings"
run long_sft "$tuna" sft --model "$model" --data "$tmp/long.jsonl" --out "$tmp/long_run" --steps 1 --batch 1 --seq-len 2048 --quiet
expect "sft: sequences past max_position_embeddings are counted in a warning" 0 "long.jsonl: 1 of 2 sequences are $ctx_warn; longest 1299 tokens)"
# learned positions (GPT-2, 64 of them): no row exists past them, so it is an error before any output
{ echo "{\"input_ids\":$(ids 1 89),\"labels\":$(ids 1 89)}"; echo "{\"input_ids\":$(ids 1 9),\"labels\":$(ids 1 9)}"; } >"$tmp/long64.jsonl"
run long_gpt2 "$tuna" sft --model "$root/tests/fixtures/peft/gpt2_lora" --data "$tmp/long64.jsonl" --out "$tmp/long64_run" --steps 1 --seq-len 100 --quiet
expect "sft, learned positions: longer sequences are an error before training" 2 "long64.jsonl: 1 of 2 sequences are longer than the model's 64 learned positions (longest 89 tokens)"
[ ! -e "$tmp/long64_run" ] && ok "sft, learned positions: no output folder" || bad "sft, learned positions: no output folder" "$(ls "$tmp/long64_run")"
run long_eval "$tuna" eval --model "$model" --data "$tmp/long.jsonl" --seq-len 2048
expect "eval --seq-len 2048: sequences past the context are counted in a warning" 0 "long.jsonl: 1 of 2 sequences are $ctx_warn"
run long_evalgen "$tuna" eval --model "$model" --data "$tmp/longprompt.jsonl" --generate --max-new-tokens 1
expect "eval --generate: prompts past the context are counted in a warning" 0 "longprompt.jsonl: 1 of 2 prompts are $ctx_warn"
run long_gen "$tuna" generate --model "$model" --prompt "$(rep 400 'once upon a time ')" --max-new-tokens 1
expect "generate: a prompt past the context is a warning" 0 "1 of 1 prompts are $ctx_warn"
run short_gen "$tuna" generate --model "$model" --prompt "once upon a time" --max-new-tokens 1
if [ "$rc" = 0 ] && ! grep -q warning <<<"$err"; then ok "generate: a short prompt gives no warning"; else bad "generate: a short prompt gives no warning" "$err"; fi

# ---- 8d: data inspect prints a bounded excerpt ----
run inspect "$tuna" data inspect --model "$model" "$tmp/huge.jsonl"
size=$(wc -c <"$tmp/inspect.out")
if [ "$rc" = 0 ] && [ "$size" -lt 8000 ] && grep -q "more bytes of this example not shown" "$tmp/inspect.out"; then
  ok "data inspect: a 680 kB example is cut to an excerpt ($size bytes of output)"
else bad "data inspect: a 680 kB example is cut to an excerpt" "exit $rc, $size bytes of output"; fi
run inspect_json "$tuna" data inspect --model "$model" "$tmp/huge.jsonl" --json
size=$(wc -c <"$tmp/inspect_json.out")
[ "$rc" = 0 ] && [ "$size" -lt 8000 ] && ok "data inspect --json stays small ($size bytes)" || bad "data inspect --json stays small" "exit $rc, $size bytes"

# ---- 8e: data clean in place keeps the file's mode ----
printf '%s\n' '{"text":"hello there"}' '{"text":"hello there"}' '{"text":"other thing"}' >"$tmp/c.jsonl"
for mode in 640 600 755; do
  chmod "$mode" "$tmp/c.jsonl"
  run clean_mode "$tuna" data clean "$tmp/c.jsonl" --out "$tmp/c.jsonl"
  got=$(stat -c %a "$tmp/c.jsonl")
  [ "$rc" = 0 ] && [ "$got" = "$mode" ] && ok "data clean in place keeps mode $mode" || bad "data clean in place keeps mode $mode" "exit $rc, mode $got"
done

# ---- 8f: error texts say what is true ----
printf 'hello\n' >"$tmp/plain.txt"
run notdir "$tuna" generate --model "$tmp/plain.txt" --prompt hi
expect "a file as --model: not a folder" 2 "plain.txt: not a folder"
grep -q "No such file" <<<"$err" && bad "a file as --model does not say No such file" "$err" || ok "a file as --model does not say No such file"
printf '%s\n' '{"text":"a\u0000b"}' >"$tmp/nul.jsonl"
run nul "$tuna" sft --model "$model" --data "$tmp/nul.jsonl" --out "$tmp/nul_run" --strict --quiet
expect "a \\u0000 escape: NUL characters are not allowed" 2 "nul.jsonl:1: not valid JSON: NUL characters (\\u0000) are not allowed"
grep -q JSON_ALLOW_NUL <<<"$err" && bad "no JSON library flag name in the message" "$err" || ok "no JSON library flag name in the message"
big=99999999999999999999
run ov1 "$tuna" data clean "$tmp/c.jsonl" --out "$tmp/c2.jsonl" --max-chars $big
expect "data clean --max-chars $big: refused, value shown" 2 "--max-chars: '$big' is not an integer"
run ov2 "$tuna" data clean "$tmp/c.jsonl" --out "$tmp/c2.jsonl" --min-chars $big
expect "data clean --min-chars $big: refused, value shown" 2 "--min-chars: '$big' is not an integer"
run ov3 "$tuna" data split "$tmp/c.jsonl" --seed $big --out-train "$tmp/t.jsonl" --out-val "$tmp/v.jsonl"
expect "data split --seed $big: refused, value shown" 2 "--seed: '$big' is not an integer"
printf 'hello world hello world\n' >"$tmp/t.txt"
run ov4 "$tuna" tokenizer train --data "$tmp/t.txt" --out "$tmp/tok" --vocab-size 300 --max-bytes $big
expect "tokenizer train --max-bytes $big: refused, value shown" 2 "--max-bytes: '$big' is not a positive byte count"
run gguf_dir "$tuna" export --model "$model" --format gguf --out "$tmp/missing/x.gguf"
expect "export gguf into a missing folder names the output and the reason" 2 "$tmp/missing/x.gguf: cannot create (a temporary file beside it): No such file or directory"
grep -q '\.tmp\.' <<<"$err" && bad "the export error does not show the temporary name" "$err" || ok "the export error does not show the temporary name"

# ---- 8g: no room to write is a failure (exit 1), not bad input (exit 2) ----
awk 'BEGIN { for (i = 0; i < 400; i++) { printf "{\"text\": \""; for (k = 0; k < 30; k++) printf "%sw%d_%d", (k ? " " : ""), i, k; print "\"}" } }' >"$tmp/big.jsonl"
# limited CMD...: CMD with files limited to 64 KiB, SIGXFSZ ignored (write() fails with EFBIG)
limited() { (trap '' XFSZ; ulimit -f 64; exec "$@"); }
run full_clean limited "$tuna" data clean "$tmp/big.jsonl" --out "$tmp/full_c.jsonl"
expect "data clean, no room: exit 1 naming the output" 1 "full_c.jsonl: write failed: File too large"
run full_split limited "$tuna" data split "$tmp/big.jsonl" --val 0.1 --out-train "$tmp/full_t.jsonl" --out-val "$tmp/full_v.jsonl"
expect "data split, no room: exit 1" 1 "write failed: File too large"
run full_gguf limited "$tuna" export --model "$model" --format gguf --out "$tmp/full.gguf"
expect "export gguf, no room: exit 1 naming the output file" 1 "$tmp/full.gguf: write failed: File too large"
run full_hf limited "$tuna" export --model "$model" --format hf --out "$tmp/full_hf"
expect "export hf, no room: exit 1" 1 "write failed: File too large"
run full_sft limited "$tuna" sft --model "$model" --data "$tmp/c.jsonl" --out "$tmp/full_run" --steps 1 --quiet
expect "sft, no room for the model: exit 1" 1 "File too large"
# stdout on a full device (a redirection: /dev/full is only ever opened for writing here)
run full_stdout sh -c '"$0" data inspect --model "$1" "$2" >/dev/full' "$tuna" "$model" "$tmp/c.jsonl"
expect "data inspect > /dev/full: exit 1" 1 "cannot write the standard output: No space left on device"
run full_stdout2 sh -c '"$0" info --model "$1" >/dev/full' "$tuna" "$model"
expect "info > /dev/full: exit 1" 1 "cannot write the standard output"
ls "$tmp" | grep -q '\.tmp\.' && bad "no temporary file left behind" "$(ls "$tmp" | grep '\.tmp\.')" || ok "no temporary file left behind"

finish
