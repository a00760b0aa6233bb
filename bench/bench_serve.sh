#!/usr/bin/env bash
# Load benchmark of `tuna serve` on the shipped model:
#   bench/bench_serve.sh [--native] [--parallel N] [--threads N] [--clients N] [--seconds S] [--model DIR]
# starts build/tuna serve (--port 0, --parallel 8 by default), reads its RSS
# (/proc/PID/status VmRSS), runs bench/serve_load.mjs (32 streaming clients for
# 60 s by default) twice, reading the RSS after each run (growth = a leak or a
# cache that keeps growing), stops the server with SIGTERM and prints a table
# and one JSON line. The server gets --threads (default: all cores but one,
# at least 1) so that the load generator, on the same machine, has a core:
# OpenMP teams with more threads than free cores stall on every barrier
# (measured on 2 cores: 2 server threads beside the client gave stalls of
# seconds and p99 latency of 9-26 s; 1 thread gave p99 2.1 s). --native unsets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for
# the server only (the kernel that ran is printed, as the other benchmarks do).
set -euo pipefail
cd "$(dirname "$0")/.."
native=0; parallel=8; sthreads=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 )); clients=32; seconds=60; model=models/tuna-stories
while [ $# -gt 0 ]; do
  case "$1" in
    --native) native=1 ;;
    --parallel) parallel=$2; shift ;;
    --threads) sthreads=$2; shift ;;
    --clients) clients=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --model) model=$2; shift ;;
    *) echo "usage: bench/bench_serve.sh [--native] [--parallel N] [--threads N] [--clients N] [--seconds S] [--model DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ -x build/tuna ] || { echo "bench_serve: build/tuna missing (run make)" >&2; exit 1; }
command -v node >/dev/null || { echo "bench_serve: node (20+) needed" >&2; exit 1; }
envcmd=(); [ $native = 1 ] && envcmd=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
run() { "${envcmd[@]}" "$@"; }

# the OpenBLAS kernel this environment selects (as bench/bench_demo.sh reads it)
core=unknown
if [ -x build/bench/bench_train ]; then
  core=$(run build/bench/bench_train --config configs/tuna-stories.json --batch 1 --seq-len 16 --steps 1 --warmup 0 --json 2>/dev/null \
         | grep -o '"openblas_core":"[^"]*"' | cut -d'"' -f4) || core=unknown
fi
coretype_env=$([ $native = 1 ] && echo "(unset: --native)" || echo "${OPENBLAS_CORETYPE:-(unset)}")
threads=$sthreads

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tuna-bench-serve.XXXXXX")
spid=
cleanup() { [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

. bench/serve_common.sh
serve_start "$tmp/serve.log" "${envcmd[@]}" build/tuna serve --model "$model" --host 127.0.0.1 --port 0 --parallel "$parallel" \
    --threads "$sthreads" --queue $((clients * 2)) || { echo "bench_serve: the server did not start" >&2; exit 1; }
url=http://127.0.0.1:$port
rss() { serve_rss; }
cpu() { awk '{ print $14 + $15 }' "/proc/$spid/stat"; }   # utime + stime, clock ticks
hz=$(getconf CLK_TCK)

echo "bench_serve: $model, --parallel $parallel, $clients clients x ${seconds} s, OpenBLAS kernel $core (OPENBLAS_CORETYPE=$coretype_env), server --threads $threads, $(nproc) cores"
rss0=$(rss)
status=0
loads=()
for i in 1 2; do
  c0=$(cpu); t0=$(date +%s.%N)
  node bench/serve_load.mjs --url "$url" --clients "$clients" --seconds "$seconds" --json >"$tmp/run$i.json" || status=1
  [ -s "$tmp/run$i.json" ] || echo '{}' >"$tmp/run$i.json"
  c1=$(cpu); t1=$(date +%s.%N)
  busy=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz / (e - s) }')
  rss_i=$(rss)
  loads+=("$(cat /proc/loadavg | cut -d' ' -f1)")
  eval "rss$i=\$rss_i busy$i=\$busy"
done
kill -TERM "$spid"
for _ in $(seq 200); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$spid" 2>/dev/null; then echo "bench_serve: server still running 20 s after SIGTERM" >&2; status=1; fi
wait "$spid" 2>/dev/null || { rc=$?; [ $rc = 0 ] || { echo "bench_serve: server exit status $rc" >&2; status=1; }; }
spid=

field() { grep -o "\"$2\":[^,}]*" "$tmp/run$1.json" | head -1 | cut -d: -f2-; }
printf '%-30s %14s %14s\n' "" "run 1" "run 2"
for f in requests errors requests_per_s tokens_per_s mean_completion_tokens ttft_ms_p50 ttft_ms_p99 latency_ms_p50 latency_ms_p99; do
  printf '%-30s %14s %14s\n' "$f" "$(field 1 $f)" "$(field 2 $f)"
done
printf '%-30s %14s %14s\n' "server cores busy" "$busy1" "$busy2"
printf '%-30s %14s %14s\n' "load average (1 min)" "${loads[0]}" "${loads[1]}"
printf '%-30s %14s\n' "server RSS MiB before" "$rss0"
printf '%-30s %14s %14s\n' "server RSS MiB after" "$rss1" "$rss2"
for i in 1 2; do grep -o '"error_samples":\[[^]]*\]' "$tmp/run$i.json" | grep -v '\[\]' | sed "s/^/run $i: /" || true; done
echo "{\"model\":\"$model\",\"parallel\":$parallel,\"clients\":$clients,\"seconds\":$seconds,\"openblas_core\":\"$core\",\"openblas_coretype_env\":\"$coretype_env\",\"threads\":$threads,\"rss_mib\":{\"start\":$rss0,\"after_run1\":$rss1,\"after_run2\":$rss2},\"server_cores_busy\":[$busy1,$busy2],\"run1\":$(cat "$tmp/run1.json"),\"run2\":$(cat "$tmp/run2.json")}"
exit $status
