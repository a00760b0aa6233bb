/* tuna_peft.h — parameter-efficient fine-tuning: LoRA, IA3 and prompt tuning
 * attached to a loaded model, in Hugging Face PEFT's semantics and file
 * format (adapter_config.json + adapter_model.safetensors), plus merging and
 * NF4 (QLoRA) storage of the frozen base. While an adapter is attached the
 * base model is frozen: tuna_model_prepare allocates no base gradients and the
 * trainer updates only the adapter's tensors. */
#ifndef TUNA_PEFT_H
#define TUNA_PEFT_H
#include "tuna.h"

typedef enum { TUNA_PEFT_NONE = 0, TUNA_PEFT_LORA = 1, TUNA_PEFT_IA3 = 2, TUNA_PEFT_PROMPT = 3 } tuna_peft_type;

typedef struct {
    tuna_peft_type type;
    /* LoRA */
    int r;                 /* rank (default 16) */
    float alpha;           /* lora_alpha (default 32) */
    float dropout;         /* lora_dropout on the adapter's input (default 0, as PEFT's) */
    int rslora;            /* scale alpha/sqrt(r) instead of alpha/r */
    /* LoRA and IA3: comma-separated PEFT module names ("q_proj,v_proj",
     * "mlp.c_proj"), "all-linear", or empty for PEFT's defaults of the type
     * and family. A single name containing regex characters is matched as
     * PEFT matches a string: re.fullmatch over the module path. */
    char targets[512];
    int targets_regex;     /* targets is one regular expression (PEFT's string form) */
    char feedforward[256]; /* IA3 modules whose input (not output) is scaled; empty = PEFT default */
    /* prompt tuning */
    int num_virtual_tokens;
    int init_from_text;    /* 1: PROMPT_TUNING init TEXT (tuna_peft_prompt_init_tokens) */
    char init_text[1024];
    char tokenizer_name[1024];
    char base_model[1024]; /* base_model_name_or_path written to adapter_config.json */
} tuna_peft_config;

/* Defaults of a type: r 16, alpha 32, dropout 0, targets per family. */
void tuna_peft_config_default(tuna_peft_config *c, tuna_peft_type type);
/* Reads DIR/adapter_config.json (PEFT's own files). Unsupported options
 * (DoRA, rank_pattern, layers_to_transform, modules_to_save, bias != none)
 * are an error naming the option. */
tuna_status tuna_peft_read_config(tuna_peft_config *c, const char *dir);
/* Attaches a fresh adapter with PEFT's initialisation: LoRA A Kaiming-uniform
 * (a = sqrt(5)), B zero; IA3 ones; prompt embeddings N(0,1) (text init: call
 * tuna_peft_prompt_init_tokens). Deterministic for a seed. Freezes the base.
 * TUNA_ERR_ARG when a LoRA rank exceeds a target layer's min(in, out). */
tuna_status tuna_peft_attach(tuna_model *m, const tuna_peft_config *c, uint64_t seed);
/* Attaches the adapter of DIR (config + weights): the adapter's r, alpha,
 * targets and scaling come from its adapter_config.json. */
tuna_status tuna_peft_load(tuna_model *m, const char *dir);
/* Replaces the attached adapter's tensors with those of DIR/adapter_model.safetensors
 * (same config). Missing, extra or mis-shaped tensors are errors. */
tuna_status tuna_peft_load_weights(tuna_model *m, const char *dir);
/* Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (F32, PEFT
 * key names), each under a temporary name then renamed. */
tuna_status tuna_peft_save(const tuna_model *m, const char *dir);
/* Prompt tuning TEXT init: virtual token i starts as the embedding of
 * ids[i % n] (PEFT repeats the text's tokens, then truncates). */
tuna_status tuna_peft_prompt_init_tokens(tuna_model *m, const int32_t *ids, int n);
/* Folds a LoRA or IA3 adapter into the base weights (W += s B A, or W scaled
 * by the IA3 vector) and detaches it; the model is then a plain model. Prompt
 * tuning cannot be merged (TUNA_ERR_UNSUPPORTED). */
tuna_status tuna_peft_merge(tuna_model *m);
/* Folds the attached LoRA or IA3 adapter into the weights as they are
 * written rather than in memory: tuna_model_save, tuna_model_save_sharded
 * and tuna_export_gguf then write W + s·B·A (IA3: the scaled weights and
 * biases) a block of rows at a time from the weights as stored — the values
 * tuna_peft_merge would give, bit for bit — without an fp32 copy of any
 * weight, giving back each mapped tensor's pages once it is written. The
 * model keeps its adapter (it computes as the merged model would). Same
 * refusals as tuna_peft_merge. */
tuna_status tuna_peft_merge_on_write(tuna_model *m);
/* The attached adapter's config, or NULL. */
const tuna_peft_config *tuna_peft_get(const tuna_model *m);
/* Trainable scalars of the attached adapter (0 when none), and how many
 * linear layers it adapts. */
int64_t tuna_peft_num_trainable(const tuna_model *m);
int tuna_peft_num_adapted(const tuna_model *m);
/* Sets whether forward applies adapter dropout (training) or not (eval). */
void tuna_peft_set_training(tuna_model *m, int training);
/* Switches the attached LoRA or IA3 adapter off (enabled 0: forward and
 * decoding compute the base alone, PEFT's disable_adapter()) or on again.
 * Only for forwards without backward. TUNA_ERR_UNSUPPORTED for prompt
 * tuning; no-op without an adapter. */
tuna_status tuna_peft_set_enabled(tuna_model *m, int enabled);

/* ---- frozen weights kept as stored, or NF4 (QLoRA) ---- */
typedef enum {
    TUNA_QUANT_NONE = 0,   /* every weight converted to fp32 (tuna_model_load) */
    TUNA_QUANT_NF4 = 1,    /* block linears NF4; embeddings and lm_head as stored */
    TUNA_QUANT_STORED = 2, /* every frozen weight in the dtype the file stores it in */
    TUNA_QUANT_BF16 = 3    /* every frozen 2-D weight in bf16: F32/F16 ones converted */
} tuna_quant_type;
/* Loads a model folder as tuna_model_load does, but keeps its 2-D weights
 * frozen in less memory. TUNA_QUANT_STORED: each weight stays in the file's
 * dtype (F32, BF16, F16); one whose layout and alignment are the model's is
 * used in place from the read-only mapping of the safetensors file (shared
 * between processes and by tuna_model_share), the others (GPT-2's Conv1D,
 * transposed) are copied in their dtype, and the file's pages are released
 * tensor by tensor. TUNA_QUANT_NF4: the transformer blocks' linear weights
 * become NF4 with double quantization (bitsandbytes' layout: blocks of 64
 * over the [out, in] weight, absmax 8-bit-quantized in blocks of 256), each
 * quantized as it is read; embeddings and lm_head are kept as stored. Norms
 * and biases are always fp32. Linear layers convert stored weights tile by
 * tile, so results equal those of the fp32 load of the same file (bf16 and
 * f16 convert to fp32 exactly). Such a model can be evaluated, generated
 * from, adapter-trained and saved; full fine-tuning (tuna_model_prepare in a
 * training mode without an adapter) is TUNA_ERR_UNSUPPORTED. A GGUF file
 * (dir is its path) with TUNA_QUANT_STORED keeps its F32, F16, Q8_0 and Q4_0
 * weights in place in the file's mapping (Llama's permuted q/k rows read
 * through a row map; Q8_0/Q4_0 dequantized tile by tile exactly as the fp32
 * load dequantizes them, so the results equal tuna_model_load_gguf's); a
 * non-finite value or block scale is TUNA_ERR_FORMAT naming the tensor.
 * TUNA_QUANT_NF4 refuses a GGUF file. TUNA_QUANT_BF16 keeps the 2-D weights
 * a file stores in bf16 as TUNA_QUANT_STORED does and converts F32 and F16
 * ones to bf16 (round to nearest even) tensor by tensor as they are read, so
 * loading holds the bf16 model and one tensor in fp32; the results are those
 * of the fp32 load of a bf16 copy of the file (what tuna_model_set_bf16 then
 * multiplies directly). It refuses a GGUF file. */
tuna_status tuna_model_load_quantized(tuna_model **out, const char *dir, tuna_quant_type q);
/* 1 when the weight of every linear layer (the blocks' and lm_head) is kept
 * in bf16 (a bf16 checkpoint loaded as stored, or TUNA_QUANT_BF16), else 0:
 * what tuna_model_set_bf16 can multiply without a bf16 copy. */
int tuna_model_linears_bf16(const tuna_model *m);
/* Bytes and count of the quantized storage (0 when not quantized). */
void tuna_model_quant_stats(const tuna_model *m, int64_t *quantized_params, int64_t *quant_bytes);
/* NF4 storage bytes of a tensor of n values: packed nibbles, 8-bit absmax
 * codes, fp32 second-level scales and the offset. */
int64_t tuna_nf4_bytes(int64_t n);
#endif
