/* cache_internal.h — building tokenized data sets inside src/data: sequences
 * appended back to back (dataset.c, preference.c), and streaming construction
 * of token cache entries, so that a data set larger than memory is tokenized
 * with only its offsets in RAM. */
#ifndef TUNA_DATA_CACHE_INTERNAL_H
#define TUNA_DATA_CACHE_INTERNAL_H
#include <stdio.h>
#include "tuna.h"

/* Sequences back to back; with spool files set, ids and labels go to disk and
 * only the offsets stay in memory (bounded memory for files of any size).
 * Zero-initialise; off/ids/labels become a tuna_pretok's arrays. */
typedef struct {
    int64_t *off;
    int32_t *ids, *labels;
    int64_t n, cap_seq, ntok, cap_tok;
    int max_len;
    FILE *spool_ids, *spool_labels;
} data_builder;
/* Appends one sequence; 0 when out of memory or the spool write failed. */
int data_builder_add(data_builder *b, const int32_t *ids, const int32_t *labels, size_t n);
/* Writes dir/<key>.tokens from offsets in memory and ids/labels spooled to
 * the two temporary files (rewound and copied), atomically. */
tuna_status tuna_cache_store_spooled(const char *dir, uint64_t key, int64_t n, const int64_t *off, int max_len,
                                     FILE *ids, FILE *labels);
#endif
