/* gguf_mix.c — which ggml type each tensor gets in a k-quant GGUF file, as
 * llama.cpp's llama-quantize decides (the rules are listed in gguf_mix.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "io/gguf_mix.h"
#include "io/gguf.h"

/* llama.cpp's LLAMA_FTYPE_MOSTLY_* numbers */
enum { FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_S = 16,
       FT_Q5_K_M = 17, FT_Q6_K = 18 };

static const gguf_mix mixes[] = {
    {"q2_k", FT_Q2_K, GGML_Q2_K},     {"q3_k_s", FT_Q3_K_S, GGML_Q3_K}, {"q3_k_m", FT_Q3_K_M, GGML_Q3_K},
    {"q3_k_l", FT_Q3_K_L, GGML_Q3_K}, {"q4_k_s", FT_Q4_K_S, GGML_Q4_K}, {"q4_k_m", FT_Q4_K_M, GGML_Q4_K},
    {"q5_k_s", FT_Q5_K_S, GGML_Q5_K}, {"q5_k_m", FT_Q5_K_M, GGML_Q5_K}, {"q6_k", FT_Q6_K, GGML_Q6_K},
};

const gguf_mix *gguf_mix_find(const char *name) {
    for (size_t i = 0; i < sizeof mixes / sizeof *mixes; i++)
        if (!strcasecmp(mixes[i].name, name)) return &mixes[i];
    return NULL;
}

const char *gguf_mix_names(void) { return "q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k"; }

typedef enum { T_OTHER, T_OUTPUT, T_TOKEN_EMBD, T_ATTN_V, T_ATTN_OUTPUT, T_FFN_DOWN } category;

static category category_of(const char *name) {
    if (!strcmp(name, "output.weight")) return T_OUTPUT;
    if (!strcmp(name, "token_embd.weight")) return T_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_v.weight")) return T_ATTN_V;
    if (strstr(name, "attn_output.weight")) return T_ATTN_OUTPUT;
    if (strstr(name, "ffn_down")) return T_FFN_DOWN;
    return T_OTHER;
}

/* what llama-quantize quantizes: 2-D weights, not norms nor GPT-2's positions */
static int quantizable(const char *name, int ndim) {
    size_t n = strlen(name);
    return ndim >= 2 && n >= 6 && !strcmp(name + n - 6, "weight") && !strstr(name, "_norm.weight") &&
           strcmp(name, "position_embd.weight") != 0;
}

static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* the more-bits rules for attn_v (and GPT-2's attn_qkv) in layer i */
static int attn_v_type(int ft, int base, int i, const gguf_mix_model *m) {
    if (ft == FT_Q2_K) return m->n_gqa >= 4 ? GGML_Q4_K : GGML_Q3_K;
    if (ft == FT_Q3_K_M) return i < 2 ? GGML_Q5_K : GGML_Q4_K;
    if (ft == FT_Q3_K_L) return GGML_Q5_K;
    if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(i, m->n_layer)) return GGML_Q6_K;
    if (ft == FT_Q4_K_S && i < 4) return GGML_Q5_K;
    return base;
}

static int ffn_down_type(int ft, int base, int i, int n) {
    if (ft == FT_Q2_K) return GGML_Q3_K;
    if (ft == FT_Q3_K_M) return i < n / 16 ? GGML_Q5_K : GGML_Q4_K;
    if (ft == FT_Q3_K_L) return GGML_Q5_K;
    if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(i, n)) return GGML_Q6_K;
    if (ft == FT_Q4_K_S && i < n / 8) return GGML_Q5_K;
    return base;
}

static int attn_output_type(int ft, int base) {
    return ft == FT_Q2_K ? GGML_Q3_K : ft == FT_Q3_K_M ? GGML_Q4_K : ft == FT_Q3_K_L ? GGML_Q5_K : base;
}

/* a type rows of ne0 values cannot hold replaced by llama.cpp's fallback */
static int fallback(int type, int64_t ne0) {
    if (ne0 % gguf_block_values(type) == 0) return type;
    int f = type == GGML_Q4_K ? GGML_Q5_0 : type == GGML_Q5_K ? GGML_Q5_1 : type == GGML_Q6_K ? GGML_Q8_0 : GGML_Q4_0;
    return ne0 % gguf_block_values(f) == 0 ? f : GGML_F16;
}

int gguf_mix_type(const gguf_mix *x, const gguf_mix_model *m, const char *name, int ndim, int64_t ne0) {
    if (!quantizable(name, ndim)) return GGML_F32;
    int ft = x->ftype, layer = -1, type = x->base;
    sscanf(name, "blk.%d.", &layer);
    category cat = category_of(name);
    if (cat == T_TOKEN_EMBD && m->tied) cat = T_OUTPUT; /* a tied table is the output matrix */
    switch (cat) {
    case T_OUTPUT: type = ne0 % gguf_block_values(x->base) ? GGML_Q8_0 : GGML_Q6_K; break;
    case T_ATTN_V: type = attn_v_type(ft, x->base, layer, m); break;
    case T_FFN_DOWN: type = ffn_down_type(ft, x->base, layer, m->n_layer); break;
    case T_ATTN_OUTPUT: type = attn_output_type(ft, x->base); break;
    case T_TOKEN_EMBD: case T_OTHER: break;
    }
    return fallback(type, ne0);
}
