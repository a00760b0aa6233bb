#!/bin/sh
# run.sh — tuna vs PyTorch training-step benchmark for one model shape.
# Builds build/bench/bench_train if needed, runs it and tools/bench_torch.py
# (Debian's /usr/bin/python3 with python3-torch) on the same config, batch,
# sequence length and thread count, and prints both JSON lines and the ratio
# tuna/PyTorch in tokens/s. Run it from the repository root:
#
#   bench/run.sh [--native] [--steps N] [--warmup W] [CONFIG [B [T [THREADS]]]]
#
# CONFIG is a path or a name in bench/configs (default gpt2-124m), B=4, T=256,
# THREADS=2, 3 measured steps after 1 warmup. The environment's
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as they are; --native unsets
# both for the two benchmark commands only, so OpenBLAS picks its kernel from
# the CPU (the kernel that ran is printed either way).
set -eu

native=0
steps=3
warmup=1
while [ $# -gt 0 ]; do
    case "$1" in
        --native) native=1; shift ;;
        --steps) steps=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
config=${1:-gpt2-124m}
B=${2:-4}
T=${3:-256}
K=${4:-2}
case "$config" in
    */*|*.json) ;;
    *) config=bench/configs/$config.json ;;
esac
[ -f "$config" ] || { echo "run.sh: no config file $config" >&2; exit 2; }
[ -f include/tuna.h ] || { echo "run.sh: run me from the repository root" >&2; exit 2; }

make --no-print-directory build/bench/bench_train >&2

PY=/usr/bin/python3
"$PY" -c 'import torch' 2>/dev/null || { echo "run.sh: $PY has no torch (apt-get install python3-torch)" >&2; exit 2; }

if [ "$native" = 1 ]; then
    set -- env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
else
    set -- env
fi

echo "== $config  B=$B T=$T threads=$K steps=$steps warmup=$warmup $( [ "$native" = 1 ] && echo '(native OpenBLAS kernel)' )" >&2
tuna_json=$("$@" build/bench/bench_train --config "$config" --batch "$B" --seq-len "$T" \
    --steps "$steps" --warmup "$warmup" --threads "$K" --json)
echo "$tuna_json"
torch_json=$("$@" "$PY" tools/bench_torch.py --config "$config" --batch "$B" --seq-len "$T" \
    --steps "$steps" --warmup "$warmup" --threads "$K")
echo "$torch_json"

"$PY" - "$tuna_json" "$torch_json" <<'EOF'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"tuna    {a['tokens_per_s']:9.1f} tokens/s  {a['ms_per_step']:9.1f} ms/step  "
      f"{a['gflops']:6.1f} GFLOP/s = {100 * a['frac_of_sgemm']:.1f}% of sgemm (probe {a['sgemm_probe_gflops']:.1f})  "
      f"peak RSS {a['peak_rss_mib']:.0f} MiB  [{a['openblas_core']}, {a['cores_used']:.2f} cores busy]")
print(f"pytorch {b['tokens_per_s']:9.1f} tokens/s  {b['ms_per_step']:9.1f} ms/step  "
      f"{'':29}(probe {b['sgemm_probe_gflops']:5.1f})  peak RSS {b['peak_rss_mib']:.0f} MiB  [{b['openblas_core']}, {b['cores_used']:.2f} cores busy]")
for r in (a, b):
    if r['cores_used'] < 0.8 * r['threads']:
        print(f"warning: {r['impl']} got {r['cores_used']:.2f} of {r['threads']} cores (other processes ran): "
              "its figures are low and noisy; the per-probe ratio is the fairer one, or rerun on a quiet machine")
print(f"ratio tuna/pytorch {a['tokens_per_s'] / b['tokens_per_s']:.2f}x in tokens/s (median steps), "
      f"{a['tokens_per_s_best'] / b['tokens_per_s_best']:.2f}x (fastest steps), "
      f"{a['tokens_per_s_per_sgemm_gflops'] / b['tokens_per_s_per_sgemm_gflops']:.2f}x per sgemm-probe GFLOP/s\n  "
      f"(FLOPs/step = 6*P_mm*B*T + 12*L*B*NH*T^2*HD = {a['flops_per_step']:.4g})")
EOF
