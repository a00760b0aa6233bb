#!/usr/bin/env bash
# Durability of written files: tests/test_durability.sh BUILD_DIR (build or
# build-san), from the repository root. A power loss cannot be simulated, so
# the order of the system calls is checked instead, under strace -f -y:
#   - every file renamed into place was fsync'd before its rename (its data is
#     on disk before its name is);
#   - every folder renamed into place (a checkpoint) was fsync'd after the last
#     file renamed into it and before its own rename;
#   - after each rename, the folder holding the new name was fsync'd (the
#     rename itself is durable);
#   - the previous checkpoint is removed only after the new one's folder was
#     fsync'd (never a moment with neither on disk);
#   - nothing is left under a temporary name.
# Runs: a checkpointing `tuna sft` (token cache, checkpoints 2 and 4, the
# final folder, report), `tuna export` (GGUF q8_0 and HF: the folder published
# whole), `tuna convert dtype` (to a new folder, and over it with
# --overwrite), `tuna data split`. Needs strace (else SKIP).
# Ends with "RESULT <passed> <failed> <skipped>"; exit 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build}
case $build in /*) tuna=$build/tuna ;; *) tuna=$root/$build/tuna ;; esac
model=$root/models/tuna-stories

. "$root/tests/tap.sh"

if ! command -v strace >/dev/null || ! strace -o /dev/null true 2>/dev/null; then
  absent "strace (installed by scripts/deps.sh) runs"; finish
fi
tap_tmp durability
tmp=$(realpath "$tmp")   # strace -y prints resolved paths

# traced NAME CMD...: runs CMD under strace, the trace in $tmp/NAME.trace
# (LeakSanitizer stops the world with ptrace, which a traced process cannot:
# leaks are checked by the other tests)
traced() {
  local name=$1; shift
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -y -qq -o "$tmp/$name.trace" \
    -e trace=fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,rmdir "$@"
}

# order.awk: reads a trace (-v prefix=: only renames under it count; -v
# old=, new=: the replaced and the new checkpoint) and prints
#   renames N, files N, dirs N, unsynced K, dir_unsynced K, parent_unsynced K,
#   removed_early K, removed K, and "why_<rule> ..." lines naming each violation
cat >"$tmp/order.awk" <<'EOF'
function parent(p) { sub(/\/[^\/]*$/, "", p); return p == "" ? "/" : p }
function quoted(s, k,   n, i, out) { # k-th "..." argument of a call
  for (i = 1; i <= k; i++) {
    n = index(s, "\""); if (!n) return ""; s = substr(s, n + 1)
    n = index(s, "\""); out = substr(s, 1, n - 1); s = substr(s, n + 1)
  }
  return out
}
{
  line = $0; pid = $1; sub(/^[0-9]+ +/, "", line)
  # a call interrupted by another thread's: join its two halves
  if (line ~ /<unfinished \.\.\.>$/) { pend[pid] = line; sub(/ *<unfinished \.\.\.>$/, "", pend[pid]); next }
  if (line ~ /^<\.\.\. [a-z0-9_]+ resumed>/) { sub(/^<\.\.\. [a-z0-9_]+ resumed> */, "", line); line = pend[pid] line }
  if (line !~ /= 0$/) next
  ev++
  call = line; sub(/\(.*/, "", call)
  if (call == "fsync" || call == "fdatasync") {
    p = line; sub(/^[a-z]+\([0-9]+</, "", p); sub(/>\) += 0$/, "", p)
    synced[p] = ev
  } else if (call ~ /^rename/) {
    from = quoted(line, 1); to = quoted(line, 2)
    if (index(to, prefix) != 1) next
    if (to ~ /\/\.[^\/]*\.old$/) {  # a folder moved aside to be deleted: removal, not publication
      if (old != "" && from == old) { removed++; if (!first_rm) first_rm = ev }
      next
    }
    n++; rto[n] = to; rfrom[n] = from; rev[n] = ev
    if (into[from]) {     # a folder that files were renamed into
      dirs++
      if (!(synced[from] > into[from])) { dunsync++; print "why_dir " from " renamed before an fsync after its last file" }
    } else {
      files++
      if (!synced[from]) { unsync++; print "why_file " from " renamed before an fsync" }
    }
    into[parent(to)] = ev
    if (to == new) new_ev = ev
  } else if (call == "unlink" || call == "unlinkat" || call == "rmdir") {
    p = quoted(line, 1)
    if (old != "" && (p == old || index(p, old "/") == 1)) { removed++; if (!first_rm) first_rm = ev }
    if (p ~ /\/\.[^\/]*\.old(\/|$)/) removed++   # what was moved aside is deleted
  }
  if (call == "fsync" && new_ev && !new_sync && p == parent(new)) new_sync = ev
}
END {
  for (i = 1; i <= n; i++)
    if (!(synced[parent(rto[i])] > rev[i])) { punsync++; print "why_parent no fsync of the folder after the rename to " rto[i] }
  if (old != "" && (!new_sync || (first_rm && first_rm < new_sync))) { early = 1; print "why_old " old " removed before " parent(new) " was synced after " new " was renamed into it" }
  printf "renames %d\nfiles %d\ndirs %d\nunsynced %d\ndir_unsynced %d\nparent_unsynced %d\nremoved_early %d\nremoved %d\n",
         n, files, dirs, unsync, dunsync, punsync, early, removed
}
EOF

# field NAME: a number from the last check's summary
field() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/summary"; }
# why RULE: the first violations of a rule, on one line
why() { grep "^why_$1 " "$tmp/summary" | head -2 | cut -d' ' -f2- | tr '\n' ';'; }
# check_order WHAT TRACE MIN_FILES MIN_DIRS [OLD NEW]: the ordering rules on one trace
check_order() {
  local what=$1 trace=$2 min_files=$3 min_dirs=$4 old=${5:-} new=${6:-}
  awk -v prefix="$tmp/" -v old="$old" -v new="$new" -f "$tmp/order.awk" "$tmp/$trace.trace" >"$tmp/summary"
  local files dirs; files=$(field files); dirs=$(field dirs)
  if [ "$files" -ge "$min_files" ] && [ "$dirs" -ge "$min_dirs" ]; then ok "$what: $files files and $dirs folders renamed into place"
  else bad "$what: $files files and $dirs folders renamed (expected at least $min_files and $min_dirs)"; fi
  if [ "$(field unsynced)" = 0 ]; then ok "$what: every file fsync'd before its rename"
  else bad "$what: $(field unsynced) files renamed before being fsync'd" "$(why file)"; fi
  if [ "$min_dirs" -gt 0 ]; then
    if [ "$(field dir_unsynced)" = 0 ]; then ok "$what: every folder fsync'd after its content, before its rename"
    else bad "$what: $(field dir_unsynced) folders renamed before being fsync'd" "$(why dir)"; fi
  fi
  if [ "$(field parent_unsynced)" = 0 ]; then ok "$what: the folder of every new name fsync'd after the rename"
  else bad "$what: $(field parent_unsynced) renames whose folder was not fsync'd after" "$(why parent)"; fi
  if [ -n "$old" ]; then
    if [ "$(field removed)" -gt 0 ] && [ "$(field removed_early)" = 0 ]; then
      ok "$what: the previous checkpoint removed only after the new one is durable"
    else bad "$what: previous checkpoint removal ($(field removed) calls) not after the new one's folder fsync" "$(why old)"; fi
  fi
}

# ---- a checkpointing sft run: 5 steps, checkpoints at 2 and 4 (2 replaced by 4)
for i in 1 2 3 4 5 6; do
  echo "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell story $i.\"},{\"role\":\"assistant\",\"content\":\"Once upon a time a cat named Tom $i found a red ball.\"}]}"
done >"$tmp/data.jsonl"
if traced sft "$tuna" sft --model "$model" --data "$tmp/data.jsonl" --steps 5 --batch 2 --save-every 2 --quiet \
     --cache-dir "$tmp/cache" --out "$tmp/run" >"$tmp/sft.log" 2>&1; then
  ok "sft under strace"
  check_order "sft" sft 10 2 "$tmp/run/checkpoint-2" "$tmp/run/checkpoint-4"
  [ -d "$tmp/run/checkpoint-4" ] && [ ! -e "$tmp/run/checkpoint-2" ] && ok "sft: checkpoint-4 kept, checkpoint-2 removed" \
    || bad "sft: checkpoints left" "$(ls "$tmp/run" | tr '\n' ' ')"
else
  bad "sft under strace" "$(tail -3 "$tmp/sft.log")"
fi

# ---- exports and conversions
if traced gguf "$tuna" export --model "$model" --format gguf --type q8_0 --out "$tmp/m.gguf" >"$tmp/gguf.log" 2>&1; then
  ok "export gguf under strace"; check_order "export gguf" gguf 1 0
else bad "export gguf under strace" "$(tail -3 "$tmp/gguf.log")"; fi
if traced hf "$tuna" export --model "$model" --format hf --dtype bf16 --out "$tmp/hf" >"$tmp/hf.log" 2>&1; then
  ok "export hf under strace"; check_order "export hf" hf 3 1
else bad "export hf under strace" "$(tail -3 "$tmp/hf.log")"; fi
if traced conv "$tuna" convert dtype --model "$model" --dtype f16 --out "$tmp/f16" >"$tmp/conv.log" 2>&1; then
  ok "convert dtype under strace"; check_order "convert dtype" conv 3 1
else bad "convert dtype under strace" "$(tail -3 "$tmp/conv.log")"; fi
# --overwrite: the complete new folder swapped with the old one in one rename
if traced conv2 "$tuna" convert dtype --model "$model" --dtype bf16 --out "$tmp/f16" --overwrite >"$tmp/conv2.log" 2>&1; then
  ok "convert dtype --overwrite under strace"; check_order "convert dtype --overwrite" conv2 3 1
else bad "convert dtype --overwrite under strace" "$(tail -3 "$tmp/conv2.log")"; fi
if traced split "$tuna" data split "$tmp/data.jsonl" --val 0.5 --out-train "$tmp/tr.jsonl" --out-val "$tmp/va.jsonl" >"$tmp/split.log" 2>&1; then
  ok "data split under strace"; check_order "data split" split 2 0
else bad "data split under strace" "$(tail -3 "$tmp/split.log")"; fi

left=$(find "$tmp" -name '*.tmp*' | head -3)
[ -z "$left" ] && ok "no temporary names left" || bad "temporary names left" "$left"
finish
