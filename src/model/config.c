/* config.c — reads and writes Hugging Face config.json for the supported
 * families. GPT-2 and the Llama family (Llama, Mistral, Qwen2) map onto one
 * tuna_config that the single decoder implementation is driven by. Unknown
 * architectures, activations and rope types are refused with a clear message
 * rather than approximated. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "tuna.h"
#include "core/json_error.h"

static int get_int(json_t *o, const char *key, int def) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) return (int)json_integer_value(v);
    if (json_is_real(v)) return (int)json_real_value(v);
    return def;
}
static double get_num(json_t *o, const char *key, double def) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : def;
}
static int get_bool(json_t *o, const char *key, int def) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}
static int get_token_id(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) return (int)json_integer_value(v);
    if (json_is_array(v) && json_array_size(v) > 0 && json_is_integer(json_array_get(v, 0)))
        return (int)json_integer_value(json_array_get(v, 0));
    return -1;
}

const char *tuna_dtype_name(tuna_dtype d) {
    return d == TUNA_DTYPE_F16 ? "float16" : d == TUNA_DTYPE_BF16 ? "bfloat16" : "float32";
}

/* The values the RoPE tables and the norms divide by (model_rope_tables:
 * 1/theta^(2i/HD), inv/factor, old/low, old/high, (old/wl - low)/(high - low);
 * 1/sqrt(mean + eps)). Names are config.json's. */
static tuna_status validate_divisors(const tuna_config *c) {
    const char *eps = c->family == TUNA_FAMILY_GPT2 ? "layer_norm_epsilon" : "rms_norm_eps";
    if (!(c->norm_eps >= 0) || !isfinite(c->norm_eps))
        return tuna_fail(TUNA_ERR_FORMAT, "config: %s %g must be a finite number >= 0", eps, c->norm_eps);
    if (c->family != TUNA_FAMILY_LLAMA) return TUNA_OK;
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return tuna_fail(TUNA_ERR_FORMAT, "config: rope_theta %g must be positive", c->rope_theta);
    if (c->rope_scaling != TUNA_ROPE_NONE && (!(c->rope_factor > 0) || !isfinite(c->rope_factor)))
        return tuna_fail(TUNA_ERR_FORMAT, "config: rope_scaling factor %g must be positive", c->rope_factor);
    if (c->rope_scaling != TUNA_ROPE_LLAMA3) return TUNA_OK;
    if (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
        !isfinite(c->rope_high_freq_factor))
        return tuna_fail(TUNA_ERR_FORMAT,
                         "config: rope_scaling low_freq_factor %g and high_freq_factor %g must satisfy 0 < low_freq_factor < high_freq_factor",
                         c->rope_low_freq_factor, c->rope_high_freq_factor);
    if (c->rope_original_max_positions <= 0)
        return tuna_fail(TUNA_ERR_FORMAT, "config: rope_scaling original_max_position_embeddings %d must be positive",
                         c->rope_original_max_positions);
    return TUNA_OK;
}

tuna_status tuna_config_validate(const tuna_config *c) {
    if (c->V <= 0 || c->C <= 0 || c->L <= 0 || c->NH <= 0 || c->NKV <= 0 || c->HD <= 0 || c->FF <= 0 ||
        c->max_positions <= 0)
        return tuna_fail(TUNA_ERR_FORMAT, "config: sizes must be positive (vocab %d, hidden %d, layers %d, heads %d/%d, head_dim %d, ff %d, positions %d)",
                         c->V, c->C, c->L, c->NH, c->NKV, c->HD, c->FF, c->max_positions);
    if (c->NH % c->NKV)
        return tuna_fail(TUNA_ERR_FORMAT, "config: %d attention heads not divisible by %d key/value heads", c->NH, c->NKV);
    if (c->family == TUNA_FAMILY_GPT2 && c->NH * c->HD != c->C)
        return tuna_fail(TUNA_ERR_FORMAT, "config: n_embd %d not divisible by n_head %d", c->C, c->NH);
    if (c->family == TUNA_FAMILY_LLAMA && (c->HD % 2))
        return tuna_fail(TUNA_ERR_FORMAT, "config: head_dim %d must be even for RoPE", c->HD);
    if ((long)c->V * c->C > (1L << 34) || c->L > 4096)
        return tuna_fail(TUNA_ERR_FORMAT, "config: sizes implausibly large");
    return validate_divisors(c);
}

tuna_status tuna_config_load(tuna_config *c, const char *path) {
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o) {
        if (access(path, R_OK) != 0) return tuna_fail(TUNA_ERR_IO, "%s: cannot read config", path);
        return tuna_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, tuna_json_error_text(&jerr));
    }
    if (!json_is_object(o)) { json_decref(o); return tuna_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", path); }
    tuna_status st = TUNA_OK;
    json_t *archs = json_object_get(o, "architectures");
    const char *arch = json_is_array(archs) && json_is_string(json_array_get(archs, 0))
                           ? json_string_value(json_array_get(archs, 0)) : "";
    const char *mt = json_is_string(json_object_get(o, "model_type")) ? json_string_value(json_object_get(o, "model_type")) : "";
    if (!arch[0]) {
        if (!strcmp(mt, "gpt2")) arch = "GPT2LMHeadModel";
        else if (!strcmp(mt, "llama")) arch = "LlamaForCausalLM";
        else if (!strcmp(mt, "mistral")) arch = "MistralForCausalLM";
        else if (!strcmp(mt, "qwen2")) arch = "Qwen2ForCausalLM";
    }
    snprintf(c->architecture, sizeof c->architecture, "%s", arch);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    c->bos_token_id = get_token_id(o, "bos_token_id");
    c->eos_token_id = get_token_id(o, "eos_token_id");
    c->pad_token_id = get_token_id(o, "pad_token_id");
    c->initializer_range = (float)get_num(o, "initializer_range", 0.02);
    json_t *dt = json_object_get(o, "torch_dtype");
    if (!json_is_string(dt)) dt = json_object_get(o, "dtype");
    const char *dts = json_is_string(dt) ? json_string_value(dt) : "float32";
    c->dtype = !strcmp(dts, "float16") ? TUNA_DTYPE_F16 : !strcmp(dts, "bfloat16") ? TUNA_DTYPE_BF16 : TUNA_DTYPE_F32;

    if (!strcmp(arch, "GPT2LMHeadModel")) {
        c->family = TUNA_FAMILY_GPT2;
        if (!c->model_type[0]) snprintf(c->model_type, sizeof c->model_type, "gpt2");
        c->norm = TUNA_NORM_LAYERNORM;
        c->mlp = TUNA_MLP_GELU_TANH;
        c->V = get_int(o, "vocab_size", 50257);
        c->C = get_int(o, "n_embd", 768);
        c->L = get_int(o, "n_layer", 12);
        c->NH = c->NKV = get_int(o, "n_head", 12);
        c->HD = c->NH > 0 ? c->C / c->NH : 0;
        c->FF = get_int(o, "n_inner", 4 * c->C);
        c->max_positions = get_int(o, "n_positions", get_int(o, "n_ctx", 1024));
        c->norm_eps = (float)get_num(o, "layer_norm_epsilon", 1e-5);
        c->learned_positions = 1;
        c->qkv_bias = c->o_bias = c->mlp_bias = 1;
        c->tie_embeddings = get_bool(o, "tie_word_embeddings", 1);
        json_t *act = json_object_get(o, "activation_function");
        const char *a = json_is_string(act) ? json_string_value(act) : "gelu_new";
        if (strcmp(a, "gelu_new") && strcmp(a, "gelu_pytorch_tanh") && strcmp(a, "gelu_fast"))
            st = tuna_fail(TUNA_ERR_UNSUPPORTED, "%s: activation_function '%s' is not supported (tuna implements the tanh GELU)", path, a);
        if (get_bool(o, "scale_attn_by_inverse_layer_idx", 0) || get_bool(o, "reorder_and_upcast_attn", 0))
            st = tuna_fail(TUNA_ERR_UNSUPPORTED, "%s: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported", path);
    } else if (!strcmp(arch, "LlamaForCausalLM") || !strcmp(arch, "MistralForCausalLM") ||
               !strcmp(arch, "Qwen2ForCausalLM")) {
        c->family = TUNA_FAMILY_LLAMA;
        c->norm = TUNA_NORM_RMSNORM;
        c->mlp = TUNA_MLP_SWIGLU;
        c->V = get_int(o, "vocab_size", 32000);
        c->C = get_int(o, "hidden_size", 4096);
        c->L = get_int(o, "num_hidden_layers", 32);
        c->NH = get_int(o, "num_attention_heads", 32);
        c->NKV = get_int(o, "num_key_value_heads", c->NH);
        c->HD = get_int(o, "head_dim", c->NH > 0 ? c->C / c->NH : 0);
        c->FF = get_int(o, "intermediate_size", 11008);
        c->max_positions = get_int(o, "max_position_embeddings", 2048);
        c->norm_eps = (float)get_num(o, "rms_norm_eps", 1e-6);
        c->rope_theta = (float)get_num(o, "rope_theta", 10000.0);
        c->tie_embeddings = get_bool(o, "tie_word_embeddings", 0);
        int qwen = !strcmp(arch, "Qwen2ForCausalLM");
        int ab = get_bool(o, "attention_bias", 0);
        c->qkv_bias = qwen || ab;
        c->o_bias = ab;
        c->mlp_bias = get_bool(o, "mlp_bias", 0);
        if (!strcmp(arch, "MistralForCausalLM")) c->sliding_window = get_int(o, "sliding_window", 0);
        if (qwen && get_bool(o, "use_sliding_window", 0)) c->sliding_window = get_int(o, "sliding_window", 0);
        if (c->sliding_window < 0) c->sliding_window = 0;
        json_t *act = json_object_get(o, "hidden_act");
        const char *a = json_is_string(act) ? json_string_value(act) : "silu";
        if (strcmp(a, "silu"))
            st = tuna_fail(TUNA_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (tuna implements SwiGLU with silu)", path, a);
        json_t *rs = json_object_get(o, "rope_scaling");
        if (json_is_object(rs)) {
            json_t *t = json_object_get(rs, "rope_type");
            if (!json_is_string(t)) t = json_object_get(rs, "type");
            const char *ts = json_is_string(t) ? json_string_value(t) : "";
            c->rope_factor = (float)get_num(rs, "factor", 1.0);
            if (!strcmp(ts, "default")) c->rope_scaling = TUNA_ROPE_NONE;
            else if (!strcmp(ts, "linear")) c->rope_scaling = TUNA_ROPE_LINEAR;
            else if (!strcmp(ts, "llama3")) {
                c->rope_scaling = TUNA_ROPE_LLAMA3;
                c->rope_low_freq_factor = (float)get_num(rs, "low_freq_factor", 1.0);
                c->rope_high_freq_factor = (float)get_num(rs, "high_freq_factor", 4.0);
                c->rope_original_max_positions = get_int(rs, "original_max_position_embeddings", 8192);
            } else
                st = tuna_fail(TUNA_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (none, linear, llama3)", path, ts);
        } else if (rs && !json_is_null(rs))
            st = tuna_fail(TUNA_ERR_FORMAT, "%s: rope_scaling must be an object or null", path);
    } else {
        st = tuna_fail(TUNA_ERR_UNSUPPORTED,
                       "%s: architecture '%s' is not supported (GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)",
                       path, arch[0] ? arch : "(none)");
    }
    json_decref(o);
    if (st == TUNA_OK) {
        st = tuna_config_validate(c);
        if (st != TUNA_OK) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", tuna_last_error());
            st = tuna_fail(st, "%s: %s", path, msg);
        }
    }
    return st;
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
    tuna_status st = atomic_file_write_json(path, o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    return st;
}
