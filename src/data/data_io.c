/* data_io.c — output lines and the hash of the data tools (see data_io.h).
 * The hash processes 8 bytes per step with multiply-xorshift mixing; it only
 * has to spread keys evenly and be identical on every run and machine
 * (little-endian loads are assembled byte by byte for that reason). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mix.h"
#include "data/data_io.h"

tuna_status data_out_line(atomic_file *o, const char *s, size_t len) {
    if (fwrite(s, 1, len, o->f) != len || fputc('\n', o->f) == EOF)
        return atomic_write_failed(o->path, errno ? errno : EIO);
    return TUNA_OK;
}

uint64_t data_hash64(const void *p, size_t n, uint64_t seed) {
    const unsigned char *s = p;
    uint64_t h = core_mix64(seed ^ 0x9e3779b97f4a7c15ULL) ^ (n * 0xff51afd7ed558ccdULL);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--) w = (w << 8) | s[i + (size_t)k];
        h = core_mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
    }
    uint64_t w = 0;
    for (size_t k = n; k > i; k--) w = (w << 8) | s[k - 1];
    return core_mix64(h ^ w ^ 0x2545f4914f6cdd1dULL);
}
