#!/usr/bin/env bash
# Serve soak (`make soak-serve`, outside `make test`): `tuna serve --api-key`
# on models/tuna-stories (127.0.0.1 only) under bench/serve_load.mjs (32
# streaming clients, well-behaved) and, at the same time, bench/serve_hostile.mjs
# (slowloris on headers and on the body, 100 MB bodies with and without
# Content-Length, invalid UTF-8 in JSON strings, a wrong API key, 1,000 idle
# connections), SOAK_RUNS (3) runs of SOAK_SECONDS (60) on the same server (the
# first brings the allocator's per-thread arenas to their working size). Asserts:
# the server alive with /health ok at the end, no error for the well-behaved
# clients, every hostile attempt answered with its 4xx or closed (slowloris:
# by --request-timeout 20, well inside the run), and VmRSS after the last run within
# SOAK_RSS_PCT (5) % of after the run before. Exit 1 on any failure.
# Settings: SOAK_SECONDS, SOAK_RUNS, SOAK_CLIENTS (32), SOAK_IDLE (1000), SOAK_RSS_PCT, TUNA.
set -uo pipefail
cd "$(dirname "$0")/.."
T=${TUNA:-build/tuna}
secs=${SOAK_SECONDS:-60}; runs=${SOAK_RUNS:-3}; clients=${SOAK_CLIENTS:-32}; idle=${SOAK_IDLE:-1000}; rss_pct=${SOAK_RSS_PCT:-5}
command -v node >/dev/null || { echo "soak-serve: node (20+) needed" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((idle + clients + 200)) ] ||
  { echo "soak-serve: ulimit -n $(ulimit -n) is too low for $idle idle connections" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tuna-soak-serve.XXXXXX")
spid=
cleanup() { [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
. bench/serve_common.sh
key=soak-$RANDOM$RANDOM
threads=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
serve_start "$tmp/serve.log" "$T" serve --model models/tuna-stories --host 127.0.0.1 --port 0 --api-key "$key" \
  --parallel 8 --threads "$threads" --queue $((clients * 2)) --request-timeout 20 --quiet || exit 1
url=http://127.0.0.1:$port
echo "soak-serve: $url, $clients clients + hostile clients ($idle idle connections), $runs x $secs s, ulimit -n $(ulimit -n)," \
     "server $(grep -oE 'max-connections [0-9]+|[0-9]+ threads' "$tmp/serve.log" | head -1 || true)"
failures=0
fail() { echo "soak-serve: FAIL: $*"; failures=$((failures + 1)); }

# allowed outcomes of each hostile kind (bench/serve_hostile.mjs's names)
check_hostile() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const allowed = { "slowloris-header": ["closed", "status 408"], "slowloris-body": ["closed", "status 408"],
      "big-body": ["status 413", "closed"], "big-chunked": ["status 413", "closed"], "bad-utf8": ["status 400"],
      "wrong-key": ["status 401"], "idle": ["closed"] };
    let bad = 0;
    for (const [k, ok] of Object.entries(allowed)) {
      const o = r[k]?.outcomes ?? {};
      const wrong = Object.keys(o).filter((x) => !ok.includes(x));
      console.log(`  ${k.padEnd(17)} ${String(r[k]?.attempts ?? 0).padStart(5)} attempts: ${JSON.stringify(o)}, longest ${r[k]?.max_ms ?? 0} ms${wrong.length ? "  <- NOT " + ok.join(" / ") : ""}`);
      if (!r[k] || wrong.length) bad++;
    }
    process.exit(bad ? 1 : 0);' "$1"
}

rss=("$(serve_rss)")
for i in $(seq "$runs"); do
  node bench/serve_load.mjs --url "$url" --api-key "$key" --clients "$clients" --seconds "$secs" --json >"$tmp/load$i.json" &
  lpid=$!
  node bench/serve_hostile.mjs --url "$url" --api-key "$key" --seconds "$secs" --idle "$idle" --json >"$tmp/hostile$i.json" ||
    fail "run $i: serve_hostile.mjs failed"
  wait "$lpid" || fail "run $i: well-behaved clients saw errors: $(grep -o '"error_samples":.*' "$tmp/load$i.json")"
  kill -0 "$spid" 2>/dev/null || { fail "run $i: the server died: $(tail -5 "$tmp/serve.log")"; spid=; break; }
  # RSS once the run has settled: every connection closed and one pass of the
  # server's 5-s housekeeping (memory handed back) after it, so what is
  # compared between runs is what the server keeps, not the last moment's load
  sleep 6
  rss[i]=$(serve_rss)
  echo "run $i: well-behaved: $(grep -oE '"(requests|errors|tokens_per_s|latency_ms_p99)":[^,]*' "$tmp/load$i.json" | tr '\n' ' ')"
  echo "run $i: hostile:"
  check_hostile "$tmp/hostile$i.json" || fail "run $i: a hostile attempt got a wrong answer"
  echo "run $i: server VmRSS ${rss[i]} MiB"
done
if [ -n "$spid" ]; then
  health=$(curl -s -m 10 "$url/health")
  [[ $health == *'"status":"ok"'* ]] || fail "/health at the end: $health"
  echo "health: $health"
  a=${rss[runs - 1]:-0} b=${rss[runs]:-0}
  echo "server VmRSS MiB: start, after each run: ${rss[*]} (flat: the last within $rss_pct% of the one before)"
  awk -v a="$a" -v b="$b" -v p="$rss_pct" 'BEGIN { exit !(a > 0 && b <= a * (1 + p / 100)) }' ||
    fail "RSS grew from $a to $b MiB in the last run"
  kill -TERM "$spid"
  for _ in $(seq 200); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  wait "$spid" 2>/dev/null; rc=$?
  [ "$rc" = 0 ] || fail "server exit status $rc after SIGTERM"
  spid=
fi
grep -E 'ERROR|Assertion|Sanitizer' "$tmp/serve.log" | head -5
echo "soak-serve: failures $failures"
[ "$failures" -eq 0 ]
