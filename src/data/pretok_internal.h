/* pretok_internal.h — the layout of a pre-tokenized data set (tuna_pretok is
 * opaque in include/tuna.h), read directly by the library: the readers and
 * builders of src/data, the token cache, the trainer, the resume checks and
 * evaluation. Outside the library, data sets are read through the accessors
 * of tuna.h. */
#ifndef TUNA_DATA_PRETOK_INTERNAL_H
#define TUNA_DATA_PRETOK_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "tuna.h"

/* Sequences stored back to back: sequence i is ids[off[i] .. off[i+1]). */
struct tuna_pretok {
    int64_t n;          /* number of sequences */
    int64_t *off;       /* [n+1], off[0] == 0 */
    int32_t *ids;       /* [off[n]] */
    int32_t *labels;    /* [off[n]] (-100 = not counted) */
    int32_t *pos;       /* [off[n]] position ids of packed rows, or NULL */
    int max_len;        /* the longest sequence */
    int n_tasks;        /* 0 or 1: one data set; >1: sequences of task k are */
    int64_t *task_off;  /* [task_off[k], task_off[k+1]) ([n_tasks+1]) */
    void *map;          /* when loaded from a token cache: off/ids/labels/pos point into */
    size_t map_size;    /* this read-only mapping (freed with munmap) */
    int view;           /* ids/labels/pos belong to another object (off is this one's) */
    int64_t cap_seq, cap_tok; /* tuna_pretok_append's room in off and in ids/labels */
};

/* Moves the filled struct *p into a new object *out (p is zeroed); on
 * failure (out of memory) releases what p holds and sets *out to NULL. */
tuna_status pretok_take(tuna_pretok *p, tuna_pretok **out);
/* Releases what p holds (arrays, mapping) and zeroes it; the object itself
 * stays (tuna_pretok_free frees both). */
void pretok_clear(tuna_pretok *p);
#endif
