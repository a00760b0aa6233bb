/* tok_slow_bpe.c — a GPT-2-style folder (vocab.json + merges.txt, the files of
 * transformers' "slow" GPT2Tokenizer / Qwen2Tokenizer) turned into the
 * tokenizer.json object those classes' fast versions would write, with the
 * added tokens of tokenizer_config.json; tok_open.c then builds it. */
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "core/error.h"

#define QWEN2_REGEX "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

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
    char *cpath = tk_join_path(dir, "tokenizer_config.json");
    jkeys r = {json_is_object(config) ? config : NULL, cpath ? cpath : "tokenizer_config.json", "", TUNA_OK};
    const char *cls = jkeys_str(&r, "tokenizer_class", NULL, NULL);
    int prefix_space = jkeys_bool(&r, "add_prefix_space", 0);
    json_t *atd = added_tokens_decoder(&r);
    free(cpath);
    if (r.st != TUNA_OK) return r.st;
    int qwen = cls && !strncmp(cls, "Qwen2Tokenizer", 14);
    if (cls && !qwen && strncmp(cls, "GPT2Tokenizer", 13) != 0)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: vocab.json + merges.txt with tokenizer_class \"%s\" is not supported (GPT2Tokenizer and Qwen2Tokenizer are)", dir, cls);
    char *vpath = tk_join_path(dir, "vocab.json"), *mpath = tk_join_path(dir, "merges.txt");
    tuna_status st = TUNA_OK;
    json_t *vocab = NULL, *root = NULL, *merges = json_array();
    char *mtext = NULL;
    size_t mlen = 0;
    if (!vpath || !mpath || !merges) { st = tk_nomem(); goto done; }
    if (!(vocab = tk_load_json_file(vpath, 0, &st))) goto done;
    if (!json_is_object(vocab)) { st = core_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", vpath); goto done; }
    if ((st = tk_read_file(mpath, &mtext, &mlen))) goto done;
    for (size_t i = 0; i < mlen;) {
        size_t e = i;
        while (e < mlen && mtext[e] != '\n') e++;
        size_t le = e;
        if (le > i && mtext[le - 1] == '\r') le--;
        if (le > i && !(le - i >= 8 && !memcmp(mtext + i, "#version", 8))) {
            if (json_array_append_new(merges, json_stringn(mtext + i, le - i))) { st = tk_nomem(); goto done; }
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
    if (!root) st = tk_nomem();
done:
    free(vpath);
    free(mpath);
    free(mtext);
    json_decref(vocab);
    json_decref(merges);
    *out = root;
    return st;
}
