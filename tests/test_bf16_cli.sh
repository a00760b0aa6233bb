#!/usr/bin/env bash
# --bf16 through the CLI (issue 22): tests/test_bf16_cli.sh BUILD_DIR.
#   - tuna --version names the kernels: a bf16 GEMM on this CPU, none when
#     ONEDNN_MAX_CPU_ISA keeps oneDNN below AVX512-BF16;
#   - sft --bf16 (LoRA on the shipped bf16 model) runs, records "bf16": true
#     in train_args.json, and its step losses are close to (1e-2) but not
#     the same as the fp32 run's;
#   - without bf16 instructions: one note, "bf16": false, the fp32 run's
#     losses exactly;
#   - dpo --bf16 (its reference pass too) and pretrain --bf16 run;
#   - tuna plan --bf16 counts the bf16 copies of a full fine-tuning's
#     weights (2 bytes each), and nothing where the CPU has no bf16 GEMM.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"
[ -x "$tuna" ] || { bad "$tuna is built"; finish; }
tap_tmp bf16_cli
export XDG_CACHE_HOME=$tmp/cache
nobf16=(env ONEDNN_MAX_CPU_ISA=AVX512_CORE)
data=$root/tests/fixtures/parity/llama_gqa/data.jsonl   # pre-tokenized, ids < 100
num() { grep -o "\"$1\":[0-9.e+-]*" "$2" | head -1 | cut -d: -f2; }
losses() { grep -o '"loss":[0-9.e+-]*' "$1/metrics.jsonl" | cut -d: -f2; }

run ver "$tuna" --version
if ! grep -q '^kernels: .*bf16 GEMM: oneDNN' "$tmp/ver.out"; then
  absent "a bf16 GEMM on this CPU ($(grep '^kernels:' "$tmp/ver.out"))"
  finish
fi
ok "tuna --version names the bf16 GEMM: $(grep '^kernels:' "$tmp/ver.out")"
run ver2 "${nobf16[@]}" "$tuna" --version
grep -q '^kernels: fp32 GEMM: OpenBLAS .*; bf16 GEMM: none' "$tmp/ver2.out" && ok "--version without bf16 instructions: none" ||
  bad "--version under ONEDNN_MAX_CPU_ISA=AVX512_CORE" "$(cat "$tmp/ver2.out")"

sft=(sft --model "$model" --data "$data" --method lora --lora-targets all-linear --steps 3 --batch 2 --lr 1e-3)
run f32 "$tuna" "${sft[@]}" --quiet --out "$tmp/f32"
run b16 "$tuna" "${sft[@]}" --quiet --out "$tmp/b16" --bf16
[ "$rc" = 0 ] && grep -q '"bf16": true' "$tmp/b16/train_args.json" && ok "sft --bf16 runs, train_args.json bf16 true" ||
  bad "sft --bf16" "exit $rc $err"
paste <(losses "$tmp/f32") <(losses "$tmp/b16") | awk 'NF == 2 { n++; d = $2 - $1; if (d < 0) d = -d; if (d > 1e-2 * $1) far++; if (d > 0) diff++ }
  END { exit !(n == 3 && !far && diff) }' && ok "sft --bf16: step losses within 1e-2 of fp32's, not equal" ||
  bad "sft --bf16 losses" "fp32 $(losses "$tmp/f32" | tr '\n' ' ') bf16 $(losses "$tmp/b16" | tr '\n' ' ')"

run nob "${nobf16[@]}" "$tuna" "${sft[@]}" --out "$tmp/nob" --bf16
[ "$rc" = 0 ] && [ "$(grep -c 'tuna: note: --bf16: .*bf16 GEMM: none' "$tmp/nob.err")" = 1 ] &&
  grep -q '"bf16": false' "$tmp/nob/train_args.json" && ok "no bf16 instructions: one note, train_args.json bf16 false" ||
  bad "--bf16 without bf16 instructions" "exit $rc $(grep note "$tmp/nob.err")"
[ "$(losses "$tmp/nob")" = "$(losses "$tmp/f32")" ] && ok "no bf16 instructions: the fp32 run's losses exactly" ||
  bad "fallback losses" "$(losses "$tmp/nob" | tr '\n' ' ') vs $(losses "$tmp/f32" | tr '\n' ' ')"

run dpo "$tuna" dpo --model "$root/tests/fixtures/parity/llama_gqa" --data "$root/tests/fixtures/dpo/lora_sigmoid/data.jsonl" \
  --method lora --steps 2 --batch 2 --quiet --bf16 --out "$tmp/dpo"
[ "$rc" = 0 ] && grep -q '"bf16": true' "$tmp/dpo/train_args.json" && ok "dpo --bf16 runs" || bad "dpo --bf16" "exit $rc $err"
printf '{"text": "%s"}\n' "Once upon a time there was a little cat." "The dog ran to the park and played all day." > "$tmp/text.jsonl"
run pre "$tuna" pretrain --config "$model/config.json" --tokenizer "$model" --data "$tmp/text.jsonl" --seq-len 16 --batch 2 --steps 2 \
  --quiet --bf16 --out "$tmp/pre"
[ "$rc" = 0 ] && grep -q '"bf16": true' "$tmp/pre/train_args.json" && ok "pretrain --bf16 runs" || bad "pretrain --bf16" "exit $rc $err"

run p32 "$tuna" plan --model "$root/tests/fixtures/parity/llama_gqa" --method full --batch 2 --seq-len 32 --json
run p16 "$tuna" plan --model "$root/tests/fixtures/parity/llama_gqa" --method full --batch 2 --seq-len 32 --json --bf16
run pno "${nobf16[@]}" "$tuna" plan --model "$root/tests/fixtures/parity/llama_gqa" --method full --batch 2 --seq-len 32 --json --bf16
b=$(num bf16_bytes "$tmp/p16.out"); w=$(num trainable_bytes "$tmp/p16.out")
# full fine-tuning: copies of every linear weight (the parameters less the embedding and norms), plus buffers
awk -v b="$b" -v w="$w" -v p="$(num peak_rss_bytes "$tmp/p16.out")" -v q="$(num peak_rss_bytes "$tmp/p32.out")" \
  'BEGIN { exit !(b > 0 && b < w && p - q == b) }' && [ "$(num bf16_bytes "$tmp/p32.out")" = 0 ] &&
  ok "plan --bf16: $b bytes of copies and buffers on the peak" || bad "plan --bf16" "$(cat "$tmp/p16.out")"
[ "$(num bf16_bytes "$tmp/pno.out")" = 0 ] && ok "plan --bf16 without bf16 instructions: nothing" || bad "plan --bf16 no bf16" "$(cat "$tmp/pno.out")"
finish
