/* gguf_model.c — tuna models to and from llama.cpp's GGUF files: the
 * architecture keys, tensor names (HF → llama.cpp), Llama's q/k row
 * permutation, the vocabulary (byte-level BPE as tokenizer.ggml.model "gpt2":
 * tokens, types, merges, pre-tokenizer name; SentencePiece-style BPE with byte
 * fallback as "llama": tokens, scores that rank merges as the tokenizer.json
 * merges do, types), special ids, chat template, and the reverse mapping for
 * loading an export back. Conventions follow llama.cpp's convert_hf_to_gguf.py
 * and gguf-py constants; the code is tuna's own. */
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "tuna_peft.h"
#include "model/model_internal.h"
#include "model/param_rows.h"
#include "tuna_gguf.h"
#include "io/gguf_mix.h"

/* HF name -> llama.cpp name ("" when the tensor is not written, e.g. a tied lm_head) */
static int gguf_name(const char *hf, int gpt2, char *out, size_t n) {
    if (!strncmp(hf, "transformer.", 12)) hf += 12;
    int l;
    char rest[160];
    static const char *const llama_map[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"}, {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"}, {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.k_proj.bias", "attn_k.bias"}, {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.v_proj.bias", "attn_v.bias"}, {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.o_proj.bias", "attn_output.bias"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"}, {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"}, {"mlp.gate_proj.bias", "ffn_gate.bias"},
        {"mlp.up_proj.bias", "ffn_up.bias"}, {"mlp.down_proj.bias", "ffn_down.bias"}};
    static const char *const gpt2_map[][2] = {
        {"ln_1.weight", "attn_norm.weight"}, {"ln_1.bias", "attn_norm.bias"}, {"attn.c_attn.weight", "attn_qkv.weight"},
        {"attn.c_attn.bias", "attn_qkv.bias"}, {"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
        {"ln_2.weight", "ffn_norm.weight"}, {"ln_2.bias", "ffn_norm.bias"}, {"mlp.c_fc.weight", "ffn_up.weight"},
        {"mlp.c_fc.bias", "ffn_up.bias"}, {"mlp.c_proj.weight", "ffn_down.weight"}, {"mlp.c_proj.bias", "ffn_down.bias"}};
    if (gpt2) {
        if (!strcmp(hf, "wte.weight")) return snprintf(out, n, "token_embd.weight"), 0;
        if (!strcmp(hf, "wpe.weight")) return snprintf(out, n, "position_embd.weight"), 0;
        if (!strcmp(hf, "ln_f.weight")) return snprintf(out, n, "output_norm.weight"), 0;
        if (!strcmp(hf, "ln_f.bias")) return snprintf(out, n, "output_norm.bias"), 0;
        if (!strcmp(hf, "lm_head.weight")) return snprintf(out, n, "output.weight"), 0;
        if (sscanf(hf, "h.%d.%159s", &l, rest) == 2)
            for (size_t k = 0; k < sizeof gpt2_map / sizeof *gpt2_map; k++)
                if (!strcmp(rest, gpt2_map[k][0])) return snprintf(out, n, "blk.%d.%s", l, gpt2_map[k][1]), 0;
        return -1;
    }
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(out, n, "token_embd.weight"), 0;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, n, "output_norm.weight"), 0;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, n, "output.weight"), 0;
    if (sscanf(hf, "model.layers.%d.%159s", &l, rest) == 2)
        for (size_t k = 0; k < sizeof llama_map / sizeof *llama_map; k++)
            if (!strcmp(rest, llama_map[k][0])) return snprintf(out, n, "blk.%d.%s", l, llama_map[k][1]), 0;
    return -1;
}

/* llama.cpp's LLAMA rope rotates adjacent pairs; HF rotates halves. Row
 * h*hd + t*hd/2 + j (HF) becomes row h*hd + 2j + t (llama.cpp). */
static int64_t llama_row(int64_t a, int hd) {
    int64_t h = a / hd, i = a % hd, t = i / (hd / 2), j = i % (hd / 2);
    return h * hd + 2 * j + t;
}

static void permute_rows(const float *in, float *out, int heads, int hd, int64_t cols, int inverse) {
    for (int h = 0; h < heads; h++)
        for (int t = 0; t < 2; t++)
            for (int j = 0; j < hd / 2; j++) {
                int64_t a = (int64_t)h * hd + t * (hd / 2) + j, b = llama_row(a, hd);
                if (inverse) memcpy((float *)out + a * cols, in + b * cols, (size_t)cols * sizeof(float));
                else memcpy((float *)out + b * cols, in + a * cols, (size_t)cols * sizeof(float));
            }
}

static const char *arch_of(const tuna_config *c) {
    if (c->family == TUNA_FAMILY_GPT2) return "gpt2";
    return !strcmp(c->model_type, "qwen2") ? "qwen2" : "llama";
}

/* llama.cpp's pre-tokenizer name for a byte-level tokenizer.json, or NULL */
static const char *pre_name(const json_t *pre) {
    const char *type = json_string_value(json_object_get(pre, "type"));
    if (!type) return NULL;
    if (!strcmp(type, "ByteLevel")) return json_is_false(json_object_get(pre, "use_regex")) ? NULL : "gpt-2";
    if (strcmp(type, "Sequence")) return NULL;
    const json_t *seq = json_object_get(pre, "pretokenizers");
    const char *regex = NULL;
    int digits = 0, bytelevel = 0;
    for (size_t i = 0; i < json_array_size(seq); i++) {
        const json_t *p = json_array_get(seq, i);
        const char *t = json_string_value(json_object_get(p, "type"));
        if (!t) return NULL;
        if (!strcmp(t, "Split")) regex = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
        else if (!strcmp(t, "Digits")) digits = json_is_true(json_object_get(p, "individual_digits"));
        else if (!strcmp(t, "ByteLevel")) bytelevel = 1;
        else return NULL;
    }
    if (!bytelevel) return NULL;
    if (digits && !regex) return "smollm";
    if (!regex) return NULL;
    if (strstr(regex, "\\p{N}{1,3}")) return "llama-bpe";                          /* Llama 3 */
    if (strstr(regex, "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*")) return "qwen2";     /* Qwen2 */
    return NULL;
}

typedef struct {
    char **tokens;
    int32_t *types;
    float *scores;  /* SentencePiece-style: one per token */
    char **merges;
    int n_tokens, n_merges;
    int spm;        /* 1: tokenizer.ggml.model "llama" (byte fallback, U+2581 for spaces) */
    int add_prefix; /* spm: a U+2581 goes in front of the text */
    int32_t unk;    /* the model's unk_token id, -1 none */
    char *extra;    /* the tokenizer.json parts GGUF has no keys for, as JSON */
} vocab;

static void vocab_free(vocab *v) {
    for (int i = 0; v->tokens && i < v->n_tokens; i++) free(v->tokens[i]);
    for (int i = 0; v->merges && i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->scores);
    free(v->merges);
    free(v->extra);
    memset(v, 0, sizeof *v);
}

#define SP_SPACE "\xE2\x96\x81" /* U+2581, SentencePiece's space */

/* "<0xNN>" (upper-case hex, as SentencePiece and HF write byte tokens) -> NN, else -1 */
static int byte_token(const char *k) {
    static const char hex[] = "0123456789ABCDEF";
    if (strlen(k) != 6 || memcmp(k, "<0x", 3) || k[5] != '>' || !k[3] || !k[4]) return -1;
    const char *h = strchr(hex, k[3]), *l = strchr(hex, k[4]);
    return h && l ? (int)((h - hex) * 16 + (l - hex)) : -1;
}

static int is_str(const json_t *j, const char *s) { return json_is_string(j) && !strcmp(json_string_value(j), s); }

/* A SentencePiece-style tokenizer.json (BPE with byte fallback) is one
 * llama.cpp's SPM tokenizer reproduces when its text handling is spaces ->
 * U+2581 with at most one U+2581 put in front: the normalizer Prepend +
 * Replace (Llama 2, Phi-3), or a Metaspace pre-tokenizer that does not split
 * (Mistral), or one that splits where no token has U+2581 inside. Returns
 * NULL and sets *prefix, or says what is not reproducible. */
static const char *spm_layout(const json_t *root, const json_t *voc, int *prefix) {
    const json_t *model = json_object_get(root, "model"), *norm = json_object_get(root, "normalizer"),
                 *pre = json_object_get(root, "pre_tokenizer");
    const json_t *csp = json_object_get(model, "continuing_subword_prefix"), *eow = json_object_get(model, "end_of_word_suffix"),
                 *drop = json_object_get(model, "dropout");
    if (json_is_true(json_object_get(model, "ignore_merges"))) return "ignore_merges";
    if ((json_is_string(csp) && json_string_length(csp)) || (json_is_string(eow) && json_string_length(eow)))
        return "a continuing-subword prefix or end-of-word suffix";
    if (json_is_number(drop) && json_number_value(drop) > 0) return "BPE dropout";
    *prefix = 0;
    if (json_is_object(norm)) {
        if (pre && !json_is_null(pre)) return "both a normalizer and a pre-tokenizer";
        const json_t *seq = json_object_get(norm, "normalizers");
        size_t n = is_str(json_object_get(norm, "type"), "Sequence") ? json_array_size(seq) : 1;
        int replace = 0;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = is_str(json_object_get(norm, "type"), "Sequence") ? json_array_get(seq, i) : norm;
            const json_t *t = json_object_get(e, "type");
            if (is_str(t, "Prepend") && is_str(json_object_get(e, "prepend"), SP_SPACE) && !*prefix) *prefix = 1;
            else if (is_str(t, "Replace") && is_str(json_object_get(json_object_get(e, "pattern"), "String"), " ") &&
                     is_str(json_object_get(e, "content"), SP_SPACE) && !replace) replace = 1;
            else return "a normalizer other than Prepend(U+2581) + Replace(' ' -> U+2581)";
        }
        return replace ? NULL : "a normalizer that keeps spaces";
    }
    if (!is_str(json_object_get(pre, "type"), "Metaspace") || !is_str(json_object_get(pre, "replacement"), SP_SPACE))
        return "neither the Prepend + Replace normalizer nor a Metaspace(U+2581) pre-tokenizer";
    const char *scheme = json_string_value(json_object_get(pre, "prepend_scheme"));
    const json_t *aps = json_object_get(pre, "add_prefix_space"), *split = json_object_get(pre, "split");
    *prefix = scheme ? strcmp(scheme, "never") != 0 : !(aps && !json_is_true(aps));
    if (!split || json_is_true(split)) {
        /* Metaspace splits before each U+2581: the same as not splitting when
         * no token has a U+2581 after its first character */
        const char *k;
        const json_t *val;
        json_object_foreach((json_t *)voc, k, val) if (*k && strstr(k + 1, SP_SPACE)) return "a splitting Metaspace with tokens that hold U+2581 inside";
    }
    return NULL;
}

/* The model type and pre-tokenizer: a BPE vocabulary, SentencePiece-style
 * with a layout llama.cpp reproduces, or byte-level with a pre-tokenizer
 * llama.cpp knows by name (*pre) */
static tuna_status vocab_kind(const json_t *root, const char *path, vocab *v, const char **pre) {
    json_t *model = json_object_get(root, "model"), *voc = json_object_get(model, "vocab"), *mg = json_object_get(model, "merges");
    const char *mt = json_string_value(json_object_get(model, "type"));
    if (!mt && json_is_array(mg)) mt = "BPE"; /* older files (GPT-2's own) leave the type out */
    v->spm = mt && !strcmp(mt, "BPE") && json_is_true(json_object_get(model, "byte_fallback"));
    v->unk = -1;
    *pre = v->spm ? "default" : pre_name(json_object_get(root, "pre_tokenizer"));
    const char *why = v->spm && json_is_object(voc) ? spm_layout(root, voc, &v->add_prefix) : NULL;
    if (!mt || strcmp(mt, "BPE") || !json_is_object(voc))
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: GGUF export handles BPE vocabularies (byte-level: GPT-2, Llama 3, Qwen2, SmolLM style; "
                                               "SentencePiece-style with byte fallback: Llama 2, Mistral, Phi-3); this one is %s: "
                                               "export --format hf and convert with llama.cpp's converter", path, mt ? mt : "?");
    if (why)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: a SentencePiece-style tokenizer with %s: llama.cpp's SPM tokenizer would not encode as it does",
                         path, why);
    if (!*pre)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: the pre-tokenizer is not one llama.cpp knows by name (gpt-2, llama-bpe, qwen2, smollm)", path);
    return TUNA_OK;
}

/* ids 0..n-1: V, or more when the vocabulary or an added token has a larger id */
static int vocab_ids(const json_t *voc, const json_t *added, int V) {
    int n = V;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)voc, k, val) if (json_integer_value(val) + 1 > n) n = (int)json_integer_value(val) + 1;
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_int_t id = json_integer_value(json_object_get(json_array_get(added, i), "id"));
        if (id + 1 > n) n = (int)id + 1;
    }
    return n;
}

/* the model's vocabulary: type 1, or 6 for a SentencePiece byte token;
 * returns how many distinct byte tokens <0x00>..<0xFF> it has */
static int model_tokens(const json_t *voc, vocab *v) {
    int bytes = 0;
    unsigned char seen_byte[256] = {0};
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)voc, k, val) {
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= v->n_tokens || v->tokens[id]) continue;
        v->tokens[id] = strdup(k);
        v->types[id] = 1;
        int b = v->spm ? byte_token(k) : -1;
        if (b >= 0) {
            v->types[id] = 6;
            bytes += !seen_byte[b];
            seen_byte[b] = 1;
        }
    }
    return bytes;
}

/* added tokens replace the vocabulary's text: 3 special, 4 user-defined */
static void added_tokens(const json_t *added, vocab *v) {
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        const char *c = json_string_value(json_object_get(a, "content"));
        if (id < 0 || id >= v->n_tokens || !c) continue;
        free(v->tokens[id]);
        v->tokens[id] = strdup(c);
        v->types[id] = json_is_true(json_object_get(a, "special")) ? 3 : 4;
    }
}

/* the unknown token's id, and ids no token has as [PADi] (type 5) */
static void unk_and_padding(const json_t *model, const json_t *voc, vocab *v) {
    int n = v->n_tokens;
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    json_t *uid = unk ? json_object_get(voc, unk) : NULL;
    if (json_is_integer(uid) && json_integer_value(uid) >= 0 && json_integer_value(uid) < n) {
        v->unk = (int32_t)json_integer_value(uid);
        if (v->spm) v->types[v->unk] = 2; /* as SentencePiece marks it */
    }
    for (int i = 0; i < n; i++)
        if (!v->tokens[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            v->tokens[i] = strdup(pad);
            v->types[i] = 5;
        }
}

/* every id has its text, no more ids than embedding rows, and no text twice
 * (llama.cpp refuses a vocabulary with two ids of one text) */
static tuna_status vocab_check(const vocab *v, const char *path, int V) {
    int n = v->n_tokens;
    for (int i = 0; i < n; i++)
        if (!v->tokens[i]) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (n > V) return core_fail(TUNA_ERR_FORMAT, "%s: the tokenizer has %d ids, the model's embedding %d rows", path, n, V);
    json_t *seen = json_object();
    tuna_status st = TUNA_OK;
    for (int i = 0; st == TUNA_OK && i < n; i++) {
        if (!seen) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
        else if (json_object_get(seen, v->tokens[i]))
            st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: ids %d and %d are both \"%s\": llama.cpp refuses duplicate tokens", path,
                           (int)json_integer_value(json_object_get(seen, v->tokens[i])), i, v->tokens[i]);
        else json_object_set_new(seen, v->tokens[i], json_integer(i));
    }
    json_decref(seen);
    return st;
}

/* tokens by id (padded to V with [PADi], as the converter does) and their
 * types (1 normal, 2 unknown, 3 control = special added, 4 user-defined,
 * 5 unused padding, 6 byte <0xNN>) */
static tuna_status vocab_tokens(const json_t *root, const char *path, int V, vocab *v) {
    const json_t *model = json_object_get(root, "model"), *voc = json_object_get(model, "vocab");
    const json_t *added = json_object_get(root, "added_tokens");
    int n = vocab_ids(voc, added, V);
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->types = calloc((size_t)n, sizeof *v->types);
    v->n_tokens = n;
    if (!v->tokens || !v->types) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    int bytes = model_tokens(voc, v);
    if (v->spm && bytes != 256)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: byte fallback with %d of the 256 byte tokens <0x00>..<0xFF>: llama.cpp needs all", path, bytes);
    added_tokens(added, v);
    unk_and_padding(model, voc, v);
    return vocab_check(v, path, V);
}

/* merges as "a b" (tokenizer.json has them as "a b" or [a, b]) */
static tuna_status vocab_merges(const json_t *mg, const char *path, vocab *v) {
    v->merges = calloc(json_array_size(mg) + 1, sizeof *v->merges);
    if (!v->merges) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(mg); i++) {
        const json_t *e = json_array_get(mg, i);
        char *s = NULL;
        if (json_is_string(e)) s = strdup(json_string_value(e));
        else if (json_is_array(e) && json_array_size(e) == 2) {
            const char *a = json_string_value(json_array_get(e, 0)), *b = json_string_value(json_array_get(e, 1));
            if (a && b && (s = malloc(strlen(a) + strlen(b) + 2))) sprintf(s, "%s %s", a, b);
        }
        if (!s) return core_fail(TUNA_ERR_FORMAT, "%s: merge %zu is not \"a b\" or [a, b]", path, i);
        v->merges[v->n_merges++] = s;
    }
    return TUNA_OK;
}

/* llama.cpp's SPM tokenizer merges, again and again, the adjacent pair whose
 * joined text is the token of highest score (leftmost on ties); HF's BPE
 * merges the pair of lowest rank. A token's score is minus the rank of the
 * first merge that makes it, so both pick the same pair (every merge of these
 * files is a split of a token into two tokens, and every such split is a
 * merge). Tokens no merge makes (single characters) rank below all of them,
 * byte tokens and the unknown token score 0 as SentencePiece gives them,
 * added tokens and padding -1000 as llama.cpp's converter writes them. */
static tuna_status vocab_scores(const json_t *voc, vocab *v) {
    int n = v->n_tokens;
    v->scores = malloc((size_t)n * sizeof *v->scores);
    if (!v->scores) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        v->scores[i] = v->types[i] == 1 ? -(float)(v->n_merges + i) : v->types[i] == 6 || v->types[i] == 2 ? 0.0f : -1000.0f;
    unsigned char *done = calloc((size_t)n, 1);
    if (!done) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    char buf[1024];
    for (int i = 0; i < v->n_merges; i++) {
        const char *sp = strchr(v->merges[i], ' ');
        size_t la = sp ? (size_t)(sp - v->merges[i]) : 0, lb = sp ? strlen(sp + 1) : 0;
        if (!sp || la + lb >= sizeof buf) continue;
        memcpy(buf, v->merges[i], la);
        memcpy(buf + la, sp + 1, lb + 1);
        json_t *id = json_object_get(voc, buf);
        json_int_t t = json_integer_value(id);
        if (json_is_integer(id) && t >= 0 && t < n && v->types[t] == 1 && !done[t]) {
            v->scores[t] = -(float)i;
            done[t] = 1;
        }
    }
    free(done);
    return TUNA_OK;
}

/* normalizer, pre-tokenizer, decoder, post-processor, added tokens (with
 * their strip/normalized flags), the BPE model's options and
 * tokenizer_config.json's BOS/EOS switches: kept whole in a key of tuna's own
 * (llama.cpp ignores it) so tuna rebuilds exactly this tokenizer from the file */
static tuna_status vocab_extra(const json_t *root, const char *dir, vocab *v) {
    json_t *ex = json_object(), *opts = json_object(), *cfg = json_object();
    const char *parts[] = {"normalizer", "pre_tokenizer", "decoder", "post_processor", "added_tokens"};
    for (size_t i = 0; ex && i < sizeof parts / sizeof *parts; i++) {
        json_t *p = json_object_get(root, parts[i]);
        if (p) json_object_set(ex, parts[i], p);
    }
    const char *k;
    json_t *val;
    json_object_foreach(json_object_get(root, "model"), k, val) if (strcmp(k, "vocab") && strcmp(k, "merges") && opts) json_object_set(opts, k, val);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *tc = json_load_file(path, 0, NULL);
    const char *ck[] = {"tokenizer_class", "add_bos_token", "add_eos_token"};
    for (size_t i = 0; cfg && i < 3; i++)
        if (json_object_get(tc, ck[i])) json_object_set(cfg, ck[i], json_object_get(tc, ck[i]));
    json_decref(tc);
    if (ex && opts && cfg) {
        json_object_set(ex, "model", opts);
        json_object_set(ex, "tokenizer_config", cfg);
        v->extra = json_dumps(ex, JSON_COMPACT);
    }
    json_decref(ex);
    json_decref(opts);
    json_decref(cfg);
    return v->extra ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
}

/* tokenizer.json -> tokens, types, merges "a b"; for a SentencePiece-style
 * one also the scores llama.cpp's SPM tokenizer ranks merges by; the parts
 * GGUF has no keys for as JSON. On failure *v is freed. */
static tuna_status read_vocab(const char *dir, int V, vocab *v, const char **pre) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return core_fail(TUNA_ERR_FORMAT, "%s: %s", path, je.text);
    const json_t *model = json_object_get(root, "model");
    tuna_status st = vocab_kind(root, path, v, pre);
    if (st == TUNA_OK) st = vocab_tokens(root, path, V, v);
    if (st == TUNA_OK) st = vocab_merges(json_object_get(model, "merges"), path, v);
    if (st == TUNA_OK && v->spm) st = vocab_scores(json_object_get(model, "vocab"), v);
    if (st == TUNA_OK) st = vocab_extra(root, dir, v);
    json_decref(root);
    if (st != TUNA_OK) vocab_free(v);
    return st;
}

/* The tensor types of an export: one type for every matrix (plain: F32,
 * F16, Q8_0, Q4_0; quantized rows not a multiple of 32 F16), or a k-quant
 * mixture's choice per tensor (io/gguf_mix.h). */
typedef struct {
    int plain;            /* mix NULL */
    const gguf_mix *mix;
    gguf_mix_model model; /* what the mixture's rules look at */
} gguf_types;

static int matrix_type(const gguf_types *ty, const char *name, int ndim, int64_t cols) {
    if (ty->mix) return gguf_mix_type(ty->mix, &ty->model, name, ndim, cols);
    return (ty->plain == GGML_Q8_0 || ty->plain == GGML_Q4_0) && cols % 32 ? GGML_F16 : ty->plain;
}

/* general.* and the architecture's keys (sizes, norm epsilon, RoPE) */
static void write_model_keys(gguf_writer *w, const tuna_config *c, const tuna_gguf_meta *meta, const gguf_types *ty) {
    int gt = ty->plain;
    const char *arch = arch_of(c);
    char k[128];
    gguf_kv_str(w, "general.architecture", arch);
    gguf_kv_str(w, "general.name", meta && meta->name ? meta->name : "tuna");
    gguf_kv_u32(w, "general.alignment", 32);
    gguf_kv_u32(w, "general.file_type", ty->mix ? (uint32_t)ty->mix->ftype : gt == GGML_F32 ? 0 : gt == GGML_F16 ? 1 : gt == GGML_Q4_0 ? 2 : 7);
    if (ty->mix || gt == GGML_Q8_0 || gt == GGML_Q4_0) gguf_kv_u32(w, "general.quantization_version", 2);
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    gguf_kv_u32(w, KEY("context_length"), (uint32_t)c->max_positions);
    gguf_kv_u32(w, KEY("embedding_length"), (uint32_t)c->C);
    gguf_kv_u32(w, KEY("block_count"), (uint32_t)c->L);
    gguf_kv_u32(w, KEY("feed_forward_length"), (uint32_t)c->FF);
    gguf_kv_u32(w, KEY("attention.head_count"), (uint32_t)c->NH);
    if (c->family == TUNA_FAMILY_GPT2) gguf_kv_f32(w, KEY("attention.layer_norm_epsilon"), c->norm_eps);
    else {
        gguf_kv_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->NKV);
        gguf_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
        gguf_kv_f32(w, KEY("rope.freq_base"), c->rope_theta);
        gguf_kv_u32(w, KEY("rope.dimension_count"), (uint32_t)c->HD);
        if (c->HD * c->NH != c->C) gguf_kv_u32(w, KEY("attention.key_length"), (uint32_t)c->HD);
        if (c->HD * c->NH != c->C) gguf_kv_u32(w, KEY("attention.value_length"), (uint32_t)c->HD);
        if (c->rope_scaling == TUNA_ROPE_LINEAR) {
            gguf_kv_str(w, KEY("rope.scaling.type"), "linear");
            gguf_kv_f32(w, KEY("rope.scaling.factor"), c->rope_factor);
        }
        if (c->rope_scaling == TUNA_ROPE_LLAMA3) {
            /* llama.cpp reads the per-frequency divisors (rope_freqs.weight,
             * below); the settings themselves go in keys of tuna's own, which
             * llama.cpp ignores, so tuna loads the file back exactly */
            gguf_kv_f32(w, "tuna.rope.llama3.factor", c->rope_factor);
            gguf_kv_f32(w, "tuna.rope.llama3.low_freq_factor", c->rope_low_freq_factor);
            gguf_kv_f32(w, "tuna.rope.llama3.high_freq_factor", c->rope_high_freq_factor);
            gguf_kv_u32(w, "tuna.rope.llama3.original_context_length", (uint32_t)c->rope_original_max_positions);
        }
    }
    gguf_kv_u32(w, KEY("vocab_size"), (uint32_t)c->V);
#undef KEY
}

/* the tokenizer.* keys from meta->tokenizer_dir; voc holds what the writer
 * points at until the file is written */
static tuna_status write_vocab_keys(gguf_writer *w, const tuna_gguf_meta *meta, int V, vocab *voc) {
    const char *pre = NULL;
    tuna_status st = read_vocab(meta->tokenizer_dir, V, voc, &pre);
    if (st != TUNA_OK) return st;
    gguf_kv_str(w, "tokenizer.ggml.model", voc->spm ? "llama" : "gpt2");
    gguf_kv_str(w, "tokenizer.ggml.pre", pre);
    gguf_kv_str_array(w, "tokenizer.ggml.tokens", (const char *const *)voc->tokens, (size_t)voc->n_tokens);
    if (voc->spm) gguf_kv_f32_array(w, "tokenizer.ggml.scores", voc->scores, (size_t)voc->n_tokens);
    gguf_kv_i32_array(w, "tokenizer.ggml.token_type", voc->types, (size_t)voc->n_tokens);
    /* llama.cpp's SPM tokenizer reads no merges (the scores order
     * them); tuna keeps the exact list under its own key */
    gguf_kv_str_array(w, voc->spm ? "tuna.tokenizer.merges" : "tokenizer.ggml.merges", (const char *const *)voc->merges,
                      (size_t)voc->n_merges);
    if (meta->bos >= 0) gguf_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)meta->bos);
    if (meta->eos >= 0) gguf_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)meta->eos);
    if (meta->eot >= 0) gguf_kv_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)meta->eot);
    if (voc->spm && voc->unk >= 0) gguf_kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)voc->unk);
    if (meta->pad >= 0) gguf_kv_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)meta->pad);
    gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", meta->add_bos);
    gguf_kv_bool(w, "tokenizer.ggml.add_eos_token", meta->add_eos);
    /* llama.cpp's SPM default is true; written either way */
    if (voc->spm) gguf_kv_bool(w, "tokenizer.ggml.add_space_prefix", voc->add_prefix);
    if (meta->chat_template) gguf_kv_str(w, "tokenizer.chat_template", meta->chat_template);
    gguf_kv_str(w, "tuna.tokenizer.json_parts", voc->extra);
    return TUNA_OK;
}

/* A 2-D parameter's rows in our layout as GGUF stores them: read through
 * param_rows (kept as stored, an adapter folded on write), Llama's q/k rows
 * permuted (heads > 0). */
typedef struct {
    param_rows pr;
    int heads, hd;
} gguf_src;

/* row b of the permuted tensor is row h*hd + t*hd/2 + j of ours, b = h*hd + 2j + t */
static void gguf_src_read(void *ctx, int64_t b, float *out) {
    gguf_src *g = ctx;
    int64_t a = b;
    if (g->heads) {
        int64_t h = b / g->hd, rem = b % g->hd;
        a = h * g->hd + (rem % 2) * (g->hd / 2) + rem / 2;
    }
    param_rows_read(&g->pr, a, out);
}

/* a vector (small): an fp32 copy in tmp (folded), q/k permuted */
static tuna_status add_vector(gguf_writer *w, const tuna_model *m, int i, const char *name, int heads, rows_tile *tile, float **tmp,
                              int *n_tmp) {
    const tuna_param *p = &m->params[i].pub;
    float *t = tmp[(*n_tmp)++] = malloc((size_t)p->numel * sizeof(float));
    float *u = tmp[(*n_tmp)++] = heads ? malloc((size_t)p->numel * sizeof(float)) : NULL;
    if (!t || (heads && !u)) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    param_rows pr;
    param_rows_init(&pr, m, i, tile, 1, 1);
    param_rows_read(&pr, 0, t);
    if (heads) permute_rows(t, u, heads, m->cfg.HD, 1, 0);
    return gguf_add_tensor(w, name, p->ndim, 1, p->numel, GGML_F32, heads ? u : t);
}

/* every parameter under its llama.cpp name, q/k rows permuted for llama,
 * 1-D tensors f32 (copies in tmp[*n_tmp]), matrices of matrix_type; these
 * read a row at a time through srcs[i] as written */
static tuna_status add_weights(gguf_writer *w, const tuna_model *m, const gguf_types *ty, gguf_src *srcs, rows_tile *tile,
                               float **tmp, int *n_tmp) {
    const tuna_config *c = &m->cfg;
    int gpt2 = c->family == TUNA_FAMILY_GPT2, permute = !strcmp(arch_of(c), "llama");
    tuna_status st = TUNA_OK;
    for (int i = 0; st == TUNA_OK && i < m->n_params; i++) {
        const tuna_param *p = &m->params[i].pub;
        char name[160];
        if (gguf_name(p->name, gpt2, name, sizeof name)) return core_fail(TUNA_ERR_INTERNAL, "%s: no GGUF name", p->name);
        int is_q = strstr(name, "attn_q.") != NULL, is_k = strstr(name, "attn_k.") != NULL;
        int heads = permute && (is_q || is_k) ? (is_q ? c->NH : c->NKV) : 0;
        if (p->ndim < 2) { st = add_vector(w, m, i, name, heads, tile, tmp, n_tmp); continue; }
        gguf_src *g = &srcs[i];
        g->heads = heads;
        g->hd = c->HD;
        param_rows_init(&g->pr, m, i, tile, 1, heads ? c->HD : 1);
        int type_i = matrix_type(ty, name, p->ndim, g->pr.cols);
        st = gguf_add_tensor_rows(w, name, p->ndim, g->pr.rows, g->pr.cols, type_i, gguf_src_read, g);
    }
    return st;
}

/* rope_freqs.weight, convert_hf_to_gguf's Llama 3 factors: 1 for high
 * frequencies, the factor for low ones, the smooth blend's divisor between
 * (*freqs kept until the file is written) */
static tuna_status add_rope_freqs(gguf_writer *w, const tuna_config *c, float **freqs) {
    int half = c->HD / 2;
    float *f = *freqs = malloc((size_t)half * sizeof *f);
    if (!f) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    double old = c->rope_original_max_positions, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
    for (int i = 0; i < half; i++) {
        double freq = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / c->HD), wl = 2.0 * M_PI / freq;
        if (wl < old / hi) f[i] = 1.0f;
        else if (wl > old / lo) f[i] = c->rope_factor;
        else {
            double smooth = (old / wl - lo) / (hi - lo);
            f[i] = (float)(1.0 / ((1.0 - smooth) / c->rope_factor + smooth));
        }
    }
    return gguf_add_tensor(w, "rope_freqs.weight", 1, 1, half, GGML_F32, f);
}

/* the export's types from its name; TUNA_ERR_ARG for an unknown one */
static tuna_status export_types(const tuna_model *m, const char *type, gguf_types *ty) {
    const tuna_config *c = &m->cfg;
    *ty = (gguf_types){.plain = !strcmp(type, "f32") ? GGML_F32 : !strcmp(type, "f16") ? GGML_F16 : !strcmp(type, "q8_0") ? GGML_Q8_0
                                : !strcmp(type, "q4_0") ? GGML_Q4_0 : -1,
                       .mix = gguf_mix_find(type),
                       .model = {.n_layer = c->L, .n_gqa = c->NH / c->NKV, .tied = 1}};
    if (ty->plain < 0 && !ty->mix) return core_fail(TUNA_ERR_ARG, "GGUF type '%s' (f32, f16, q8_0, q4_0, %s)", type, gguf_mix_names());
    char name[160];
    for (int i = 0; i < m->n_params; i++)
        if (!gguf_name(m->params[i].pub.name, c->family == TUNA_FAMILY_GPT2, name, sizeof name) && !strcmp(name, "output.weight"))
            ty->model.tied = 0;
    return TUNA_OK;
}

tuna_status tuna_export_gguf(const tuna_model *m, const tuna_gguf_meta *meta, const char *type, const char *path) {
    const tuna_config *c = &m->cfg;
    gguf_types ty;
    tuna_status st = export_types(m, type, &ty);
    if (st != TUNA_OK) return st;
    if (m->quant_type == TUNA_QUANT_NF4) return core_fail(TUNA_ERR_UNSUPPORTED, "an NF4-quantized model cannot be exported: load the original weights");
    gguf_writer *w = gguf_writer_new();
    if (!w) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    vocab voc = {0};
    float *freqs = NULL;
    int n_tmp = 0;
    write_model_keys(w, c, meta, &ty);
    if (meta && meta->tokenizer_dir) st = write_vocab_keys(w, meta, c->V, &voc);
    float **tmp = calloc((size_t)2 * m->n_params + 1, sizeof *tmp); /* fp32 copies of vectors, permuted q/k biases */
    gguf_src *srcs = calloc((size_t)m->n_params + 1, sizeof *srcs);
    rows_tile tile = {0};
    if (st == TUNA_OK && (!tmp || !srcs)) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st == TUNA_OK) st = rows_tile_init(&tile, m);
    if (st == TUNA_OK) st = add_weights(w, m, &ty, srcs, &tile, tmp, &n_tmp);
    if (st == TUNA_OK && c->rope_scaling == TUNA_ROPE_LLAMA3) st = add_rope_freqs(w, c, &freqs);
    if (st == TUNA_OK) st = gguf_writer_finish(w, path);
    free(freqs);
    for (int i = 0; i < n_tmp; i++) free(tmp[i]);
    free(tmp);
    free(srcs);
    rows_tile_free(&tile);
    vocab_free(&voc);
    gguf_writer_free(w);
    return st;
}

int tuna_is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    char mg[4] = {0};
    int ok = f && fread(mg, 1, 4, f) == 4 && !memcmp(mg, "GGUF", 4);
    if (f) fclose(f);
    return ok;
}

static int u32_of(const gguf_file *f, const char *arch, const char *k, int dflt, tuna_status *st) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return gguf_meta_int(f, key, 1, dflt, st);
}

static double f64_of(const gguf_file *f, const char *arch, const char *k, double dflt, tuna_status *st) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return gguf_meta_pos(f, key, dflt, st);
}

/* token_embd.weight's rows: the vocabulary size when the metadata has none */
static int emb_rows(const char *path, const gguf_tensor *emb, tuna_status *st) {
    if (!emb) return 0;
    if (emb->ne[1] <= INT_MAX) return (int)emb->ne[1];
    if (*st == TUNA_OK)
        *st = core_fail(TUNA_ERR_FORMAT, "%s: tensor token_embd.weight has %lld rows (the vocabulary size): more than %d", path,
                        (long long)emb->ne[1], INT_MAX);
    return 0;
}

/* The tuna_config of an open GGUF file, from its metadata (no weight read). */
tuna_status gguf_model_config(const gguf_file *f, const char *path, tuna_config *out) {
    tuna_status st = TUNA_OK;
    size_t al = 0;
    const char *a = gguf_get_str(f, "general.architecture", &al);
    char arch[32] = "";
    if (a && al < sizeof arch) memcpy(arch, a, al), arch[al] = 0;
    tuna_config c;
    memset(&c, 0, sizeof c);
    int gpt2 = !strcmp(arch, "gpt2");
    if (!gpt2 && strcmp(arch, "llama") && strcmp(arch, "qwen2"))
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: GGUF architecture '%s' (tuna loads llama, qwen2, gpt2)", path, arch[0] ? arch : "(none)");
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    c.C = u32_of(f, arch, "embedding_length", 0, &st);
    c.L = u32_of(f, arch, "block_count", 0, &st);
    c.FF = u32_of(f, arch, "feed_forward_length", 0, &st);
    c.NH = u32_of(f, arch, "attention.head_count", 0, &st);
    c.NKV = u32_of(f, arch, "attention.head_count_kv", c.NH, &st);
    c.max_positions = u32_of(f, arch, "context_length", 0, &st);
    c.V = u32_of(f, arch, "vocab_size", emb_rows(path, emb, &st), &st);
    c.bos_token_id = c.eos_token_id = c.pad_token_id = -1;
    c.initializer_range = 0.02f;
    c.dtype = TUNA_DTYPE_F32;
    if (gpt2) {
        snprintf(c.architecture, sizeof c.architecture, "GPT2LMHeadModel");
        snprintf(c.model_type, sizeof c.model_type, "gpt2");
        c.family = TUNA_FAMILY_GPT2;
        c.norm = TUNA_NORM_LAYERNORM;
        c.mlp = TUNA_MLP_GELU_TANH;
        c.NKV = c.NH;
        c.HD = c.NH ? c.C / c.NH : 0;
        c.norm_eps = (float)f64_of(f, arch, "attention.layer_norm_epsilon", 1e-5, &st);
        c.learned_positions = 1;
        c.qkv_bias = c.o_bias = c.mlp_bias = 1;
    } else {
        int qwen = !strcmp(arch, "qwen2");
        snprintf(c.architecture, sizeof c.architecture, qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
        snprintf(c.model_type, sizeof c.model_type, qwen ? "qwen2" : "llama");
        c.family = TUNA_FAMILY_LLAMA;
        c.norm = TUNA_NORM_RMSNORM;
        c.mlp = TUNA_MLP_SWIGLU;
        c.HD = u32_of(f, arch, "attention.key_length", c.NH ? c.C / c.NH : 0, &st);
        c.norm_eps = (float)f64_of(f, arch, "attention.layer_norm_rms_epsilon", 1e-6, &st);
        c.rope_theta = (float)f64_of(f, arch, "rope.freq_base", 10000.0, &st);
        c.qkv_bias = gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
        c.o_bias = gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL;
        c.mlp_bias = gguf_find_tensor(f, "blk.0.ffn_up.bias") != NULL;
        size_t sl = 0;
        const char *sc = NULL;
        char key[96];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        sc = gguf_get_str(f, key, &sl);
        if (sc && sl == 6 && !memcmp(sc, "linear", 6)) {
            c.rope_scaling = TUNA_ROPE_LINEAR;
            c.rope_factor = (float)f64_of(f, arch, "rope.scaling.factor", 1.0, &st);
        } else if (sc && !(sl == 4 && !memcmp(sc, "none", 4))) {
                return core_fail(TUNA_ERR_UNSUPPORTED, "%s: rope scaling '%.*s' is not supported in GGUF files", path, (int)sl, sc);
        }
        if (gguf_find_tensor(f, "rope_freqs.weight")) {
            if (!gguf_find_kv(f, "tuna.rope.llama3.factor") || !gguf_find_kv(f, "tuna.rope.llama3.low_freq_factor") ||
                !gguf_find_kv(f, "tuna.rope.llama3.high_freq_factor") || !gguf_find_kv(f, "tuna.rope.llama3.original_context_length")) {
                        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: rope_freqs without the Llama 3 settings tuna writes beside it: not supported", path);
            }
            c.rope_scaling = TUNA_ROPE_LLAMA3;
            c.rope_factor = (float)gguf_meta_pos(f, "tuna.rope.llama3.factor", 1.0, &st);
            c.rope_low_freq_factor = (float)gguf_meta_pos(f, "tuna.rope.llama3.low_freq_factor", 1.0, &st);
            c.rope_high_freq_factor = (float)gguf_meta_pos(f, "tuna.rope.llama3.high_freq_factor", 4.0, &st);
            c.rope_original_max_positions = gguf_meta_int(f, "tuna.rope.llama3.original_context_length", 1, 8192, &st);
        }
    }
    c.tie_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    c.bos_token_id = gguf_meta_int(f, "tokenizer.ggml.bos_token_id", 0, -1, &st);
    c.eos_token_id = gguf_meta_int(f, "tokenizer.ggml.eos_token_id", 0, -1, &st);
    c.pad_token_id = gguf_meta_int(f, "tokenizer.ggml.padding_token_id", 0, -1, &st);
    if (st == TUNA_OK) st = core_fail_in(tuna_config_validate(&c), path);
    *out = c;
    return st;
}

/* A GGUF load in progress: the open file, its architecture, the fp32 buffer
 * of a permuted tensor, and whether a stored tensor points into the mapping. */
typedef struct {
    gguf_file f;
    const char *path;
    int gpt2, llama;
    float *buf;
    int in_place;
} gguf_load;

/* The tensor of parameter p, checked against the shape the config implies. */
static tuna_status find_param(const gguf_load *g, const tuna_param *p, const gguf_tensor **out, int64_t *cols) {
    char name[160];
    if (gguf_name(p->name, g->gpt2, name, sizeof name)) return core_fail(TUNA_ERR_INTERNAL, "%s: no GGUF name", p->name);
    const gguf_tensor *t = gguf_find_tensor(&g->f, name);
    int64_t rows = p->ndim == 2 ? (p->transposed ? p->shape[1] : p->shape[0]) : 1;
    *cols = p->numel / rows;
    if (!t) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s missing", g->path, name);
    if (t->numel != p->numel || t->ne[0] != *cols)
        return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s has %lld x %lld elements, the config implies %lld x %lld", g->path,
                         name, (long long)t->ne[0], (long long)(t->numel / t->ne[0]), (long long)*cols, (long long)rows);
    *out = t;
    return TUNA_OK;
}

/* llama.cpp permuted the rows of Llama's attn_q / attn_k (weights and biases) */
static int is_permuted(const gguf_load *g, const gguf_tensor *t) {
    return g->llama && (strstr(t->name, "attn_q.") || strstr(t->name, "attn_k."));
}

/* Parameter p (fp32) from tensor t: dequantized, the q/k permutation undone. */
static tuna_status read_f32(gguf_load *g, const tuna_config *c, tuna_param *p, const gguf_tensor *t, int64_t cols) {
    if (!is_permuted(g, t)) return gguf_tensor_to_f32(&g->f, t, p->data);
    float *q = realloc(g->buf, (size_t)p->numel * sizeof(float));
    if (!q) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    g->buf = q;
    tuna_status st = gguf_tensor_to_f32(&g->f, t, g->buf);
    if (st == TUNA_OK) permute_rows(g->buf, p->data, strstr(t->name, "attn_q.") ? c->NH : c->NKV, c->HD, cols, 1);
    return st;
}

static const store_type store_of[] = {[GGML_F32] = STORE_F32, [GGML_F16] = STORE_F16, [GGML_Q4_0] = STORE_Q4_0,
                                      [GGML_Q8_0] = STORE_Q8_0};

/* our row r of a permuted q/k weight is the file's row llama_row(r) */
static tuna_status row_map(tuna_stored *s, const tuna_config *c, int64_t rows) {
    if (!(s->rows = malloc((size_t)rows * sizeof *s->rows))) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int64_t r = 0; r < rows; r++) s->rows[r] = (int32_t)llama_row(r, c->HD);
    return TUNA_OK;
}

/* A k-quant or Q5_0/Q5_1 tensor t (no kernels read those blocks) kept as an
 * owned fp32 copy in the file's row order, a permuted q/k weight read through
 * the row map as below. */
static tuna_status keep_dequantized(gguf_load *g, const tuna_config *c, tuna_stored *s, const gguf_tensor *t, int64_t cols) {
    *s = (tuna_stored){.type = STORE_F32, .n = t->numel, .cols = cols, .scratch = s->scratch};
    if (!(s->owned = malloc((size_t)t->numel * sizeof(float)))) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    s->data = s->owned;
    tuna_status st = gguf_tensor_to_f32(&g->f, t, s->owned);
    return st == TUNA_OK && is_permuted(g, t) ? row_map(s, c, t->numel / cols) : st;
}

/* Keeps tensor t as the file stores it, in place in the mapping; a permuted
 * q/k weight reads its rows through a row map (our row r is the file's row
 * llama_row(r)); an F32/F16 tensor the file misaligns is copied. */
static tuna_status keep_stored(gguf_load *g, const tuna_config *c, tuna_stored *s, const gguf_tensor *t, int64_t cols) {
    if (kq_block_values((int)t->type)) return keep_dequantized(g, c, s, t, cols);
    tuna_status st = gguf_check_finite(&g->f, t);
    if (st != TUNA_OK) return st;
    const uint8_t *p = g->f.map + t->offset;
    *s = (tuna_stored){.type = store_of[t->type], .n = t->numel, .cols = cols, .scratch = s->scratch};
    if (is_permuted(g, t) && (st = row_map(s, c, t->numel / cols)) != TUNA_OK) return st;
    size_t esz = store_type_size(s->type);
    if (!esz || (uintptr_t)p % esz == 0) {
        s->data = p;
        g->in_place = 1;
        return TUNA_OK;
    }
    if (!(s->owned = malloc(t->nbytes))) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    memcpy(s->owned, p, t->nbytes);
    s->data = s->owned;
    return TUNA_OK;
}

/* An empty model of config c whose 2-D weights are kept as stored when quant
 * says so (the loader fills model->stored). */
static tuna_status new_model(tuna_model **out, const tuna_config *c, tuna_quant_type quant) {
    if (quant == TUNA_QUANT_NONE) return tuna_model_create(out, c);
    tuna_model *m = calloc(1, sizeof *m);
    if (!m) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    m->cfg = *c;
    if (c->family == TUNA_FAMILY_GPT2) snprintf(m->prefix, sizeof m->prefix, "transformer.");
    m->quant_type = quant;
    tuna_status st = model_build(m, 0);
    if (st != TUNA_OK) { tuna_model_free(m); return st; }
    *out = m;
    return TUNA_OK;
}

/* The model keeps the file's mapping its stored tensors point into. */
static tuna_status keep_map(tuna_model *m, gguf_load *g) {
    struct model_map *mp = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *mp);
    if (!mp) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    m->maps = mp;
    m->maps[m->n_maps++] = (struct model_map){g->f.map, g->f.size};
    g->f.map = NULL; /* gguf_close leaves it mapped */
    return TUNA_OK;
}

static tuna_status load_params(tuna_model *m, gguf_load *g) {
    tuna_status st = TUNA_OK;
    for (int i = 0; st == TUNA_OK && i < m->n_params; i++) {
        tuna_param_entry *e = &m->params[i];
        const gguf_tensor *t = NULL;
        int64_t cols = 0;
        st = find_param(g, &e->pub, &t, &cols);
        if (st != TUNA_OK) break;
        st = e->external ? keep_stored(g, &m->cfg, &m->stored[e->sidx], t, cols) : read_f32(g, &m->cfg, &e->pub, t, cols);
    }
    if (st == TUNA_OK && g->in_place) st = keep_map(m, g);
    if (st == TUNA_OK && m->n_stored) st = model_link_stored(m);
    return st;
}

tuna_status gguf_model_load(tuna_model **out, const char *path, tuna_quant_type quant) {
    *out = NULL;
    gguf_load g = {.path = path};
    tuna_status st = gguf_open(&g.f, path);
    if (st != TUNA_OK) return st;
    tuna_config c;
    st = gguf_model_config(&g.f, path, &c);
    g.gpt2 = c.family == TUNA_FAMILY_GPT2;
    g.llama = !g.gpt2 && strcmp(c.model_type, "qwen2") != 0;
    tuna_model *m = NULL;
    if (st == TUNA_OK) st = new_model(&m, &c, quant);
    if (st == TUNA_OK) st = load_params(m, &g);
    free(g.buf);
    gguf_close(&g.f);
    if (st != TUNA_OK) { tuna_model_free(m); return st; }
    *out = m;
    return TUNA_OK;
}

tuna_status tuna_model_load_gguf(tuna_model **out, const char *path) { return gguf_model_load(out, path, TUNA_QUANT_NONE); }

tuna_status tuna_export_gguf_lora(const tuna_config *c, const char *adapter_dir, const char *type, const char *path) {
    int gt = !strcmp(type, "f32") ? GGML_F32 : !strcmp(type, "f16") ? GGML_F16 : -1;
    if (gt < 0) return core_fail(TUNA_ERR_ARG, "a GGUF LoRA adapter is written f32 or f16 (got '%s')", type);
    tuna_peft_config pc;
    tuna_status st = tuna_peft_read_config(&pc, adapter_dir);
    if (st != TUNA_OK) return st;
    if (pc.type != TUNA_PEFT_LORA) return core_fail(TUNA_ERR_UNSUPPORTED, "%s: llama.cpp loads LoRA adapters only (this one is not LoRA)", adapter_dir);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", adapter_dir);
    st_file f;
    st = st_open(&f, p);
    if (st != TUNA_OK) return st;
    const char *arch = arch_of(c);
    int gpt2 = c->family == TUNA_FAMILY_GPT2, permute = !strcmp(arch, "llama");
    gguf_writer *w = gguf_writer_new();
    float **bufs = calloc(2 * (size_t)f.n_tensors + 1, sizeof *bufs); /* a tensor and its permuted copy */
    if (!w || !bufs) { st_close(&f); gguf_writer_free(w); free(bufs); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    gguf_kv_str(w, "general.architecture", arch);
    gguf_kv_str(w, "general.type", "adapter");
    gguf_kv_str(w, "adapter.type", "lora");
    /* llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is the same
     * with alpha * sqrt(r) */
    gguf_kv_f32(w, "adapter.lora.alpha", pc.rslora ? pc.alpha * sqrtf((float)pc.r) : pc.alpha);
    gguf_kv_u32(w, "general.alignment", 32);
    int nb = 0, pairs = 0;
    for (int i = 0; st == TUNA_OK && i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        const char *pre = "base_model.model.";
        size_t n = strlen(t->name);
        int is_a = n > 14 && !strcmp(t->name + n - 14, ".lora_A.weight"), is_b = n > 14 && !strcmp(t->name + n - 14, ".lora_B.weight");
        if (strncmp(t->name, pre, strlen(pre)) || (!is_a && !is_b) || t->ndim != 2) {
            st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: tensor %s is not a LoRA A/B matrix llama.cpp can take", p, t->name);
            break;
        }
        char hf[200], name[200];
        snprintf(hf, sizeof hf, "%.*s.weight", (int)(n - 14 - strlen(pre)), t->name + strlen(pre));
        if (gguf_name(hf, gpt2, name, sizeof name)) { st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: %s has no llama.cpp tensor", p, hf); break; }
        float *x = malloc((size_t)t->numel * sizeof *x);
        if (!x) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
        bufs[nb++] = x;
        st = st_to_f32(t, x);
        int64_t rows = t->shape[0], cols = t->shape[1];
        int is_q = strstr(name, "attn_q.") != NULL, is_k = strstr(name, "attn_k.") != NULL;
        if (st == TUNA_OK && is_b && permute && (is_q || is_k)) {
            /* B's rows are the output rows the base permutes */
            float *y = malloc((size_t)t->numel * sizeof *y);
            if (!y) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
            permute_rows(x, y, is_q ? c->NH : c->NKV, c->HD, cols, 0);
            bufs[nb++] = y;
            x = y;
        }
        char full[220];
        snprintf(full, sizeof full, "%s.%s", name, is_a ? "lora_a" : "lora_b");
        if (st == TUNA_OK) st = gguf_add_tensor(w, full, 2, rows, cols, gt, x);
        pairs += is_a;
    }
    if (st == TUNA_OK && !pairs) st = core_fail(TUNA_ERR_FORMAT, "%s: no LoRA tensors", p);
    if (st == TUNA_OK) st = gguf_writer_finish(w, path);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs);
    gguf_writer_free(w);
    st_close(&f);
    return st;
}
