/* tuna_gguf.h — models as llama.cpp files (GGUF v3): export with the
 * architecture's metadata, the vocabulary and chat template, tensor names and
 * layouts as llama.cpp's convert_hf_to_gguf.py writes them (Llama's q/k rows
 * permuted to the interleaved rotary layout llama.cpp applies), in F32, F16,
 * Q8_0, Q4_0 or a k-quant mixture; and import of such a file back into a
 * tuna model (F32, F16, Q8_0, Q4_0, Q5_0, Q5_1 and Q2_K..Q6_K tensors
 * dequantized to fp32), so tuna checks its own exports.
 * Vocabularies: byte-level BPE (tokenizer.ggml.model "gpt2") and
 * SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Phi-3:
 * "llama", with scores that rank merges as the tokenizer.json merges do). */
#ifndef TUNA_GGUF_H
#define TUNA_GGUF_H
#include "tuna.h"

typedef struct {
    const char *tokenizer_dir;  /* folder with tokenizer.json: the vocabulary written (NULL: none) */
    const char *chat_template;  /* template source (NULL: none) */
    const char *name;           /* general.name */
    int32_t bos, eos, eot, pad; /* special ids, -1 when absent; eot: the template's end-of-turn token */
    int add_bos;                /* the tokenizer puts BOS in front */
    int add_eos;                /* ... and EOS at the end */
} tuna_gguf_meta;

/* type: "f32", "f16", "q8_0", "q4_0". 1-D tensors (norms, biases) stay F32;
 * a 2-D tensor whose rows are not a multiple of 32 is written F16 when a
 * quantized type is asked for (as llama.cpp's converter falls back). Or a
 * k-quant mixture, "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m",
 * "q5_k_s", "q5_k_m", "q6_k": each tensor's type as llama-quantize chooses
 * it (no importance matrix), its blocks as llama.cpp's reference quantizers
 * write them (src/io/gguf_mix.h lists the rules and fallbacks). Written
 * to a temporary name, then renamed. Architectures: llama (Llama, Mistral),
 * qwen2, gpt2; Llama 3 rope scaling and NF4 models are refused. */
tuna_status tuna_export_gguf(const tuna_model *m, const tuna_gguf_meta *meta, const char *type, const char *path);

/* Loads the weights of a GGUF file of architecture llama, qwen2 or gpt2
 * (config from its metadata; q/k rows un-permuted). The model computes in
 * fp32 from the dequantized values (tuna_model_load_quantized with
 * TUNA_QUANT_STORED keeps them as the file stores them). */
tuna_status tuna_model_load_gguf(tuna_model **out, const char *path);

/* A PEFT LoRA adapter folder as llama.cpp's --lora file: general.type
 * "adapter", adapter.type "lora", adapter.lora.alpha (rsLoRA folded in), and
 * per target <base tensor>.lora_a ([r, in]) / .lora_b ([out, r], q/k rows
 * permuted like the base's). c is the base model's config. type f32 or f16. */
tuna_status tuna_export_gguf_lora(const tuna_config *c, const char *adapter_dir, const char *type, const char *path);

/* 1 when path names a GGUF file (by its magic). */
int tuna_is_gguf(const char *path);
#endif
