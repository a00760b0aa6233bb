/* data_io.h — internal helpers shared by clean.c and split.c: an output file
 * written through a temporary name and renamed into place on commit (so no
 * half-written file is ever left under the final name), and the seeded 64-bit
 * hash the data tools use. Not part of the public API. */
#ifndef TUNA_DATA_IO_H
#define TUNA_DATA_IO_H
#include <stdint.h>
#include <stdio.h>
#include "tuna.h"

typedef struct {
    FILE *f;
    char *path, *tmp;
} data_out;

/* Creates path's temporary sibling and opens it for writing. */
tuna_status data_out_open(data_out *o, const char *path);
/* Writes len bytes and a newline. */
tuna_status data_out_line(data_out *o, const char *s, size_t len);
/* Closes and renames the temporary file to the final path. */
tuna_status data_out_commit(data_out *o);
/* Closes and removes the temporary file (after a failure); safe to repeat. */
void data_out_abort(data_out *o);

/* Seeded 64-bit hash of bytes (not cryptographic; well mixed). */
uint64_t data_hash64(const void *p, size_t n, uint64_t seed);
/* A 64-bit mixer (bijective), for deriving hash functions from a seed. */
uint64_t data_mix64(uint64_t x);
#endif
