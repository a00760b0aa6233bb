/* cache_internal.h — building tokenized data sets inside src/data: sequences
 * appended back to back (dataset.c, preference.c), streaming construction
 * of token cache entries, so that a data set larger than memory is tokenized
 * with only its offsets in RAM, and what an entry remembers of the read it
 * came from (cache_meta.c), so that a hit checks as a read does. */
#ifndef TUNA_DATA_CACHE_INTERNAL_H
#define TUNA_DATA_CACHE_INTERNAL_H
#include <stdio.h>
#include "data/pretok_internal.h"
#include "data/reader_internal.h"
#include "tuna.h"
#include "tuna_data.h"

/* Sequences back to back; with spool files set, ids and labels go to disk and
 * only the offsets stay in memory (bounded memory for files of any size).
 * Zero-initialise; off/ids/labels become a tuna_pretok's arrays
 * (data/pretok_internal.h). */
typedef struct {
    int64_t *off;
    int32_t *ids, *labels;
    int64_t n, cap_seq, ntok, cap_tok;
    int max_len;
    FILE *spool_ids, *spool_labels;
} data_builder;
/* Appends one sequence; 0 when out of memory or the spool write failed. */
int data_builder_add(data_builder *b, const int32_t *ids, const int32_t *labels, size_t n);

/* Bytes a cache entry carries after its tokens for its user, covered by the
 * entry's checksum. */
typedef struct {
    const void *p;
    size_t n;
} cache_blob;
/* tuna_cache_load / tuna_cache_store with the extra bytes: on load, extra
 * points into the entry's mapping (valid until tuna_pretok_free(*out)). */
tuna_status cache_load_entry(const char *dir, uint64_t key, tuna_pretok **out, cache_blob *extra);
tuna_status cache_store_entry(const char *dir, uint64_t key, const tuna_pretok *p, cache_blob extra);
/* Writes dir/<key>.tokens from offsets in memory and ids/labels spooled to
 * the two temporary files (rewound and copied), and extra, atomically. */
tuna_status cache_store_spooled(const char *dir, uint64_t key, int64_t n, const int64_t *off, int max_len,
                                     FILE *ids, FILE *labels, cache_blob extra);

/* What a data set's entry remembers of its read (cache_meta.c): the record
 * counts, the length-limit counts and the first bad records, so that a hit
 * applies the bad-record policy and reports as the read did. */
typedef struct {
    tuna_data_stats data;
    long truncated, dropped;
    int is_array;           /* the reports' form: "FILE:LINE: record N: ..." */
    int n_notes;
    data_bad_note *notes;   /* [n_notes] */
} cache_meta;
/* Serialises m into *out (malloc'ed, *len bytes). */
tuna_status cache_meta_encode(const cache_meta *m, void **out, size_t *len);
/* Reads an entry's extra bytes back; TUNA_ERR_FORMAT when they do not hold a
 * cache_meta. Free with cache_meta_free. */
tuna_status cache_meta_decode(cache_meta *m, const void *p, size_t len);
void cache_meta_free(cache_meta *m);
#endif
