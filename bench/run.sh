#!/bin/sh
# run.sh — tuna vs PyTorch training-step benchmark for one model shape.
# Builds build/bench/bench_train if needed, runs it and tools/bench_torch.py
# (Debian's /usr/bin/python3 with python3-torch) on the same config, batch,
# sequence length and thread count, four ways: tuna fp32, tuna --bf16 (bf16
# linear layers, fp32 accumulation), PyTorch fp32 and PyTorch under
# torch.autocast bf16; prints the four JSON lines and the ratios in tokens/s
# (tuna/PyTorch fp32; tuna bf16 over tuna fp32, PyTorch fp32 and PyTorch
# autocast), with the OpenBLAS kernel, tuna's GEMM kernels and whether bf16
# ran. Run it from the repository root:
#
#   bench/run.sh [--native] [--no-bf16] [--steps N] [--warmup W] [CONFIG [B [T [THREADS]]]]
#
# CONFIG is a path or a name in bench/configs (default gpt2-124m), B=4, T=256,
# THREADS=2, 3 measured steps after 1 warmup. The environment's
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as they are; --native unsets
# both for the benchmark commands only, so OpenBLAS picks its kernel from
# the CPU (the kernel that ran is printed either way). --no-bf16 runs the two
# fp32 rows only.
set -eu

native=0
bf16=1
steps=3
warmup=1
while [ $# -gt 0 ]; do
    case "$1" in
        --native) native=1; shift ;;
        --no-bf16) bf16=0; shift ;;
        --steps) steps=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
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
# run_tuna OPTION / run_torch OPTION ENV...: one benchmark, OPTION ("" or
# one flag) added to its command line, run under the env prefix ENV...
run_tuna() {
    opt=$1; shift
    "$@" build/bench/bench_train --config "$config" --batch "$B" --seq-len "$T" \
        --steps "$steps" --warmup "$warmup" --threads "$K" --json $opt
}
run_torch() {
    opt=$1; shift
    "$@" "$PY" tools/bench_torch.py --config "$config" --batch "$B" --seq-len "$T" \
        --steps "$steps" --warmup "$warmup" --threads "$K" $opt
}
tuna_json=$(run_tuna "" "$@")
echo "$tuna_json"
tuna_bf16_json=null
if [ "$bf16" = 1 ]; then
    tuna_bf16_json=$(run_tuna --bf16 "$@")
    echo "$tuna_bf16_json"
fi
torch_json=$(run_torch "" "$@")
echo "$torch_json"
torch_bf16_json=null
if [ "$bf16" = 1 ]; then
    torch_bf16_json=$(run_torch "--autocast=bf16" "$@")
    echo "$torch_bf16_json"
fi

"$PY" - "$tuna_json" "$torch_json" "$tuna_bf16_json" "$torch_bf16_json" <<'EOF'
import json, sys
a, b, a16, b16 = (json.loads(x) for x in sys.argv[1:5])

def tuna_line(name, r):
    print(f"{name:15} {r['tokens_per_s']:9.1f} tokens/s  {r['ms_per_step']:9.1f} ms/step  "
          f"{r['gflops']:6.1f} GFLOP/s = {100 * r['frac_of_sgemm']:.1f}% of sgemm (probe {r['sgemm_probe_gflops']:.1f})  "
          f"peak RSS {r['peak_rss_mib']:.0f} MiB  [{r['openblas_core']}, {r['cores_used']:.2f} cores busy]")

def torch_line(name, r):
    print(f"{name:15} {r['tokens_per_s']:9.1f} tokens/s  {r['ms_per_step']:9.1f} ms/step  "
          f"{'':29}(probe {r['sgemm_probe_gflops']:5.1f})  peak RSS {r['peak_rss_mib']:.0f} MiB  "
          f"[{r['openblas_core']}, {r['cores_used']:.2f} cores busy]")

def ratio(name, x, y):
    print(f"ratio {name} {x['tokens_per_s'] / y['tokens_per_s']:.2f}x in tokens/s (median steps), "
          f"{x['tokens_per_s_best'] / y['tokens_per_s_best']:.2f}x (fastest steps), "
          f"{x['tokens_per_s_per_sgemm_gflops'] / y['tokens_per_s_per_sgemm_gflops']:.2f}x per sgemm-probe GFLOP/s")

tuna_line("tuna", a)
if a16:
    tuna_line("tuna bf16", a16)
torch_line("pytorch", b)
if b16:
    torch_line("pytorch autocast", b16)
for r in (a, a16, b, b16):
    if r and r['cores_used'] < 0.8 * r['threads']:
        print(f"warning: {r['impl']} {r.get('mode', 'bf16' if r.get('bf16_requested') else 'fp32')} got {r['cores_used']:.2f} "
              f"of {r['threads']} cores (other processes ran): its figures are low and noisy; the per-probe ratio "
              "is the fairer one, or rerun on a quiet machine")
ratio("tuna/pytorch", a, b)
if a16:
    print(f"bf16: tuna {'ran bf16' if a16['bf16'] else 'did NOT run bf16 (no bf16 GEMMs on this CPU: fp32 again)'}"
          f" [{a16['kernels']}]; pytorch autocast linear output {b16['linear_out_dtype']}, "
          f"oneDNN {b16['onednn_bf16_linear']} (max ISA {b16['onednn_isa']})")
    ratio("tuna bf16/tuna fp32", a16, a)
    ratio("tuna bf16/pytorch fp32", a16, b)
    ratio("tuna bf16/pytorch autocast bf16", a16, b16)
    ratio("pytorch autocast/pytorch fp32", b16, b)
print(f"  (FLOPs/step = 6*P_mm*B*T + 12*L*B*NH*T^2*HD = {a['flops_per_step']:.4g})")
EOF
