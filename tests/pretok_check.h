/* pretok_check.h — what tests need of pre-tokenized data sets, through the
 * public API only (tuna_pretok is opaque): the token total, a comparison of
 * two data sets, and a copy with some sequences reordered or edited (to
 * present a trainer with data that differs in one place). */
#ifndef TUNA_TEST_PRETOK_CHECK_H
#define TUNA_TEST_PRETOK_CHECK_H
#include <stdlib.h>
#include <string.h>

#include "tuna.h"

/* Tokens over all sequences. */
static inline int64_t pretok_tokens(const tuna_pretok *p) {
    int64_t n = 0;
    for (int64_t i = 0; i < tuna_pretok_count(p); i++) n += tuna_pretok_seq(p, i, NULL, NULL, NULL);
    return n;
}

/* 1 when a and b hold the same sequences: lengths, ids, labels and (packed)
 * position ids. */
static inline int pretok_same(const tuna_pretok *a, const tuna_pretok *b) {
    if (tuna_pretok_count(a) != tuna_pretok_count(b)) return 0;
    for (int64_t i = 0; i < tuna_pretok_count(a); i++) {
        const int32_t *ia, *la, *pa, *ib, *lb, *pb;
        int64_t n = tuna_pretok_seq(a, i, &ia, &la, &pa);
        if (tuna_pretok_seq(b, i, &ib, &lb, &pb) != n || !pa != !pb) return 0;
        size_t bytes = (size_t)n * sizeof(int32_t);
        if (memcmp(ia, ib, bytes) || memcmp(la, lb, bytes) || (pa && memcmp(pa, pb, bytes))) return 0;
    }
    return 1;
}

/* Changes a copied sequence (number i of the source) before it is appended. */
typedef void (*pretok_edit_fn)(int64_t i, int32_t *ids, int32_t *labels, int64_t len, void *ctx);

/* A copy of unpacked d with its sequences in the order order[0 .. count(d))
 * (NULL: as they are), each passed through edit first (may be NULL); NULL
 * when out of memory. */
static inline tuna_pretok *pretok_copy(const tuna_pretok *d, const int64_t *order, pretok_edit_fn edit, void *ctx) {
    tuna_pretok *c = NULL;
    int ok = tuna_pretok_new(&c) == TUNA_OK;
    int32_t *ids = malloc(((size_t)tuna_pretok_max_len(d) + 1) * sizeof *ids);
    int32_t *labels = malloc(((size_t)tuna_pretok_max_len(d) + 1) * sizeof *labels);
    ok = ok && ids && labels;
    for (int64_t k = 0; ok && k < tuna_pretok_count(d); k++) {
        int64_t i = order ? order[k] : k;
        const int32_t *si, *sl;
        int64_t n = tuna_pretok_seq(d, i, &si, &sl, NULL);
        memcpy(ids, si, (size_t)n * sizeof *ids);
        memcpy(labels, sl, (size_t)n * sizeof *labels);
        if (edit) edit(i, ids, labels, n, ctx);
        ok = tuna_pretok_append(c, ids, labels, n) == TUNA_OK;
    }
    free(ids);
    free(labels);
    if (!ok) {
        tuna_pretok_free(c);
        return NULL;
    }
    return c;
}

/* An edit for pretok_copy (ctx: a pretok_token): one token changed, in
 * sequence seq at position k the id (label 0) or the label (label 1). */
typedef struct {
    int64_t seq, k;
    int label;
    int32_t value;
} pretok_token;
static inline void pretok_set_token(int64_t i, int32_t *ids, int32_t *labels, int64_t len, void *ctx) {
    const pretok_token *t = ctx;
    if (i == t->seq && t->k < len) (t->label ? labels : ids)[t->k] = t->value;
}
#endif
