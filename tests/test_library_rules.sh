#!/usr/bin/env bash
# test_library_rules.sh BUILD — the library returns errors and never ends the
# process (ARCHITECTURE.md, STYLE.md): only the CLI decides to exit or to end
# a data-parallel job. Reads the machine code of BUILD/libtuna.a (and of
# BUILD/libtuna_internal.a, one object per source file, when it exists) and
# fails when any of it refers to a function that ends the process:
#   exit, _exit, _Exit, quick_exit, abort, __assert_fail (assert)
# or to MPI_Abort anywhere but the one documented place, tuna_dist_abort_job
# in src/train/dist.c (MPI's way to end every rank, called by the CLI once it
# has decided to end the job). No other exception exists today: an assert-
# like abort for programmer errors would have to be added to `allowed` below
# with its reason. Ends with "RESULT <passed> <failed> <skipped>".
set -u
cd "$(dirname "$0")/.." || exit 1
build=${1:-build}
. tests/tap.sh

ends_process=(exit _exit _Exit quick_exit abort __assert_fail)
ends_re=$(IFS="|"; echo "${ends_process[*]}")
# "function symbol" pairs allowed to refer to a process- or job-ending call
allowed="tuna_dist_abort_job MPI_Abort"

# "object function symbol" for every reference in machine code to one of the
# symbols given (objdump's relocations, attributed to the enclosing function)
references() {
  local archive=$1; shift
  objdump -dr --no-show-raw-insn "$archive" | awk -v want=" $* " '
    /^[^ \t].*:[ \t]+file format/ { obj = $1; sub(/:$/, "", obj) }
    /^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn) }
    /R_X86_64_|R_AARCH64_/ { s = $NF; sub(/[-+]0x[0-9a-f]+$/, "", s); sub(/@.*/, "", s)
                             if (index(want, " " s " ")) print obj, fn, s }' | sort -u
}

archives=()
for a in "$build/libtuna.a" "$build/libtuna_internal.a"; do [ -f "$a" ] && archives+=("$a"); done
if [ ! -f "$build/libtuna.a" ]; then bad "$build/libtuna.a exists (build it first)"; finish; fi

for a in "${archives[@]}"; do
  # the reading works: the library's own status function and its call to vsnprintf are seen
  if nm --defined-only "$a" 2>/dev/null | grep -qw tuna_status_str && references "$a" vsnprintf | grep -qw core_fail; then
    ok "$a: symbols and calls readable"
  else
    bad "$a: cannot read its symbols or calls (nm/objdump)"; continue
  fi
  # anything in the library's symbol tables (code or data) naming an exit function
  named=$(nm -A -u "$a" 2>/dev/null | awk '{print $NF}' | grep -xE "$ends_re" | sort -u | tr '\n' ' ')
  if [ -z "$named" ]; then ok "$a: no reference to ${ends_process[*]}"
  else bad "$a refers to: $named"; nm -A -u "$a" | grep -wE "$ends_re"; fi
  offenders=$(references "$a" "${ends_process[@]}" MPI_Abort | while read -r obj fn sym; do
    case " $allowed " in *" $fn $sym "*) ;; *) echo "$obj: $fn calls $sym";; esac
  done)
  if [ -z "$offenders" ]; then ok "$a: MPI_Abort only in tuna_dist_abort_job"
  else bad "$a: process-ending calls outside the allowed places:"; echo "$offenders"; fi
done
finish
