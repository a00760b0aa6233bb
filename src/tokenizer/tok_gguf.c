/* tok_gguf.c — a tokenizer rebuilt from a GGUF file's vocabulary keys, so
 * `tuna generate` / `eval` run on a .gguf alone:
 *  - tokenizer.ggml.model "gpt2" (byte-level BPE): tokens, token types,
 *    merges, special ids, chat template;
 *  - "llama" (SentencePiece-style BPE with byte fallback): tokens, scores,
 *    token types, special ids, add_bos/add_eos/add_space_prefix.
 * Files tuna wrote carry the tokenizer.json parts GGUF has no keys for
 * (tuna.tokenizer.json_parts: normalizer, pre-tokenizer, decoder,
 * post-processor, added tokens, the BPE model's options, tokenizer_config's
 * BOS/EOS switches) and, for "llama", the exact merges
 * (tuna.tokenizer.merges), and come back exactly. Other files get what
 * llama.cpp does with them: "gpt2" with the "gpt-2" pre-tokenizer GPT-2's
 * byte-level pre-tokenizer and decoder; "llama" merges made from the scores
 * (every split of a token into two tokens, the highest-scoring token first),
 * spaces as U+2581 with one put in front of each text piece (as llama.cpp
 * does after every special token), byte fallback. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "tok_internal.h"
#include "core/error.h"

#define SP_SPACE "\xE2\x96\x81"

typedef struct { float score; int32_t id, cut; } spm_merge;

static int spm_merge_cmp(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->id != b->id) return a->id < b->id ? -1 : 1;
    return a->cut - b->cut;
}

/* merges of a "llama" vocabulary without tuna's list: each split of a normal
 * token into two tokens, in order of the token's score (llama.cpp merges the
 * pair whose joined text scores highest) */
static tuna_status spm_merges(const gguf_file *f, const gguf_kv *toks, const gguf_kv *types, json_t *vocab, json_t *mg,
                              const char *path) {
    const gguf_kv *sc = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (!sc || sc->arr_type != GGUF_T_F32 || sc->arr_n != toks->arr_n)
        return core_fail(TUNA_ERR_FORMAT, "%s: a \"llama\" vocabulary without one float score per token", path);
    spm_merge *m = NULL;
    size_t n = 0, cap = 0;
    for (uint64_t i = 0; i < toks->arr_n; i++) {
        int32_t ty = 1;
        if (types) memcpy(&ty, types->val + 4 * i, 4);
        size_t l;
        const char *t = gguf_arr_str(toks, i, &l);
        if (ty != 1 || l < 2) continue;
        float s;
        memcpy(&s, sc->val + 4 * i, 4);
        char buf[512];
        if (l >= sizeof buf) continue;
        for (size_t c = 1; c < l; c++) {
            if ((t[c] & 0xC0) == 0x80) continue; /* cut between characters only */
            memcpy(buf, t, c);
            buf[c] = 0;
            if (!json_object_get(vocab, buf)) continue;
            memcpy(buf, t + c, l - c);
            buf[l - c] = 0;
            if (!json_object_get(vocab, buf)) continue;
            if (n == cap) {
                spm_merge *p = realloc(m, (cap = cap ? 2 * cap : 4096) * sizeof *m);
                if (!p) { free(m); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
                m = p;
            }
            m[n++] = (spm_merge){s, (int32_t)i, (int32_t)c};
        }
    }
    if (n) qsort(m, n, sizeof *m, spm_merge_cmp);
    for (size_t k = 0; k < n; k++) {
        size_t l;
        const char *t = gguf_arr_str(toks, (uint64_t)m[k].id, &l);
        json_t *pair = json_pack("[s#,s#]", t, (int)m[k].cut, t + m[k].cut, (int)(l - (size_t)m[k].cut));
        if (!pair || json_array_append_new(mg, pair)) { free(m); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    }
    free(m);
    return TUNA_OK;
}

static int get_bool(const gguf_file *f, const char *key, int dflt) {
    uint64_t v;
    return gguf_get_u64(f, key, &v) == 0 ? v != 0 : dflt;
}

/* tokens -> the BPE vocabulary; control and user-defined tokens (and the
 * unknown token of a "llama" vocabulary) also as added tokens, matched in
 * the text before BPE as llama.cpp does */
static tuna_status vocab_from_tokens(const gguf_kv *toks, const gguf_kv *types, int spm, json_t *vocab, json_t *added,
                                     const char *path) {
    for (uint64_t i = 0; i < toks->arr_n; i++) {
        size_t l;
        const char *t = gguf_arr_str(toks, i, &l);
        json_t *js = json_stringn(t, l);
        if (!js) return core_fail(TUNA_ERR_FORMAT, "%s: token %llu is not valid UTF-8", path, (unsigned long long)i);
        int32_t ty = 1;
        if (types) memcpy(&ty, types->val + 4 * i, 4);
        if (ty == 3 || ty == 4 || (spm && ty == 2))
            json_array_append_new(added, json_pack("{s:I,s:O,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)i, "content", js, "single_word", 0,
                                                   "lstrip", 0, "rstrip", 0, "normalized", !spm && ty != 3, "special", ty != 4));
        json_object_set_new(vocab, json_string_value(js), json_integer((json_int_t)i));
        json_decref(js);
    }
    return TUNA_OK;
}

static tuna_status merges_from_list(const gguf_kv *merges, json_t *mg, const char *path) {
    for (uint64_t i = 0; i < merges->arr_n; i++) {
        size_t l;
        const char *t = gguf_arr_str(merges, i, &l);
        json_t *js = json_stringn(t, l);
        if (!js) return core_fail(TUNA_ERR_FORMAT, "%s: merge %llu is not valid UTF-8", path, (unsigned long long)i);
        json_array_append_new(mg, js);
    }
    return TUNA_OK;
}

/* tuna's own export: tuna.tokenizer.json_parts. The BPE model's options and
 * tokenizer_config's switches go where they belong; the rest (pipeline,
 * added tokens) replaces the top level's */
static tuna_status apply_json_parts(json_t *root, json_t *mdl, json_t *cfg, const char *ex, size_t n, const char *path) {
    tuna_status st = TUNA_OK;
    json_error_t je;
    json_t *parts = json_loadb(ex, n, 0, &je);
    if (!json_is_object(parts)) st = core_fail(TUNA_ERR_FORMAT, "%s: tuna.tokenizer.json_parts: %s", path, je.text);
    else {
        json_t *opts = json_object_get(parts, "model"), *tc = json_object_get(parts, "tokenizer_config");
        if (json_is_object(opts)) json_object_update_missing(mdl, opts);
        if (json_is_object(tc)) json_object_update(cfg, tc);
        json_object_del(parts, "model");
        json_object_del(parts, "tokenizer_config");
        json_object_update(root, parts);
    }
    json_decref(parts);
    return st;
}

/* another writer's "llama" vocabulary: what llama.cpp does with it (spaces
 * as U+2581, one put in front unless add_space_prefix is false, byte
 * fallback; BOS added, EOS not unless the file says otherwise) */
static void spm_pipeline(const gguf_file *f, const gguf_kv *toks, json_t *root, json_t *mdl, json_t *cfg) {
    uint64_t unk;
    if (gguf_get_u64(f, "tokenizer.ggml.unknown_token_id", &unk) == 0 && unk < toks->arr_n) {
        size_t l;
        const char *t = gguf_arr_str(toks, unk, &l);
        json_object_set_new(mdl, "unk_token", json_stringn(t, l));
    }
    json_object_set_new(mdl, "fuse_unk", json_true());
    json_object_set_new(mdl, "byte_fallback", json_true());
    int prefix = get_bool(f, "tokenizer.ggml.add_space_prefix", 1);
    json_t *norm = json_pack("{s:s,s:[]}", "type", "Sequence", "normalizers"), *dec = json_pack("{s:s,s:[]}", "type", "Sequence", "decoders");
    json_t *norms = json_object_get(norm, "normalizers"), *decs = json_object_get(dec, "decoders");
    if (prefix) json_array_append_new(norms, json_pack("{s:s,s:s}", "type", "Prepend", "prepend", SP_SPACE));
    json_array_append_new(norms, json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "String", " ", "content", SP_SPACE));
    json_array_append_new(decs, json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "String", SP_SPACE, "content", " "));
    json_array_append_new(decs, json_pack("{s:s}", "type", "ByteFallback"));
    json_array_append_new(decs, json_pack("{s:s}", "type", "Fuse"));
    if (prefix) json_array_append_new(decs, json_pack("{s:s,s:s,s:i,s:i}", "type", "Strip", "content", " ", "start", 1, "stop", 0));
    json_object_set_new(root, "normalizer", norm);
    json_object_set_new(root, "decoder", dec);
    /* llama.cpp's SPM defaults: BOS added, EOS not */
    json_object_set_new(cfg, "tokenizer_class", json_string("LlamaTokenizerFast"));
    json_object_set_new(cfg, "add_bos_token", json_boolean(get_bool(f, "tokenizer.ggml.add_bos_token", 1)));
    json_object_set_new(cfg, "add_eos_token", json_boolean(get_bool(f, "tokenizer.ggml.add_eos_token", 0)));
}

/* another writer's "gpt2" vocabulary: GPT-2's byte-level pre-tokenizer and
 * decoder (other pre-tokenizers are refused) */
static tuna_status gpt2_pipeline(const gguf_file *f, json_t *root, json_t *cfg, const char *path) {
    tuna_status st = TUNA_OK;
    size_t n = 0;
    const char *pre = gguf_get_str(f, "tokenizer.ggml.pre", &n);
    if (pre && !(n == 5 && !memcmp(pre, "gpt-2", 5)) && !(n == 7 && !memcmp(pre, "default", 7)))
        st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: pre-tokenizer '%.*s': tuna rebuilds gpt-2 ones (or its own exports)", path, (int)n, pre);
    json_object_set_new(root, "pre_tokenizer", json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1));
    json_object_set_new(root, "decoder", json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1));
    if (get_bool(f, "tokenizer.ggml.add_bos_token", 0)) {
        json_object_set_new(cfg, "tokenizer_class", json_string("LlamaTokenizerFast"));
        json_object_set_new(cfg, "add_bos_token", json_true());
    }
    return st;
}

/* bos/eos/pad token texts for the tokenizer config (null when absent) */
static void special_tokens(const gguf_file *f, const gguf_kv *toks, json_t *cfg) {
    const char *keys[][2] = {{"tokenizer.ggml.bos_token_id", "bos_token"}, {"tokenizer.ggml.eos_token_id", "eos_token"},
                             {"tokenizer.ggml.padding_token_id", "pad_token"}};
    for (int k = 0; k < 3; k++) {
        uint64_t id;
        size_t l;
        if (gguf_get_u64(f, keys[k][0], &id) == 0 && id < toks->arr_n) {
            const char *t = gguf_arr_str(toks, id, &l);
            json_object_set_new(cfg, keys[k][1], json_stringn(t, l));
        } else json_object_set_new(cfg, keys[k][1], json_null());
    }
}

tuna_status tk_load_gguf(tuna_tokenizer **out, const char *path) {
    *out = NULL;
    gguf_file f;
    tuna_status st = gguf_open(&f, path);
    if (st != TUNA_OK) return st;
    size_t n = 0;
    const char *model = gguf_get_str(&f, "tokenizer.ggml.model", &n);
    int spm = model && n == 5 && !memcmp(model, "llama", 5);
    const gguf_kv *toks = gguf_find_kv(&f, "tokenizer.ggml.tokens"), *types = gguf_find_kv(&f, "tokenizer.ggml.token_type"),
                  *merges = gguf_find_kv(&f, spm ? "tuna.tokenizer.merges" : "tokenizer.ggml.merges");
    if (merges && !merges->strs) merges = NULL;
    if (!model || !(spm || (n == 4 && !memcmp(model, "gpt2", 4))) || !toks || !toks->strs || (!spm && !merges)) {
        gguf_close(&f);
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: no BPE vocabulary (tokenizer.ggml.model \"gpt2\" with tokens and merges, "
                                               "or \"llama\" with tokens and scores)", path);
    }
    if (types && (types->arr_type != GGUF_T_I32 || types->arr_n != toks->arr_n)) types = NULL;
    json_t *root = json_object(), *mdl = json_object(), *vocab = json_object(), *mg = json_array(), *added = json_array();
    json_t *cfg = json_object();
    st = vocab_from_tokens(toks, types, spm, vocab, added, path);
    if (st == TUNA_OK && merges) st = merges_from_list(merges, mg, path);
    if (st == TUNA_OK && spm && !merges) st = spm_merges(&f, toks, types, vocab, mg, path);
    json_object_set_new(mdl, "type", json_string("BPE"));
    json_object_set_new(mdl, "vocab", vocab);
    json_object_set_new(mdl, "merges", mg);
    json_object_set_new(root, "model", mdl);
    json_object_set_new(root, "added_tokens", added);
    const char *ex = gguf_get_str(&f, "tuna.tokenizer.json_parts", &n);
    if (st == TUNA_OK && ex) st = apply_json_parts(root, mdl, cfg, ex, n, path);
    else if (st == TUNA_OK && spm) spm_pipeline(&f, toks, root, mdl, cfg);
    else if (st == TUNA_OK) st = gpt2_pipeline(&f, root, cfg, path);
    if (st == TUNA_OK) special_tokens(&f, toks, cfg);
    const char *ct = gguf_get_str(&f, "tokenizer.chat_template", &n);
    if (ct) json_object_set_new(cfg, "chat_template", json_stringn(ct, n));
    if (st == TUNA_OK) st = tk_load_from_json(out, root, cfg, path);
    json_decref(root);
    json_decref(cfg);
    gguf_close(&f);
    return st;
}
