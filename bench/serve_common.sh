# Sourced by bench/bench_serve.sh and scripts/soak_serve.sh: starting a
# `tuna serve --port 0` in the background and reading its state.
# serve_start LOG COMMAND... : runs COMMAND (ending in `serve ... --port 0`)
# with stderr to LOG; sets spid (the server's own pid) and port, or returns 1
serve_start() {
  local log=$1; shift
  : >"$log"
  "$@" 2>"$log" >/dev/null &
  spid=$!
  port=
  for _ in $(seq 300); do
    port=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$log" | head -1 | grep -oE '[0-9]+$') && [ -n "$port" ] && return 0
    kill -0 "$spid" 2>/dev/null || { echo "server exited: $(tail -5 "$log")" >&2; return 1; }
    sleep 0.1
  done
  echo "no 'listening on' line in 30 s" >&2
  return 1
}
# the server's resident memory in MiB (/proc/PID/status VmRSS)
serve_rss() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$spid/status"; }
