/* data_io.c — atomic output files and the hash of the data tools (see
 * data_io.h). The hash processes 8 bytes per step with multiply-xorshift
 * mixing; it only has to spread keys evenly and be identical on every run and
 * machine (little-endian loads are assembled byte by byte for that reason). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_io.h"

tuna_status data_out_open(data_out *o, const char *path) {
    memset(o, 0, sizeof *o);
    size_t n = strlen(path);
    o->path = strdup(path);
    o->tmp = malloc(n + 16);
    if (!o->path || !o->tmp) { data_out_abort(o); return tuna_fail(TUNA_ERR_NOMEM, "out of memory"); }
    snprintf(o->tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        tuna_status s = tuna_fail(TUNA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        data_out_abort(o);
        return s;
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        close(fd);
        data_out_abort(o);
        return tuna_fail(TUNA_ERR_IO, "%s: cannot open for writing", path);
    }
    return TUNA_OK;
}

tuna_status data_out_line(data_out *o, const char *s, size_t len) {
    if (fwrite(s, 1, len, o->f) != len || fputc('\n', o->f) == EOF)
        return tuna_fail(TUNA_ERR_IO, "%s: write error: %s", o->path, strerror(errno));
    return TUNA_OK;
}

tuna_status data_out_commit(data_out *o) {
    int bad = fflush(o->f) != 0 || ferror(o->f);
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (bad) {
        tuna_status s = tuna_fail(TUNA_ERR_IO, "%s: write error", o->path);
        data_out_abort(o);
        return s;
    }
    if (rename(o->tmp, o->path) != 0) {
        tuna_status s = tuna_fail(TUNA_ERR_IO, "%s: cannot rename into place: %s", o->path, strerror(errno));
        data_out_abort(o);
        return s;
    }
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
    return TUNA_OK;
}

void data_out_abort(data_out *o) {
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
}

uint64_t data_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t data_hash64(const void *p, size_t n, uint64_t seed) {
    const unsigned char *s = p;
    uint64_t h = data_mix64(seed ^ 0x9e3779b97f4a7c15ULL) ^ (n * 0xff51afd7ed558ccdULL);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--) w = (w << 8) | s[i + (size_t)k];
        h = data_mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
    }
    uint64_t w = 0;
    for (size_t k = n; k > i; k--) w = (w << 8) | s[k - 1];
    return data_mix64(h ^ w ^ 0x2545f4914f6cdd1dULL);
}
