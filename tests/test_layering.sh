#!/usr/bin/env bash
# test_layering.sh BUILD — the source files form layers, not knots:
#   1. no call cycle between files: from the built objects (nm), file A calls
#      file B when A uses a symbol B defines; no two files may reach each
#      other through such calls (model.c -> peft.c -> model.c was one, and
#      every command with main.c, which both dispatched and held the helpers
#      they call);
#   2. no include cycle between headers under src/ (a header reaching itself
#      through its #include "..." lines);
#   3. tests reach a model's or a data set's insides through tests/model_probe.h
#      and the public accessors, never the struct layouts of
#      model/model_internal.h or data/pretok_internal.h.
# Files talk back only through tables of function pointers (the adapter's
# hooks, the template evaluator's hooks, the training modes). Cycles are
# printed with the symbols behind each edge. Ends with "RESULT p f s".
set -u
cd "$(dirname "$0")/.." || exit 1
build=${1:-build}
. tests/tap.sh

mapfile -t objs < <(find "$build/src" -name '*.o' 2>/dev/null | sort)
live=()
for o in "${objs[@]}"; do
  src=${o#"$build"/}; src=${src%.o}.c
  [ -f "$src" ] && live+=("$o")   # objects of removed sources are not the tree's
done
if [ "${#live[@]}" -lt 20 ]; then bad "$build/src holds the built objects (found ${#live[@]})"; finish; fi

# closure FILE: lines "A B" (A uses B) in, every pair on a cycle out as "A B"
cycles() {
  awk '
    { if (!($1 in id)) { id[$1] = n; name[n++] = $1 } if (!($2 in id)) { id[$2] = n; name[n++] = $2 }
      r[id[$1], id[$2]] = 1 }
    END {
      for (k = 0; k < n; k++) for (i = 0; i < n; i++) if ((i, k) in r) for (j = 0; j < n; j++) if ((k, j) in r) r[i, j] = 1
      for (i = 0; i < n; i++) for (j = 0; j < n; j++) if (i != j && (i, j) in r && (j, i) in r) print name[i], name[j]
    }' "$1"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for o in "${live[@]}"; do
  src=${o#"$build"/}; src=${src%.o}.c
  nm "$o" | awk -v f="$src" 'NF == 3 && $2 ~ /^[TDBR]$/ { print "D", $3, f } NF == 2 && $1 == "U" { print "U", $2, f }'
done >"$tmp/syms"
awk '$1 == "D" { def[$2] = $3; next } { use[NR] = $3 " " $2 }
     END { for (k in use) { split(use[k], p, " "); if ((p[2] in def) && def[p[2]] != p[1]) print p[1], def[p[2]], p[2] } }' \
  "$tmp/syms" "$tmp/syms" | sort -u >"$tmp/calls"
cut -d' ' -f1,2 "$tmp/calls" | sort -u >"$tmp/edges"
cycles "$tmp/edges" >"$tmp/cyc"
if [ ! -s "$tmp/edges" ]; then bad "calls between files found in the objects"
elif [ -s "$tmp/cyc" ]; then
  bad "call cycles between files ($(wc -l <"$tmp/cyc") ordered pairs reach each other)"
  cut -d' ' -f1 "$tmp/cyc" | sort -u | while read -r a; do
    awk -v a="$a" '$1 == a' "$tmp/cyc" | while read -r _ b; do
      grep -q "^$a $b " "$tmp/calls" && echo "  $a -> $b: $(awk -v a="$a" -v b="$b" '$1 == a && $2 == b {printf "%s ", $3}' "$tmp/calls")"
    done
  done
else ok "no call cycle among $(cut -d' ' -f1 "$tmp/edges" | sort -u | wc -l) calling files ($(wc -l <"$tmp/edges") file-to-file edges)"; fi

# headers: H includes G ("..." resolved against src/ or H's folder)
find src -name '*.h' | sort | while read -r h; do
  sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$h" | while read -r inc; do
    for c in "src/$inc" "$(dirname "$h")/$inc"; do
      if [ -f "$c" ]; then echo "$h $(realpath --relative-to=. "$c")"; break; fi
    done
  done
done | sort -u >"$tmp/incs"
cycles "$tmp/incs" >"$tmp/icyc"
if [ -s "$tmp/icyc" ]; then bad "include cycles between headers: $(tr '\n' ' ' <"$tmp/icyc")"
else ok "no include cycle among $(find src -name '*.h' | wc -l) headers ($(wc -l <"$tmp/incs") includes)"; fi

layouts=$(grep -lE '#include "(model/model_internal|data/pretok_internal)\.h"' tests/*.c tests/*.h 2>/dev/null | tr '\n' ' ')
if [ -z "$layouts" ]; then ok "no test includes model_internal.h or pretok_internal.h"
else bad "tests that include model_internal.h or pretok_internal.h (use tests/model_probe.h): $layouts"; fi
finish
