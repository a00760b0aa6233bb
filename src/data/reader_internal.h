/* reader_internal.h — the reader's bad-record policy for code in src/data that
 * remembers a read instead of repeating it (the token cache, dataset.c): the
 * first bad records a reader reported, and the policy applied again to them
 * and to the read's counts, with the messages a new read would give. */
#ifndef TUNA_DATA_READER_INTERNAL_H
#define TUNA_DATA_READER_INTERNAL_H
#include <stdint.h>
#include "tuna_data.h"

#define DATA_BAD_NOTES 100 /* bad records remembered per read */

typedef struct {
    long line, index;
    int kind;          /* tuna_bad_kind */
    char reason[512];  /* without FILE:LINE */
} data_bad_note;

/* The first bad records r reported (at most DATA_BAD_NOTES), in order; the
 * count is returned, *notes stays valid while r lives. */
int data_reader_notes(const tuna_data_reader *r, const data_bad_note **notes);
/* The FNV-1a hash (from TUNA_HASH_INIT) of the bytes r has read: once r has
 * read to the end, tuna_hash_file's of the content it read, so a caller can
 * tell that a file changed between its own read and r's (the token cache). */
uint64_t data_reader_hash(const tuna_data_reader *r);
/* Bytes of r's input (a pipe's too, once read), for progress. */
uint64_t data_reader_size(const tuna_data_reader *r);
/* The policy of o applied to a remembered read of path with counts st: each
 * note goes to o->on_bad (raw bytes are not remembered: raw "", raw_len 0);
 * under strict the first bad record fails; then more than max_bad fails —
 * the same messages as tuna_data_reader_next's. */
tuna_status data_policy_replay(const char *path, const tuna_data_options *o, int is_array, const tuna_data_stats *st,
                               const data_bad_note *notes, int n_notes);
#endif
