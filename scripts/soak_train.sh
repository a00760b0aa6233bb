#!/usr/bin/env bash
# Checkpoint soak (`make soak-train`, outside `make test`): `tuna sft
# --save-every N` on models/tuna-stories is killed with SIGKILL at seeded
# random moments, full fine-tuning and LoRA. After each kill every
# checkpoint-* folder left must load (a zero-step --resume from it), then the
# run resumes from the newest one (or starts over when there is none); each
# run, however often killed, must end with safetensors byte-identical to one
# uninterrupted run. Every third kill is aimed at a checkpoint write: it waits
# for a new .checkpoint-N.tmp folder, then 0-20 ms more. A run killed before
# its first checkpoint leaves no output folder (its files are staged in a
# hidden sibling, src/cli/run_staging.h), which the next start removes: no
# staging folder may be left once a run has finished. Prints the seed and
# the counts; exits 1 on any failure.
# Settings (environment): SOAK_KILLS (kills per method, 30), SOAK_SEED (random
# when unset), SOAK_METHODS ("full lora"), SOAK_WORK (a temporary folder),
# TUNA (build/tuna). One thread (OMP_NUM_THREADS=1): the machine is shared.
set -uo pipefail
cd "$(dirname "$0")/.."
T=${TUNA:-build/tuna}
kills_wanted=${SOAK_KILLS:-30}
seed=${SOAK_SEED:-$((($(date +%s) ^ $$) % 32768))}
methods=${SOAK_METHODS:-full lora}
work=${SOAK_WORK:-$(mktemp -d /tmp/tuna-soak-train.XXXXXX)}
export OMP_NUM_THREADS=1
RANDOM=$seed
echo "soak-train: seed $seed (SOAK_SEED=$seed repeats the schedule), work folder $work"
mkdir -p "$work"
"$T" data synth --out "$work/data" --train 200 --val 16 --eval 4 --seed 1 >/dev/null || exit 1
failures=0

fail() { echo "soak-train: FAIL: $*"; failures=$((failures + 1)); }

# the sft command of one method; extra arguments are appended
sft_args() {
  local method=$1
  local common=(--model models/tuna-stories --data "$work/data/train.jsonl" --val "$work/data/val.jsonl"
    --eval-every 10 --batch 8 --seq-len 128 --seed 3 --quiet)
  case $method in
    full) echo "${common[@]} --steps 40 --save-every 2" ;;
    lora) echo "${common[@]} --method lora --lora-r 8 --steps 80 --save-every 3" ;;
  esac
}

# checkpoint_ok METHOD DIR: the folder loads as a checkpoint (weights,
# optimizer moments, trainer state): a resume from it that trains no step
checkpoint_ok() {
  local method=$1 dir=$2 step
  step=${dir##*checkpoint-}
  rm -rf "$work/probe"
  # shellcheck disable=SC2046
  "$T" sft $(sft_args "$method") --steps "$step" --resume "$dir" --out "$work/probe" >"$work/probe.log" 2>&1
}

# safetensors of an output folder, identical to the reference run's
same_weights() {
  local ref=$1 out=$2 f ok=0
  for f in "$ref"/*.safetensors; do
    cmp -s "$f" "$out/$(basename "$f")" || { ok=1; echo "soak-train: $out/$(basename "$f") differs from $f"; }
  done
  return $ok
}

# after a kill: every checkpoint folder loads; sets newest ("" if none)
check_after_kill() {
  local method=$1 out=$2 d n best=-1
  newest=""
  for d in "$out"/checkpoint-*; do
    [ -d "$d" ] || continue
    if ! checkpoint_ok "$method" "$d"; then
      fail "$method: $d does not load after a kill: $(tail -1 "$work/probe.log")"
      cp -r "$d" "$work/bad-$method-$(basename "$d")-$kills" 2>/dev/null
    fi
    n=${d##*checkpoint-}
    [ "$n" -gt "$best" ] && { best=$n; newest=$d; }
  done
}

# which part of write_checkpoint a kill landed in, if any: writing the
# temporary folder, between its rename and the removal of the previous
# checkpoint (two present), or removing the previous one (a hidden .old)
classify_kill() {
  local out=$1 hidden
  [ -d "$out" ] || { staged=$((staged + 1)); return; }
  hidden=$(find "$out" -maxdepth 1 -name '.checkpoint-*' -cnewer "$work/started")
  if [[ $hidden == *.tmp* ]]; then in_tmp=$((in_tmp + 1))
  elif [ "$(compgen -G "$out/checkpoint-*" | wc -l)" -gt 1 ]; then two_ckpt=$((two_ckpt + 1))
  elif [[ $hidden == *.old* ]]; then in_old=$((in_old + 1))
  fi
}

exec {nap_fd}<> <(:)
nap() { read -rt "$1" -u "$nap_fd"; }   # sleeps without a process per call

# waits (at most ms) until the run starts a checkpoint write, then 0-20 ms
aim_at_write() {
  local out=$1 ms=$2 d t=0 late
  while [ "$t" -lt "$ms" ]; do
    for d in "$out"/.checkpoint-*.tmp; do
      if [ -d "$d" ] && [ "$d" -nt "$work/started" ]; then
        late=$((RANDOM % 21)); nap "0.$(printf %03d "$late")"; return
      fi
    done
    nap 0.002; t=$((t + 2))
  done
}

soak_method() {
  local method=$1 ref="$work/$method-ref" out="$work/$method-run" t0 ms pid rc resume segs
  local runs=0 kills=0 in_tmp=0 two_ckpt=0 in_old=0 staged=0 mismatches=0
  t0=$(date +%s%N)
  # shellcheck disable=SC2046
  "$T" sft $(sft_args "$method") --out "$ref" || { fail "$method: the reference run failed"; return; }
  ms=$((($(date +%s%N) - t0) / 1000000))
  echo "soak-train: $method: uninterrupted run ${ms} ms; killing at random moments in (0, ${ms}) ms of each start"
  while [ "$kills" -lt "$kills_wanted" ]; do
    rm -rf "$out"; resume=""; segs=0
    while :; do
      # shellcheck disable=SC2046
      touch "$work/started"
      "$T" sft $(sft_args "$method") ${resume:+--resume "$resume"} --out "$out" 2>"$work/run.log" &
      pid=$!
      segs=$((segs + 1))
      if [ "$kills" -lt "$kills_wanted" ] && [ "$segs" -le 8 ]; then
        if [ $((kills % 3)) -eq 2 ]; then aim_at_write "$out" "$ms"
        else
          local at=$((RANDOM * 32768 + RANDOM)); at=$((at % ms + 1))
          sleep "$((at / 1000)).$(printf %03d $((at % 1000)))"
        fi
        kill -9 "$pid" 2>/dev/null
      fi
      wait "$pid" 2>/dev/null; rc=$?
      if [ "$rc" -eq 137 ]; then
        kills=$((kills + 1))
        classify_kill "$out"
        check_after_kill "$method" "$out"
        resume=$newest
        continue
      fi
      [ "$rc" -eq 0 ] || { fail "$method: run ended with status $rc: $(tail -2 "$work/run.log")"; break; }
      runs=$((runs + 1))
      same_weights "$ref" "$out" || { mismatches=$((mismatches + 1)); fail "$method: run $runs differs"; }
      compgen -G "$work/.$(basename "$out").run-*" >/dev/null && fail "$method: a staging folder is left: $(compgen -G "$work/.$(basename "$out").run-*")"
      break
    done
  done
  echo "soak-train: $method: runs $runs, kills $kills, kills before the first checkpoint $staged, kills during a" \
       "checkpoint write $((in_tmp + two_ckpt + in_old)) (writing $in_tmp, renamed $two_ckpt, removing the previous $in_old)," \
       "mismatches $mismatches"
}

for method in $methods; do soak_method "$method"; done
echo "soak-train: seed $seed, failures $failures"
[ "$failures" -eq 0 ] && { [ -n "${SOAK_WORK:-}" ] || rm -rf "$work"; }
[ "$failures" -eq 0 ]
