/* cache.c — the binary token cache. Tokenizing a large data set through a chat
 * template costs far more than reading ids back, so a processed data set is
 * stored once per (file content, tokenizer, template, options) key and
 * memory-mapped on the next run. Layout (host byte order, little-endian):
 *   "TUNATOK2" | u64 key | i64 n | i64 tokens | i32 max_len | i32 flags (1: pos) |
 *   u64 extra_bytes | u64 checksum |
 *   i64 off[n+1] | i32 ids[tokens] | i32 labels[tokens] | (i32 pos[tokens]) |
 *   extra[extra_bytes] (the loader's own: dataset.c keeps the read's counts)
 * The checksum covers every byte of the file but its own 8: an entry changed
 * in any field or token is refused as damaged (and then rebuilt by its user),
 * never trained on. Every size is also checked against the file length. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mix.h"
#include "data/cache_internal.h"
#include "data/data_io.h"
#include "io/atomic_file.h"
#include "tuna.h"
#include "core/error.h"

#define MAGIC "TUNATOK2"
#define SUM_AT 48       /* the checksum's offset */
#define HEADER_BYTES 56 /* 8-aligned: off[] follows */

uint64_t tuna_hash64(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- the entry checksum: 8 bytes per step, each step a bijection of the
 * state (xor, rotate, odd multiply), so one changed word always changes the
 * result; streamed, as entries are written in pieces. ---- */
typedef struct {
    uint64_t h, len;
    unsigned char tail[8];
    unsigned nt;
} cache_sum;

static uint64_t load64(const unsigned char *p) {
    uint64_t w = 0;
    for (int k = 7; k >= 0; k--) w = (w << 8) | p[k];
    return w;
}

static void sum_word(cache_sum *s, uint64_t w) {
    uint64_t x = s->h ^ w;
    s->h = ((x << 29) | (x >> 35)) * 0x9e3779b97f4a7c15ULL;
}

static void sum_add(cache_sum *s, const void *data, size_t n) {
    const unsigned char *p = data;
    s->len += n;
    if (s->nt) { /* complete the word begun by the last piece */
        size_t k = 8 - s->nt < n ? 8 - s->nt : n;
        memcpy(s->tail + s->nt, p, k);
        s->nt += (unsigned)k;
        p += k;
        n -= k;
        if (s->nt == 8) { sum_word(s, load64(s->tail)); s->nt = 0; }
    }
    for (; n >= 8; p += 8, n -= 8) sum_word(s, load64(p));
    if (n) { /* here nt is 0: the loop above emptied the tail or used all of n */
        memcpy(s->tail, p, n);
        s->nt = (unsigned)n;
    }
}

static uint64_t sum_end(cache_sum *s) {
    if (s->nt) {
        memset(s->tail + s->nt, 0, 8 - s->nt);
        sum_word(s, load64(s->tail));
    }
    return core_mix64(s->h ^ s->len);
}

static uint64_t entry_sum(const unsigned char *map, size_t size) {
    cache_sum s = {0x243f6a8885a308d3ULL, 0, {0}, 0};
    sum_add(&s, map, SUM_AT);
    sum_add(&s, map + HEADER_BYTES, size - HEADER_BYTES);
    return sum_end(&s);
}

tuna_status tuna_hash_file(uint64_t *h, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return core_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    static _Thread_local unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) *h = tuna_hash64(*h, buf, n);
    int err = ferror(f);
    fclose(f);
    return err ? core_fail(TUNA_ERR_IO, "%s: read error", path) : TUNA_OK;
}

static void cache_path(char *out, size_t n, const char *dir, uint64_t key) {
    snprintf(out, n, "%s/%016llx.tokens", dir, (unsigned long long)key);
}

/* The entry's fields, checked against its length; 0 when they do not fit. */
static int parse_header(const unsigned char *map, size_t size, uint64_t key, tuna_pretok *out, uint64_t *extra) {
    uint64_t k;
    int64_t n, tokens;
    int32_t max_len, flags;
    memcpy(&k, map + 8, 8);
    memcpy(&n, map + 16, 8);
    memcpy(&tokens, map + 24, 8);
    memcpy(&max_len, map + 32, 4);
    memcpy(&flags, map + 36, 4);
    memcpy(extra, map + 40, 8);
    int has_pos = flags & 1;
    if (k != key || n < 0 || tokens < 0 || n >= (1LL << 40) || tokens >= (1LL << 40) || *extra > size) return 0;
    uint64_t need = HEADER_BYTES + (uint64_t)(n + 1) * 8 + (uint64_t)tokens * 4 * (has_pos ? 3 : 2) + *extra;
    if (need != size) return 0;
    out->n = n;
    out->off = (int64_t *)(map + HEADER_BYTES);
    out->ids = (int32_t *)(map + HEADER_BYTES + (n + 1) * 8);
    out->labels = out->ids + tokens;
    out->pos = has_pos ? out->labels + tokens : NULL;
    out->max_len = max_len;
    return 1;
}

/* what is wrong with the mapped entry, or NULL */
static const char *entry_damage(const unsigned char *map, size_t size, uint64_t key, tuna_pretok *out, uint64_t *extra) {
    if (size < HEADER_BYTES || memcmp(map, MAGIC, 8)) return "not a cache entry of this version";
    uint64_t sum;
    memcpy(&sum, map + SUM_AT, 8);
    if (sum != entry_sum(map, size)) return "checksum mismatch";
    if (!parse_header(map, size, key, out, extra)) return "header";
    /* offsets must be monotone and end at the token count */
    int ok = out->off[0] == 0 && out->off[out->n] == (int64_t)((uint64_t)(out->labels - out->ids));
    for (int64_t i = 0; ok && i < out->n; i++) ok = out->off[i] <= out->off[i + 1];
    return ok ? NULL : "offsets";
}

tuna_status cache_load_entry(const char *dir, uint64_t key, tuna_pretok **out_p, cache_blob *extra) {
    *out_p = NULL;
    tuna_pretok entry, *out = &entry;
    memset(out, 0, sizeof *out);
    memset(extra, 0, sizeof *extra);
    char path[PATH_MAX];
    cache_path(path, sizeof path, dir, key);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return core_fail(TUNA_ERR_IO, "%s: no cache entry", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < HEADER_BYTES) {
        close(fd);
        return core_fail(TUNA_ERR_FORMAT, "%s: damaged cache entry (too short)", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0); /* read whole: the checksum */
    close(fd);
    if (map == MAP_FAILED) return core_fail(TUNA_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    uint64_t extra_bytes = 0;
    const char *why = entry_damage(map, size, key, out, &extra_bytes);
    if (why) {
        munmap(map, size);
        memset(out, 0, sizeof *out);
        return core_fail(TUNA_ERR_FORMAT, "%s: damaged cache entry (%s)", path, why);
    }
    out->map = map;
    out->map_size = size;
    tuna_status st = pretok_take(out, out_p);
    if (st != TUNA_OK) return st;
    extra->p = map + size - extra_bytes;
    extra->n = (size_t)extra_bytes;
    return TUNA_OK;
}

tuna_status tuna_cache_load(const char *dir, uint64_t key, tuna_pretok **out) {
    cache_blob extra;
    return cache_load_entry(dir, key, out, &extra);
}

/* Both writers: create dir/<key>.tokens's temporary sibling, write the header
 * and the offsets, let the caller append the token arrays and the extra
 * bytes, then fill in the checksum and commit (synced and renamed into place:
 * io/atomic_file.h). */
typedef struct {
    atomic_file w;
    cache_sum sum;
    int ok;
} entry_writer;

static void put(entry_writer *e, const void *p, size_t n) {
    if (!e->ok || n == 0) return;
    e->ok = fwrite(p, 1, n, e->w.f) == n;
    sum_add(&e->sum, p, n);
}

/* the extra bytes, the checksum, then commits the entry; or (on a failed
 * write) removes it */
static tuna_status entry_end(entry_writer *e, cache_blob extra) {
    put(e, extra.p, extra.n);
    uint64_t sum = sum_end(&e->sum);
    if (e->ok) e->ok = fseek(e->w.f, SUM_AT, SEEK_SET) == 0 && fwrite(&sum, 8, 1, e->w.f) == 1;
    if (e->ok) return atomic_file_commit(&e->w);
    tuna_status st = core_fail(TUNA_ERR_IO, "%s: cannot write cache entry: %s", e->w.path, strerror(errno));
    atomic_file_abort(&e->w);
    return st;
}

static tuna_status entry_begin(entry_writer *e, const char *dir, uint64_t key, int64_t n, const int64_t *off,
                               int max_len, int has_pos, size_t extra) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return core_fail(TUNA_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    char path[PATH_MAX];
    cache_path(path, sizeof path, dir, key);
    tuna_status st = atomic_file_open(&e->w, path);
    if (st != TUNA_OK) return st;
    e->sum = (cache_sum){0x243f6a8885a308d3ULL, 0, {0}, 0};
    e->ok = 1;
    int64_t tokens = off[n];
    int32_t ml = max_len, flags = has_pos ? 1 : 0;
    uint64_t extra_bytes = extra, no_sum = 0;
    put(e, MAGIC, 8);
    put(e, &key, 8);
    put(e, &n, 8);
    put(e, &tokens, 8);
    put(e, &ml, 4);
    put(e, &flags, 4);
    put(e, &extra_bytes, 8);
    if (e->ok) e->ok = fwrite(&no_sum, 8, 1, e->w.f) == 1; /* filled in at the end; not summed */
    put(e, off, 8 * ((size_t)n + 1));
    if (e->ok) return TUNA_OK;
    st = core_fail(TUNA_ERR_IO, "%s: cannot write cache entry: %s", e->w.path, strerror(errno));
    atomic_file_abort(&e->w);
    return st;
}

tuna_status cache_store_entry(const char *dir, uint64_t key, const tuna_pretok *p, cache_blob extra) {
    entry_writer e;
    tuna_status st = entry_begin(&e, dir, key, p->n, p->off, p->max_len, p->pos != NULL, extra.n);
    if (st != TUNA_OK) return st;
    size_t tokens = (size_t)p->off[p->n];
    put(&e, p->ids, 4 * tokens);
    put(&e, p->labels, 4 * tokens);
    if (p->pos) put(&e, p->pos, 4 * tokens);
    return entry_end(&e, extra);
}

tuna_status tuna_cache_store(const char *dir, uint64_t key, const tuna_pretok *p) {
    return cache_store_entry(dir, key, p, (cache_blob){NULL, 0});
}

static void copy_stream(entry_writer *e, FILE *src) {
    static _Thread_local char buf[1 << 16];
    rewind(src);
    size_t n;
    while (e->ok && (n = fread(buf, 1, sizeof buf, src)) > 0) put(e, buf, n);
    if (ferror(src)) e->ok = 0;
}

tuna_status cache_store_spooled(const char *dir, uint64_t key, int64_t n, const int64_t *off, int max_len,
                                     FILE *ids, FILE *labels, cache_blob extra) {
    entry_writer e;
    tuna_status st = entry_begin(&e, dir, key, n, off, max_len, 0, extra.n);
    if (st != TUNA_OK) return st;
    copy_stream(&e, ids);
    copy_stream(&e, labels);
    return entry_end(&e, extra);
}
