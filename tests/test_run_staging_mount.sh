#!/usr/bin/env bash
# A training --out that is a mount point (a container's volume) cannot be
# swapped with a staging sibling: the run stages inside it (.tuna-run-PID)
# and moves its files in at its first result (src/cli/run_staging.h). Checked
# in a private mount namespace (unshare -m as root, unshare -rm otherwise)
# with a tmpfs mounted on OUT: a failing run leaves it byte for byte as it
# was, a non-empty one is refused without --overwrite and replaced with it,
# nothing hidden is left. tests/test_run_staging_mount.sh [BUILD_DIR], from
# anywhere; a few seconds. Ends with "RESULT <passed> <failed> <skipped>".
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
case $build in /*) tuna=$build/tuna ;; *) tuna=$PWD/$build/tuna ;; esac
. tests/tap.sh

if [ "${TUNA_STAGING_NS:-}" != 1 ]; then
  # shellcheck disable=SC2016
  can_mount='d=$(mktemp -d) && mount -t tmpfs tmpfs "$d" && umount "$d"; r=$?; rmdir "$d"; exit $r'
  for u in "unshare -m" "unshare -rm"; do
    if $u sh -c "$can_mount" 2>/dev/null; then TUNA_STAGING_NS=1 exec $u bash "$0" "$@"; fi
  done
  absent "a mount point as --out (needs unshare -m as root, or unshare -rm)"
  finish
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tuna-staging-mount.XXXXXX")
vol=$tmp/vol
mkdir "$vol" && mount -t tmpfs tmpfs "$vol" || { bad "mount a tmpfs on $vol"; finish; }
fix=tests/fixtures/parity/llama_gqa
c=(--model $fix --data $fix/data.jsonl --batch 2 --quiet)
# names, types, modes and sizes, then every file's checksum
snap() { (cd "$1" && find . -printf '%p %y %m %s\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r md5sum); }
hidden() { find "$vol" -maxdepth 1 -name '.tuna-*' | wc -l; }

"$tuna" sft "${c[@]}" --steps 3 --save-every 2 --out "$vol"
[ $? = 0 ] && [ -d "$vol/checkpoint-2" ] && [ -f "$vol/model.safetensors" ] && [ "$(hidden)" = 0 ] &&
  ok "a run into an empty mount point writes its files there" || bad "a run into an empty mount point"
echo "the user's notes" > "$vol/notes.txt"
before=$(snap "$vol")

"$tuna" sft "${c[@]}" --steps 2 --overwrite --general-eval "$tmp/missing.txt" --out "$vol" 2>/dev/null
rc=$?
[ $rc = 2 ] && [ "$(snap "$vol")" = "$before" ] && ok "a failing run leaves the mount point as it was" ||
  bad "a failing run into the mount point" "exit $rc; changed: $(diff <(echo "$before") <(snap "$vol") | head -5)"

"$tuna" sft "${c[@]}" --steps 1 --out "$vol" 2>/dev/null
rc=$?
[ $rc = 2 ] && [ "$(snap "$vol")" = "$before" ] && ok "a non-empty mount point is refused without --overwrite" ||
  bad "a non-empty mount point without --overwrite" "exit $rc"

"$tuna" sft "${c[@]}" --steps 1 --overwrite --out "$vol"
rc=$?
[ $rc = 0 ] && [ ! -e "$vol/notes.txt" ] && [ ! -e "$vol/checkpoint-2" ] && [ -f "$vol/model.safetensors" ] &&
  [ "$(hidden)" = 0 ] && ok "--overwrite replaces the mount point's content" ||
  bad "--overwrite into the mount point" "exit $rc: $(ls -A "$vol" | tr '\n' ' ')"

umount "$vol"
rm -rf "$tmp"
finish
