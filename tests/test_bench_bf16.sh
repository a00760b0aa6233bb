#!/usr/bin/env bash
# bench/bench_train --bf16, the tuna side of bench/run.sh's bf16 rows (issue
# 22 item 5): tests/test_bench_bf16.sh BUILD_DIR, from the repository root.
# The bench programs are built in build/ only (make all), so a BUILD without
# them (build-san) uses build/'s.
#   - without --bf16 the JSON line says bf16_requested 0, bf16 0;
#   - with --bf16: bf16 is 1 exactly when `tuna --version` names a bf16 GEMM,
#     the kernels field is that line, the first loss is within 1e-2 relative
#     of fp32's, and the JSON line parses;
#   - with ONEDNN_MAX_CPU_ISA=AVX512_CORE (no bf16 instructions for oneDNN):
#     bf16 0, a one-line notice, and the same first loss as fp32.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"
bench=$(dirname "$tuna")/bench/bench_train
[ -x "$bench" ] || bench=$root/build/bench/bench_train
[ -x "$bench" ] || { absent "bench_train (make all builds build/bench/bench_train)"; finish; }
[ -x "$tuna" ] || { bad "$tuna is built"; finish; }
tap_tmp bench_bf16

cat > "$tmp/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 256, "hidden_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
 "max_position_embeddings": 64, "tie_word_embeddings": false}
EOF
# a json key's value (number or string) from a one-line object
val() { grep -o "\"$1\":\(\"[^\"]*\"\|[0-9.e+-]*\)" "$2" | head -1 | cut -d: -f2- | tr -d '"'; }
step() { "$bench" --config "$tmp/config.json" --batch 2 --seq-len 16 --steps 1 --warmup 0 --threads 2 --no-sgemm --json "$@"; }

run fp32 step
if [ "$rc" = 0 ] && [ "$(val bf16_requested "$tmp/fp32.out")" = 0 ] && [ "$(val bf16 "$tmp/fp32.out")" = 0 ]; then
  ok "without --bf16: bf16_requested 0, bf16 0"
else bad "without --bf16" "exit $rc: $(cat "$tmp/fp32.out") $err"; fi
loss32=$(val loss0 "$tmp/fp32.out")

kernels=$("$tuna" --version | sed -n 's/^kernels: //p')
want=1; grep -q 'bf16 GEMM: none' <<<"$kernels" && want=0
run bf16 step --bf16
got=$(val bf16 "$tmp/bf16.out")
if [ "$rc" = 0 ] && [ "$(val bf16_requested "$tmp/bf16.out")" = 1 ] && [ "$got" = "$want" ]; then
  ok "--bf16: bf16 $got as tuna --version's kernels say ($kernels)"
else bad "--bf16" "exit $rc, bf16 '$got' (want $want): $(cat "$tmp/bf16.out") $err"; fi
if [ "$(val kernels "$tmp/bf16.out")" = "$kernels" ]; then ok "--bf16: kernels field is tuna --version's line"
else bad "--bf16: kernels field" "'$(val kernels "$tmp/bf16.out")' vs '$kernels'"; fi
# node: scripts/deps.sh installs it (python3 is not among the packages CI has)
if node -e 'JSON.parse(require("fs").readFileSync(0, "utf8"))' <"$tmp/bf16.out" 2>/dev/null; then ok "--bf16: the JSON line parses"
else bad "--bf16: the JSON line parses" "$(cat "$tmp/bf16.out")"; fi
loss16=$(val loss0 "$tmp/bf16.out")
if awk -v a="$loss16" -v b="$loss32" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-2 * b) }'; then
  ok "--bf16: first loss $loss16 within 1e-2 relative of fp32's $loss32"
else bad "--bf16: first loss" "$loss16 vs fp32 $loss32"; fi

ONEDNN_MAX_CPU_ISA=AVX512_CORE run nobf16 step --bf16
if [ "$rc" = 0 ] && [ "$(val bf16_requested "$tmp/nobf16.out")" = 1 ] && [ "$(val bf16 "$tmp/nobf16.out")" = 0 ] \
   && grep -q 'no bf16 GEMMs' <<<"$err" && [ "$(val loss0 "$tmp/nobf16.out")" = "$loss32" ]; then
  ok "--bf16 without bf16 instructions: bf16 0, a notice, fp32's first loss"
else bad "--bf16 without bf16 instructions" "exit $rc: $(cat "$tmp/nobf16.out") $err (fp32 loss $loss32)"; fi
finish
