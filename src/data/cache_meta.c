/* cache_meta.c — what a data set's token cache entry remembers of the read it
 * came from (cache_internal.h), as the entry's extra bytes:
 *   "TUNAMETA" | i64 K | i64 scalar[K] | per bad record: i64 line, i64 index,
 *   i64 kind, i64 reason_len, reason bytes
 * The scalars: records, good, bad, bad_by_kind[TUNA_BAD_COUNT],
 * by_format[TUNA_FORMAT_COUNT], truncated, dropped, is_array, n_notes.
 * Decoding checks every length and range: bytes that do not fit make the
 * entry damaged (rebuilt), never a wrong count. */
#include <stdlib.h>
#include <string.h>

#include "data/cache_internal.h"
#include "core/error.h"

#define META_MAGIC "TUNAMETA"
#define META_SCALARS (3 + TUNA_BAD_COUNT + TUNA_FORMAT_COUNT + 4)

/* the scalars in their stored order, as pointers into m */
static void scalar_slots(cache_meta *m, long *slot[META_SCALARS], int **ints) {
    int k = 0;
    slot[k++] = &m->data.records;
    slot[k++] = &m->data.good;
    slot[k++] = &m->data.bad;
    for (int i = 0; i < TUNA_BAD_COUNT; i++) slot[k++] = &m->data.bad_by_kind[i];
    for (int i = 0; i < TUNA_FORMAT_COUNT; i++) slot[k++] = &m->data.by_format[i];
    slot[k++] = &m->truncated;
    slot[k++] = &m->dropped;
    ints[0] = &m->is_array;
    ints[1] = &m->n_notes;
}

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int ok;
} meta_buf;

static void put_bytes(meta_buf *b, const void *p, size_t n) {
    if (!b->ok) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? 2 * b->cap : 1024;
        while (c < b->n + n) c *= 2;
        unsigned char *q = realloc(b->p, c);
        if (!q) { b->ok = 0; return; }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_i64(meta_buf *b, int64_t v) { put_bytes(b, &v, 8); }

tuna_status cache_meta_encode(const cache_meta *m, void **out, size_t *len) {
    cache_meta c = *m;
    long *slot[META_SCALARS];
    int *ints[2];
    scalar_slots(&c, slot, ints);
    meta_buf b = {NULL, 0, 0, 1};
    put_bytes(&b, META_MAGIC, 8);
    put_i64(&b, META_SCALARS);
    for (int k = 0; k < META_SCALARS - 2; k++) put_i64(&b, *slot[k]);
    put_i64(&b, *ints[0]);
    put_i64(&b, *ints[1]);
    for (int i = 0; i < m->n_notes; i++) {
        const data_bad_note *n = &m->notes[i];
        size_t rl = strlen(n->reason);
        put_i64(&b, n->line);
        put_i64(&b, n->index);
        put_i64(&b, n->kind);
        put_i64(&b, (int64_t)rl);
        put_bytes(&b, n->reason, rl);
    }
    if (!b.ok) { free(b.p); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    *out = b.p;
    *len = b.n;
    return TUNA_OK;
}

typedef struct {
    const unsigned char *p;
    size_t n, at;
} meta_in;

static int get_i64(meta_in *in, int64_t *v) {
    if (in->n - in->at < 8) return 0;
    memcpy(v, in->p + in->at, 8);
    in->at += 8;
    return 1;
}

static int get_note(meta_in *in, data_bad_note *n) {
    int64_t line, index, kind, rl;
    if (!get_i64(in, &line) || !get_i64(in, &index) || !get_i64(in, &kind) || !get_i64(in, &rl)) return 0;
    if (kind < 0 || kind >= TUNA_BAD_COUNT || rl < 0 || rl >= (int64_t)sizeof n->reason || in->n - in->at < (size_t)rl) return 0;
    n->line = (long)line;
    n->index = (long)index;
    n->kind = (int)kind;
    memcpy(n->reason, in->p + in->at, (size_t)rl);
    n->reason[rl] = 0;
    in->at += (size_t)rl;
    return 1;
}

tuna_status cache_meta_decode(cache_meta *m, const void *p, size_t len) {
    memset(m, 0, sizeof *m);
    meta_in in = {p, len, 8};
    long *slot[META_SCALARS];
    int *ints[2];
    scalar_slots(m, slot, ints);
    int64_t k = 0, v;
    int ok = len >= 8 && !memcmp(p, META_MAGIC, 8) && get_i64(&in, &k) && k == META_SCALARS;
    for (int i = 0; ok && i < META_SCALARS - 2; i++)
        if ((ok = get_i64(&in, &v) && v >= 0)) *slot[i] = (long)v;
    for (int i = 0; ok && i < 2; i++)
        if ((ok = get_i64(&in, &v) && v >= 0 && v <= DATA_BAD_NOTES)) *ints[i] = (int)v;
    if (ok && m->n_notes && !(m->notes = calloc((size_t)m->n_notes, sizeof *m->notes)))
        return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; ok && i < m->n_notes; i++) ok = get_note(&in, &m->notes[i]);
    if (ok && in.at == len) return TUNA_OK;
    cache_meta_free(m);
    return core_fail(TUNA_ERR_FORMAT, "record counts unreadable");
}

void cache_meta_free(cache_meta *m) {
    free(m->notes);
    memset(m, 0, sizeof *m);
}
