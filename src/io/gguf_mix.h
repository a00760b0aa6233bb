/* gguf_mix.h — the k-quant file types (q2_k, q3_k_s/m/l, q4_k_s/m, q5_k_s/m,
 * q6_k) and the per-tensor type each gives, as llama.cpp's llama-quantize
 * chooses without an importance matrix (src/llama-quant.cpp:
 * llama_tensor_get_type and its fallback) for the architectures tuna writes
 * (llama, qwen2, gpt2; dense, no experts, not Falcon, not a "70B"):
 *   - output.weight, and token_embd.weight when tied (no output.weight):
 *     Q6_K; Q8_0 when its rows are not a multiple of the base type's block;
 *   - attn_v (attn_qkv for gpt2): q2_k Q3_K (Q4_K when heads/kv-heads >= 4),
 *     q3_k_m Q5_K in layers 0-1 then Q4_K, q3_k_l Q5_K, q4_k_m/q5_k_m Q6_K
 *     where use_more_bits(layer, layers), q4_k_s Q5_K in layers 0-3;
 *   - ffn_down: q2_k Q3_K, q3_k_m Q5_K below layers/16 then Q4_K, q3_k_l
 *     Q5_K, q4_k_m/q5_k_m Q6_K where use_more_bits, q4_k_s Q5_K below
 *     layers/8;
 *   - attn_output: q2_k Q3_K, q3_k_m Q4_K, q3_k_l Q5_K;
 *   - every other 2-D weight the base type; 1-D tensors and GPT-2's
 *     position_embd are not quantized (F32, as llama-quantize leaves them in
 *     an F32 file);
 * use_more_bits(i, n): i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2. Then the
 * fallback for rows (ne[0]) not a multiple of 256: Q2_K/Q3_K -> Q4_0,
 * Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when not a multiple of 32
 * either. llama.cpp counts attn_v and ffn_down tensors in its layer-sorted
 * order, which for these models is the layer number used here. */
#ifndef TUNA_IO_GGUF_MIX_H
#define TUNA_IO_GGUF_MIX_H
#include <stdint.h>

typedef struct {
    const char *name; /* "q4_k_m" */
    int ftype;        /* llama.cpp's LLAMA_FTYPE_MOSTLY_* (general.file_type) */
    int base;         /* the ggml type of the tensors no rule singles out */
} gguf_mix;

typedef struct {
    int n_layer; /* blocks */
    int n_gqa;   /* attention heads / key-value heads */
    int tied;    /* no output.weight: token_embd is the output matrix */
} gguf_mix_model;

/* The mixture called name (any case: "Q4_K_M" as llama.cpp spells it), or NULL. */
const gguf_mix *gguf_mix_find(const char *name);
/* The names of every mixture, ", "-separated (for messages and --help). */
const char *gguf_mix_names(void);
/* The ggml type of tensor name (ndim dimensions, ne0 values a row) in mixture x. */
int gguf_mix_type(const gguf_mix *x, const gguf_mix_model *m, const char *name, int ndim, int64_t ne0);
#endif
