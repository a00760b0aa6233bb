/* test_cache.c — the binary token cache: round trip (plain and packed),
 * missing entry, damaged entries (truncated, wrong key, broken offsets, one
 * changed byte in the header or in the tokens: the checksum), the extra bytes
 * an entry carries and the read's counts kept in them (cache_meta), and the
 * hash helpers. */
#include <unistd.h>

#include "check.h"
#include "data/cache_internal.h"
#include "pretok_check.h"
#include "tuna.h"

/* flips one byte of the file at offset at */
static void flip(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    if (!f) { perror(path); exit(1); }
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* one changed byte anywhere (a header field, a token id) is refused */
static void test_checksum(const char *dir, const tuna_pretok *p) {
    uint64_t key = 0x1234;
    char path[300];
    snprintf(path, sizeof path, "%s/%016llx.tokens", dir, (unsigned long long)key);
    long at[3] = {32 /* max_len */, 36 /* flags */, 0};
    CHECK(tuna_cache_store(dir, key, p) == TUNA_OK);
    at[2] = file_size(path) - 6; /* a label */
    for (int i = 0; i < 3; i++) {
        tuna_pretok *q;
        CHECK(tuna_cache_store(dir, key, p) == TUNA_OK);
        flip(path, at[i]);
        tuna_status st = tuna_cache_load(dir, key, &q);
        CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "damaged cache entry"), "byte %ld: %s", at[i],
               st == TUNA_OK ? "loaded" : tuna_last_error());
        tuna_pretok_free(q);
    }
}

/* extra bytes round trip, and the read's counts encoded in them */
static void test_meta(const char *dir, const tuna_pretok *p) {
    data_bad_note notes[2] = {{51, 50, TUNA_BAD_TYPE, "\"text\" is an integer"}, {121, 119, TUNA_BAD_JSON, "not valid JSON"}};
    cache_meta m = {{0}, 3, 1, 1, 2, notes};
    m.data.records = 200;
    m.data.good = 198;
    m.data.bad = 2;
    m.data.bad_by_kind[TUNA_BAD_TYPE] = 1;
    m.data.bad_by_kind[TUNA_BAD_JSON] = 1;
    m.data.by_format[TUNA_FORMAT_TEXT] = 198;
    void *blob = NULL;
    size_t len = 0;
    CHECK(cache_meta_encode(&m, &blob, &len) == TUNA_OK);
    CHECK(cache_store_entry(dir, 77, p, (cache_blob){blob, len}) == TUNA_OK);
    tuna_pretok *q;
    cache_blob extra;
    CHECK(cache_load_entry(dir, 77, &q, &extra) == TUNA_OK && extra.n == len && !memcmp(extra.p, blob, len));
    CHECK(q && pretok_same(q, p));
    cache_meta r;
    CHECK(cache_meta_decode(&r, extra.p, extra.n) == TUNA_OK);
    CHECK(!memcmp(&r.data, &m.data, sizeof m.data) && r.truncated == 3 && r.dropped == 1 && r.is_array == 1);
    CHECK(r.n_notes == 2 && r.notes[1].line == 121 && r.notes[1].index == 119 && r.notes[1].kind == TUNA_BAD_JSON &&
          !strcmp(r.notes[0].reason, notes[0].reason));
    cache_meta_free(&r);
    /* cut short or lengthened: refused, never read as other counts */
    CHECK(cache_meta_decode(&r, extra.p, extra.n - 1) == TUNA_ERR_FORMAT);
    CHECK(cache_meta_decode(&r, extra.p, 40) == TUNA_ERR_FORMAT);
    tuna_pretok_free(q);
    free(blob);
}

int main(void) {
    char dir[] = "/tmp/tuna_test_cache_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    tuna_pretok *p = NULL, *q = NULL, *packed = NULL;
    CHECK(tuna_pretok_load(&p, "tests/fixtures/parity/llama_gqa/data.jsonl", 100) == TUNA_OK);
    if (!p) return test_done();
    uint64_t key = tuna_hash64(TUNA_HASH_INIT, "abc", 3);
    CHECK(key == 0xe71fa2190541574bULL); /* FNV-1a 64 of "abc" (published test vector) */
    tuna_status st = tuna_cache_load(dir, key, &q);
    CHECK(st == TUNA_ERR_IO && !q);
    CHECK(tuna_cache_store(dir, key, p) == TUNA_OK);
    CHECK(tuna_cache_load(dir, key, &q) == TUNA_OK);
    /* the entry is mapped (data/pretok_internal.h's layout: this tests the cache's internals) */
    CHECK(q && tuna_pretok_count(q) == tuna_pretok_count(p) && tuna_pretok_max_len(q) == tuna_pretok_max_len(p) &&
          q->map != NULL && q->pos == NULL);
    CHECK(q && pretok_same(q, p));
    tuna_pretok_free(q);
    /* packed data keeps its position ids */
    CHECK(tuna_pretok_pack(p, 32, &packed) == TUNA_OK);
    CHECK(tuna_cache_store(dir, key + 1, packed) == TUNA_OK);
    CHECK(tuna_cache_load(dir, key + 1, &q) == TUNA_OK);
    const int32_t *qpos = NULL;
    CHECK(q && tuna_pretok_seq(q, 0, NULL, NULL, &qpos) > 0 && qpos && pretok_same(q, packed));
    tuna_pretok_free(q);
    /* damage: truncate, then corrupt the offsets, then rename to another key */
    char path[300], cmd[700];
    snprintf(path, sizeof path, "%s/%016llx.tokens", dir, (unsigned long long)key);
    snprintf(cmd, sizeof cmd, "truncate -s -4 %s", path);
    CHECK(system(cmd) == 0);
    st = tuna_cache_load(dir, key, &q);
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "damaged"), "%s", tuna_last_error());
    CHECK(tuna_cache_store(dir, key, p) == TUNA_OK);
    FILE *f = fopen(path, "r+b");
    int64_t bad = 1 << 20;
    fseek(f, 56 + 8, SEEK_SET); /* off[1] */
    fwrite(&bad, 8, 1, f);
    fclose(f);
    st = tuna_cache_load(dir, key, &q);
    CHECKF(st == TUNA_ERR_FORMAT, "%s", tuna_last_error());
    char other[300];
    snprintf(other, sizeof other, "%s/%016llx.tokens", dir, (unsigned long long)(key + 7));
    CHECK(tuna_cache_store(dir, key, p) == TUNA_OK && rename(path, other) == 0);
    CHECK(tuna_cache_load(dir, key + 7, &q) == TUNA_ERR_FORMAT); /* key inside differs */
    test_checksum(dir, p);
    test_meta(dir, p);
    uint64_t h = TUNA_HASH_INIT, h2 = TUNA_HASH_INIT;
    CHECK(tuna_hash_file(&h, "tests/fixtures/parity/llama_gqa/data.jsonl") == TUNA_OK);
    CHECK(tuna_hash_file(&h2, "tests/fixtures/parity/gpt2/data.jsonl") == TUNA_OK && h != h2);
    CHECK(tuna_hash_file(&h, "/nonexistent") == TUNA_ERR_IO);
    tuna_pretok_free(p);
    tuna_pretok_free(packed);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_done();
}
