/* tok_llama2c.c — llama2.c's tokenizer.bin, read directly or converted into
 * an HF tokenizer.json.
 *
 * tokenizer.bin: int32 max_token_length, then per id: float32 score, int32
 * byte length, the bytes (no NUL), to the end of the file. Spaces stand for
 * SentencePiece's U+2581; ids 1 and 2 are "\n<s>\n" and "\n</s>\n".
 *
 * llama2.c encodes by prepending a space, looking up each character (bytes
 * without a token become <0xNN> = byte + 3), then repeatedly merging the
 * adjacent pair whose concatenation is a token with the highest score. HF's
 * BPE merges the pair with the lowest rank instead; listing, for every token
 * in descending score order, each split of it into two tokens gives the same
 * choice at every step, so the same ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "core/error.h"

#define SPACE_MARK "\xE2\x96\x81"

typedef struct { char *s; size_t n; float score; int32_t id; int kind; } piece; /* kind: 0 normal, 1 special, 2 byte */

static void free_pieces(piece *p, size_t n) {
    for (size_t i = 0; i < n; i++) free(p[i].s);
    free(p);
}

static tuna_status read_bin(const char *data, size_t len, const char *what, piece **out, size_t *count) {
    *out = NULL;
    *count = 0;
    if (len < 4) return core_fail(TUNA_ERR_FORMAT, "%s: too short for a llama2.c tokenizer", what);
    int32_t maxlen;
    memcpy(&maxlen, data, 4);
    if (maxlen <= 0 || maxlen > 4096) return core_fail(TUNA_ERR_FORMAT, "%s: max_token_length %d is not plausible", what, (int)maxlen);
    size_t pos = 4, cap = 0, n = 0;
    piece *p = NULL;
    while (pos < len) {
        if (len - pos < 8) { free_pieces(p, n); return core_fail(TUNA_ERR_FORMAT, "%s: truncated entry %zu", what, n); }
        float score;
        int32_t l;
        memcpy(&score, data + pos, 4);
        memcpy(&l, data + pos + 4, 4);
        pos += 8;
        if (l < 0 || l > maxlen || (size_t)l > len - pos) { free_pieces(p, n); return core_fail(TUNA_ERR_FORMAT, "%s: entry %zu has bad length %d", what, n, (int)l); }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            piece *q = realloc(p, cap * sizeof *q);
            if (!q) { free_pieces(p, n); return core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what); }
            p = q;
        }
        /* back to SentencePiece's form: ' ' -> U+2581 */
        tk_buf b = {0};
        int bad = 0;
        for (int32_t k = 0; k < l && !bad; k++)
            bad = data[pos + k] == ' ' ? tk_buf_put(&b, SPACE_MARK, 3) : tk_buf_putc(&b, data[pos + k]);
        if (!bad && !b.p) bad = tk_buf_put(&b, "", 0);
        if (bad) { tk_buf_free(&b); free_pieces(p, n); return core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what); }
        p[n] = (piece){b.p, b.n, score, (int32_t)n, 0};
        if (tk_utf8_check(b.p, b.n) != b.n) { free_pieces(p, n + 1); return core_fail(TUNA_ERR_FORMAT, "%s: token %zu is not valid UTF-8", what, n); }
        n++;
        pos += (size_t)l;
    }
    if (n < 3) { free_pieces(p, n); return core_fail(TUNA_ERR_FORMAT, "%s: only %zu tokens", what, n); }
    /* llama2.c's special pieces get their SentencePiece names */
    const char *names[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) {
        free(p[i].s);
        p[i].s = strdup(names[i]);
        if (!p[i].s) { free_pieces(p, n); return core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what); }
        p[i].n = strlen(names[i]);
        p[i].kind = 1;
    }
    for (size_t i = 3; i < n; i++) {
        unsigned b;
        if (p[i].n == 6 && sscanf(p[i].s, "<0x%2X>", &b) == 1) p[i].kind = 2;
    }
    *out = p;
    *count = n;
    return TUNA_OK;
}

static int by_score(const void *x, const void *y) {
    const piece *a = *(const piece *const *)x, *b = *(const piece *const *)y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

tuna_status tk_llama2c_to_json(const char *data, size_t len, const char *what, json_t **out) {
    *out = NULL;
    piece *p;
    size_t n;
    tuna_status st = read_bin(data, len, what, &p, &n);
    if (st) return st;
    tk_map ids = {0};
    piece **order = malloc(n * sizeof *order);
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    tk_buf pair = {0};
    if (!order || !vocab || !merges || !added || tk_map_init(&ids, n)) { st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what); goto done; }
    for (size_t i = 0; i < n; i++) {
        /* a repeated piece keeps its first id, as a lookup in llama2.c finds */
        if (tk_map_get(&ids, p[i].s, p[i].n) < 0 && tk_map_put(&ids, p[i].s, p[i].n, (int32_t)i)) { st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what); goto done; }
        if (!json_object_get(vocab, p[i].s)) json_object_set_new(vocab, p[i].s, json_integer((json_int_t)i));
        order[i] = &p[i];
    }
    for (int i = 0; i < 3; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i, "content", p[i].s,
                              "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1));
    qsort(order, n, sizeof *order, by_score);
    for (size_t r = 0; r < n; r++) {
        const piece *t = order[r];
        if (t->kind) continue;
        /* every split of the token at a character boundary into two normal tokens */
        for (size_t k = (size_t)tk_utf8_len((unsigned char)t->s[0]); k < t->n; k += (size_t)tk_utf8_len((unsigned char)t->s[k])) {
            int32_t a = tk_map_get(&ids, t->s, k), b = tk_map_get(&ids, t->s + k, t->n - k);
            if (a < 0 || b < 0 || p[a].kind || p[b].kind) continue;
            pair.n = 0;
            if (tk_buf_put(&pair, t->s, k) || tk_buf_putc(&pair, ' ') || tk_buf_put(&pair, t->s + k, t->n - k) ||
                json_array_append_new(merges, json_stringn(pair.p, pair.n))) {
                st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what);
                goto done;
            }
        }
    }
    json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:O, s:O}", "type", "BPE", "dropout",
                              "unk_token", "<unk>", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1,
                              "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    json_t *norm = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers",
                             "type", "Prepend", "prepend", SPACE_MARK, "type", "Replace", "pattern", "String", " ",
                             "content", SPACE_MARK);
    json_t *dec = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type", "Sequence",
                            "decoders", "type", "Replace", "pattern", "String", SPACE_MARK, "content", " ",
                            "type", "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ", "start", 1, "stop", 0);
    json_t *post = json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
                             "type", "TemplateProcessing",
                             "single", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                             "pair", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                             "SpecialToken", "id", "<s>", "type_id", 1, "Sequence", "id", "B", "type_id", 1,
                             "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens", "<s>");
    if (!model || !norm || !dec || !post) {
        json_decref(model); json_decref(norm); json_decref(dec); json_decref(post);
        st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what);
        goto done;
    }
    *out = json_pack("{s:s, s:n, s:n, s:O, s:o, s:n, s:o, s:o, s:o}", "version", "1.0", "truncation", "padding",
                     "added_tokens", added, "normalizer", norm, "pre_tokenizer", "post_processor", post,
                     "decoder", dec, "model", model);
    if (!*out) st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", what);
done:
    tk_buf_free(&pair);
    tk_map_free(&ids);
    free(order);
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    free_pieces(p, n);
    return st;
}

tuna_status tk_load_llama2c(tuna_tokenizer **out, const char *path) {
    char *data;
    size_t len;
    tuna_status st = tk_read_file(path, &data, &len);
    if (st) return st;
    json_t *root = NULL;
    st = tk_llama2c_to_json(data, len, path, &root);
    free(data);
    if (st) return st;
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:b}", "bos_token", "<s>", "eos_token", "</s>", "unk_token", "<unk>",
                            "add_bos_token", 1);
    st = tk_load_from_json(out, root, cfg, path);
    json_decref(root);
    json_decref(cfg);
    return st;
}

tuna_status tuna_tokenizer_convert_llama2c(const char *bin_path, const char *out_dir) {
    if (!bin_path || !out_dir) return core_fail(TUNA_ERR_ARG, "tokenizer: convert: NULL argument");
    char *data;
    size_t len;
    tuna_status st = tk_read_file(bin_path, &data, &len);
    if (st) return st;
    json_t *root;
    st = tk_llama2c_to_json(data, len, bin_path, &root);
    free(data);
    if (st) return st;
    json_t *cfg = json_pack("{s:b, s:b, s:s, s:s, s:s, s:n, s:b, s:b, s:s, s:i}", "add_bos_token", 1, "add_eos_token", 0,
                            "bos_token", "<s>", "eos_token", "</s>", "unk_token", "<unk>", "pad_token",
                            "clean_up_tokenization_spaces", 0, "legacy", 1, "tokenizer_class", "LlamaTokenizer",
                            "model_max_length", 1000000);
    char *tj = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *cj = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    json_decref(cfg);
    size_t dl = strlen(out_dir);
    char *p1 = malloc(dl + 32), *p2 = malloc(dl + 32);
    if (!tj || !cj || !p1 || !p2) st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", bin_path);
    if (!st) {
        snprintf(p1, dl + 32, "%s/tokenizer.json", out_dir);
        snprintf(p2, dl + 32, "%s/tokenizer_config.json", out_dir);
        st = atomic_file_write(p1, tj, strlen(tj));
        if (!st) {
            size_t cl = strlen(cj);
            cj[cl] = '\n'; /* replaces the NUL: written with its length, not as a C string */
            st = atomic_file_write(p2, cj, cl + 1);
        }
    }
    free(tj); free(cj); free(p1); free(p2);
    return st;
}
