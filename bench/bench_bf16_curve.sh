#!/usr/bin/env bash
# Issue 22's training-curve check: the demo (scripts/demo.sh: LoRA r16 on
# models/tuna-stories, story -> JSON) run twice with the same data and seed,
# fp32 and --bf16, for STEPS LoRA steps (default 300). Prints each
# evaluation's validation loss side by side with their relative difference
# (target: within 2% at every evaluation) and both runs' LoRA tokens/s; then
# the demo at its own size (500 steps) with --bf16 and its check, the
# accuracy bar (valid JSON >= 95%, fields >= 80%; at 300 steps neither run
# reaches it: the bar is set for 500).
#   bench/bench_bf16_curve.sh [STEPS]      (output under runs/bf16-curve)
# Exit 1 when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
out=runs/bf16-curve
make -s all
build/tuna --version | grep '^kernels:'
mkdir -p "$out"
for mode in fp32 bf16; do
  flags=; [ $mode = bf16 ] && flags=--bf16
  DEMO_OUT="$out/$mode" DEMO_STEPS=$steps DEMO_SFT_FLAGS=$flags bash scripts/demo.sh > "$out/$mode.log" 2>&1 || true
  grep '^check:' "$out/$mode.log" | sed "s/^/$mode, $steps steps: /" || echo "$mode: no check line (see $out/$mode.log)"
done
evals() { grep -o '"step":[0-9]*,"eval_loss":[0-9.e+-]*' "$1/lora/metrics.jsonl" | sed 's/"step"://; s/,"eval_loss":/ /'; }
tps() { grep -o '"tokens_per_s":[0-9.]*' "$1/lora/metrics.jsonl" | cut -d: -f2 | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
join <(evals "$out/fp32") <(evals "$out/bf16") | awk -v t32="$(tps "$out/fp32")" -v t16="$(tps "$out/bf16")" '
  BEGIN { printf "%6s %12s %12s %9s\n", "step", "fp32 val", "bf16 val", "rel diff"; worst = 0 }
  { d = ($3 - $2) / $2; if (d < 0) d = -d; if (d > worst) worst = d; printf "%6d %12.5f %12.5f %8.3f%%\n", $1, $2, $3, 100 * d; n++ }
  END { printf "LoRA tokens/s (median): fp32 %s, bf16 %s (%.2fx)\n", t32, t16, (t32 > 0 ? t16 / t32 : 0);
        ok = n > 0 && worst <= 0.02; printf "worst eval-loss difference %.3f%% over %d evaluations (<= 2%%): %s\n", 100 * worst, n, ok ? "ok" : "NOT MET"; exit ok ? 0 : 1 }'
DEMO_OUT="$out/demo-bf16" DEMO_SFT_FLAGS=--bf16 bash scripts/demo.sh > "$out/demo-bf16.log" 2>&1 || true
grep '^check:' "$out/demo-bf16.log" | sed "s/^/bf16, the demo's 500 steps: /"
grep -q '^check: .*: ok' "$out/demo-bf16.log"
