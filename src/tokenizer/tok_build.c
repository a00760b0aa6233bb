/* tok_build.c — building a tokenizer from a parsed tokenizer.json (HF "fast"
 * format) and tokenizer_config.json (special tokens, chat template):
 * tk_load_from_json, where every way of loading ends (called by tok_open.c for
 * tokenizer.json files and vocab.json + merges.txt folders, by tok_gguf.c and
 * tok_llama2c.c); plus freeing and the public accessors. It opens no file and
 * calls no reader.
 *
 * Every field the encoder depends on is read explicitly; unknown model types
 * and pipeline components are refused with a message naming them, since
 * ignoring one would silently change the ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "tokenizer/tok_config.h"
#include "core/error.h"

static tuna_status set_token(tuna_tokenizer *tok, int32_t id, const char *s, size_t n) {
    uint32_t off = (uint32_t)tok->strs.n;
    if (tk_buf_put(&tok->strs, s, n) || tk_buf_putc(&tok->strs, '\0')) return tk_nomem();
    tok->str_off[id] = off;
    return TUNA_OK;
}

/* Reads one merge as its two parts: "a b" (split at the first space, as no
 * token of such files contains one) or ["a", "b"]. */
static int merge_parts(json_t *m, const char **a, size_t *al, const char **b, size_t *bl) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        size_t n = json_string_length(m);
        const char *sp = memchr(s, ' ', n);
        if (!sp) return -1;
        *a = s; *al = (size_t)(sp - s);
        *b = sp + 1; *bl = n - *al - 1;
        return 0;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0)); *al = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1)); *bl = json_string_length(json_array_get(m, 1));
        return 0;
    }
    return -1;
}

static tuna_status parse_model(tuna_tokenizer *tok, json_t *model, json_t *added) {
    if (!json_is_object(model)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: no \"model\" object");
    const char *type = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (type && strcmp(type, "BPE") != 0)
        return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: model type \"%s\" is not supported (only BPE tokenizers are)", type);
    if (!type && !merges)
        return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: model without \"type\" or \"merges\" is not supported (only BPE tokenizers are)");
    if (!json_is_object(vocab)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: BPE model without a \"vocab\" object");
    if (merges && !json_is_array(merges)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: BPE \"merges\" is not a list");

    /* size the id space over vocab and added tokens */
    json_int_t maxid = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24))
            return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: vocab entry \"%.64s\" has no valid id", key);
        if (json_integer_value(v) > maxid) maxid = json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
            !json_is_string(json_object_get(v, "content")))
            return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: added_tokens[%zu] needs an integer \"id\" and a \"content\"", i);
        if (json_integer_value(id) > maxid) maxid = json_integer_value(id);
    }
    if (maxid < 0) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: empty vocabulary");
    tok->vocab_size = (int)maxid + 1;
    tok->str_off = malloc((size_t)tok->vocab_size * sizeof *tok->str_off);
    tok->special = calloc((size_t)tok->vocab_size, 1);
    if (!tok->str_off || !tok->special) return tk_nomem();
    for (int k = 0; k < tok->vocab_size; k++) tok->str_off[k] = UINT32_MAX;
    if (tk_map_init(&tok->vocab, json_object_size(vocab)) || tk_map_init(&tok->added_vocab, json_array_size(added) + 1))
        return tk_nomem();
    json_object_foreach(vocab, key, v) {
        size_t kl = strlen(key); /* jansson keys are NUL-terminated; NULs inside are refused */
        int32_t id = (int32_t)json_integer_value(v);
        if (tk_map_put(&tok->vocab, key, kl, id)) return tk_nomem();
        tuna_status st = set_token(tok, id, key, kl);
        if (st) return st;
    }

    /* options */
    json_t *unk = json_object_get(model, "unk_token");
    tok->unk_id = -1;
    if (json_is_string(unk)) tok->unk_id = tk_map_get(&tok->vocab, json_string_value(unk), json_string_length(unk));
    jkeys r = {model, "tokenizer.json", "model.", TUNA_OK}; /* the flags, read strictly (core/json_keys.h) */
    tok->fuse_unk = jkeys_bool(&r, "fuse_unk", 0);
    tok->byte_fallback = jkeys_bool(&r, "byte_fallback", 0);
    tok->ignore_merges = jkeys_bool(&r, "ignore_merges", 0);
    float dropout = jkeys_num(&r, "dropout", 0, 0, 1, 0);
    if (r.st != TUNA_OK) return r.st;
    json_t *pre = json_object_get(model, "continuing_subword_prefix"), *suf = json_object_get(model, "end_of_word_suffix");
    if (json_is_string(pre) && json_string_length(pre)) {
        tok->subword_prefix_len = json_string_length(pre);
        if (!(tok->subword_prefix = strdup(json_string_value(pre)))) return tk_nomem();
    }
    if (json_is_string(suf) && json_string_length(suf)) {
        tok->word_suffix_len = json_string_length(suf);
        if (!(tok->word_suffix = strdup(json_string_value(suf)))) return tk_nomem();
    }
    if (dropout > 0)
        return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: BPE dropout is not supported (encoding would not be deterministic)");
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_ids[b] = tk_map_get(&tok->vocab, name, 6);
    }

    /* merges, ranked by position */
    size_t nm = merges ? json_array_size(merges) : 0;
    if (tk_merges_init(&tok->merges, nm + 1)) return tk_nomem();
    tk_buf tmp = {0};
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *a, *b;
        size_t al, bl;
        if (merge_parts(m, &a, &al, &b, &bl)) { tk_buf_free(&tmp); return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: merges[%zu] is not \"a b\" or [a, b]", i); }
        int32_t ia = tk_map_get(&tok->vocab, a, al), ib = tk_map_get(&tok->vocab, b, bl);
        if (ia < 0 || ib < 0) { tk_buf_free(&tmp); return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: merges[%zu]: a part is not in the vocabulary", i); }
        /* with a continuing-subword prefix the right part carries it, the merged token does not */
        size_t cut = tok->subword_prefix_len && bl >= tok->subword_prefix_len &&
                     !memcmp(b, tok->subword_prefix, tok->subword_prefix_len) ? tok->subword_prefix_len : 0;
        tmp.n = 0;
        if (tk_buf_put(&tmp, a, al) || tk_buf_put(&tmp, b + cut, bl - cut)) { tk_buf_free(&tmp); return tk_nomem(); }
        int32_t id = tk_map_get(&tok->vocab, tmp.p, tmp.n);
        if (id < 0) { tk_buf_free(&tmp); return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: merges[%zu]: merged token is not in the vocabulary", i); }
        if (tk_merges_put(&tok->merges, ia, ib, (int32_t)i, id)) { tk_buf_free(&tmp); return tk_nomem(); }
    }
    tk_buf_free(&tmp);
    return TUNA_OK;
}

static tuna_status parse_added(tuna_tokenizer *tok, json_t *added) {
    size_t n = json_array_size(added), i;
    if (!n) return TUNA_OK;
    tok->added = calloc(n, sizeof *tok->added);
    if (!tok->added) return tk_nomem();
    json_t *v;
    json_array_foreach(added, i, v) {
        tk_added *a = &tok->added[tok->n_added++];
        json_t *c = json_object_get(v, "content");
        a->id = (int32_t)json_integer_value(json_object_get(v, "id"));
        a->len = json_string_length(c);
        if (!(a->content = malloc(a->len + 1))) return tk_nomem();
        memcpy(a->content, json_string_value(c), a->len + 1);
        char pfx[48];
        snprintf(pfx, sizeof pfx, "added_tokens[%zu].", i);
        jkeys r = {v, "tokenizer.json", pfx, TUNA_OK};
        a->special = jkeys_bool(&r, "special", 0);
        a->lstrip = jkeys_bool(&r, "lstrip", 0);
        a->rstrip = jkeys_bool(&r, "rstrip", 0);
        a->single_word = jkeys_bool(&r, "single_word", 0);
        a->normalized = jkeys_bool(&r, "normalized", !a->special); /* HF's default: special tokens match the raw text */
        if (r.st != TUNA_OK) return r.st;
        tok->special[a->id] = (uint8_t)a->special;
        tuna_status st = set_token(tok, a->id, a->content, a->len);
        if (st) return st;
        if (tk_map_put(&tok->added_vocab, a->content, a->len, a->id)) return tk_nomem();
    }
    return TUNA_OK;
}

static tuna_status push_post(int32_t **arr, int *n, int32_t id) {
    int32_t *p = realloc(*arr, (size_t)(*n + 1) * sizeof *p);
    if (!p) return tk_nomem();
    p[(*n)++] = id;
    *arr = p;
    return TUNA_OK;
}

static tuna_status check_id(const tuna_tokenizer *tok, json_int_t id) {
    if (id < 0 || id >= tok->vocab_size) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: post_processor id %lld is out of range", (long long)id);
    return TUNA_OK;
}

static tuna_status parse_post(tuna_tokenizer *tok, json_t *j) {
    if (!j || json_is_null(j)) return TUNA_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: post_processor without \"type\"");
    tuna_status st = TUNA_OK;
    if (!strcmp(type, "Sequence")) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(j, "processors"), i, c) {
            if ((st = parse_post(tok, c))) return st;
        }
        return TUNA_OK;
    }
    if (!strcmp(type, "ByteLevel")) return TUNA_OK; /* offsets only */
    if (!strcmp(type, "TemplateProcessing")) {
        json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
        if (!json_is_array(single)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing without \"single\"");
        int seen_a = 0;
        size_t i;
        json_t *item;
        json_array_foreach(single, i, item) {
            json_t *sp = json_object_get(item, "SpecialToken");
            if (json_object_get(item, "Sequence")) { seen_a = 1; continue; }
            if (!sp) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing item %zu is neither SpecialToken nor Sequence", i);
            const char *name = json_string_value(json_object_get(sp, "id"));
            json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
            if (!json_is_array(ids)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing special token \"%s\" has no ids", name ? name : "?");
            size_t k;
            json_t *id;
            json_array_foreach(ids, k, id) {
                if (!json_is_integer(id))
                    return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing special token \"%s\": ids[%zu] is not an integer", name ? name : "?", k);
                if ((st = check_id(tok, json_integer_value(id)))) return st;
                st = seen_a ? push_post(&tok->post_post, &tok->n_post_post, (int32_t)json_integer_value(id))
                            : push_post(&tok->post_pre, &tok->n_post_pre, (int32_t)json_integer_value(id));
                if (st) return st;
            }
        }
        return TUNA_OK;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        json_t *cls = json_array_get(json_object_get(j, "cls"), 1), *sep = json_array_get(json_object_get(j, "sep"), 1);
        if (!json_is_integer(cls) || !json_is_integer(sep)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: %s needs cls and sep", type);
        if ((st = check_id(tok, json_integer_value(cls))) || (st = check_id(tok, json_integer_value(sep)))) return st;
        if ((st = push_post(&tok->post_pre, &tok->n_post_pre, (int32_t)json_integer_value(cls)))) return st;
        return push_post(&tok->post_post, &tok->n_post_post, (int32_t)json_integer_value(sep));
    }
    return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: post_processor \"%s\" is not supported", type);
}

static int32_t first_known(const tuna_tokenizer *tok, const char *const *names) {
    for (; *names; names++) {
        int32_t id = tuna_tokenizer_token_to_id(tok, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* tokenizer_config.json (cfg_path names it in messages), read strictly (tok_config.h) */
static tuna_status parse_config(tuna_tokenizer *tok, json_t *cfg, const char *cfg_path) {
    tok->bos_id = tok->eos_id = tok->pad_id = tok->cfg_unk_id = -1;
    jkeys r = {cfg, cfg_path, "", TUNA_OK};
    const char *bos = tk_config_token(&r, "bos_token"), *eos = tk_config_token(&r, "eos_token");
    const char *pad = tk_config_token(&r, "pad_token"), *unk = tk_config_token(&r, "unk_token");
    const char *ct = tk_config_template(&r), *cls = jkeys_str(&r, "tokenizer_class", NULL, NULL);
    int ab = jkeys_bool(&r, "add_bos_token", -1), ae = jkeys_bool(&r, "add_eos_token", -1);
    if (r.st != TUNA_OK) return r.st;
    if (bos) { tok->bos_id = tuna_tokenizer_token_to_id(tok, bos); if (!(tok->bos_tok = strdup(bos))) return tk_nomem(); }
    if (eos) { tok->eos_id = tuna_tokenizer_token_to_id(tok, eos); if (!(tok->eos_tok = strdup(eos))) return tk_nomem(); }
    if (pad) tok->pad_id = tuna_tokenizer_token_to_id(tok, pad);
    if (unk) tok->cfg_unk_id = tuna_tokenizer_token_to_id(tok, unk);
    if (ct && !(tok->chat_template = strdup(ct))) return tk_nomem();
    /* files without a config: the usual names */
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
    if (!cfg || !json_object_get(cfg, "bos_token")) {
        if (tok->n_post_pre) tok->bos_id = tok->post_pre[0];
        else tok->bos_id = first_known(tok, bos_names);
    }
    if (!cfg || !json_object_get(cfg, "eos_token")) tok->eos_id = first_known(tok, eos_names);
    const char *bt = tuna_tokenizer_id_to_token(tok, tok->bos_id), *et = tuna_tokenizer_id_to_token(tok, tok->eos_id);
    if (bt && !tok->bos_tok && !(tok->bos_tok = strdup(bt))) return tk_nomem();
    if (et && !tok->eos_tok && !(tok->eos_tok = strdup(et))) return tk_nomem();
    if (tok->cfg_unk_id < 0) tok->cfg_unk_id = tok->unk_id;
    /* transformers' Llama/Gemma fast tokenizers rebuild the post-processor
     * from add_bos_token / add_eos_token, so those flags decide what
     * add_special_tokens=True adds for such files */
    if (cls && (!strncmp(cls, "Llama", 5) || !strncmp(cls, "CodeLlama", 9) || !strncmp(cls, "Gemma", 5)) && (ab >= 0 || ae >= 0)) {
        tok->n_post_pre = tok->n_post_post = 0;
        tuna_status st = TUNA_OK;
        if (ab > 0 && tok->bos_id >= 0) st = push_post(&tok->post_pre, &tok->n_post_pre, tok->bos_id);
        if (!st && ae > 0 && tok->eos_id >= 0) st = push_post(&tok->post_post, &tok->n_post_post, tok->eos_id);
        if (st) return st;
    }
    return TUNA_OK;
}

tuna_status tk_load_from_json(tuna_tokenizer **out, json_t *root, json_t *config, const char *cfg_path) {
    *out = NULL;
    if (!json_is_object(root)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: top level is not an object");
    tuna_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return tk_nomem();
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added)) { free(tok); return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: \"added_tokens\" is not a list"); }
    if (!json_is_array(added)) added = NULL;
    json_t *empty = json_array();
    tuna_status st = parse_model(tok, json_object_get(root, "model"), added ? added : empty);
    json_decref(empty);
    if (!st) st = parse_added(tok, added);
    if (!st) tok->sp_split = tk_bpe_can_split(tok);
    if (!st) st = tk_norm_parse(tok, json_object_get(root, "normalizer"));
    if (!st) st = tk_pre_parse(tok, json_object_get(root, "pre_tokenizer"));
    if (!st) st = tk_dec_parse(tok, json_object_get(root, "decoder"));
    if (!st) st = parse_post(tok, json_object_get(root, "post_processor"));
    if (!st) st = tk_trie_build(tok);
    if (!st && tk_map_init(&tok->cache, 4096)) st = tk_nomem();
    if (!st) st = parse_config(tok, json_is_object(config) ? config : NULL, cfg_path);
    if (st) { tuna_tokenizer_free(tok); return st; }
    *out = tok;
    return TUNA_OK;
}

void tuna_tokenizer_free(tuna_tokenizer *tok) {
    if (!tok) return;
    tk_buf_free(&tok->strs);
    free(tok->str_off);
    free(tok->special);
    tk_map_free(&tok->vocab);
    tk_map_free(&tok->added_vocab);
    tk_merges_free(&tok->merges);
    free(tok->subword_prefix);
    free(tok->word_suffix);
    for (int i = 0; i < tok->n_norms; i++) tk_norm_free(&tok->norms[i]);
    free(tok->norms);
    for (int i = 0; i < tok->n_pres; i++) tk_pre_free(&tok->pres[i]);
    free(tok->pres);
    for (int i = 0; i < tok->n_decs; i++) tk_dec_free(&tok->decs[i]);
    free(tok->decs);
    for (int i = 0; i < tok->n_added; i++) { free(tok->added[i].content); free(tok->added[i].pattern); }
    free(tok->added);
    tk_trie_free(&tok->trie_raw);
    tk_trie_free(&tok->trie_norm);
    free(tok->post_pre);
    free(tok->post_post);
    free(tok->bos_tok);
    free(tok->eos_tok);
    free(tok->chat_template);
    tk_buf_free(&tok->norm_buf);
    for (int i = 0; i < 8; i++) tk_buf_free(&tok->pre_buf[i]);
    tk_map_free(&tok->cache);
    free(tok->cache_ids.p);
    free(tok->sym);
    free(tok->heap);
    free(tok->out.p);
    free(tok);
}

/* ---- accessors ---- */
int tuna_tokenizer_vocab_size(const tuna_tokenizer *tok) { return tok ? tok->vocab_size : 0; }

const char *tuna_tokenizer_id_to_token(const tuna_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->vocab_size || tok->str_off[id] == UINT32_MAX) return NULL;
    return tok->strs.p + tok->str_off[id];
}

int32_t tuna_tokenizer_token_to_id(const tuna_tokenizer *tok, const char *token) {
    if (!tok || !token) return -1;
    size_t n = strlen(token);
    int32_t id = tk_map_get(&tok->added_vocab, token, n);
    return id >= 0 ? id : tk_map_get(&tok->vocab, token, n);
}

int32_t tuna_tokenizer_bos_id(const tuna_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int32_t tuna_tokenizer_eos_id(const tuna_tokenizer *tok) { return tok ? tok->eos_id : -1; }
int32_t tuna_tokenizer_pad_id(const tuna_tokenizer *tok) { return tok ? tok->pad_id : -1; }
int32_t tuna_tokenizer_unk_id(const tuna_tokenizer *tok) { return tok ? tok->cfg_unk_id : -1; }
int tuna_tokenizer_is_special(const tuna_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->vocab_size && tok->special[id];
}
const char *tuna_tokenizer_chat_template(const tuna_tokenizer *tok) { return tok ? tok->chat_template : NULL; }
const char *tuna_tokenizer_bos_token(const tuna_tokenizer *tok) { return tok ? tok->bos_tok : NULL; }
const char *tuna_tokenizer_eos_token(const tuna_tokenizer *tok) { return tok ? tok->eos_tok : NULL; }
