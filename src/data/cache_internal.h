/* cache_internal.h — streaming construction of token cache entries, so that a
 * data set larger than memory is tokenized with only its offsets in RAM. */
#ifndef TUNA_DATA_CACHE_INTERNAL_H
#define TUNA_DATA_CACHE_INTERNAL_H
#include <stdio.h>
#include "tuna.h"
/* Writes dir/<key>.tokens from offsets in memory and ids/labels spooled to
 * the two temporary files (rewound and copied), atomically. */
tuna_status tuna_cache_store_spooled(const char *dir, uint64_t key, int64_t n, const int64_t *off, int max_len,
                                     FILE *ids, FILE *labels);
#endif
