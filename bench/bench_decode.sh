#!/bin/sh
# bench_decode.sh — one-row decoding from fp32 and from bf16 weights (issue 22
# item 2: bf16 must give >= 1.7x the fp32 decode tokens/s). For each model
# shape, writes a random fp32 checkpoint (`tuna init`), then runs
# build/bench/bench_decode on it as stored (fp32) and with --dtype bf16
# (converted at load, computed in bf16), ROUNDS times each alternately, and
# prints the median decode tokens/s of each and their ratio. Run it from the
# repository root:
#
#   bench/bench_decode.sh [--native] [--profile] [--rounds N] [--prompt N] [--new N] [CONFIG ...]
#
# CONFIG: a path or a name in bench/configs (default gpt2-124m smollm-135m).
# The environment's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as they are;
# --native unsets both for the benchmark commands only. --profile prints where
# each run's decode step goes (GEMV time and the rate it reads the weights at,
# attention, the rest) on stderr. Checkpoints go to a
# temporary folder (about 0.5 GB per shape), removed at the end.
set -eu

native=0
prof=
rounds=3
prompt=128
new=32
while [ $# -gt 0 ]; do
    case "$1" in
        --native) native=1; shift ;;
        --profile) prof=--profile; shift ;;
        --rounds) rounds=$2; shift 2 ;;
        --prompt) prompt=$2; shift 2 ;;
        --new) new=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || set -- gpt2-124m smollm-135m
[ -f include/tuna.h ] || { echo "bench_decode.sh: run me from the repository root" >&2; exit 2; }
make --no-print-directory build/tuna build/bench/bench_decode >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$native" = 1 ]; then envcmd="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"; else envcmd=env; fi

# decode tokens/s of one run (the number before " tokens/s (" on its line)
decode_tps() {
    $envcmd build/bench/bench_decode --model "$1" --dtype "$2" --prompt "$prompt" --new "$new" $prof | tee -a "$tmp/log" >&2
    sed -n 's/.*decode [0-9]* steps x [0-9]* rows: \([0-9.]*\) tokens\/s.*/\1/p' "$tmp/log" | tail -n 1
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "kernels: $(build/tuna --version 2>/dev/null | tr '\n' ' ')" >&2
printf '%-14s %-22s %12s %12s %7s\n' model "OpenBLAS core" "fp32 tok/s" "bf16 tok/s" ratio
for config in "$@"; do
    case "$config" in */*|*.json) ;; *) config=bench/configs/$config.json ;; esac
    name=$(basename "$config" .json)
    build/tuna init --config "$config" --out "$tmp/$name" --dtype f32 --overwrite >&2
    : > "$tmp/f32"; : > "$tmp/bf16"
    r=0
    while [ "$r" -lt "$rounds" ]; do
        decode_tps "$tmp/$name" auto >> "$tmp/f32"
        decode_tps "$tmp/$name" bf16 >> "$tmp/bf16"
        r=$((r + 1))
    done
    f=$(median < "$tmp/f32"); b=$(median < "$tmp/bf16")
    core=$(sed -n "s/.*OpenBLAS core \([^ ]*\) (OPENBLAS_CORETYPE \([^)]*\)).*/\1 (env \2)/p" "$tmp/log" | tail -n 1)
    printf '%-14s %-22s %12s %12s %6.2fx\n' "$name" "$core" "$f" "$b" "$(echo "$b $f" | awk '{print $1 / $2}')"
    rm -rf "${tmp:?}/$name"
done
