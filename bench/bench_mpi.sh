#!/usr/bin/env bash
# Data-parallel training over Open MPI: the same full fine-tuning run of the
# shipped model (models/tuna-stories, 3.1 M parameters) in one process and
# as `mpirun -np 2`, one OpenMP thread per rank, on the demo's SFT data;
# reports tokens/s (median step, input tokens of the whole global batch),
# the all-reduce share of the step (time blocked in the gradient sums, so
# what the overlap with backward did not hide), with the overlap on and off
# (TUNA_NO_OVERLAP=1), and the final-loss agreement. One JSON line at the end.
#   bench/bench_mpi.sh [--native] [--steps N] [--batch N] [--seq-len N]   (OUT=runs/bench-mpi)
# --native unsets OPENBLAS_CORETYPE for the runs (the kernel is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
native=0; steps=30; batch=16; seq=256
while [ $# -gt 0 ]; do
  case "$1" in
    --native) native=1 ;;
    --steps) steps=$2; shift ;;
    --batch) batch=$2; shift ;;
    --seq-len) seq=$2; shift ;;
    *) echo "usage: bench/bench_mpi.sh [--native] [--steps N] [--batch N] [--seq-len N]" >&2; exit 2 ;;
  esac
  shift
done
command -v mpirun >/dev/null || { echo "bench_mpi: mpirun not found (openmpi-bin)" >&2; exit 1; }
out=${OUT:-runs/bench-mpi}
rm -rf "$out"; mkdir -p "$out"
make -s all
envp=(env OMP_NUM_THREADS=1)
[ $native = 1 ] && envp=(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=1)
core=$("${envp[@]}" build/bench/bench_train --config configs/tuna-stories.json --batch 1 --seq-len 16 --steps 1 --warmup 0 --json 2>/dev/null \
       | grep -o '"openblas_core":"[^"]*"' | cut -d'"' -f4) || core=unknown
build/tuna data synth --out "$out/data" --train 2000 --val 10 --eval 10 --seed 1 >/dev/null
args=(sft --model models/tuna-stories --data "$out/data/train.jsonl" --steps "$steps" --batch "$batch" --micro-batch 4 --seq-len "$seq"
      --lr 2e-5 --no-cache --quiet)
mpi=(mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)
[ $native = 1 ] && mpi+=(-x OPENBLAS_CORETYPE=)
"${envp[@]}" build/tuna "${args[@]}" --out "$out/one"
"${envp[@]}" "${mpi[@]}" build/tuna "${args[@]}" --out "$out/two"
"${envp[@]}" "${mpi[@]}" -x TUNA_NO_OVERLAP=1 build/tuna "${args[@]}" --out "$out/two-no-overlap"
# median over steps 2.. of tokens/s; the sums' share of the step; the last loss
summary() {
  local f=$1/metrics.jsonl med share loss
  med=$(grep -o '"tokens_per_s":[0-9.e+-]*' "$f" | tail -n +2 | cut -d: -f2 | sort -g |
        awk '{ v[NR] = $1 } END { printf "%.0f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  share=$(tail -n +2 "$f" | awk '{ if (match($0, /"allreduce_s":[0-9.e+-]+/)) a += substr($0, RSTART + 14, RLENGTH - 14)
                                   if (match($0, /"step_s":[0-9.e+-]+/)) s += substr($0, RSTART + 9, RLENGTH - 9) }
                                 END { printf "%.1f", (s > 0 ? 100 * a / s : 0) }')
  loss=$(grep -o '"loss":[0-9.e+-]*' "$f" | tail -1 | cut -d: -f2)
  echo "$med $share $loss"
}
read -r tps1 _ loss1 < <(summary "$out/one")
read -r tps2 share2 loss2 < <(summary "$out/two")
read -r tps3 share3 loss3 < <(summary "$out/two-no-overlap")
printf 'bench_mpi: models/tuna-stories full FT, batch %d x %d tokens, %d steps, OpenBLAS kernel %s, 1 thread per rank, %d cores\n' \
  "$batch" "$seq" "$steps" "$core" "$(nproc)"
printf '  %-34s %10s %14s %14s\n' run tokens/s "allreduce share" "final loss"
printf '  %-34s %10s %14s %14s\n' "1 process" "$tps1" "-" "$loss1"
printf '  %-34s %10s %13s%% %14s\n' "2 ranks, sums during backward" "$tps2" "$share2" "$loss2"
printf '  %-34s %10s %13s%% %14s\n' "2 ranks, sums after backward" "$tps3" "$share3" "$loss3"
echo "{\"batch\":$batch,\"seq_len\":$seq,\"steps\":$steps,\"openblas_core\":\"$core\",\"tokens_per_s\":{\"one\":$tps1,\"two\":$tps2,\"two_no_overlap\":$tps3},\"allreduce_pct\":{\"two\":$share2,\"two_no_overlap\":$share3},\"final_loss\":{\"one\":$loss1,\"two\":$loss2,\"two_no_overlap\":$loss3}}"
