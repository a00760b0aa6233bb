/* config.c — reads and writes Hugging Face config.json for the supported
 * families. GPT-2 and the Llama family (Llama, Mistral, Qwen2) map onto one
 * tuna_config that the single decoder implementation is driven by. Unknown
 * architectures, activations and rope types are refused with a clear message
 * rather than approximated.
 *
 * Every key is read strictly (core/json_keys.h), through one table per
 * family: a value of the wrong type or out of range (an integer that does not
 * fit the int it lands in, a fraction, a number as a string, a float that
 * overflows) is an error naming the file, the key and the value, never a
 * silent default or a truncation; null is the same as absent. */
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json_keys.h"
#include "io/atomic_file.h"
#include "tuna.h"
#include "core/json_error.h"

/* a token id: the first of a list (HF's EOS lists); -1 when none */
static int cfg_token_id(jkeys *r, const char *key) {
    int32_t id = -1;
    jkeys_token_ids(r, key, &id, 1);
    return id;
}

/* ---- the keys of each family ---- */

enum { K_INT, K_POS /* number > 0 */, K_NONNEG /* number >= 0 */, K_BOOL };
#define DERIVED NAN /* absent: computed from other keys afterwards (the field stays 0) */

typedef struct {
    const char *key;
    int kind;
    size_t off;            /* the tuna_config field (int for K_INT/K_BOOL, float otherwise) */
    long long lo, hi;      /* K_INT's range */
    double def;            /* when absent or null */
} cfg_key;

#define F(field) offsetof(tuna_config, field)
static const cfg_key gpt2_keys[] = {
    {"vocab_size", K_INT, F(V), 1, INT_MAX, 50257},
    {"n_embd", K_INT, F(C), 1, INT_MAX / 4, 768}, /* 4 * n_embd is n_inner's default */
    {"n_layer", K_INT, F(L), 1, 4096, 12},
    {"n_head", K_INT, F(NH), 1, INT_MAX, 12},
    {"n_inner", K_INT, F(FF), 1, INT_MAX, DERIVED},
    {"n_positions", K_INT, F(max_positions), 1, INT_MAX, DERIVED},
    {"layer_norm_epsilon", K_POS, F(norm_eps), 0, 0, 1e-5},
    {"tie_word_embeddings", K_BOOL, F(tie_embeddings), 0, 1, 1},
    {"initializer_range", K_NONNEG, F(initializer_range), 0, 0, 0.02},
    {NULL, 0, 0, 0, 0, 0},
};
static const cfg_key llama_keys[] = {
    {"vocab_size", K_INT, F(V), 1, INT_MAX, 32000},
    {"hidden_size", K_INT, F(C), 1, INT_MAX, 4096},
    {"num_hidden_layers", K_INT, F(L), 1, 4096, 32},
    {"num_attention_heads", K_INT, F(NH), 1, INT_MAX, 32},
    {"num_key_value_heads", K_INT, F(NKV), 1, INT_MAX, DERIVED},
    {"head_dim", K_INT, F(HD), 1, INT_MAX, DERIVED},
    {"intermediate_size", K_INT, F(FF), 1, INT_MAX, 11008},
    {"max_position_embeddings", K_INT, F(max_positions), 1, INT_MAX, 2048},
    {"rms_norm_eps", K_POS, F(norm_eps), 0, 0, 1e-6},
    {"rope_theta", K_POS, F(rope_theta), 0, 0, 10000.0},
    {"tie_word_embeddings", K_BOOL, F(tie_embeddings), 0, 1, 0},
    {"attention_bias", K_BOOL, F(o_bias), 0, 1, 0},
    {"mlp_bias", K_BOOL, F(mlp_bias), 0, 1, 0},
    {"initializer_range", K_NONNEG, F(initializer_range), 0, 0, 0.02},
    {NULL, 0, 0, 0, 0, 0},
};
static const cfg_key llama3_keys[] = { /* inside rope_scaling */
    {"low_freq_factor", K_POS, F(rope_low_freq_factor), 0, 0, 1.0},
    {"high_freq_factor", K_POS, F(rope_high_freq_factor), 0, 0, 4.0},
    {"original_max_position_embeddings", K_INT, F(rope_original_max_positions), 1, INT_MAX, 8192},
    {NULL, 0, 0, 0, 0, 0},
};
#undef F

static void cfg_read_table(jkeys *r, const cfg_key *keys, tuna_config *c) {
    for (const cfg_key *k = keys; k->key; k++) {
        char *field = (char *)c + k->off;
        int derived = isnan(k->def);
        if (derived && !jkeys_get(r, k->key)) continue;
        if (k->kind == K_INT) *(int *)field = (int)jkeys_int(r, k->key, k->lo, k->hi, derived ? 0 : (long long)k->def);
        else if (k->kind == K_BOOL) *(int *)field = jkeys_bool(r, k->key, (int)k->def);
        else *(float *)field = jkeys_num(r, k->key, 0, k->kind == K_POS, FLT_MAX, k->def);
    }
}

/* ---- families ---- */

static void read_gpt2(jkeys *r, tuna_config *c) {
    static const char *const acts[] = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast", NULL};
    c->family = TUNA_FAMILY_GPT2;
    if (!c->model_type[0]) snprintf(c->model_type, sizeof c->model_type, "gpt2");
    c->norm = TUNA_NORM_LAYERNORM;
    c->mlp = TUNA_MLP_GELU_TANH;
    cfg_read_table(r, gpt2_keys, c);
    c->NKV = c->NH;
    c->HD = c->C / c->NH; /* validate refuses n_embd % n_head */
    if (!c->FF) c->FF = 4 * c->C;
    int n_ctx = (int)jkeys_int(r, "n_ctx", 1, INT_MAX, 1024);
    if (!c->max_positions) c->max_positions = n_ctx;
    c->learned_positions = 1;
    c->qkv_bias = c->o_bias = c->mlp_bias = 1;
    jkeys_str(r, "activation_function", acts, "gelu_new");
    if (r->st == TUNA_OK && (jkeys_bool(r, "scale_attn_by_inverse_layer_idx", 0) || jkeys_bool(r, "reorder_and_upcast_attn", 0)))
        r->st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported", r->path);
}

/* rope_scaling: null/absent, or an object with rope_type (or type) */
static void read_rope_scaling(jkeys *r, tuna_config *c) {
    static const char *const types[] = {"default", "linear", "llama3", NULL};
    json_t *rs = jkeys_get(r, "rope_scaling");
    if (!rs) return;
    if (!json_is_object(rs)) { jkeys_fail(r, TUNA_ERR_FORMAT, "rope_scaling", rs, "must be an object or null"); return; }
    jkeys sub = {rs, r->path, "rope_scaling.", TUNA_OK};
    const char *tk = jkeys_get(&sub, "rope_type") ? "rope_type" : "type";
    const char *ts = jkeys_str(&sub, tk, NULL, "");
    if (sub.st == TUNA_OK) {
        int i = 0;
        while (types[i] && strcmp(types[i], ts)) i++;
        if (!types[i])
            sub.st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (none, linear, llama3)", r->path, ts);
        c->rope_scaling = i == 1 ? TUNA_ROPE_LINEAR : i == 2 ? TUNA_ROPE_LLAMA3 : TUNA_ROPE_NONE;
    }
    if (c->rope_scaling != TUNA_ROPE_NONE) c->rope_factor = jkeys_num(&sub, "factor", 0, 1, FLT_MAX, 1.0);
    if (c->rope_scaling == TUNA_ROPE_LLAMA3) cfg_read_table(&sub, llama3_keys, c);
    if (r->st == TUNA_OK) r->st = sub.st;
}

static void read_llama(jkeys *r, tuna_config *c, const char *arch) {
    static const char *const acts[] = {"silu", NULL};
    c->family = TUNA_FAMILY_LLAMA;
    c->norm = TUNA_NORM_RMSNORM;
    c->mlp = TUNA_MLP_SWIGLU;
    cfg_read_table(r, llama_keys, c);
    if (!c->NKV) c->NKV = c->NH;
    if (!c->HD && r->st == TUNA_OK) {
        if (c->C % c->NH)
            r->st = core_fail(TUNA_ERR_FORMAT, "%s: hidden_size %d not divisible by num_attention_heads %d (and no head_dim)",
                              r->path, c->C, c->NH);
        c->HD = c->C / c->NH;
    }
    int qwen = !strcmp(arch, "Qwen2ForCausalLM");
    c->qkv_bias = qwen || c->o_bias;
    if (!strcmp(arch, "MistralForCausalLM") || (qwen && jkeys_bool(r, "use_sliding_window", 0)))
        c->sliding_window = (int)jkeys_int(r, "sliding_window", 0, INT_MAX, 0);
    jkeys_str(r, "hidden_act", acts, "silu");
    read_rope_scaling(r, c);
}

/* architectures[0], else the one model_type names; "" when neither */
static const char *read_arch(jkeys *r, const char *mt) {
    json_t *archs = jkeys_get(r, "architectures");
    if (archs && (!json_is_array(archs) || (json_array_size(archs) && !json_is_string(json_array_get(archs, 0))))) {
        jkeys_fail(r, TUNA_ERR_FORMAT, "architectures", archs, "must be a list of strings");
        return "";
    }
    if (archs && json_array_size(archs)) return json_string_value(json_array_get(archs, 0));
    if (!strcmp(mt, "gpt2")) return "GPT2LMHeadModel";
    if (!strcmp(mt, "llama")) return "LlamaForCausalLM";
    if (!strcmp(mt, "mistral")) return "MistralForCausalLM";
    if (!strcmp(mt, "qwen2")) return "Qwen2ForCausalLM";
    return "";
}

/* A …ForSequenceClassification architecture: the causal LM it is built on
 * (its family's name for the rest of the reading), NULL when arch is not one */
static const char *seqcls_base(const char *arch) {
    static const char *const map[][2] = {{"GPT2", "GPT2LMHeadModel"}, {"Llama", "LlamaForCausalLM"},
                                         {"Mistral", "MistralForCausalLM"}, {"Qwen2", "Qwen2ForCausalLM"}};
    const char *suf = "ForSequenceClassification";
    size_t n = strlen(arch), ns = strlen(suf);
    if (n <= ns || strcmp(arch + n - ns, suf)) return NULL;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i][0]) == n - ns && !strncmp(arch, map[i][0], n - ns)) return map[i][1];
    return NULL;
}

/* a sequence-classification model's label count: num_labels, else the size
 * of id2label (what HF writes), else HF's default 2; only 1 (a reward model)
 * is supported */
static void read_num_labels(jkeys *r, tuna_config *c) {
    json_t *id2 = jkeys_get(r, "id2label");
    long long def = id2 && json_is_object(id2) ? (long long)json_object_size(id2) : 2;
    c->num_labels = (int)jkeys_int(r, "num_labels", 1, 1 << 20, def);
    if (r->st == TUNA_OK && c->num_labels != 1)
        r->st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: %s with %d labels is not supported (a reward model has num_labels 1)",
                          r->path, c->architecture, c->num_labels);
}

static void read_common(jkeys *r, tuna_config *c) {
    static const char *const dtypes[] = {"float32", "float16", "bfloat16", NULL};
    c->bos_token_id = cfg_token_id(r, "bos_token_id");
    c->eos_token_id = cfg_token_id(r, "eos_token_id");
    c->pad_token_id = cfg_token_id(r, "pad_token_id");
    const char *dk = jkeys_get(r, "torch_dtype") ? "torch_dtype" : "dtype";
    const char *dts = jkeys_str(r, dk, dtypes, "float32");
    c->dtype = !strcmp(dts, "float16") ? TUNA_DTYPE_F16 : !strcmp(dts, "bfloat16") ? TUNA_DTYPE_BF16 : TUNA_DTYPE_F32;
}

const char *tuna_dtype_name(tuna_dtype d) {
    return d == TUNA_DTYPE_F16 ? "float16" : d == TUNA_DTYPE_BF16 ? "bfloat16" : "float32";
}

/* The values the RoPE tables and the norms divide by (model_rope_tables:
 * 1/theta^(2i/HD), inv/factor, old/low, old/high, (old/wl - low)/(high - low);
 * 1/sqrt(mean + eps)). Names are config.json's. */
static tuna_status validate_divisors(const tuna_config *c) {
    const char *eps = c->family == TUNA_FAMILY_GPT2 ? "layer_norm_epsilon" : "rms_norm_eps";
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return core_fail(TUNA_ERR_FORMAT, "config: %s %g must be a finite number > 0", eps, c->norm_eps);
    if (c->family != TUNA_FAMILY_LLAMA) return TUNA_OK;
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return core_fail(TUNA_ERR_FORMAT, "config: rope_theta %g must be positive", c->rope_theta);
    if (c->rope_scaling != TUNA_ROPE_NONE && (!(c->rope_factor > 0) || !isfinite(c->rope_factor)))
        return core_fail(TUNA_ERR_FORMAT, "config: rope_scaling factor %g must be positive", c->rope_factor);
    if (c->rope_scaling != TUNA_ROPE_LLAMA3) return TUNA_OK;
    if (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
        !isfinite(c->rope_high_freq_factor))
        return core_fail(TUNA_ERR_FORMAT,
                         "config: rope_scaling low_freq_factor %g and high_freq_factor %g must satisfy 0 < low_freq_factor < high_freq_factor",
                         c->rope_low_freq_factor, c->rope_high_freq_factor);
    if (c->rope_original_max_positions <= 0)
        return core_fail(TUNA_ERR_FORMAT, "config: rope_scaling original_max_position_embeddings %d must be positive",
                         c->rope_original_max_positions);
    return TUNA_OK;
}

tuna_status tuna_config_validate(const tuna_config *c) {
    if (c->V <= 0 || c->C <= 0 || c->L <= 0 || c->NH <= 0 || c->NKV <= 0 || c->HD <= 0 || c->FF <= 0 ||
        c->max_positions <= 0)
        return core_fail(TUNA_ERR_FORMAT, "config: sizes must be positive (vocab %d, hidden %d, layers %d, heads %d/%d, head_dim %d, ff %d, positions %d)",
                         c->V, c->C, c->L, c->NH, c->NKV, c->HD, c->FF, c->max_positions);
    if (c->NH % c->NKV)
        return core_fail(TUNA_ERR_FORMAT, "config: %d attention heads not divisible by %d key/value heads", c->NH, c->NKV);
    if (c->family == TUNA_FAMILY_GPT2 && c->NH * c->HD != c->C)
        return core_fail(TUNA_ERR_FORMAT, "config: n_embd %d not divisible by n_head %d", c->C, c->NH);
    if (c->family == TUNA_FAMILY_LLAMA && (c->HD % 2))
        return core_fail(TUNA_ERR_FORMAT, "config: head_dim %d must be even for RoPE", c->HD);
    if ((long)c->V * c->C > (1L << 34) || c->L > 4096)
        return core_fail(TUNA_ERR_FORMAT, "config: sizes implausibly large");
    return validate_divisors(c);
}

tuna_status tuna_config_load(tuna_config *c, const char *path) {
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o) {
        if (access(path, R_OK) != 0) return core_fail(TUNA_ERR_IO, "%s: cannot read config", path);
        return core_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, tuna_json_error_text(&jerr));
    }
    if (!json_is_object(o)) { json_decref(o); return core_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", path); }
    jkeys r = {o, path, "", TUNA_OK};
    const char *mt = jkeys_str(&r, "model_type", NULL, "");
    const char *arch = read_arch(&r, mt);
    snprintf(c->architecture, sizeof c->architecture, "%s", arch);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    read_common(&r, c);
    const char *base = seqcls_base(arch);
    if (base) {
        read_num_labels(&r, c);
        arch = base;
    }
    int llama = !strcmp(arch, "LlamaForCausalLM") || !strcmp(arch, "MistralForCausalLM") || !strcmp(arch, "Qwen2ForCausalLM");
    if (!strcmp(arch, "GPT2LMHeadModel")) read_gpt2(&r, c);
    else if (llama) read_llama(&r, c, arch);
    else if (r.st == TUNA_OK)
        r.st = core_fail(TUNA_ERR_UNSUPPORTED,
                         "%s: architecture '%s' is not supported (GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM, "
                         "Qwen2ForCausalLM, or their …ForSequenceClassification with one label)",
                         path, arch[0] ? arch : "(none)");
    json_decref(o);
    tuna_status st = r.st;
    return st == TUNA_OK ? core_fail_in(tuna_config_validate(c), path) : st;
}

tuna_status tuna_config_save(const tuna_config *c, const char *path) {
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", c->architecture));
    json_object_set_new(o, "model_type", json_string(c->model_type));
    if (c->family == TUNA_FAMILY_GPT2) {
        json_object_set_new(o, "vocab_size", json_integer(c->V));
        json_object_set_new(o, "n_embd", json_integer(c->C));
        json_object_set_new(o, "n_layer", json_integer(c->L));
        json_object_set_new(o, "n_head", json_integer(c->NH));
        json_object_set_new(o, "n_inner", c->FF == 4 * c->C ? json_null() : json_integer(c->FF));
        json_object_set_new(o, "n_positions", json_integer(c->max_positions));
        json_object_set_new(o, "n_ctx", json_integer(c->max_positions));
        json_object_set_new(o, "layer_norm_epsilon", json_real(c->norm_eps));
        json_object_set_new(o, "activation_function", json_string("gelu_new"));
    } else {
        json_object_set_new(o, "vocab_size", json_integer(c->V));
        json_object_set_new(o, "hidden_size", json_integer(c->C));
        json_object_set_new(o, "intermediate_size", json_integer(c->FF));
        json_object_set_new(o, "num_hidden_layers", json_integer(c->L));
        json_object_set_new(o, "num_attention_heads", json_integer(c->NH));
        json_object_set_new(o, "num_key_value_heads", json_integer(c->NKV));
        json_object_set_new(o, "head_dim", json_integer(c->HD));
        json_object_set_new(o, "max_position_embeddings", json_integer(c->max_positions));
        json_object_set_new(o, "rms_norm_eps", json_real(c->norm_eps));
        json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
        json_object_set_new(o, "hidden_act", json_string("silu"));
        if (strcmp(c->model_type, "qwen2")) {
            json_object_set_new(o, "attention_bias", json_boolean(c->qkv_bias));
            json_object_set_new(o, "mlp_bias", json_boolean(c->mlp_bias));
        }
        if (c->sliding_window) json_object_set_new(o, "sliding_window", json_integer(c->sliding_window));
        else if (!strcmp(c->model_type, "mistral")) json_object_set_new(o, "sliding_window", json_null());
        if (c->rope_scaling == TUNA_ROPE_LINEAR)
            json_object_set_new(o, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "linear", "factor", (double)c->rope_factor));
        else if (c->rope_scaling == TUNA_ROPE_LLAMA3)
            json_object_set_new(o, "rope_scaling", json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor",
                                 (double)c->rope_factor, "low_freq_factor", (double)c->rope_low_freq_factor,
                                 "high_freq_factor", (double)c->rope_high_freq_factor,
                                 "original_max_position_embeddings", c->rope_original_max_positions));
        else json_object_set_new(o, "rope_scaling", json_null());
    }
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(o, "initializer_range", json_real(c->initializer_range));
    if (c->bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos_token_id));
    if (c->eos_token_id >= 0) json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_id));
    if (c->pad_token_id >= 0) json_object_set_new(o, "pad_token_id", json_integer(c->pad_token_id));
    json_object_set_new(o, "torch_dtype", json_string(tuna_dtype_name(c->dtype)));
    if (c->num_labels > 0) { /* HF's PretrainedConfig: id2label and label2id decide num_labels */
        json_object_set_new(o, "num_labels", json_integer(c->num_labels));
        json_object_set_new(o, "id2label", json_pack("{s:s}", "0", "LABEL_0"));
        json_object_set_new(o, "label2id", json_pack("{s:i}", "LABEL_0", 0));
    }
    tuna_status st = atomic_file_write_json(path, o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    return st;
}
