#!/usr/bin/env bash
# Follow-ups on data from pipes and folder outputs, through the CLI:
# tests/test_pipes2.sh BUILD_DIR (build or build-san), from the repository root.
#   - JSONL text ({"text": ...} lines) read through a pipe (<(cat F.jsonl),
#     a name with no extension) is recognised by its content as the file is
#     by its name: eval --text and tokenizer train give the same result;
#   - a folder output's temporary sibling .NAME.tmp.PID left by a killed run
#     (its process gone) is removed by the next run with a note; a live
#     run's is left alone.
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
. "$root/tests/tap.sh"
tap_cli "${1:-build}"

sleeper=
tap_tmp pipes2 '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null'
t60() { timeout 60 "$@"; }

# ---- JSONL text through a pipe: the same documents as the .jsonl file
for i in $(seq 1 40); do
  printf '{"text": "Once upon a time, story %d: the little cat sat on the mat and looked at the %s sky."}\n' \
    "$i" "$([ $((i % 2)) -eq 0 ] && echo blue || echo grey)"
done >"$tmp/t.jsonl"
# same_out WHAT RC A B: exit 0 and the outputs A and B equal (and not empty)
same_out() {
  if [ "$2" -eq 0 ] && [ -s "$3" ] && cmp -s "$3" "$4"; then ok "$1"
  else bad "$1" "exit $2; '$(head -c 200 "$4")' vs '$(head -c 200 "$3")'"; fi
}
t60 "$tuna" eval --model "$model" --json --text --data "$tmp/t.jsonl" >"$tmp/e0.out" 2>"$tmp/e0.err" \
  || bad "eval --text on the .jsonl file" "$(tail -1 "$tmp/e0.err")"
t60 "$tuna" eval --model "$model" --json --text --data <(cat "$tmp/t.jsonl") >"$tmp/e1.out" 2>"$tmp/e1.err"
same_out "eval --text --data <(cat F.jsonl): the same tokens and loss" $? "$tmp/e0.out" "$tmp/e1.out"
cp "$tmp/t.jsonl" "$tmp/noext"
t60 "$tuna" eval --model "$model" --json --text --data "$tmp/noext" >"$tmp/e2.out" 2>"$tmp/e2.err"
same_out "eval --text --data FILE (JSONL, no extension)" $? "$tmp/e0.out" "$tmp/e2.out"
t60 "$tuna" tokenizer train --data "$tmp/t.jsonl" --vocab-size 300 --out "$tmp/tk0" >/dev/null 2>"$tmp/tk0.err" \
  || bad "tokenizer train on the .jsonl file" "$(tail -1 "$tmp/tk0.err")"
t60 "$tuna" tokenizer train --data <(cat "$tmp/t.jsonl") --vocab-size 300 --out "$tmp/tk1" >/dev/null 2>"$tmp/tk1.err"
same_out "tokenizer train --data <(cat F.jsonl): the same tokenizer.json" $? "$tmp/tk0/tokenizer.json" "$tmp/tk1/tokenizer.json"
# plain text that opens with a brace but is no JSON object stays plain text
{ echo '{curly} is how the story began.'; sed 's/^{"text": "//; s/"}$//' "$tmp/t.jsonl"; } >"$tmp/brace.txt"
t60 "$tuna" eval --model "$model" --json --text --data "$tmp/brace.txt" >"$tmp/b0.out" 2>/dev/null
t60 "$tuna" eval --model "$model" --json --text --data <(cat "$tmp/brace.txt") >"$tmp/b1.out" 2>"$tmp/b1.err"
same_out "eval --text --data <(cat F.txt) opening with '{': plain text as the file" $? "$tmp/b0.out" "$tmp/b1.out"

# ---- stale temporary folders of a folder output
dead=$(( $(cat /proc/sys/kernel/pid_max) + 1 ))  # above pid_max: never a live process
sleep 60 & sleeper=$!
mkdir -p "$tmp/.syn.tmp.$dead/sub" "$tmp/.syn.tmp.$sleeper"
touch "$tmp/.syn.tmp.$dead/sub/f" "$tmp/.syn.tmp.$sleeper/keep"
t60 "$tuna" data synth --out "$tmp/syn" --train 4 --val 1 --eval 1 >/dev/null 2>"$tmp/syn.err"; rc=$?
if [ $rc -eq 0 ] && [ ! -e "$tmp/.syn.tmp.$dead" ] && grep -q "tuna: note: removed .*\.syn\.tmp\.$dead" "$tmp/syn.err"; then
  ok "a dead run's .NAME.tmp.PID removed with a note"
else bad "a dead run's .NAME.tmp.PID removed with a note" "exit $rc; $(ls -a "$tmp" | grep tmp | tr '\n' ' '); $(cat "$tmp/syn.err")"; fi
[ -f "$tmp/.syn.tmp.$sleeper/keep" ] && ok "a live run's .NAME.tmp.PID left alone" || bad "a live run's .NAME.tmp.PID left alone"
[ -f "$tmp/syn/train.jsonl" ] && ok "the output published" || bad "the output published" "$(cat "$tmp/syn.err")"

finish
