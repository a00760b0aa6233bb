/* pack.c — first-fit-decreasing packing of sequences into rows of seq_len
 * tokens, so that packing changes speed, not the result: position ids restart
 * at each example, the model confines attention to each example (see
 * tuna_batch.pos_ids), and no example is scored against another's tokens.
 * A segment tree over the rows' free space finds the first row that fits in
 * O(log rows), so packing a million examples stays fast. */
#include <stdlib.h>
#include <string.h>

#include "tuna.h"
#include "core/error.h"
#include "data/pretok_internal.h"

typedef struct { int64_t idx, len; } item;

static int by_len_desc(const void *a, const void *b) {
    const item *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->idx < y->idx ? -1 : x->idx > y->idx; /* stable: input order among equals */
}

/* max-tree of free space over rows [0, cap) */
typedef struct { int64_t *t; int64_t size; } maxtree;

static void tree_set(maxtree *m, int64_t i, int64_t v) {
    i += m->size;
    m->t[i] = v;
    for (i >>= 1; i >= 1; i >>= 1) m->t[i] = m->t[2 * i] > m->t[2 * i + 1] ? m->t[2 * i] : m->t[2 * i + 1];
}

/* first leaf with value >= need, or -1 */
static int64_t tree_first(const maxtree *m, int64_t need) {
    if (m->t[1] < need) return -1;
    int64_t i = 1;
    while (i < m->size) i = m->t[2 * i] >= need ? 2 * i : 2 * i + 1;
    return i - m->size;
}

tuna_status tuna_pretok_pack(const tuna_pretok *in, int seq_len, tuna_pretok **out_p) {
    *out_p = NULL;
    tuna_pretok packed, *out = &packed;
    memset(out, 0, sizeof *out);
    if (seq_len < 2) return core_fail(TUNA_ERR_ARG, "pack: sequence length %d too short", seq_len);
    int64_t n = in->n;
    item *items = malloc((size_t)(n ? n : 1) * sizeof *items);
    int64_t size = 1;
    while (size < (n ? n : 1)) size <<= 1;
    maxtree tree = {calloc((size_t)(2 * size), sizeof(int64_t)), size};
    int64_t *row_of = malloc((size_t)(n ? n : 1) * sizeof(int64_t)), *row_fill = calloc((size_t)size, sizeof(int64_t));
    if (!items || !tree.t || !row_of || !row_fill) {
        free(items); free(tree.t); free(row_of); free(row_fill);
        return core_fail(TUNA_ERR_NOMEM, "pack: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t len = in->off[i + 1] - in->off[i];
        items[i] = (item){i, len < seq_len ? len : seq_len};
    }
    qsort(items, (size_t)n, sizeof *items, by_len_desc);
    int64_t rows = 0, total = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t r = tree_first(&tree, items[k].len);
        if (r < 0) r = rows++; /* open a new row */
        row_of[items[k].idx] = r;
        row_fill[r] += items[k].len;
        tree_set(&tree, r, seq_len - row_fill[r]);
        total += items[k].len;
    }
    out->n = rows;
    out->off = malloc((size_t)(rows + 1) * sizeof(int64_t));
    out->ids = malloc((size_t)(total ? total : 1) * sizeof(int32_t));
    out->labels = malloc((size_t)(total ? total : 1) * sizeof(int32_t));
    out->pos = malloc((size_t)(total ? total : 1) * sizeof(int32_t));
    int64_t *cursor = malloc((size_t)(rows ? rows : 1) * sizeof(int64_t));
    tuna_status st = TUNA_OK;
    if (!out->off || !out->ids || !out->labels || !out->pos || !cursor) st = core_fail(TUNA_ERR_NOMEM, "pack: out of memory");
    else {
        out->off[0] = 0;
        for (int64_t r = 0; r < rows; r++) {
            out->off[r + 1] = out->off[r] + row_fill[r];
            cursor[r] = out->off[r];
            if (row_fill[r] > out->max_len) out->max_len = (int)row_fill[r];
        }
        /* examples enter their row in the packing order (longest first) */
        for (int64_t k = 0; k < n; k++) {
            int64_t i = items[k].idx, r = row_of[i], len = items[k].len, o = in->off[i], c = cursor[r];
            memcpy(out->ids + c, in->ids + o, (size_t)len * sizeof(int32_t));
            memcpy(out->labels + c, in->labels + o, (size_t)len * sizeof(int32_t));
            out->labels[c] = -100;
            for (int64_t j = 0; j < len; j++) out->pos[c + j] = (int32_t)j;
            cursor[r] += len;
        }
    }
    free(cursor); free(items); free(tree.t); free(row_of); free(row_fill);
    if (st != TUNA_OK) {
        pretok_clear(out);
        return st;
    }
    return pretok_take(out, out_p);
}
