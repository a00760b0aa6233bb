/* data_io.h — internal helpers shared by clean.c and split.c: a line written
 * to an output file (made durable and renamed into place by io/atomic_file.h,
 * so no half-written file is ever left under the final name), and the seeded
 * 64-bit hash the data tools use. Not part of the public API. */
#ifndef TUNA_DATA_IO_H
#define TUNA_DATA_IO_H
#include <stdint.h>
#include <stdio.h>
#include "io/atomic_file.h"
#include "tuna.h"

/* Writes len bytes and a newline to o (opened with atomic_file_open). */
tuna_status data_out_line(atomic_file *o, const char *s, size_t len);

/* Seeded 64-bit hash of bytes (not cryptographic; well mixed). */
uint64_t data_hash64(const void *p, size_t n, uint64_t seed);
#endif
