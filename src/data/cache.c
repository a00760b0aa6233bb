/* cache.c — the binary token cache. Tokenizing a large data set through a chat
 * template costs far more than reading ids back, so a processed data set is
 * stored once per (file content, tokenizer, template, options) key and
 * memory-mapped on the next run. Layout (little-endian):
 *   "TUNATOK1" | u64 key | i64 n | i64 tokens | i32 max_len | i32 flags (1: pos) |
 *   i64 off[n+1] | i32 ids[tokens] | i32 labels[tokens] | (i32 pos[tokens])
 * Every size is checked against the file length before use. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tuna.h"

#define HEADER_BYTES 40

uint64_t tuna_hash64(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

tuna_status tuna_hash_file(uint64_t *h, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return tuna_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    static _Thread_local unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) *h = tuna_hash64(*h, buf, n);
    int err = ferror(f);
    fclose(f);
    return err ? tuna_fail(TUNA_ERR_IO, "%s: read error", path) : TUNA_OK;
}

static void cache_path(char *out, size_t n, const char *dir, uint64_t key) {
    snprintf(out, n, "%s/%016llx.tokens", dir, (unsigned long long)key);
}

tuna_status tuna_cache_load(const char *dir, uint64_t key, tuna_pretok *out) {
    memset(out, 0, sizeof *out);
    char path[PATH_MAX];
    cache_path(path, sizeof path, dir, key);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tuna_fail(TUNA_ERR_IO, "%s: no cache entry", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < HEADER_BYTES) {
        close(fd);
        return tuna_fail(TUNA_ERR_FORMAT, "%s: damaged cache entry (too short)", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return tuna_fail(TUNA_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    uint64_t k;
    int64_t n, tokens;
    int32_t max_len, flags;
    memcpy(&k, map + 8, 8);
    memcpy(&n, map + 16, 8);
    memcpy(&tokens, map + 24, 8);
    memcpy(&max_len, map + 32, 4);
    memcpy(&flags, map + 36, 4);
    int has_pos = flags & 1;
    uint64_t need = HEADER_BYTES;
    int ok = !memcmp(map, "TUNATOK1", 8) && k == key && n >= 0 && tokens >= 0 && n < (1LL << 40) && tokens < (1LL << 40);
    if (ok) need += (uint64_t)(n + 1) * 8 + (uint64_t)tokens * 4 * (has_pos ? 3 : 2);
    if (!ok || need != size) {
        munmap(map, size);
        return tuna_fail(TUNA_ERR_FORMAT, "%s: damaged cache entry", path);
    }
    out->n = n;
    out->off = (int64_t *)(map + HEADER_BYTES);
    out->ids = (int32_t *)(map + HEADER_BYTES + (n + 1) * 8);
    out->labels = out->ids + tokens;
    out->pos = has_pos ? out->labels + tokens : NULL;
    out->max_len = max_len;
    /* offsets must be monotone and end at the token count */
    ok = out->off[0] == 0 && out->off[n] == tokens;
    for (int64_t i = 0; ok && i < n; i++) ok = out->off[i] <= out->off[i + 1];
    if (!ok) {
        munmap(map, size);
        memset(out, 0, sizeof *out);
        return tuna_fail(TUNA_ERR_FORMAT, "%s: damaged cache entry (offsets)", path);
    }
    out->map = map;
    out->map_size = size;
    return TUNA_OK;
}

#include "data/cache_internal.h"
#include "io/atomic_file.h"

/* Both writers: create dir/<key>.tokens's temporary sibling, write the header
 * and the offsets, let the caller append the token arrays, then commit
 * (synced and renamed into place: io/atomic_file.h). */

/* commits the entry, or (ok 0) removes it */
static tuna_status entry_end(atomic_file *w, int ok) {
    if (ok) return atomic_file_commit(w);
    tuna_status st = tuna_fail(TUNA_ERR_IO, "%s: cannot write cache entry", w->path);
    atomic_file_abort(w);
    return st;
}

static tuna_status entry_begin(atomic_file *w, const char *dir, uint64_t key, int64_t n, const int64_t *off,
                               int max_len, int has_pos) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return tuna_fail(TUNA_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    char path[PATH_MAX];
    cache_path(path, sizeof path, dir, key);
    tuna_status st = atomic_file_open(w, path);
    if (st != TUNA_OK) return st;
    int64_t tokens = off[n];
    int32_t ml = max_len, flags = has_pos ? 1 : 0;
    int ok = fwrite("TUNATOK1", 1, 8, w->f) == 8 && fwrite(&key, 8, 1, w->f) == 1 && fwrite(&n, 8, 1, w->f) == 1 &&
             fwrite(&tokens, 8, 1, w->f) == 1 && fwrite(&ml, 4, 1, w->f) == 1 && fwrite(&flags, 4, 1, w->f) == 1 &&
             fwrite(off, 8, (size_t)n + 1, w->f) == (size_t)n + 1;
    return ok ? TUNA_OK : entry_end(w, 0);
}

tuna_status tuna_cache_store(const char *dir, uint64_t key, const tuna_pretok *p) {
    atomic_file w;
    tuna_status st = entry_begin(&w, dir, key, p->n, p->off, p->max_len, p->pos != NULL);
    if (st != TUNA_OK) return st;
    size_t tokens = (size_t)p->off[p->n];
    int ok = fwrite(p->ids, 4, tokens, w.f) == tokens && fwrite(p->labels, 4, tokens, w.f) == tokens &&
             (!p->pos || fwrite(p->pos, 4, tokens, w.f) == tokens);
    return entry_end(&w, ok);
}

static int copy_stream(FILE *dst, FILE *src) {
    static _Thread_local char buf[1 << 16];
    rewind(src);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, src)) > 0)
        if (fwrite(buf, 1, n, dst) != n) return 0;
    return !ferror(src);
}

tuna_status tuna_cache_store_spooled(const char *dir, uint64_t key, int64_t n, const int64_t *off, int max_len,
                                     FILE *ids, FILE *labels) {
    atomic_file w;
    tuna_status st = entry_begin(&w, dir, key, n, off, max_len, 0);
    if (st != TUNA_OK) return st;
    return entry_end(&w, copy_stream(w.f, ids) && copy_stream(w.f, labels));
}
