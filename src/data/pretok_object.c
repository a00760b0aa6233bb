/* pretok_object.c — the pre-tokenized data set as an object: its life (new,
 * free, the library's builders handing over a filled struct), sequences
 * appended one at a time, views of a range of sequences that share their
 * base's tokens, and the accessors callers outside the library read it by.
 * The layout is in pretok_internal.h. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"
#include "data/pretok_internal.h"

void pretok_clear(tuna_pretok *p) {
    if (p->map) {
        munmap(p->map, p->map_size); /* off, ids, labels, pos point into it */
    } else {
        free(p->off);
        if (!p->view) {
            free(p->ids);
            free(p->labels);
            free(p->pos);
        }
    }
    free(p->task_off);
    memset(p, 0, sizeof *p);
}

void tuna_pretok_free(tuna_pretok *p) {
    if (!p) return;
    pretok_clear(p);
    free(p);
}

tuna_status pretok_take(tuna_pretok *p, tuna_pretok **out) {
    *out = malloc(sizeof **out);
    if (!*out) {
        pretok_clear(p);
        return core_fail(TUNA_ERR_NOMEM, "out of memory");
    }
    **out = *p;
    memset(p, 0, sizeof *p);
    return TUNA_OK;
}

tuna_status tuna_pretok_new(tuna_pretok **out) {
    tuna_pretok p;
    memset(&p, 0, sizeof p);
    /* arrays from the start, as every other maker's: an empty set's ids and
     * labels are valid pointers to no tokens (memcpy of 0 bytes from them) */
    p.off = calloc(1, sizeof *p.off);
    p.ids = malloc(sizeof *p.ids);
    p.labels = malloc(sizeof *p.labels);
    if (!p.off || !p.ids || !p.labels) {
        pretok_clear(&p);
        *out = NULL;
        return core_fail(TUNA_ERR_NOMEM, "out of memory");
    }
    p.cap_seq = p.cap_tok = 1;
    return pretok_take(&p, out);
}

/* room for n more sequences of ntok more tokens; 0 when out of memory */
static int reserve(tuna_pretok *p, int64_t n, int64_t ntok) {
    int64_t need = p->n + n + 1, need_tok = p->off[p->n] + ntok;
    if (need > p->cap_seq) {
        int64_t c = p->cap_seq > 128 ? p->cap_seq : 128;
        while (c < need) c *= 2;
        int64_t *o = realloc(p->off, (size_t)c * sizeof *o);
        if (!o) return 0;
        p->off = o;
        p->cap_seq = c;
    }
    if (need_tok > p->cap_tok) {
        int64_t c = p->cap_tok > 65536 ? p->cap_tok : 65536;
        while (c < need_tok) c *= 2;
        int32_t *a = realloc(p->ids, (size_t)c * sizeof *a);
        if (a) p->ids = a;
        int32_t *b = a ? realloc(p->labels, (size_t)c * sizeof *b) : NULL;
        if (!b) return 0;
        p->labels = b;
        p->cap_tok = c;
    }
    return 1;
}

tuna_status tuna_pretok_append(tuna_pretok *p, const int32_t *ids, const int32_t *labels, int64_t len) {
    if (p->view || p->map || p->pos || p->n_tasks > 1 || len < 0)
        return core_fail(TUNA_ERR_ARG, "append: the data set is a view, mapped, packed or of several tasks");
    if (p->cap_seq < p->n + 1) p->cap_seq = p->n + 1; /* made elsewhere: its arrays are exactly full */
    if (p->cap_tok < p->off[p->n]) p->cap_tok = p->off[p->n];
    if (!reserve(p, 1, len)) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    int64_t o = p->off[p->n];
    memcpy(p->ids + o, ids, (size_t)len * sizeof *ids);
    memcpy(p->labels + o, labels, (size_t)len * sizeof *labels);
    p->off[p->n + 1] = o + len;
    p->n++;
    if (len > p->max_len) p->max_len = (int)len;
    return TUNA_OK;
}

tuna_status tuna_pretok_view(const tuna_pretok *base, int64_t first, int64_t count, tuna_pretok **out) {
    *out = NULL;
    if (first < 0 || count < 0 || first > base->n || count > base->n - first)
        return core_fail(TUNA_ERR_ARG, "view: sequences [%lld, %lld) outside the data set's %lld", (long long)first,
                         (long long)(first + count), (long long)base->n);
    tuna_pretok v;
    memset(&v, 0, sizeof v);
    v.off = malloc((size_t)(count + 1) * sizeof *v.off);
    if (!v.off) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    int64_t o = base->off[first];
    v.n = count;
    v.view = 1;
    v.ids = base->ids ? base->ids + o : NULL;
    v.labels = base->labels ? base->labels + o : NULL;
    v.pos = base->pos ? base->pos + o : NULL;
    for (int64_t i = 0; i <= count; i++) {
        v.off[i] = base->off[first + i] - o;
        if (i && v.off[i] - v.off[i - 1] > v.max_len) v.max_len = (int)(v.off[i] - v.off[i - 1]);
    }
    return pretok_take(&v, out);
}

int64_t tuna_pretok_count(const tuna_pretok *p) { return p->n; }

int tuna_pretok_max_len(const tuna_pretok *p) { return p->max_len; }

int64_t tuna_pretok_seq(const tuna_pretok *p, int64_t i, const int32_t **ids, const int32_t **labels, const int32_t **pos) {
    int64_t o = p->off[i];
    if (ids) *ids = p->ids + o;
    if (labels) *labels = p->labels + o;
    if (pos) *pos = p->pos ? p->pos + o : NULL;
    return p->off[i + 1] - o;
}

int tuna_pretok_tasks(const tuna_pretok *p) { return p->n_tasks > 1 ? p->n_tasks : 1; }

void tuna_pretok_task(const tuna_pretok *p, int k, int64_t *first, int64_t *count) {
    if (p->n_tasks > 1) {
        *first = p->task_off[k];
        *count = p->task_off[k + 1] - p->task_off[k];
    } else {
        *first = 0;
        *count = p->n;
    }
}
