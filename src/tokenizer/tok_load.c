/* tok_load.c — building a tokenizer from files: tokenizer.json (HF "fast"
 * format), tokenizer_config.json (special tokens, chat template), a GPT-2-style
 * vocab.json + merges.txt folder, or llama2.c's tokenizer.bin (via
 * tok_llama2c.c); plus the public accessors.
 *
 * Every field the encoder depends on is read explicitly; unknown model types
 * and pipeline components are refused with a message naming them, since
 * ignoring one would silently change the ids. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tok_internal.h"
#include "tokenizer/tok_config.h"
#include "tuna_gguf.h"

#define QWEN2_REGEX "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

tuna_status tk_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return tuna_fail(TUNA_ERR_IO, "%s: %s", path, strerror(errno));
    tk_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (tk_buf_put(&b, chunk, k)) { fclose(f); tk_buf_free(&b); return tuna_fail(TUNA_ERR_NOMEM, "%s: out of memory", path); }
    int err = ferror(f);
    fclose(f);
    if (err) { tk_buf_free(&b); return tuna_fail(TUNA_ERR_IO, "%s: read error", path); }
    if (!b.p && tk_buf_put(&b, "", 0)) return tuna_fail(TUNA_ERR_NOMEM, "%s: out of memory", path);
    *data = b.p;
    *len = b.n;
    return TUNA_OK;
}

static int is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* int_as_real: for config files, whose model_max_length can be 1e30 written
 * as an integer, which jansson refuses; their ids are then read as numbers. */
static json_t *load_json_file(const char *path, int int_as_real, tuna_status *st) {
    char *data;
    size_t len;
    *st = tk_read_file(path, &data, &len);
    if (*st) return NULL;
    json_error_t e;
    json_t *j = json_loadb(data, len, int_as_real ? JSON_DECODE_INT_AS_REAL : 0, &e);
    free(data);
    if (!j) *st = tuna_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, e.line, e.text);
    return j;
}

/* ---- tokenizer.json ---- */
static tuna_status nomem(void) { return tuna_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory"); }

static tuna_status set_token(tuna_tokenizer *tok, int32_t id, const char *s, size_t n) {
    uint32_t off = (uint32_t)tok->strs.n;
    if (tk_buf_put(&tok->strs, s, n) || tk_buf_putc(&tok->strs, '\0')) return nomem();
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
    if (!json_is_object(model)) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: no \"model\" object");
    const char *type = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (type && strcmp(type, "BPE") != 0)
        return tuna_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: model type \"%s\" is not supported (only BPE tokenizers are)", type);
    if (!type && !merges)
        return tuna_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: model without \"type\" or \"merges\" is not supported (only BPE tokenizers are)");
    if (!json_is_object(vocab)) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: BPE model without a \"vocab\" object");
    if (merges && !json_is_array(merges)) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: BPE \"merges\" is not a list");

    /* size the id space over vocab and added tokens */
    json_int_t maxid = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24))
            return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: vocab entry \"%.64s\" has no valid id", key);
        if (json_integer_value(v) > maxid) maxid = json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
            !json_is_string(json_object_get(v, "content")))
            return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: added_tokens[%zu] needs an integer \"id\" and a \"content\"", i);
        if (json_integer_value(id) > maxid) maxid = json_integer_value(id);
    }
    if (maxid < 0) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: empty vocabulary");
    tok->vocab_size = (int)maxid + 1;
    tok->str_off = malloc((size_t)tok->vocab_size * sizeof *tok->str_off);
    tok->special = calloc((size_t)tok->vocab_size, 1);
    if (!tok->str_off || !tok->special) return nomem();
    for (int k = 0; k < tok->vocab_size; k++) tok->str_off[k] = UINT32_MAX;
    if (tk_map_init(&tok->vocab, json_object_size(vocab)) || tk_map_init(&tok->added_vocab, json_array_size(added) + 1))
        return nomem();
    json_object_foreach(vocab, key, v) {
        size_t kl = strlen(key); /* jansson keys are NUL-terminated; NULs inside are refused */
        int32_t id = (int32_t)json_integer_value(v);
        if (tk_map_put(&tok->vocab, key, kl, id)) return nomem();
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
        if (!(tok->subword_prefix = strdup(json_string_value(pre)))) return nomem();
    }
    if (json_is_string(suf) && json_string_length(suf)) {
        tok->word_suffix_len = json_string_length(suf);
        if (!(tok->word_suffix = strdup(json_string_value(suf)))) return nomem();
    }
    if (dropout > 0)
        return tuna_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: BPE dropout is not supported (encoding would not be deterministic)");
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_ids[b] = tk_map_get(&tok->vocab, name, 6);
    }

    /* merges, ranked by position */
    size_t nm = merges ? json_array_size(merges) : 0;
    if (tk_merges_init(&tok->merges, nm + 1)) return nomem();
    tk_buf tmp = {0};
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *a, *b;
        size_t al, bl;
        if (merge_parts(m, &a, &al, &b, &bl)) { tk_buf_free(&tmp); return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: merges[%zu] is not \"a b\" or [a, b]", i); }
        int32_t ia = tk_map_get(&tok->vocab, a, al), ib = tk_map_get(&tok->vocab, b, bl);
        if (ia < 0 || ib < 0) { tk_buf_free(&tmp); return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: merges[%zu]: a part is not in the vocabulary", i); }
        /* with a continuing-subword prefix the right part carries it, the merged token does not */
        size_t cut = tok->subword_prefix_len && bl >= tok->subword_prefix_len &&
                     !memcmp(b, tok->subword_prefix, tok->subword_prefix_len) ? tok->subword_prefix_len : 0;
        tmp.n = 0;
        if (tk_buf_put(&tmp, a, al) || tk_buf_put(&tmp, b + cut, bl - cut)) { tk_buf_free(&tmp); return nomem(); }
        int32_t id = tk_map_get(&tok->vocab, tmp.p, tmp.n);
        if (id < 0) { tk_buf_free(&tmp); return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: merges[%zu]: merged token is not in the vocabulary", i); }
        if (tk_merges_put(&tok->merges, ia, ib, (int32_t)i, id)) { tk_buf_free(&tmp); return nomem(); }
    }
    tk_buf_free(&tmp);
    return TUNA_OK;
}

static tuna_status parse_added(tuna_tokenizer *tok, json_t *added) {
    size_t n = json_array_size(added), i;
    if (!n) return TUNA_OK;
    tok->added = calloc(n, sizeof *tok->added);
    if (!tok->added) return nomem();
    json_t *v;
    json_array_foreach(added, i, v) {
        tk_added *a = &tok->added[tok->n_added++];
        json_t *c = json_object_get(v, "content");
        a->id = (int32_t)json_integer_value(json_object_get(v, "id"));
        a->len = json_string_length(c);
        if (!(a->content = malloc(a->len + 1))) return nomem();
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
        if (tk_map_put(&tok->added_vocab, a->content, a->len, a->id)) return nomem();
    }
    return TUNA_OK;
}

static tuna_status push_post(int32_t **arr, int *n, int32_t id) {
    int32_t *p = realloc(*arr, (size_t)(*n + 1) * sizeof *p);
    if (!p) return nomem();
    p[(*n)++] = id;
    *arr = p;
    return TUNA_OK;
}

static tuna_status check_id(const tuna_tokenizer *tok, json_int_t id) {
    if (id < 0 || id >= tok->vocab_size) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: post_processor id %lld is out of range", (long long)id);
    return TUNA_OK;
}

static tuna_status parse_post(tuna_tokenizer *tok, json_t *j) {
    if (!j || json_is_null(j)) return TUNA_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: post_processor without \"type\"");
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
        if (!json_is_array(single)) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing without \"single\"");
        int seen_a = 0;
        size_t i;
        json_t *item;
        json_array_foreach(single, i, item) {
            json_t *sp = json_object_get(item, "SpecialToken");
            if (json_object_get(item, "Sequence")) { seen_a = 1; continue; }
            if (!sp) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing item %zu is neither SpecialToken nor Sequence", i);
            const char *name = json_string_value(json_object_get(sp, "id"));
            json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
            if (!json_is_array(ids)) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing special token \"%s\" has no ids", name ? name : "?");
            size_t k;
            json_t *id;
            json_array_foreach(ids, k, id) {
                if (!json_is_integer(id))
                    return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: TemplateProcessing special token \"%s\": ids[%zu] is not an integer", name ? name : "?", k);
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
        if (!json_is_integer(cls) || !json_is_integer(sep)) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: %s needs cls and sep", type);
        if ((st = check_id(tok, json_integer_value(cls))) || (st = check_id(tok, json_integer_value(sep)))) return st;
        if ((st = push_post(&tok->post_pre, &tok->n_post_pre, (int32_t)json_integer_value(cls)))) return st;
        return push_post(&tok->post_post, &tok->n_post_post, (int32_t)json_integer_value(sep));
    }
    return tuna_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: post_processor \"%s\" is not supported", type);
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
    if (bos) { tok->bos_id = tuna_tokenizer_token_to_id(tok, bos); if (!(tok->bos_tok = strdup(bos))) return nomem(); }
    if (eos) { tok->eos_id = tuna_tokenizer_token_to_id(tok, eos); if (!(tok->eos_tok = strdup(eos))) return nomem(); }
    if (pad) tok->pad_id = tuna_tokenizer_token_to_id(tok, pad);
    if (unk) tok->cfg_unk_id = tuna_tokenizer_token_to_id(tok, unk);
    if (ct && !(tok->chat_template = strdup(ct))) return nomem();
    /* files without a config: the usual names */
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
    if (!cfg || !json_object_get(cfg, "bos_token")) {
        if (tok->n_post_pre) tok->bos_id = tok->post_pre[0];
        else tok->bos_id = first_known(tok, bos_names);
    }
    if (!cfg || !json_object_get(cfg, "eos_token")) tok->eos_id = first_known(tok, eos_names);
    const char *bt = tuna_tokenizer_id_to_token(tok, tok->bos_id), *et = tuna_tokenizer_id_to_token(tok, tok->eos_id);
    if (bt && !tok->bos_tok && !(tok->bos_tok = strdup(bt))) return nomem();
    if (et && !tok->eos_tok && !(tok->eos_tok = strdup(et))) return nomem();
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
    if (!json_is_object(root)) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: top level is not an object");
    tuna_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return nomem();
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added)) { free(tok); return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json: \"added_tokens\" is not a list"); }
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
    if (!st && tk_map_init(&tok->cache, 4096)) st = nomem();
    if (!st) st = parse_config(tok, json_is_object(config) ? config : NULL, cfg_path);
    if (st) { tuna_tokenizer_free(tok); return st; }
    *out = tok;
    return TUNA_OK;
}

tuna_status tuna_tokenizer_load_json(tuna_tokenizer **out, const char *json, size_t len,
                                     const char *config_json, size_t config_len) {
    if (!out) return tuna_fail(TUNA_ERR_ARG, "tokenizer: load: NULL argument");
    *out = NULL;
    if (!json) return tuna_fail(TUNA_ERR_ARG, "tokenizer: load: NULL argument");
    json_error_t e;
    json_t *root = json_loadb(json, len, 0, &e);
    if (!root) return tuna_fail(TUNA_ERR_FORMAT, "tokenizer.json:%d: invalid JSON: %s", e.line, e.text);
    json_t *cfg = NULL;
    if (config_json) {
        cfg = json_loadb(config_json, config_len, JSON_DECODE_INT_AS_REAL, &e);
        if (!cfg) { json_decref(root); return tuna_fail(TUNA_ERR_FORMAT, "tokenizer_config.json:%d: invalid JSON: %s", e.line, e.text); }
    }
    tuna_status st = tk_load_from_json(out, root, cfg, "tokenizer_config.json");
    json_decref(root);
    json_decref(cfg);
    return st;
}

/* ---- vocab.json + merges.txt (GPT2Tokenizer / Qwen2Tokenizer folders) ---- */
/* tokenizer_config.json's added_tokens_decoder: {"<id>": {"content": ...}},
 * each key a token id (decimal, below 2^24), each value an object; NULL when
 * absent. A bad entry is recorded in r. */
static json_t *added_tokens_decoder(jkeys *r) {
    json_t *atd = jkeys_get(r, "added_tokens_decoder"), *v;
    if (!atd || r->st != TUNA_OK) return NULL;
    if (!json_is_object(atd)) { jkeys_fail(r, TUNA_ERR_FORMAT, "added_tokens_decoder", atd, "must be an object"); return NULL; }
    const char *key;
    json_object_foreach(atd, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (key[0] < '0' || key[0] > '9' || *end || id >= (1L << 24) || !json_is_object(v)) {
            jkeys sub = {atd, r->path, "added_tokens_decoder.", TUNA_OK};
            jkeys_fail(&sub, TUNA_ERR_FORMAT, key, v, "must be a token id (0 to 16777215) holding an object");
            r->st = sub.st;
            return NULL;
        }
    }
    return atd;
}

tuna_status tk_slow_bpe_to_json(const char *dir, json_t *config, json_t **out) {
    *out = NULL;
    char *cpath = join_path(dir, "tokenizer_config.json");
    jkeys r = {json_is_object(config) ? config : NULL, cpath ? cpath : "tokenizer_config.json", "", TUNA_OK};
    const char *cls = jkeys_str(&r, "tokenizer_class", NULL, NULL);
    int prefix_space = jkeys_bool(&r, "add_prefix_space", 0);
    json_t *atd = added_tokens_decoder(&r);
    free(cpath);
    if (r.st != TUNA_OK) return r.st;
    int qwen = cls && !strncmp(cls, "Qwen2Tokenizer", 14);
    if (cls && !qwen && strncmp(cls, "GPT2Tokenizer", 13) != 0)
        return tuna_fail(TUNA_ERR_UNSUPPORTED, "%s: vocab.json + merges.txt with tokenizer_class \"%s\" is not supported (GPT2Tokenizer and Qwen2Tokenizer are)", dir, cls);
    char *vpath = join_path(dir, "vocab.json"), *mpath = join_path(dir, "merges.txt");
    tuna_status st = TUNA_OK;
    json_t *vocab = NULL, *root = NULL, *merges = json_array();
    char *mtext = NULL;
    size_t mlen = 0;
    if (!vpath || !mpath || !merges) { st = nomem(); goto done; }
    if (!(vocab = load_json_file(vpath, 0, &st))) goto done;
    if (!json_is_object(vocab)) { st = tuna_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", vpath); goto done; }
    if ((st = tk_read_file(mpath, &mtext, &mlen))) goto done;
    for (size_t i = 0; i < mlen;) {
        size_t e = i;
        while (e < mlen && mtext[e] != '\n') e++;
        size_t le = e;
        if (le > i && mtext[le - 1] == '\r') le--;
        if (le > i && !(le - i >= 8 && !memcmp(mtext + i, "#version", 8))) {
            if (json_array_append_new(merges, json_stringn(mtext + i, le - i))) { st = nomem(); goto done; }
        }
        i = e + 1;
    }
    /* added tokens: tokenizer_config's added_tokens_decoder, else <|endoftext|> */
    json_t *added = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(atd, key, v) {
        json_t *t = json_deep_copy(v);
        json_object_del(t, "__type");
        json_object_set_new(t, "id", json_integer(strtol(key, NULL, 10)));
        json_array_append_new(added, t);
    }
    if (json_array_size(added) == 0 && json_is_integer(json_object_get(vocab, "<|endoftext|>")))
        json_array_append_new(added, json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id",
                              json_integer_value(json_object_get(vocab, "<|endoftext|>")), "content", "<|endoftext|>",
                              "special", 1, "lstrip", 0, "rstrip", 0, "single_word", 0, "normalized", 0));
    json_t *model = json_pack("{s:s, s:O, s:O, s:n, s:b, s:b, s:b}", "type", "BPE", "vocab", vocab, "merges", merges,
                              "unk_token", "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0);
    json_t *pre, *norm;
    if (qwen) {
        norm = json_pack("{s:s}", "type", "NFC");
        pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence", "pretokenizers",
                        "type", "Split", "pattern", "Regex", QWEN2_REGEX, "behavior", "Isolated", "invert", 0,
                        "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0);
    } else {
        norm = json_null();
        pre = json_pack("{s:s, s:b, s:b}", "type", "ByteLevel", "add_prefix_space",
                        prefix_space, "use_regex", 1);
    }
    root = json_pack("{s:o, s:o, s:o, s:o, s:{s:s}, s:n}", "added_tokens", added, "model", model, "normalizer", norm,
                     "pre_tokenizer", pre, "decoder", "type", "ByteLevel", "post_processor");
    if (!root) st = nomem();
done:
    free(vpath);
    free(mpath);
    free(mtext);
    json_decref(vocab);
    json_decref(merges);
    *out = root;
    return st;
}

/* ---- entry point ---- */
static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static tuna_status load_llama2c(tuna_tokenizer **out, const char *path) {
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

/* config.json's bos_token_id / eos_token_id (the first of a list), read as
 * strictly as the model loader does, for what cfg leaves out; ids outside the
 * vocabulary are ignored, as before */
static tuna_status ids_from_model_config(tuna_tokenizer *t, const char *path, json_t *cfg) {
    tuna_status st;
    json_t *mc = load_json_file(path, 0, &st);
    if (!mc) return st;
    jkeys r = {mc, path, "", json_is_object(mc) ? TUNA_OK : tuna_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", path)};
    int32_t b = -1, e = -1;
    int nb = jkeys_token_ids(&r, "bos_token_id", &b, 1), ne = jkeys_token_ids(&r, "eos_token_id", &e, 1);
    json_decref(mc);
    if (r.st != TUNA_OK) return r.st;
    if (nb && b < t->vocab_size && (!cfg || !json_object_get(cfg, "bos_token"))) t->bos_id = b;
    if (ne && e < t->vocab_size && (!cfg || !json_object_get(cfg, "eos_token"))) t->eos_id = e;
    return TUNA_OK;
}

tuna_status tuna_tokenizer_load(tuna_tokenizer **out, const char *dir) {
    if (!out || !dir) return tuna_fail(TUNA_ERR_ARG, "tokenizer: load: NULL argument");
    *out = NULL;
    if (is_file(dir)) {
        if (ends_with(dir, ".bin")) return load_llama2c(out, dir);
        if (tuna_is_gguf(dir)) return tk_load_gguf(out, dir);
        tuna_status st;
        json_t *root = load_json_file(dir, 0, &st);
        if (!root) return st;
        st = tk_load_from_json(out, root, NULL, dir);
        json_decref(root);
        return st;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) return tuna_fail(TUNA_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return tuna_fail(TUNA_ERR_IO, "%s: not a folder", dir);
    char *tj = join_path(dir, "tokenizer.json"), *tc = join_path(dir, "tokenizer_config.json");
    char *vj = join_path(dir, "vocab.json"), *mt = join_path(dir, "merges.txt");
    char *tb = join_path(dir, "tokenizer.bin"), *cj = join_path(dir, "config.json");
    tuna_status st = TUNA_OK;
    json_t *root = NULL, *cfg = NULL;
    if (!tj || !tc || !vj || !mt || !tb || !cj) { st = nomem(); goto done; }
    if (is_file(tc) && !(cfg = load_json_file(tc, 1, &st))) goto done;
    if (is_file(tj)) {
        if (!(root = load_json_file(tj, 0, &st))) goto done;
    } else if (is_file(vj) && is_file(mt)) {
        if ((st = tk_slow_bpe_to_json(dir, cfg, &root))) goto done;
    } else if (is_file(tb)) {
        st = load_llama2c(out, tb);
        goto done;
    } else {
        st = tuna_fail(TUNA_ERR_IO, "%s: no tokenizer.json, vocab.json + merges.txt, or tokenizer.bin", dir);
        goto done;
    }
    if ((st = tk_load_from_json(out, root, cfg, tc))) goto done;
    /* config.json's ids fill in what tokenizer_config.json leaves out */
    if (is_file(cj) && (!cfg || !json_object_get(cfg, "bos_token") || !json_object_get(cfg, "eos_token")) &&
        (st = ids_from_model_config(*out, cj, cfg))) {
        tuna_tokenizer_free(*out);
        *out = NULL;
    }
done:
    json_decref(root);
    json_decref(cfg);
    free(tj); free(tc); free(vj); free(mt); free(tb); free(cj);
    return st;
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
