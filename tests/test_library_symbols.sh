#!/usr/bin/env bash
# test_library_symbols.sh BUILD — the public archive BUILD/libtuna.a exports
# only tuna_* names, so a program may link it beside another library that
# uses the same internal names (llama.cpp's gguf_*, or its own helpers):
#   1. `nm -g --defined-only` lists no defined global symbol outside tuna_*
#      (no exception is needed today: the C runtime's symbols are not in it);
#      and the tuna_* names it defines are exactly the functions the public
#      headers include/*.h declare (no internal helper under the public
#      prefix, no declaration left without its definition);
#   2. a program that defines gguf_open, gguf_find_tensor, gguf_get_str,
#      gguf_close, st_open, data_hash64 and k_gemm itself links with
#      libtuna.a (the libraries it needs listed in BUILD/libtuna.ldlibs),
#      runs, and libtuna still calls its own versions: loading a missing GGUF
#      file fails with the library's error, none of the program's are called.
# Ends with "RESULT <passed> <failed> <skipped>".
set -u
cd "$(dirname "$0")/.." || exit 1
build=${1:-build}
. tests/tap.sh

lib=$build/libtuna.a
if [ ! -f "$lib" ] || [ ! -f "$build/libtuna.ldlibs" ]; then bad "$lib and $build/libtuna.ldlibs exist (build first)"; finish; fi

defined=$(nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}')
others=$(grep -v '^tuna_' <<<"$defined" | sort -u)
if ! grep -qx tuna_status_str <<<"$defined"; then bad "nm lists tuna_status_str as defined in $lib"
elif [ -z "$others" ]; then ok "$lib defines $(wc -l <<<"$defined") global symbols, all tuna_*"
else bad "$lib defines $(wc -l <<<"$others") global symbols outside tuna_*: $(head -20 <<<"$others" | tr '\n' ' ')..."; fi

declared=$(cat include/*.h | grep -oE '\btuna_[a-z0-9_]+\(' | tr -d '(' | sort -u)
undeclared=$(comm -23 <(sort -u <<<"$defined") <(echo "$declared"))
undefined=$(comm -13 <(sort -u <<<"$defined") <(echo "$declared"))
if [ -z "$undeclared" ] && [ -z "$undefined" ]; then ok "the $(wc -l <<<"$declared") functions include/*.h declares are exactly those $lib exports"
else bad "exported but not declared in include/: $(tr '\n' ' ' <<<"$undeclared"); declared but not defined: $(tr '\n' ' ' <<<"$undefined")"; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/clash.c" <<'EOF'
/* names libtuna uses inside, defined again by this program (as llama.cpp
 * defines gguf_*): each records that it was called */
#include <stdio.h>
#include <string.h>
#include "tuna.h"
#include "tuna_gguf.h"

static int called;
int gguf_open(void *f, const char *path) { (void)f; (void)path; called++; return 0; }
void gguf_close(void *f) { (void)f; called++; }
const void *gguf_find_tensor(const void *f, const char *name) { (void)f; (void)name; called++; return NULL; }
const char *gguf_get_str(const void *f, const char *key, size_t *len) { (void)f; (void)key; (void)len; called++; return "x"; }
int st_open(void *f, const char *path) { (void)f; (void)path; called++; return 0; }
unsigned long long data_hash64(const void *p, size_t n, unsigned long long seed) { (void)p; (void)n; called++; return seed; }
void k_gemm(void) { called++; }

int main(void) {
    tuna_model *m = NULL;
    tuna_status st = tuna_model_load_gguf(&m, "/nonexistent/clash.gguf");
    printf("tuna_model_load_gguf: %s (%s); program's functions called %d times\n", tuna_status_str(st), tuna_last_error(), called);
    return st == TUNA_ERR_IO && m == NULL && called == 0 && strstr(tuna_last_error(), "clash.gguf") ? 0 : 1;
}
EOF
# shellcheck disable=SC2046  # the library list is words
if ! ${CC:-cc} -std=c11 -Wall -Iinclude "$tmp/clash.c" "$lib" $(cat "$build/libtuna.ldlibs") -o "$tmp/clash" >"$tmp/link.log" 2>&1; then
  bad "a program defining gguf_open, gguf_find_tensor, ... links with $lib:"; grep -m 8 -E 'multiple definition|error' "$tmp/link.log"
elif out=$("$tmp/clash" 2>&1); then ok "it links and runs; libtuna uses its own: $out"
else bad "it links, but: $out"; fi
finish
