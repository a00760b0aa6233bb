/* test_pretok_api.c — the opaque data set's public API (include/tuna.h):
 * sequences appended and read back, views that share their base's tokens
 * (ranges, bounds, a view of a task of concatenated data, a view left
 * unchanged by nothing but itself), what refuses to append, concatenation
 * of an empty set, and packing and dropping through views. */
#include "check.h"
#include "pretok_check.h"
#include "tuna.h"

/* base: 3 sequences of lengths 3, 5, 2; the second has no counted token */
static tuna_pretok *make_base(void) {
    static const int32_t ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    static const int32_t lab[10] = {1, 2, 3, -100, -100, -100, -100, -100, 9, 10};
    tuna_pretok *p = NULL;
    CHECK(tuna_pretok_new(&p) == TUNA_OK && p && tuna_pretok_count(p) == 0 && tuna_pretok_tasks(p) == 1);
    if (!p) return NULL;
    CHECK(tuna_pretok_append(p, ids, lab, 3) == TUNA_OK);
    CHECK(tuna_pretok_append(p, ids + 3, lab + 3, 5) == TUNA_OK);
    CHECK(tuna_pretok_append(p, ids + 8, lab + 8, 2) == TUNA_OK);
    return p;
}

static void test_append_and_view(tuna_pretok *p) {
    const int32_t *ids, *lab, *pos;
    CHECK(tuna_pretok_count(p) == 3 && tuna_pretok_max_len(p) == 5 && pretok_tokens(p) == 10);
    CHECK(tuna_pretok_seq(p, 1, &ids, &lab, &pos) == 5 && ids[0] == 4 && ids[4] == 8 && lab[0] == -100 && !pos);
    tuna_pretok *v = NULL;
    CHECK(tuna_pretok_view(p, 1, 2, &v) == TUNA_OK && v);
    if (!v) return;
    const int32_t *vids;
    CHECK(tuna_pretok_count(v) == 2 && tuna_pretok_max_len(v) == 5 && tuna_pretok_tasks(v) == 1);
    CHECK(tuna_pretok_seq(v, 0, &vids, NULL, NULL) == 5 && vids == ids); /* shared, not copied */
    CHECK(tuna_pretok_seq(v, 1, &vids, NULL, NULL) == 2 && vids[0] == 9);
    int32_t one = 1;
    CHECK(tuna_pretok_append(v, &one, &one, 1) == TUNA_ERR_ARG); /* a view's tokens are its base's */
    /* an empty view, and ranges outside the base */
    tuna_pretok *e = NULL;
    CHECK(tuna_pretok_view(p, 3, 0, &e) == TUNA_OK && e && tuna_pretok_count(e) == 0 && tuna_pretok_max_len(e) == 0);
    tuna_pretok_free(e);
    e = (tuna_pretok *)&one;
    CHECK(tuna_pretok_view(p, 2, 2, &e) == TUNA_ERR_ARG && !e);
    CHECK(tuna_pretok_view(p, -1, 1, &e) == TUNA_ERR_ARG && !e);
    /* dropping the sequence with no counted token from a view leaves the base as it was */
    CHECK(tuna_pretok_drop_uncounted(v) == 1 && tuna_pretok_count(v) == 1 && tuna_pretok_count(p) == 3);
    CHECK(tuna_pretok_seq(v, 0, &vids, NULL, NULL) == 2 && vids[0] == 9 && tuna_pretok_seq(p, 1, NULL, NULL, NULL) == 5);
    tuna_pretok_free(v);
    tuna_pretok_free(NULL);
}

static void test_tasks(tuna_pretok *p) {
    tuna_pretok *empty = NULL, *all = NULL, *v = NULL;
    CHECK(tuna_pretok_new(&empty) == TUNA_OK);
    const tuna_pretok *parts[3] = {p, empty, p};
    CHECK(tuna_pretok_concat(parts, 3, &all) == TUNA_OK && all);
    if (!all) { tuna_pretok_free(empty); return; }
    int64_t first = -1, count = -1;
    CHECK(tuna_pretok_tasks(all) == 3 && tuna_pretok_count(all) == 6);
    tuna_pretok_task(all, 1, &first, &count);
    CHECK(first == 3 && count == 0);
    tuna_pretok_task(all, 2, &first, &count);
    CHECK(first == 3 && count == 3);
    CHECK(tuna_pretok_view(all, first, count, &v) == TUNA_OK && v && pretok_same(v, p) && tuna_pretok_tasks(v) == 1);
    int32_t one = 1;
    CHECK(tuna_pretok_append(all, &one, &one, 1) == TUNA_ERR_ARG); /* tasks would no longer cover it */
    /* packing a view: rows with position ids, every token kept */
    tuna_pretok *packed = NULL;
    CHECK(v && tuna_pretok_pack(v, 8, &packed) == TUNA_OK && packed && pretok_tokens(packed) == 10);
    const int32_t *pos = NULL;
    CHECK(packed && tuna_pretok_seq(packed, 0, NULL, NULL, &pos) > 0 && pos && pos[0] == 0);
    CHECK(packed && tuna_pretok_append(packed, &one, &one, 1) == TUNA_ERR_ARG);
    tuna_pretok_free(packed);
    tuna_pretok_free(v);
    tuna_pretok_free(all);
    tuna_pretok_free(empty);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    tuna_pretok *p = make_base();
    if (p) {
        test_append_and_view(p);
        test_tasks(p);
    }
    tuna_pretok_free(p);
    return test_done();
}
