#!/usr/bin/env bash
# `tuna serve` end to end: tests/test_serve.sh BUILD_DIR (build or build-san),
# from the repository root. Makes a small LoRA adapter for the shipped model,
# starts the server (base + adapter, API key, --parallel 4, --ctx 512) and runs
#   - tests/serve/client.test.mjs   (the official OpenAI Node client; references
#                                     from `tuna generate --json`)
#   - tests/serve/browser.test.mjs  (the chat page)
#   - curl checks: /health, errors (400, 401, 404, 405, 413), SSE [DONE], the page
# then a server with --parallel 1 --queue 1 (429 when full) and its SIGTERM
# drain (running and queued streams finish, exit 0, later requests refused).
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build}
tuna=$root/$build/tuna
model=$root/models/tuna-stories
base_id=$(basename "$model")
adapter_id=tiny-lora
key=tuna-test-key
unset TUNA_API_KEY   # the server reads it as --api-key
san=0; case "$build" in *san*) san=1 ;; esac
# one request / one server start may take this long (ASan is several times slower)
# long requests: the 429 test's and the SIGTERM drain's streams (build: ~1000
# tokens/s at one row; ASan ~30: the drain must end within 20 s of SIGTERM)
if [ $san = 1 ]; then slow=4; qtok=100; dtok=150; else slow=1; qtok=400; dtok=1000; fi

passed=0; failed=0; skipped=0
ok()   { passed=$((passed+1)); echo "ok - $1"; }
fails=()   # repeated before RESULT: make test shows only a log's last lines
bad()  { failed=$((failed+1)); echo "not ok - $1${2:+: $2}"; fails+=("not ok - $1${2:+: $2}"); }
# check WHAT CONDITION-COMMAND... : ok when the command succeeds
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what" "${detail:-}"; fi; detail=; }
detail=
t_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_start ))s; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tuna-serve-test.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
  local l
  if [ ${#fails[@]} -gt 0 ]; then echo "# failed:"; for l in "${fails[@]}"; do echo "#   ${l:0:400}"; done; fi
  echo "# test_serve.sh: $(elapsed)"
  echo "RESULT $passed $failed $skipped"
  [ "$failed" -eq 0 ]
  exit
}

# JSON field of a file through node (no jq needed): jf FILE 'j.error.type'
jf() { node -e 'const fs=require("fs");let j;try{j=JSON.parse(fs.readFileSync(process.argv[1],"utf8"))}catch(e){process.exit(2)}
const v=(0,eval)("(j)=>("+process.argv[2]+")")(j);if(v===undefined)process.exit(3);console.log(typeof v==="string"?v:JSON.stringify(v))' "$1" "$2" 2>/dev/null; }

if [ ! -x "$tuna" ]; then bad "binary $tuna exists"; finish; fi
if ! "$tuna" serve --help >/dev/null 2>&1; then bad "tuna serve --help exits 0" "$( "$tuna" serve --help 2>&1 | head -3)"; finish; fi
have_node=1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  have_node=0; bad "client and browser tests" "node/npm not found (Node 20 needed; scripts/deps.sh installs nodejs + npm)"
fi

# ---- npm packages (tests/serve/package-lock.json) ---------------------------
npm_ok=0
if [ $have_node = 1 ]; then
  if [ ! -f tests/serve/node_modules/.package-lock.json ] ||
     [ tests/serve/package-lock.json -nt tests/serve/node_modules/.package-lock.json ]; then
    echo "# npm ci in tests/serve"
    if (cd tests/serve && timeout 300 npm ci --no-audit --no-fund) >"$tmp/npm.log" 2>&1; then
      npm_ok=1
    else
      bad "npm ci --no-audit --no-fund in tests/serve installs the test packages" \
          "$(tail -5 "$tmp/npm.log" | tr '\n' ' ') (needs the npm registry once; then node_modules is reused)"
    fi
  else
    npm_ok=1
  fi
fi

# ---- a small LoRA adapter ------------------------------------------------------
adapter=$tmp/adapter
if timeout $((60*slow)) "$tuna" data synth --out "$tmp/data" --task story-json --train 32 --val 4 --eval 4 --seed 5 >"$tmp/synth.log" 2>&1 &&
   timeout $((120*slow)) "$tuna" sft --model "$model" --data "$tmp/data/train.jsonl" --out "$adapter" --method lora \
       --steps 4 --batch 4 --seq-len 256 --lr 5e-3 --no-cache >"$tmp/sft.log" 2>&1 &&
   [ -f "$adapter/adapter_model.safetensors" ]; then
  ok "a LoRA adapter for the test ($(elapsed))"
else
  bad "a LoRA adapter for the test" "$(tail -3 "$tmp/synth.log" "$tmp/sft.log" 2>/dev/null | tr '\n' ' ')"
  finish
fi

# ---- servers ---------------------------------------------------------------------
# start_server LOG ARGS... : sets spid and surl, or returns 1
start_server() {
  local log=$1; shift
  "$tuna" serve --model "$model" --host 127.0.0.1 --port 0 "$@" 2>"$log" >"$log.out" &
  spid=$!; pids+=("$spid"); surl=
  local i port
  for ((i = 0; i < 300*slow; i++)); do
    port=$(grep -oE 'tuna serve: listening on http://127\.0\.0\.1:[0-9]+' "$log" | head -1 | grep -oE '[0-9]+$')
    if [ -n "$port" ]; then surl=http://127.0.0.1:$port; return 0; fi
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
  done
  detail="no 'listening on' line: $(tail -5 "$log" | tr '\n' ' ')"
  return 1
}
# wait_exit PID SECONDS : sets wrc (the exit status) or returns 1 on timeout
wait_exit() {
  local i
  for ((i = 0; i < $2*10; i++)); do
    if ! kill -0 "$1" 2>/dev/null; then wait "$1"; wrc=$?; return 0; fi
    sleep 0.1
  done
  return 1
}

sv1=$tmp/serve1.log
if start_server "$sv1" --adapter "$adapter_id=$adapter" --parallel 4 --api-key "$key" \
                --ctx 512 --max-body 131072; then
  ok "server starts (--port 0, base + adapter, --api-key) at $surl ($(elapsed))"
else
  bad "server starts" "$detail"; finish
fi
url1=$surl; pid1=$spid
auth=(-H "Authorization: Bearer $key")
json=(-H "Content-Type: application/json")

# ---- the OpenAI client test -------------------------------------------------------
# run_node NAME SCRIPT SECONDS : counts its ok / not ok / skip lines
run_node() {
  local name=$1 script=$2 secs=$3 rc p f s l
  SERVE_URL=$url1 SERVE_API_KEY=$key BASE_MODEL=$base_id ADAPTER_MODEL=$adapter_id \
  TUNA=$tuna MODEL_DIR=$model ADAPTER_DIR=$adapter SERVE_CTX=512 CLIENT_GLOBAL_TIMEOUT_MS=$((secs*1000 - 5000)) \
    timeout "$secs" node "$script" >"$tmp/$name.log" 2>&1; rc=$?
  sed 's/^/  /' "$tmp/$name.log"
  p=$(grep -cE '^ok( |$)' "$tmp/$name.log" | head -1)
  s=$(grep -ciE '^(skip( |$)|ok .*# *skip)' "$tmp/$name.log")
  p=$((p - $(grep -ciE '^ok .*# *skip' "$tmp/$name.log")))
  f=$(grep -cE '^not ok( |$)' "$tmp/$name.log")
  passed=$((passed+p)); failed=$((failed+f)); skipped=$((skipped+s))
  while IFS= read -r l; do fails+=("$name: $l"); done < <(grep -E '^not ok( |$)' "$tmp/$name.log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then bad "$name exits 0" "exit $rc$([ $rc = 124 ] && echo ' (timeout)')"; fi
  if [ $((p + f + s)) -eq 0 ] && [ "$rc" -eq 0 ]; then bad "$name reports its checks" "no ok/not ok lines"; fi
  echo "# $name: $p passed, $f failed, $s skipped (at $(elapsed))"
}
if [ $npm_ok = 1 ]; then
  run_node client tests/serve/client.test.mjs $((150*slow))
  if [ -f tests/serve/browser.test.mjs ]; then
    run_node browser tests/serve/browser.test.mjs $((120*slow))
  else
    bad "browser test" "tests/serve/browser.test.mjs is missing"
  fi
elif [ $have_node = 1 ]; then
  bad "client and browser tests" "not run: the npm packages are not installed"
fi

# ---- curl checks ---------------------------------------------------------------------
c=(curl -sS --max-time $((30*slow)))
ends_ok() {  # the stream ends with a finish_reason chunk, then data: [DONE]
  local last fin
  last=$(grep -v '^\s*$' "$1" | tail -1 | tr -d '\r')
  fin=$(grep '^data: {' "$1" | tail -1 | grep -oE '"finish_reason": *"(stop|length)"')
  [ "$last" = "data: [DONE]" ] && [ -n "$fin" ] ||
    { detail="$(basename "$1"): last line ${last:0:80}; last chunk $(grep '^data: {' "$1" | tail -1 | head -c 200)"; return 1; }
}
# req NAME [curl args...] : body in $tmp/NAME.json, headers in $tmp/NAME.h, status in $code
req() { local n=$1; shift; code=$("${c[@]}" -o "$tmp/$n.json" -D "$tmp/$n.h" -w '%{http_code}' "$@" 2>"$tmp/$n.err"); }
# is_error FILE TYPE-REGEX CODE : the OpenAI error shape
is_error() {
  local t m
  t=$(jf "$1" 'j.error.type') && m=$(jf "$1" 'typeof j.error.message') && [ "$m" = string ] &&
    { [ -z "${2:-}" ] || [[ "$t" =~ $2 ]]; } &&
    { [ -z "${3:-}" ] || [ "$(jf "$1" 'j.error.code')" = "$3" ]; } && return 0
  detail="body $(head -c 300 "$1" 2>/dev/null)"; return 1
}
status_is() { [ "$code" = "$1" ] || { detail="status $code, body $(head -c 300 "$tmp/$2.json" 2>/dev/null)"; return 1; }; }

req health "$url1/health"
check "GET /health → 200 JSON {status ok, active, queued, completed, cancelled}" eval \
  'status_is 200 health && [ "$(jf $tmp/health.json "j.status+\" \"+[j.active,j.queued,j.completed,j.cancelled].map(Number.isInteger)")" = "ok true,true,true,true" ] || { detail="${detail:-body $(cat $tmp/health.json)}"; false; }'

req badjson "${auth[@]}" "${json[@]}" -d '{"model": "x", "messages": [' "$url1/v1/chat/completions"
check "POST invalid JSON → 400 with error.type" eval 'status_is 400 badjson && is_error $tmp/badjson.json'

req noauth "${json[@]}" -d "{\"model\":\"$base_id\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}" \
    "$url1/v1/chat/completions"
check "POST /v1/chat/completions without Authorization → 401 invalid_api_key" eval 'status_is 401 noauth && is_error $tmp/noauth.json "" invalid_api_key'

req noauth_models "$url1/v1/models"
check "GET /v1/models without Authorization → 401" status_is 401 noauth_models

{ printf '{"model":"%s","prompt":"' "$base_id"; head -c 200000 /dev/zero | tr '\0' a; printf '","max_tokens":1}'; } >"$tmp/big.json"
req big "${auth[@]}" "${json[@]}" --data-binary "@$tmp/big.json" "$url1/v1/completions"
check "a body over --max-body (200 KB > 131072) → 413" status_is 413 big

req nopath "${auth[@]}" "$url1/v1/nothing-here"
check "unknown path → 404 with an error body" eval 'status_is 404 nopath && is_error $tmp/nopath.json'

req method "${auth[@]}" "$url1/v1/chat/completions"
check "GET /v1/chat/completions → 405" eval 'status_is 405 method && is_error $tmp/method.json'

"${c[@]}" -N "${auth[@]}" "${json[@]}" -o "$tmp/sse.txt" -D "$tmp/sse.h" \
  -d "{\"model\":\"$base_id\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],\"max_tokens\":20,\"temperature\":0,\"stream\":true}" \
  "$url1/v1/chat/completions" 2>"$tmp/sse.err"
check "curl -N streaming chat: text/event-stream, data: lines, ends with data: [DONE]" eval \
  'grep -qi "^content-type: text/event-stream" $tmp/sse.h && [ "$(grep -c "^data: {" $tmp/sse.txt)" -ge 2 ] &&
   [ "$(grep -v "^\s*$" $tmp/sse.txt | tail -1 | tr -d "\r")" = "data: [DONE]" ] ||
   { detail="headers $(head -c 200 $tmp/sse.h | tr "\r\n" "  "); body tail $(tail -c 200 $tmp/sse.txt | tr "\n" " ")"; false; }'

req page "$url1/"
check "GET / → 200 text/html chat page" eval \
  'status_is 200 page && grep -qi "^content-type: text/html" $tmp/page.h && grep -qi "<html" $tmp/page.json ||
   { detail="${detail:-$(grep -i "^content-type" $tmp/page.h) $(head -c 100 $tmp/page.json)}"; false; }'

# the main server stops cleanly too (SIGTERM when idle)
kill -TERM "$pid1"
if wait_exit "$pid1" $((20*slow)); then
  check "idle server exits 0 on SIGTERM" eval '[ $wrc = 0 ] || { detail="exit $wrc: $(tail -3 $sv1 | tr "\n" " ")"; false; }'
else
  bad "idle server exits 0 on SIGTERM" "still running after $((20*slow)) s"; kill -KILL "$pid1" 2>/dev/null
fi

# ---- a full queue: --parallel 1 --queue 1 → 429 -----------------------------------------
sv2=$tmp/serve2.log
if start_server "$sv2" --parallel 1 --queue 1 --ctx 1024; then
  url2=$surl; pid2=$spid
  long=(-d "{\"model\":\"$base_id\",\"prompt\":\"Once upon a time\",\"max_tokens\":$qtok,\"temperature\":0}")
  qp=()
  for i in 1 2 3 4 5 6; do
    "${c[@]}" -o "$tmp/q$i.json" -w '%{http_code}\n' "${json[@]}" "${long[@]}" "$url2/v1/completions" >"$tmp/q$i.code" 2>/dev/null &
    qp+=($!)
  done
  wait "${qp[@]}" 2>/dev/null
  codes=$(cat "$tmp"/q[1-6].code | tr '\n' ' ')
  n429=$(grep -c '^429$' <(cat "$tmp"/q[1-6].code; echo))
  n200=$(grep -c '^200$' <(cat "$tmp"/q[1-6].code; echo))
  q429=$(grep -l '^429$' "$tmp"/q[1-6].code | head -1); q429=${q429%.code}.json
  check "6 concurrent requests at --parallel 1 --queue 1: at least one 429 (OpenAI error body), the rest 200" eval \
    '[ $n429 -ge 1 ] && [ $((n429 + n200)) = 6 ] && is_error $q429 || { detail="status codes: $codes ${detail:-}"; false; }'

  # ---- SIGTERM drain: a running and a queued stream finish, then exit 0 -------------------
  sse() {  # sse OUT : a long streaming completion in the background
    "${c[@]}" --max-time $((60*slow)) -N "${json[@]}" -o "$1" \
      -d "{\"model\":\"$base_id\",\"prompt\":\"Once upon a time\",\"max_tokens\":$dtok,\"temperature\":0,\"stream\":true}" \
      "$url2/v1/completions" 2>/dev/null &
  }
  sse "$tmp/d1.txt"; d1=$!
  for ((i = 0; i < 100*slow; i++)); do grep -q '^data: {' "$tmp/d1.txt" 2>/dev/null && break; sleep 0.05; done
  sse "$tmp/d2.txt"; d2=$!
  for ((i = 0; i < 100*slow; i++)); do   # wait until the server holds both (one active, one queued)
    "${c[@]}" -o "$tmp/h2.json" "$url2/health" 2>/dev/null
    [ "$(jf "$tmp/h2.json" 'j.active + j.queued')" = 2 ] && break; sleep 0.05
  done
  held=$(cat "$tmp/h2.json" 2>/dev/null)
  kill -TERM "$pid2"; t_term=$(date +%s.%N)
  sleep 0.2
  after=$("${c[@]}" --max-time 5 -o "$tmp/after.json" -w '%{http_code}' "${json[@]}" \
          -d "{\"model\":\"$base_id\",\"prompt\":\"Once\",\"max_tokens\":1}" "$url2/v1/completions" 2>/dev/null); arc=$?
  echo "# a request 0.2 s after SIGTERM: HTTP $after, curl exit $arc"
  # 503, or curl exit 7: connection refused (not a timeout, not a 429 for the full queue)
  check "a request after SIGTERM is refused (503 or connection refused)" eval \
    '[ "$after" = 503 ] || [ $arc = 7 ] || { detail="status $after, curl exit $arc, body $(head -c 200 $tmp/after.json 2>/dev/null)"; false; }'
  # the server finishes both streams, then exits: within 20 s of SIGTERM
  if wait_exit "$pid2" 20; then
    took=$(awk -v a="$t_term" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    check "the draining server exits with status 0 within 20 s of SIGTERM (${took} s)" eval \
      '[ $wrc = 0 ] || { detail="exit $wrc: $(tail -5 $sv2 | tr "\n" " ")"; false; }'
  else
    bad "the draining server exits with status 0 within 20 s of SIGTERM" "still running"; kill -KILL "$pid2" 2>/dev/null
  fi
  wait "$d1" "$d2" 2>/dev/null
  check "SIGTERM while streaming: the running stream still ends with a finish_reason and data: [DONE] (server held: $held)" ends_ok "$tmp/d1.txt"
  check "SIGTERM while streaming: the queued stream is served to its end too" ends_ok "$tmp/d2.txt"
else
  bad "second server starts (--parallel 1 --queue 1)" "$detail"
fi

# ---- idle connections, --idle-timeout ---------------------------------------------------
# 1100 silent connections, more than parallel + queue + 64 (the connection
# limit before, which left every later client unaccepted until the idle ones
# timed out after 600 s) and past descriptor 1024 (select()'s limit, which
# refused them): /health still answers, and the idle ones are closed after
# --idle-timeout. Streams queued longer than the idle timeout are kept open by
# SSE comments (": waiting") and served to their end.
sv3=$tmp/serve3.log
if start_server "$sv3" --parallel 1 --queue 4 --ctx 1024 --idle-timeout 1 --request-timeout 3; then
  url3=$surl; pid3=$spid
  # prints how many the server closed: all of them, or those closed within ms
  node -e 'const net = require("net"), [port, n, ms] = process.argv.slice(1).map(Number); let closed = 0;
    const done = () => { console.log(closed); process.exit(0); };
    for (let i = 0; i < n; i++) net.connect({ host: "127.0.0.1", port }).on("close", () => ++closed === n && done()).on("error", () => {});
    setTimeout(done, ms);' "${url3##*:}" 1100 $((30000*slow)) >"$tmp/idle.count" &
  idlep=$!
  sleep $((2*slow))
  # (accepting 1100 connections, a thread each, takes the listener ~5 s here: the
  # check is that /health is answered at all, not how soon)
  hcode=$("${c[@]}" --max-time $((30*slow)) -o /dev/null -w '%{http_code}' "$url3/health" 2>/dev/null)
  check "GET /health beside 1100 idle connections → 200" eval '[ "$hcode" = 200 ] || { detail="HTTP $hcode"; false; }'
  wait "$idlep"
  check "the 1100 idle connections are closed after --idle-timeout 1 (within 30 s)" eval \
    '[ "$(cat $tmp/idle.count)" = 1100 ] || { detail="$(cat $tmp/idle.count) closed"; false; }'
  # 1000 tokens in both tiers: the third stream waits in the queue longer than
  # the idle timeout, which is what it must survive
  for i in 1 2 3; do
    "${c[@]}" --max-time $((60*slow)) -N "${json[@]}" -o "$tmp/w$i.txt" \
      -d "{\"model\":\"$base_id\",\"prompt\":\"Once upon a time\",\"max_tokens\":1000,\"temperature\":0,\"stream\":true}" \
      "$url3/v1/completions" 2>/dev/null &
    wp[$i]=$!
    sleep 0.1
  done
  wait "${wp[@]}" 2>/dev/null
  check "3 streams at --parallel 1 --idle-timeout 1: the last one, queued, gets ': waiting' comments" \
    eval 'grep -q "^: waiting" "$tmp/w3.txt" || { detail="no comment in w3.txt"; false; }'
  for i in 1 2 3; do check "3 streams at --parallel 1 --idle-timeout 1: stream $i ends with data: [DONE]" ends_ok "$tmp/w$i.txt"; done
  # slow senders (slowloris): a byte every 0.3 s keeps the idle timeout of 1 s
  # from firing; --request-timeout 3 closes the connection all the same, in
  # the headers and in the body. Prints the seconds until the server closed.
  for part in headers body; do
    node -e 'const net = require("net"), [port, part] = [Number(process.argv[1]), process.argv[2]], t0 = Date.now();
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + (part === "body" ? "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" : ""));
        const tick = setInterval(() => s.write(part === "body" ? " " : "X"), 300);
        s.on("close", () => { clearInterval(tick); console.log(((Date.now() - t0) / 1000).toFixed(1)); process.exit(0); });
      }).on("error", () => {});
      setTimeout(() => { console.log("open"); process.exit(0); }, 20000);' "${url3##*:}" "$part" >"$tmp/slow-$part.txt"
    took=$(cat "$tmp/slow-$part.txt")
    check "a client sending its $part one byte every 0.3 s is closed by --request-timeout 3 (in 3-$((6*slow)) s)" eval \
      '[ "$took" != open ] && awk -v t="$took" -v hi=$((6*slow)) "BEGIN { exit !(t >= 2.9 && t <= hi) }" || { detail="closed after ${took} s"; false; }'
  done
  kill -TERM "$pid3"; wait_exit "$pid3" 20 || kill -KILL "$pid3" 2>/dev/null
else
  bad "third server starts (--idle-timeout 1 --request-timeout 3)" "$detail"
fi

finish
