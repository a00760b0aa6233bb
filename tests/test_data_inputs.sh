#!/usr/bin/env bash
# Data inputs that are not plain files, and the token cache, through the CLI:
# tests/test_data_inputs.sh BUILD_DIR (build or build-san), from the
# repository root.
#   - --data / FILE from a FIFO (writer in the background), a process
#     substitution <(cat F) and /dev/stdin fed by a pipe give the same
#     records as F itself (sft, eval, data inspect, data split, dpo, tokenize,
#     tokenizer train), and leave nothing in the token cache;
#   - a directory says "is a directory", a pipe larger than
#     TUNA_INPUT_MAX_BYTES and /dev/zero (a line longer than
#     TUNA_INPUT_MAX_LINE) fail with one line naming the file and the limit;
#   - a cache hit applies --strict and --max-bad as a read does (same message);
#   - a cache entry with a changed header byte or token byte is noticed, read
#     again and rewritten as it was, never trained on;
#   - an unwritable cache folder (XDG_CACHE_HOME under a regular file, or
#     read-only) means running uncached with a note;
#   - reading a pipe shows progress every 64 MiB (TUNA_INPUT_PROGRESS_BYTES)
#     and at its end on stderr (eval, sft, dpo); a small pipe and --quiet none.
# Every command runs under `timeout 60`: a hang fails instead of blocking.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"

writer=
tap_tmp inputs '[ -n "$writer" ] && kill "$writer" 2>/dev/null'
t60() { timeout 60 "$@"; }

# data: 60 chat records (about 22 KB: several times the 4 KB a format sniff reads)
t60 "$tuna" data synth --out "$tmp/syn" --train 60 --val 2 --eval 2 >/dev/null 2>&1 || bad "data synth"
data=$tmp/syn/train.jsonl
t60 "$tuna" data synth --out "$tmp/prefs" --task story-json-prefs --train 24 --val 2 --eval 2 >/dev/null 2>&1 || bad "data synth prefs"

# fifo NAME FILE: a FIFO at $tmp/NAME fed with FILE by a background writer
fifo() {
  rm -f "$tmp/$1"; mkfifo "$tmp/$1"
  timeout 60 sh -c 'cat "$1" >"$2"' sh "$2" "$tmp/$1" & writer=$!  # the open, too, under the timeout
}
# counts LOG: the numbers of a load line ("P: 60 examples, 9978 tokens ..."), without the path
counts() { grep -m1 -E ': [0-9]+ (examples|records|pairs)' "$1" | sed 's/^[^ ]*: //'; }
# same WHAT LOG_REF LOG RC: exit 0 and the reference's counts
same() {
  local ref; ref=$(counts "$2")
  if [ "$4" -eq 0 ] && [ -n "$ref" ] && [ "$(counts "$3")" = "$ref" ]; then ok "$1: $ref"
  else bad "$1" "exit $4, '$(counts "$3")' vs '$ref'; $(grep -m2 'error' "$3" | tr '\n' ' ')"; fi
}
sft() { t60 "$tuna" sft --model "$model" --steps 1 --batch 2 "$@"; }
entries() { find "$tmp/$1" -name '*.tokens' 2>/dev/null | wc -l; }

# ---- sft: regular file, FIFO, <(...), /dev/stdin from a pipe: the same examples, nothing cached
sft --data "$data" --cache-dir "$tmp/c0" --out "$tmp/o0" >"$tmp/ref.log" 2>&1 || bad "sft on the file" "$(tail -2 "$tmp/ref.log")"
fifo in.fifo "$data"
sft --data "$tmp/in.fifo" --cache-dir "$tmp/cp" --out "$tmp/o1" >"$tmp/fifo.log" 2>&1; same "sft --data FIFO" "$tmp/ref.log" "$tmp/fifo.log" $?
wait "$writer" 2>/dev/null; writer=
sft --data <(cat "$data") --cache-dir "$tmp/cp" --out "$tmp/o2" >"$tmp/ps.log" 2>&1; same "sft --data <(cat F)" "$tmp/ref.log" "$tmp/ps.log" $?
cat "$data" | sft --data /dev/stdin --cache-dir "$tmp/cp" --out "$tmp/o3" >"$tmp/stdin.log" 2>&1; same "sft --data /dev/stdin (pipe)" "$tmp/ref.log" "$tmp/stdin.log" ${PIPESTATUS[1]}
[ "$(entries cp)" -eq 0 ] && ok "pipes bypass the token cache" || bad "pipes bypass the token cache" "$(ls "$tmp/cp")"

# ---- data inspect, data split, eval, dpo, tokenize, tokenizer train from pipes
t60 "$tuna" data inspect --model "$model" "$data" >"$tmp/i0.log" 2>&1
fifo i.fifo "$data"
t60 "$tuna" data inspect --model "$model" "$tmp/i.fifo" >"$tmp/i1.log" 2>&1; same "data inspect FIFO" "$tmp/i0.log" "$tmp/i1.log" $?
wait "$writer" 2>/dev/null; writer=
cat "$data" | t60 "$tuna" data inspect --model "$model" /dev/stdin >"$tmp/i2.log" 2>&1; same "data inspect /dev/stdin (pipe)" "$tmp/i0.log" "$tmp/i2.log" ${PIPESTATUS[1]}
t60 "$tuna" data split <(cat "$data") --val 0.3 --out-train "$tmp/s.train" --out-val "$tmp/s.val" >"$tmp/split.log" 2>&1; rc=$?
n=$(cat "$tmp/s.train" "$tmp/s.val" 2>/dev/null | wc -l)
[ $rc -eq 0 ] && [ "$n" -eq 60 ] && ok "data split <(cat F): 60 records out" || bad "data split <(cat F)" "exit $rc, $n records out; $(tail -1 "$tmp/split.log")"
# eval: 20 records (7 KB, more than a sniff's 4 KB), the same loss as from the file
head -20 "$data" >"$tmp/d20.jsonl"
# same_json WHAT: the --json lines of $tmp/j0.out and $tmp/j1.out agree
same_json() {
  if [ "$1" -eq 0 ] && grep -q '"tokens"' "$tmp/j0.out" && cmp -s "$tmp/j0.out" "$tmp/j1.out"; then ok "$2: $(cat "$tmp/j1.out")"
  else bad "$2" "exit $1; '$(cat "$tmp/j1.out")' vs '$(cat "$tmp/j0.out")'; $(grep -m1 error "$tmp/j1.err")"; fi
}
t60 "$tuna" eval --model "$model" --json --data "$tmp/d20.jsonl" >"$tmp/j0.out" 2>/dev/null
t60 "$tuna" eval --model "$model" --json --data <(cat "$tmp/d20.jsonl") >"$tmp/j1.out" 2>"$tmp/j1.err"; same_json $? "eval --data <(cat F)"
cp "$tmp/d20.jsonl" "$tmp/story.txt"
t60 "$tuna" eval --model "$model" --json --text --data "$tmp/story.txt" >"$tmp/j0.out" 2>/dev/null
t60 "$tuna" eval --model "$model" --json --text --data <(cat "$tmp/story.txt") >"$tmp/j1.out" 2>"$tmp/j1.err"; same_json $? "eval --text --data <(cat F)"
t60 "$tuna" dpo --model "$model" --data "$tmp/prefs/train.jsonl" --steps 1 --batch 2 --out "$tmp/d0" >"$tmp/d0.log" 2>&1
t60 "$tuna" dpo --model "$model" --data <(cat "$tmp/prefs/train.jsonl") --steps 1 --batch 2 --out "$tmp/d1" >"$tmp/d1.log" 2>&1
same "dpo --data <(cat F)" "$tmp/d0.log" "$tmp/d1.log" $?
head -c 6000 "$data" | cut -c1-200 >"$tmp/lines.txt"
t60 "$tuna" tokenize --model "$model" --file "$tmp/lines.txt" >"$tmp/k0.out" 2>&1
t60 "$tuna" tokenize --model "$model" --file <(cat "$tmp/lines.txt") >"$tmp/k1.out" 2>&1; rc=$?
[ $rc -eq 0 ] && [ -s "$tmp/k0.out" ] && cmp -s "$tmp/k0.out" "$tmp/k1.out" && ok "tokenize --file <(cat F)" || bad "tokenize --file <(cat F)" "exit $rc"
t60 "$tuna" tokenizer train --data "$tmp/story.txt" --vocab-size 300 --out "$tmp/tk0" >/dev/null 2>&1
fifo t.fifo "$tmp/story.txt"
t60 "$tuna" tokenizer train --data "$tmp/t.fifo" --vocab-size 300 --out "$tmp/tk1" >"$tmp/tk1.log" 2>&1; rc=$?
wait "$writer" 2>/dev/null; writer=
[ $rc -eq 0 ] && [ -s "$tmp/tk0/tokenizer.json" ] && cmp -s "$tmp/tk0/tokenizer.json" "$tmp/tk1/tokenizer.json" && ok "tokenizer train --data FIFO" \
  || bad "tokenizer train --data FIFO" "exit $rc; $(tail -1 "$tmp/tk1.log")"
# --max-bytes still stops an endless pipe (only that much is copied)
yes 'the cat sat on the mat' | t60 "$tuna" tokenizer train --data /dev/stdin --max-bytes 100000 --vocab-size 270 --out "$tmp/tk2" >"$tmp/tk2.log" 2>&1; rc=${PIPESTATUS[1]}
[ $rc -eq 0 ] && grep -q 'input cut at --max-bytes' "$tmp/tk2.log" && ok "tokenizer train --max-bytes on an endless pipe" \
  || bad "tokenizer train --max-bytes on an endless pipe" "exit $rc; $(tail -1 "$tmp/tk2.log")"

# ---- refused, with one line and exit 2: a directory, a pipe over the limit, /dev/zero
# refused WHAT PATTERN CMD...: exit 2 and an error line matching PATTERN
refused() {
  local what=$1 pat=$2; shift 2
  "$@" >"$tmp/r.log" 2>&1; local rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$pat" "$tmp/r.log"; then ok "$what: $(grep -m1 error "$tmp/r.log")"
  else bad "$what" "exit $rc; $(head -c 300 "$tmp/r.log" | tr '\n' ' ')"; fi
}
mkdir -p "$tmp/adir"
refused "sft --data DIR" "adir: is a directory" sft --data "$tmp/adir" --no-cache --out "$tmp/o4"
refused "data inspect DIR" "adir: is a directory" t60 "$tuna" data inspect --model "$model" "$tmp/adir"
refused "eval --data DIR" "adir: is a directory" t60 "$tuna" eval --model "$model" --data "$tmp/adir"
refused "tokenizer train --data DIR" "adir: is a directory" t60 "$tuna" tokenizer train --data "$tmp/adir" --vocab-size 300 --out "$tmp/tk3"
refused "tokenize --file DIR" "adir: is a directory" t60 "$tuna" tokenize --model "$model" --file "$tmp/adir"
refused "sft: a pipe over TUNA_INPUT_MAX_BYTES" "/dev/fd/[0-9]*: more than 4096 bytes .*TUNA_INPUT_MAX_BYTES" \
  env TUNA_INPUT_MAX_BYTES=4096 timeout 60 "$tuna" sft --model "$model" --steps 1 --data <(cat "$data") --no-cache --out "$tmp/o5"
refused "data inspect /dev/zero" "/dev/zero:1: a line longer than 65536 bytes .*TUNA_INPUT_MAX_LINE" \
  env TUNA_INPUT_MAX_LINE=65536 timeout 60 "$tuna" data inspect --model "$model" /dev/zero
refused "tokenizer train /dev/zero" "/dev/zero:1: a line longer than 65536 bytes" \
  env TUNA_INPUT_MAX_LINE=65536 timeout 60 "$tuna" tokenizer train --data /dev/zero --vocab-size 300 --out "$tmp/tk4"
refused "a bad TUNA_INPUT_MAX_BYTES" "TUNA_INPUT_MAX_BYTES='lots'" \
  env TUNA_INPUT_MAX_BYTES=lots timeout 60 "$tuna" data inspect --model "$model" <(cat "$data")
[ ! -e "$tmp/o5" ] && ok "nothing written after a refused input" || bad "nothing written after a refused input"

# ---- the cache applies the bad-record policy on a hit
{ head -30 "$data"; echo '{"messages": broken'; tail -30 "$data"; cat "$data"; cat "$data"; } >"$tmp/bad.jsonl"  # 1 bad of 181
sft --data "$tmp/bad.jsonl" --cache-dir "$tmp/c1" --out "$tmp/o6" >"$tmp/b0.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q '1 bad records skipped' "$tmp/b0.log" && [ "$(entries c1)" -eq 1 ] && ok "first run: 1 bad record skipped, entry written" \
  || bad "first run with a bad record" "exit $rc; $(tail -2 "$tmp/b0.log")"
# policy WHAT OPTION: the cached run fails as the uncached one does, with the same line
policy() {
  sft --data "$tmp/bad.jsonl" --no-cache --out "$tmp/o7" "$@" >"$tmp/p0.log" 2>&1; local rc0=$?
  sft --data "$tmp/bad.jsonl" --cache-dir "$tmp/c1" --out "$tmp/o7" "$@" >"$tmp/p1.log" 2>&1; local rc1=$?
  local e0 e1; e0=$(grep -m1 'tuna: error' "$tmp/p0.log"); e1=$(grep -m1 'tuna: error' "$tmp/p1.log")
  if [ $rc0 -eq 2 ] && [ $rc1 -eq 2 ] && [ -n "$e0" ] && [ "$e0" = "$e1" ]; then ok "$* on a cache hit: $e1"
  else bad "$* on a cache hit" "uncached exit $rc0 '$e0', cached exit $rc1 '$e1'"; fi
}
policy --strict
policy --max-bad 0
sft --data "$tmp/bad.jsonl" --cache-dir "$tmp/c1" --out "$tmp/o8" >"$tmp/b1.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q '(token cache).*1 bad records skipped' "$tmp/b1.log" && ok "a hit reports the skipped record" \
  || bad "a hit reports the skipped record" "exit $rc; $(grep -m1 examples "$tmp/b1.log")"

# ---- damaged entries: noticed, read again, rewritten as they were
entry=$(find "$tmp/c1" -name '*.tokens' | head -1)
cp "$entry" "$tmp/entry.orig"
# damaged WHAT OFFSET: one byte of the entry changed at OFFSET
damaged() {
  cp "$tmp/entry.orig" "$entry"
  printf '\x5a' | dd of="$entry" bs=1 seek="$2" conv=notrunc 2>/dev/null
  sft --data "$tmp/bad.jsonl" --cache-dir "$tmp/c1" --out "$tmp/o9" --overwrite >"$tmp/dm.log" 2>&1; local rc=$?
  if [ $rc -eq 0 ] && grep -q "tuna: note: .*damaged cache entry" "$tmp/dm.log" && ! grep -q '(token cache)' "$tmp/dm.log" \
     && [ "$(counts "$tmp/dm.log")" = "$(counts "$tmp/b0.log")" ] && cmp -s "$entry" "$tmp/entry.orig"; then
    ok "$1: $(grep -m1 note "$tmp/dm.log")"
  else bad "$1" "exit $rc; $(grep -m2 -E 'note|examples|error' "$tmp/dm.log" | tr '\n' ' ')"; fi
}
damaged "a changed header byte (max_len)" 32
damaged "a changed token byte" $(( $(stat -c %s "$entry") - 100 ))

# ---- a cache folder that cannot be written: uncached, with a note
: >"$tmp/afile"
XDG_CACHE_HOME=$tmp/afile/sub sft --data "$data" --out "$tmp/o10" >"$tmp/x1.log" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q 'tuna: note: token cache not written (.*afile/sub/tuna: cannot create: Not a directory): running uncached' "$tmp/x1.log" \
   && [ "$(counts "$tmp/x1.log")" = "$(counts "$tmp/ref.log")" ]; then ok "XDG_CACHE_HOME under a file: $(grep -m1 note "$tmp/x1.log")"
else bad "XDG_CACHE_HOME under a file" "exit $rc; $(grep -m2 -E 'note|error' "$tmp/x1.log" | tr '\n' ' ')"; fi
sft --data "$data" --cache-dir /nonexistent-tuna-test/sub --out "$tmp/o11" >"$tmp/x2.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q 'running uncached' "$tmp/x2.log" && ok "--cache-dir in a missing folder: uncached" \
  || bad "--cache-dir in a missing folder" "exit $rc; $(grep -m1 -E 'note|error' "$tmp/x2.log")"
mkdir -p "$tmp/ro/tuna"; chmod 555 "$tmp/ro/tuna" "$tmp/ro"
XDG_CACHE_HOME=$tmp/ro sft --data "$data" --out "$tmp/o12" >"$tmp/x3.log" 2>&1; rc=$?
# root writes there anyway; anyone else gets the note: either way the run goes on
[ $rc -eq 0 ] && [ "$(counts "$tmp/x3.log")" = "$(counts "$tmp/ref.log")" ] && ok "XDG_CACHE_HOME read-only: exit 0 ($(id -u) = uid)" \
  || bad "XDG_CACHE_HOME read-only" "exit $rc; $(grep -m1 -E 'note|error' "$tmp/x3.log")"

# ---- progress while a pipe is read into memory: "reading PATH: N MiB" every
# 64 MiB and the total at the end (a plain line each off a terminal); a small
# pipe and --quiet say nothing. eval --limit 2 stops after two records, so
# 70 MB of one repeated record costs only the copy.
big() { yes "$(head -1 "$data")" | head -c 70000000; }
big | t60 "$tuna" eval --model "$model" --limit 2 --data /dev/stdin >/dev/null 2>"$tmp/p1.err"; rc=${PIPESTATUS[1]}
if [ $rc -eq 0 ] && [ "$(grep '^reading ' "$tmp/p1.err")" = $'reading /dev/stdin: 64 MiB\nreading /dev/stdin: 66 MiB, done' ]; then
  ok "eval --data /dev/stdin (70 MB pipe): progress at 64 MiB and the end"
else bad "eval --data /dev/stdin (70 MB pipe): progress" "exit $rc; $(head -3 "$tmp/p1.err" | tr '\n' ' ')"; fi
big | t60 "$tuna" eval --model "$model" --limit 2 --quiet --data /dev/stdin >/dev/null 2>"$tmp/p2.err"; rc=${PIPESTATUS[1]}
[ $rc -eq 0 ] && ! grep -q reading "$tmp/p2.err" && ok "eval --quiet (70 MB pipe): no progress" \
  || bad "eval --quiet (70 MB pipe)" "exit $rc; $(head -2 "$tmp/p2.err" | tr '\n' ' ')"
cat "$data" | t60 "$tuna" eval --model "$model" --limit 2 --data /dev/stdin >/dev/null 2>"$tmp/p3.err"; rc=${PIPESTATUS[1]}
[ $rc -eq 0 ] && ! grep -q reading "$tmp/p3.err" && ok "eval (22 KB pipe): no progress" \
  || bad "eval (22 KB pipe)" "exit $rc; $(head -2 "$tmp/p3.err" | tr '\n' ' ')"
# sft and dpo pass the same on: a small step shows it without 64 MiB of data
TUNA_INPUT_PROGRESS_BYTES=8000 sft --data <(cat "$data") --out "$tmp/o13" >"$tmp/p4.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q '^reading /dev/fd/[0-9]*: 0 MiB, done$' "$tmp/p4.log" && ok "sft --data <(cat F): progress" \
  || bad "sft --data <(cat F): progress" "exit $rc; $(head -2 "$tmp/p4.log" | tr '\n' ' ')"
TUNA_INPUT_PROGRESS_BYTES=4000 t60 "$tuna" dpo --model "$model" --steps 1 --batch 2 --data <(cat "$tmp/prefs/train.jsonl") \
  --out "$tmp/o14" >"$tmp/p5.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q '^reading /dev/fd/[0-9]*: 0 MiB, done$' "$tmp/p5.log" && ok "dpo --data <(cat F): progress" \
  || bad "dpo --data <(cat F): progress" "exit $rc; $(head -2 "$tmp/p5.log" | tr '\n' ' ')"
finish
