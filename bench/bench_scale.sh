#!/usr/bin/env bash
# bench/bench_scale.sh — issue 21's rows at real model sizes: writes
# random-weight bf16 checkpoints of real shapes (build/bench/make_checkpoint:
# exact HF configs, sharded at 4 GiB with model.safetensors.index.json) into a
# temporary folder, runs each command under /usr/bin/time -f %M with a few
# steps, and prints one table: command, peak RSS, target, `tuna plan`'s
# prediction for the same options, their ratio, tokens/s. The training rows
# run with --profile: a second table says where their step time went (GEMMs,
# dequantization tiles, attention, the rest; GEMM GFLOP/s beside this
# machine's sgemm at 1024x4096x4096, with the OpenBLAS kernel that ran), and
# the row qlora-vs-lora runs qlora's exact step on the bf16 base with
# --method lora, so the qlora/lora step-time ratio is printed (issue 21: at
# most 1.3 at 7B).
#
#   bench/bench_scale.sh [SHAPES] [--rows LIST] [--steps N] [--keep]
#     SHAPES  tinyllama (TinyLlama-1.1B), llama32 (Llama-3.2-1B), 1b (both),
#             7b (Llama-2-7B), 8b (Llama-3-8B), all (default: 1b)
#     --rows  comma list of: info, qlora, qlora-bf16, qlora-vs-lora, lora, generate, eval,
#             merge, export, full (default: all of them)
#     --steps optimizer steps per training row (default 2)
#     --keep  keep the folder (its path is printed)
# Needs `make` first (build/tuna, build/bench/make_checkpoint, bench_train), ~2.3 GB of
# disk per 1B shape and ~16 GB per 7-8B shape, and minutes per row at 7B. Not
# part of `make test`. Tokenizers come from ../shared/data/tokenizers (Llama 2
# for the 32 000-token shapes, Llama 3.2's vocab.json/merges.txt for 128 256).
set -u
cd "$(dirname "$0")/.." || exit 1
root=$PWD
tuna=$root/build/tuna
mk=$root/build/bench/make_checkpoint
shared=$root/../shared/data/tokenizers
shapes=() rows=info,qlora,qlora-bf16,qlora-vs-lora,lora,generate,eval,merge,export,full steps=2 keep=
while [ $# -gt 0 ]; do
  case $1 in
    tinyllama) shapes+=(tinyllama-1.1b) ;;
    llama32) shapes+=(llama-3.2-1b) ;;
    1b) shapes+=(tinyllama-1.1b llama-3.2-1b) ;;
    7b) shapes+=(llama-2-7b) ;;
    8b) shapes+=(llama-3-8b) ;;
    all) shapes+=(tinyllama-1.1b llama-3.2-1b llama-2-7b llama-3-8b) ;;
    --rows) rows=$2; shift ;;
    --steps) steps=$2; shift ;;
    --keep) keep=1 ;;
    *) echo "usage: bench/bench_scale.sh [tinyllama|llama32|1b|7b|8b|all] [--rows LIST] [--steps N] [--keep]" >&2; exit 2 ;;
  esac
  shift
done
[ ${#shapes[@]} -gt 0 ] || shapes=(tinyllama-1.1b llama-3.2-1b)
if [ ! -x "$tuna" ] || [ ! -x "$mk" ]; then echo "bench_scale: run make first (build/tuna, build/bench/make_checkpoint)" >&2; exit 1; fi
[ -x /usr/bin/time ] || { echo "bench_scale: needs /usr/bin/time (Debian package time)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tuna-scale.XXXXXX") || exit 1
if [ -n "$keep" ]; then echo "folder: $tmp (kept)"; else trap 'rm -rf "$tmp"' EXIT; fi
export XDG_CACHE_HOME=$tmp/cache
mkdir -p "$XDG_CACHE_HOME"
has_row() { case ",$rows," in *",$1,"*) return 0 ;; esac; return 1; }

sgemm=$("$root/build/bench/bench_train" --sgemm-only 1024x4096x4096) || sgemm=
sgemm_g=$(echo "$sgemm" | awk '{ print $3 }')
ptable=$tmp/profile.txt
printf '%-56s %8s %8s %8s %9s %11s %9s %8s %9s %7s\n' command "step s" "tok/s" "gemm s" "dequant s" "attention s" "convert s" "rest s" "GEMM GF/s" "% sgemm" > "$ptable"
# profile LABEL NAME: adds the --profile block of $tmp/NAME.log to the second
# table (seconds per step); sets $step_s
profile() {
  step_s=$(awk -v label="$1" -v sg="${sgemm_g:-0}" -v out="$ptable" '
    /^profile: / { n = $2; t = $4; tps = $6 }
    /^  (gemm|dequant|attention|convert|rest) / { s[$1] = $2; if ($1 == "gemm") g = $5 }
    END { if (!n) exit 1
          pc = sg > 0 ? 100 * g / sg : 0
          printf "%-56s %8.3f %8.0f %8.3f %9.3f %11.3f %9.3f %8.3f %9.1f %6.0f%%\n", label, t / n, tps, s["gemm"] / n, s["dequant"] / n,
                 s["attention"] / n, s["convert"] / n, s["rest"] / n, g, pc >> out
          printf "%.6f", t / n }' "$tmp/$2.log") || step_s=
}
table=$tmp/table.txt
printf '%-56s %10s %7s %8s %10s %6s %9s\n' command "peak RSS" "time" target "plan" ratio "tokens/s" > "$table"
# gib BYTES: "1.23 GiB", or "45.6 MiB" below 1 GiB
gib() { awk -v b="$1" 'BEGIN { if (b >= 1073741824) printf "%.2f GiB", b / 1073741824; else printf "%.1f MiB", b / 1048576 }'; }
# row LABEL TARGET_GIB PLAN_BYTES TOKS: adds the last measured run to the table
row() {
  local kb secs rss ratio=- plan=-
  read -r kb secs < <(tail -1 "$tmp/rss" 2>/dev/null)
  rss=$(gib "$((${kb:-0} * 1024))")
  if [ -n "$3" ] && [ "$3" != - ]; then
    plan=$(gib "$3")
    ratio=$(awk -v b="$3" -v k="${kb:-0}" 'BEGIN { if (k > 0) printf "%.2f", b / (k * 1024); else print "-" }')
  fi
  printf '%-56s %10s %6ss %8s %10s %6s %9s\n' "$1" "$rss" "${secs:--}" "$2" "$plan" "$ratio" "${4:--}" >> "$table"
}
# measure NAME CMD...: runs CMD under /usr/bin/time; exit code in $rc, output in $tmp/NAME.log
measure() {
  local name=$1; shift
  echo "== $name: $*" >&2
  /usr/bin/time -f "%M %e" -o "$tmp/rss" "$@" > "$tmp/$name.log" 2>&1
  rc=$?
  [ "$rc" = 0 ] || { echo "   exit $rc: $(grep -v '^Command exited' "$tmp/$name.log" | tail -2)" >&2; }
}
plan() { "$tuna" plan "$@" --json 2>/dev/null | grep -o '"peak_rss_bytes":[0-9]*' | cut -d: -f2; }
# tokens/s: a training run's last step, or generate's decoding rate ("N generated in S s (R tok/s)")
toks() { grep -E '^step |generated in' "$tmp/$1.log" | grep -o '[0-9.]* tok/s' | tail -1 | cut -d' ' -f1; }

# pre-tokenized data: 64 rows of 256 random ids (no tokenizer work in the timings)
data() {
  awk -v V="$1" 'BEGIN { srand(7); for (r = 0; r < 64; r++) { printf "{\"input_ids\":["; for (i = 0; i < 256; i++) printf "%s%d", i ? "," : "", 100 + int(rand() * (V - 200)); print "]}" } }' > "$tmp/data.jsonl"
  head -8 "$tmp/data.jsonl" > "$tmp/eval.jsonl"   # eval: 2 batches of 4 (64 rows would take 17 min at 8B)
}

for s in "${shapes[@]}"; do
  dir=$tmp/$s
  echo "== writing $s" >&2
  start=$(date +%s)
  "$mk" "$s" "$dir" 2>"$tmp/mk.log" || { cat "$tmp/mk.log" >&2; exit 1; }
  case $s in
    tinyllama-1.1b|llama-2-7b) cp "$shared/llama2/tokenizer.json" "$shared/llama2/tokenizer_config.json" "$shared/llama2/special_tokens_map.json" "$dir/"; data 32000 ;;
    *) cp "$shared/llama3.2/encoder.json" "$dir/vocab.json"; cp "$shared/llama3.2/vocab.bpe" "$dir/merges.txt"; data 128000 ;;
  esac
  echo "   $(du -sh "$dir" | cut -f1) in $(( $(date +%s) - start )) s" >&2
  big=0; case $s in llama-2-7b|llama-3-8b) big=1 ;; esac
  train=(--data "$tmp/data.jsonl" --steps "$steps" --seq-len 256 --overwrite)
  if has_row info; then
    measure info "$tuna" info --model "$dir"
    row "$s: info" "0.25" - -
  fi
  if has_row qlora; then
    opts=(--method qlora --lora-targets all-linear --lora-r 16 --batch 1 --seq-len 256 --grad-checkpoint)
    measure qlora "$tuna" sft --model "$dir" "${train[@]}" "${opts[@]}" --profile --out "$tmp/qlora"
    row "$s: sft qlora all-linear r16 b1x256 ckpt" "6" "$(plan --model "$dir" "${train[@]}" "${opts[@]}")" "$(toks qlora)"
    profile "$s: sft qlora all-linear r16 b1x256 ckpt" qlora; qlora_s=$step_s
  fi
  if has_row qlora-bf16; then
    # issue 22: the same step with bf16 GEMMs (>= 8 tokens/s at 7B)
    opts=(--method qlora --lora-targets all-linear --lora-r 16 --batch 1 --seq-len 256 --grad-checkpoint --bf16)
    measure qlora_bf16 "$tuna" sft --model "$dir" "${train[@]}" "${opts[@]}" --profile --out "$tmp/qlora_bf16"
    row "$s: sft qlora --bf16 all-linear r16 b1x256 ckpt" "6" "$(plan --model "$dir" "${train[@]}" "${opts[@]}")" "$(toks qlora_bf16)"
    profile "$s: sft qlora --bf16 all-linear r16 b1x256 ckpt" qlora_bf16
    [ -n "${qlora_s:-}" ] && [ -n "$step_s" ] &&
      awk -v s="$s" -v q="$qlora_s" -v b="$step_s" 'BEGIN { printf "%s: qlora step time fp32 / --bf16: %.2fx\n", s, q / b }' >> "$tmp/ratios.txt"
    rm -rf "$tmp/qlora_bf16"
  fi
  if has_row qlora-vs-lora; then
    opts=(--method lora --lora-targets all-linear --lora-r 16 --batch 1 --seq-len 256 --grad-checkpoint)
    measure lora_same "$tuna" sft --model "$dir" "${train[@]}" "${opts[@]}" --profile --out "$tmp/lora_same"
    row "$s: sft lora bf16 all-linear r16 b1x256 ckpt" - "$(plan --model "$dir" "${train[@]}" "${opts[@]}")" "$(toks lora_same)"
    profile "$s: sft lora bf16 all-linear r16 b1x256 ckpt" lora_same
    [ -n "${qlora_s:-}" ] && [ -n "$step_s" ] &&
      awk -v s="$s" -v q="$qlora_s" -v l="$step_s" 'BEGIN { printf "%s: qlora / lora step time, same step (b1x256 all-linear r16 ckpt): %.2fx (issue 21: <= 1.3 at 7B)\n", s, q / l }' >> "$tmp/ratios.txt"
    rm -rf "$tmp/lora_same"
  fi
  if has_row lora; then
    # at 7-8B the target (16 GiB) is below what keeping every block's
    # activations needs: --max-memory makes the run checkpoint the fewest
    # blocks that fit (plan, given the same option, makes the same choice)
    opts=(--method lora --batch 4 --seq-len 256); lab="$s: sft lora bf16 b4x256"
    [ $big = 1 ] && opts+=(--max-memory 16G) && lab="$lab --max-memory 16G"
    measure lora "$tuna" sft --model "$dir" "${train[@]}" "${opts[@]}" --profile --out "$tmp/lora"
    grep -o 'checkpointing [0-9]* of [0-9]* blocks' "$tmp/lora.log" | sed 's/^/   /' >&2
    row "$lab" "$([ $big = 1 ] && echo 16 || echo 5)" "$(plan --model "$dir" "${train[@]}" "${opts[@]}")" "$(toks lora)"
    profile "$lab" lora
  fi
  if has_row generate; then
    for q in nf4 stored; do
      qa=(); [ $q = nf4 ] && qa=(--quant nf4)
      measure "gen_$q" "$tuna" generate --model "$dir" "${qa[@]}" --prompt "Once upon a time" --max-new-tokens 16
      row "$s: generate $q, 16 new tokens" "$([ $q = nf4 ] && echo 5 || echo 15)" "$(plan generate --model "$dir" "${qa[@]}" --seq-len 32)" "$(toks "gen_$q")"
    done
  fi
  if has_row eval; then
    for q in nf4 stored; do
      qa=(); [ $q = nf4 ] && qa=(--quant nf4)
      measure "eval_$q" "$tuna" eval --model "$dir" "${qa[@]}" --data "$tmp/eval.jsonl" --batch 4
      row "$s: eval $q b4x256" "$([ $q = nf4 ] && echo 5 || echo 15)" "$(plan eval --model "$dir" "${qa[@]}" --batch 4 --seq-len 256)" -
    done
  fi
  adapter=$tmp/qlora; [ -f "$adapter/adapter_config.json" ] || adapter=$tmp/lora
  if [ -f "$adapter/adapter_config.json" ]; then
    if has_row merge; then
      measure merge "$tuna" merge --model "$dir" --adapter "$adapter" --out "$tmp/merged" --save-dtype bf16 --overwrite
      row "$s: merge (adapter)" "2" - -
      rm -rf "$tmp/merged"
    fi
    if has_row export; then
      measure export_hf "$tuna" export --model "$dir" --adapter "$adapter" --format hf --dtype bf16 --out "$tmp/hf" --overwrite
      row "$s: export hf (adapter)" "2" - -
      rm -rf "$tmp/hf"
      measure export_gguf "$tuna" export --model "$dir" --adapter "$adapter" --format gguf --type q8_0 --out "$tmp/m.gguf"
      row "$s: export gguf q8_0 (adapter)" "2" - -
      rm -f "$tmp/m.gguf"
    fi
  elif has_row merge || has_row export; then
    echo "   merge/export skipped: no adapter (run the qlora or lora row)" >&2
  fi
  if has_row full; then
    opts=(--method full --batch 1 --seq-len 256)
    measure full "$tuna" sft --model "$dir" "${train[@]}" "${opts[@]}" --out "$tmp/full"
    verdict=ran; [ "$rc" = 2 ] && grep -q "this run needs" "$tmp/full.log" && verdict=refused
    row "$s: sft full b1x256 ($verdict, exit $rc)" "$([ $big = 1 ] && echo refuse || echo -)" "$(plan --model "$dir" "${train[@]}" "${opts[@]}")" -
    [ "$verdict" = refused ] && echo "   $(grep 'this run needs' "$tmp/full.log")" >&2
  fi
  [ -n "$keep" ] || rm -rf "$dir" "$tmp/qlora" "$tmp/lora" "$tmp/full"
  qlora_s=
done
echo
cat "$table"
echo "(time: wall seconds; target in GiB; plan: tuna plan --json peak_rss_bytes for the same options; ratio = plan / measured)"
if [ "$(wc -l < "$ptable")" -gt 1 ]; then
  echo
  cat "$ptable"
  echo "(--profile, per optimizer step over all steps: gemm = k_matmul_*/k_gemm/k_matvec_half, dequant = stored weights into fp32 tiles,"
  echo " attention = k_attention_fwd/bwd, convert = activations (and tiles) rounded to bf16 (--bf16),"
  echo " rest = step wall time minus those; GEMM GF/s = GEMM FLOPs / GEMM seconds, bf16 ones included)"
  echo "${sgemm:-sgemm: bench_train --sgemm-only failed}"
  [ -f "$tmp/ratios.txt" ] && cat "$tmp/ratios.txt"
fi
