/* tok_gguf.c — a tokenizer rebuilt from a GGUF file's vocabulary keys
 * (tokenizer.ggml.model "gpt2": tokens, token types, merges, special ids,
 * chat template), so `tuna generate` / `eval` run on a .gguf alone. Files tuna
 * wrote carry the tokenizer.json parts GGUF has no keys for
 * (tuna.tokenizer.json_parts) and come back exactly; other files with the
 * "gpt-2" pre-tokenizer get GPT-2's byte-level pre-tokenizer and decoder. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "tok_internal.h"

tuna_status tk_load_gguf(tuna_tokenizer **out, const char *path) {
    *out = NULL;
    gguf_file f;
    tuna_status st = gguf_open(&f, path);
    if (st != TUNA_OK) return st;
    size_t n = 0;
    const char *model = gguf_get_str(&f, "tokenizer.ggml.model", &n);
    const gguf_kv *toks = gguf_find_kv(&f, "tokenizer.ggml.tokens"), *types = gguf_find_kv(&f, "tokenizer.ggml.token_type"),
                  *merges = gguf_find_kv(&f, "tokenizer.ggml.merges");
    if (!model || n != 4 || memcmp(model, "gpt2", 4) || !toks || !toks->strs || !merges || !merges->strs) {
        gguf_close(&f);
        return tuna_fail(TUNA_ERR_UNSUPPORTED, "%s: no byte-level BPE vocabulary (tokenizer.ggml.model \"gpt2\" with tokens and merges)", path);
    }
    if (types && (types->arr_type != GGUF_T_I32 || types->arr_n != toks->arr_n)) types = NULL;
    json_t *root = json_object(), *mdl = json_object(), *vocab = json_object(), *mg = json_array(), *added = json_array();
    json_t *cfg = json_object();
    for (uint64_t i = 0; i < toks->arr_n; i++) {
        size_t l;
        const char *t = gguf_arr_str(toks, i, &l);
        json_t *js = json_stringn(t, l);
        if (!js) { st = tuna_fail(TUNA_ERR_FORMAT, "%s: token %llu is not valid UTF-8", path, (unsigned long long)i); break; }
        int32_t ty = 1;
        if (types) memcpy(&ty, types->val + 4 * i, 4);
        if (ty == 3 || ty == 4)
            json_array_append_new(added, json_pack("{s:I,s:O,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)i, "content", js, "single_word", 0,
                                                   "lstrip", 0, "rstrip", 0, "normalized", ty != 3, "special", ty == 3));
        json_object_set_new(vocab, json_string_value(js), json_integer((json_int_t)i));
        json_decref(js);
    }
    for (uint64_t i = 0; st == TUNA_OK && i < merges->arr_n; i++) {
        size_t l;
        const char *t = gguf_arr_str(merges, i, &l);
        json_t *js = json_stringn(t, l);
        if (!js) { st = tuna_fail(TUNA_ERR_FORMAT, "%s: merge %llu is not valid UTF-8", path, (unsigned long long)i); break; }
        json_array_append_new(mg, js);
    }
    json_object_set_new(mdl, "type", json_string("BPE"));
    json_object_set_new(mdl, "vocab", vocab);
    json_object_set_new(mdl, "merges", mg);
    json_object_set_new(root, "model", mdl);
    json_object_set_new(root, "added_tokens", added);
    const char *ex = gguf_get_str(&f, "tuna.tokenizer.json_parts", &n);
    if (st == TUNA_OK && ex) {
        json_error_t je;
        json_t *parts = json_loadb(ex, n, 0, &je);
        if (!json_is_object(parts)) st = tuna_fail(TUNA_ERR_FORMAT, "%s: tuna.tokenizer.json_parts: %s", path, je.text);
        else json_object_update(root, parts);
        json_decref(parts);
    } else if (st == TUNA_OK) {
        const char *pre = gguf_get_str(&f, "tokenizer.ggml.pre", &n);
        if (pre && !(n == 5 && !memcmp(pre, "gpt-2", 5)) && !(n == 7 && !memcmp(pre, "default", 7)))
            st = tuna_fail(TUNA_ERR_UNSUPPORTED, "%s: pre-tokenizer '%.*s': tuna rebuilds gpt-2 ones (or its own exports)", path, (int)n, pre);
        json_object_set_new(root, "pre_tokenizer", json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1));
        json_object_set_new(root, "decoder", json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1));
        uint64_t ab;
        if (gguf_get_u64(&f, "tokenizer.ggml.add_bos_token", &ab) == 0 && ab) {
            json_object_set_new(cfg, "tokenizer_class", json_string("LlamaTokenizerFast"));
            json_object_set_new(cfg, "add_bos_token", json_true());
        }
    }
    const char *keys[][2] = {{"tokenizer.ggml.bos_token_id", "bos_token"}, {"tokenizer.ggml.eos_token_id", "eos_token"},
                             {"tokenizer.ggml.padding_token_id", "pad_token"}};
    for (int k = 0; st == TUNA_OK && k < 3; k++) {
        uint64_t id;
        size_t l;
        if (gguf_get_u64(&f, keys[k][0], &id) == 0 && id < toks->arr_n) {
            const char *t = gguf_arr_str(toks, id, &l);
            json_object_set_new(cfg, keys[k][1], json_stringn(t, l));
        } else json_object_set_new(cfg, keys[k][1], json_null());
    }
    const char *ct = gguf_get_str(&f, "tokenizer.chat_template", &n);
    if (ct) json_object_set_new(cfg, "chat_template", json_stringn(ct, n));
    if (st == TUNA_OK) st = tk_load_from_json(out, root, cfg);
    json_decref(root);
    json_decref(cfg);
    gguf_close(&f);
    return st;
}
