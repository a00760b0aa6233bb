/* test_cache.c — the binary token cache: round trip (plain and packed),
 * missing entry, damaged entries (truncated, wrong key, broken offsets), and
 * the hash helpers. */
#include <unistd.h>

#include "check.h"
#include "tuna.h"

int main(void) {
    char dir[] = "/tmp/tuna_test_cache_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    tuna_pretok p, q, packed;
    CHECK(tuna_pretok_load(&p, "tests/fixtures/parity/llama_gqa/data.jsonl", 100) == TUNA_OK);
    uint64_t key = tuna_hash64(TUNA_HASH_INIT, "abc", 3);
    CHECK(key == 0xe71fa2190541574bULL); /* FNV-1a 64 of "abc" (published test vector) */
    tuna_status st = tuna_cache_load(dir, key, &q);
    CHECK(st == TUNA_ERR_IO);
    CHECK(tuna_cache_store(dir, key, &p) == TUNA_OK);
    CHECK(tuna_cache_load(dir, key, &q) == TUNA_OK);
    CHECK(q.n == p.n && q.max_len == p.max_len && q.map != NULL && q.pos == NULL);
    CHECK(!memcmp(q.off, p.off, (size_t)(p.n + 1) * 8) && !memcmp(q.ids, p.ids, (size_t)p.off[p.n] * 4) &&
          !memcmp(q.labels, p.labels, (size_t)p.off[p.n] * 4));
    tuna_pretok_free(&q);
    /* packed data keeps its position ids */
    CHECK(tuna_pretok_pack(&p, 32, &packed) == TUNA_OK);
    CHECK(tuna_cache_store(dir, key + 1, &packed) == TUNA_OK);
    CHECK(tuna_cache_load(dir, key + 1, &q) == TUNA_OK);
    CHECK(q.pos && !memcmp(q.pos, packed.pos, (size_t)packed.off[packed.n] * 4));
    tuna_pretok_free(&q);
    /* damage: truncate, then corrupt the offsets, then rename to another key */
    char path[300], cmd[700];
    snprintf(path, sizeof path, "%s/%016llx.tokens", dir, (unsigned long long)key);
    snprintf(cmd, sizeof cmd, "truncate -s -4 %s", path);
    CHECK(system(cmd) == 0);
    st = tuna_cache_load(dir, key, &q);
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "damaged"), "%s", tuna_last_error());
    CHECK(tuna_cache_store(dir, key, &p) == TUNA_OK);
    FILE *f = fopen(path, "r+b");
    int64_t bad = 1 << 20;
    fseek(f, 40 + 8, SEEK_SET); /* off[1] */
    fwrite(&bad, 8, 1, f);
    fclose(f);
    st = tuna_cache_load(dir, key, &q);
    CHECKF(st == TUNA_ERR_FORMAT, "%s", tuna_last_error());
    char other[300];
    snprintf(other, sizeof other, "%s/%016llx.tokens", dir, (unsigned long long)(key + 7));
    CHECK(tuna_cache_store(dir, key, &p) == TUNA_OK && rename(path, other) == 0);
    CHECK(tuna_cache_load(dir, key + 7, &q) == TUNA_ERR_FORMAT); /* key inside differs */
    uint64_t h = TUNA_HASH_INIT, h2 = TUNA_HASH_INIT;
    CHECK(tuna_hash_file(&h, "tests/fixtures/parity/llama_gqa/data.jsonl") == TUNA_OK);
    CHECK(tuna_hash_file(&h2, "tests/fixtures/parity/gpt2/data.jsonl") == TUNA_OK && h != h2);
    CHECK(tuna_hash_file(&h, "/nonexistent") == TUNA_ERR_IO);
    tuna_pretok_free(&p);
    tuna_pretok_free(&packed);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return test_done();
}
