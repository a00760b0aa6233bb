/* tuna.h — public API of libtuna, the fine-tuning library behind the `tuna` CLI.
 *
 * Conventions (see ARCHITECTURE.md):
 *  - Functions return tuna_status; TUNA_OK is 0. On failure the library never
 *    prints or exits: the one-line detail (file, line or tensor, and what is
 *    wrong) is kept per thread and read with tuna_last_error().
 *  - Opaque handles (tuna_model, ...) have create/free pairs; free(NULL) is a no-op.
 *  - Threads: the failure detail (tuna_last_error) is kept per thread. An
 *    object (model, decoder, tokenizer, trainer, data set being changed) is
 *    used by one thread at a time, unless its header says more: a model and
 *    its shares (tuna_model_share), a compiled template (tuna_template.h),
 *    decoders (tuna_infer.h) and data sets being read may be used from
 *    several threads at once within the limits written there. Forwards on
 *    several threads call the BLAS library at once: an OpenMP build of
 *    OpenBLAS (what tuna links; `tuna --version`) is documented to need
 *    NUM_PARALLEL set at its build to at least the number of such threads.
 *  - Dimension letters used everywhere: B batch, T time (sequence), C hidden,
 *    V vocab, L layers, NH query heads, NKV key/value heads, HD head dim,
 *    FF MLP hidden size.
 * Module headers (tokenizer, templates, ...) are included at the end. */
#ifndef TUNA_H
#define TUNA_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes: one list generates the enum and the messages ---- */
#define TUNA_STATUS_LIST(X)                                         \
    X(TUNA_OK, "ok")                                                \
    X(TUNA_ERR_IO, "cannot read or write file")                     \
    X(TUNA_ERR_FORMAT, "malformed input")                           \
    X(TUNA_ERR_UNSUPPORTED, "not supported")                        \
    X(TUNA_ERR_ARG, "invalid argument")                             \
    X(TUNA_ERR_NOMEM, "out of memory")                              \
    X(TUNA_ERR_NUMERIC, "numerical failure (NaN or inf)")           \
    X(TUNA_ERR_INTERRUPTED, "interrupted")                          \
    X(TUNA_ERR_INTERNAL, "internal error")                          \
    X(TUNA_ERR_WRITE, "cannot write file (disk full or I/O error)") \
    X(TUNA_ERR_NETWORK, "network or server failure")

typedef enum {
#define TUNA_X_ENUM(name, msg) name,
    TUNA_STATUS_LIST(TUNA_X_ENUM)
#undef TUNA_X_ENUM
} tuna_status;

/* Static description of a status code. */
const char *tuna_status_str(tuna_status s);
/* Detail of the last failure in this thread ("" if none). Valid until the next
 * failing call in the same thread. */
const char *tuna_last_error(void);
/* This library's version ("0.9.0"), and its build configuration as lines
 * "key: value" (MPI, BLAS library and the kernel it runs, compiler flags, CPU
 * features compiled for). Static strings; tuna_build_info is not reentrant. */
#define TUNA_VERSION_STRING "0.9.0"
const char *tuna_version(void);
const char *tuna_build_info(void);
/* bf16 compute: 1 when this CPU runs bf16 GEMMs (oneDNN finds AVX512-BF16 or
 * AMX; the environment variable ONEDNN_MAX_CPU_ISA can lower what it uses),
 * and one line naming the GEMM kernels in use (fp32 and bf16). */
int tuna_bf16_supported(void);
const char *tuna_kernels_info(void);
/* Exit code the CLI uses for a status: 0 ok, 2 bad input/usage, 1 otherwise
 * (TUNA_ERR_WRITE, a full disk or an I/O error, and TUNA_ERR_NETWORK, a
 * network or server failure, are failures: 1). */
int tuna_status_exit_code(tuna_status s);

/* ---- model configuration (parsed from an HF config.json) ---- */
typedef enum { TUNA_FAMILY_GPT2 = 0, TUNA_FAMILY_LLAMA = 1 } tuna_family;
typedef enum { TUNA_NORM_LAYERNORM = 0, TUNA_NORM_RMSNORM = 1 } tuna_norm_kind;
typedef enum { TUNA_MLP_GELU_TANH = 0, TUNA_MLP_SWIGLU = 1 } tuna_mlp_kind;
typedef enum { TUNA_ROPE_NONE = 0, TUNA_ROPE_LINEAR = 1, TUNA_ROPE_LLAMA3 = 2 } tuna_rope_scaling;
typedef enum { TUNA_DTYPE_F32 = 0, TUNA_DTYPE_F16 = 1, TUNA_DTYPE_BF16 = 2 } tuna_dtype;

typedef struct {
    char architecture[64];    /* HF "architectures"[0], e.g. "LlamaForCausalLM" */
    char model_type[32];      /* HF "model_type", e.g. "llama", "gpt2", "qwen2" */
    tuna_family family;
    tuna_norm_kind norm;
    tuna_mlp_kind mlp;
    int V, C, L, NH, NKV, HD, FF;
    int max_positions;        /* n_positions / max_position_embeddings */
    float norm_eps;
    int learned_positions;    /* GPT-2 wpe */
    int qkv_bias, o_bias, mlp_bias;
    int tie_embeddings;
    float rope_theta;
    tuna_rope_scaling rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_positions;
    int sliding_window;       /* 0 = none; sequences longer than it are refused */
    int bos_token_id, eos_token_id, pad_token_id; /* -1 when absent */
    tuna_dtype dtype;         /* storage dtype of the checkpoint */
    float initializer_range;
    int num_labels;           /* 0: a causal LM (lm_head); 1: a …ForSequenceClassification reward model
                               * (score.weight [1, C] on the last counted position, no lm_head) */
} tuna_config;

/* Parses config.json at path. */
tuna_status tuna_config_load(tuna_config *cfg, const char *path);
/* Checks internal consistency (dimensions divide, positive sizes). */
tuna_status tuna_config_validate(const tuna_config *cfg);
/* Writes cfg as an HF config.json (atomically: temp name, then rename). */
tuna_status tuna_config_save(const tuna_config *cfg, const char *path);
const char *tuna_dtype_name(tuna_dtype d);

/* ---- model ---- */
typedef struct tuna_model tuna_model;

/* One named parameter tensor as exposed to callers (HF name and shape as the
 * checkpoint stores it). data/grad point into the model's fp32 buffers in tuna's
 * internal layout ([out,in] for linear weights; GPT-2 Conv1D weights are held
 * transposed relative to the file); grad is NULL when not allocated. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];         /* file shape */
    int64_t numel;
    int transposed;           /* 1: file layout is the transpose of data */
    float *data;
    float *grad;
} tuna_param;

/* Loads an HF model folder (config.json + model.safetensors or sharded
 * model-*-of-*.safetensors with model.safetensors.index.json). Weights are
 * converted to fp32. On success *out owns the model; free with tuna_model_free. */
tuna_status tuna_model_load(tuna_model **out, const char *dir);
/* Replaces m's weights with those of the model folder dir, which must have the
 * same architecture and sizes. */
tuna_status tuna_model_load_weights(tuna_model *m, const char *dir);
/* Creates a model with the given config and zeroed weights (caller initialises). */
tuna_status tuna_model_create(tuna_model **out, const tuna_config *cfg);
void tuna_model_free(tuna_model *m);
/* A model that uses base's weights without copying them (base must outlive
 * it and stay without an adapter), so one set of weights can carry several
 * adapters at once: attach a different adapter to each share.
 * Threads: the base and each share have their own activations, gradients and
 * adapter, and their forward and backward only read the shared weights, so
 * each may run on its own thread at the same time; but not over an NF4 base
 * (tuna_model_load_quantized): the base and its shares dequantize into one
 * scratch tile, so their forwards and backwards must take turns. Anything
 * that writes the weights (training without an adapter, tuna_model_load_weights,
 * tuna_model_init_random, tuna_peft_merge on a share) changes the base and
 * every share, and must not run while they are in use. */
tuna_status tuna_model_share(tuna_model **out, tuna_model *base);
const tuna_config *tuna_model_config(const tuna_model *m);
int tuna_model_num_params(const tuna_model *m);      /* number of tensors */
const tuna_param *tuna_model_param(const tuna_model *m, int i);
const tuna_param *tuna_model_find_param(const tuna_model *m, const char *name);
/* scalar parameters (tied counted once), except those held in NF4, which
 * tuna_model_quant_stats counts */
int64_t tuna_model_param_count(const tuna_model *m);
/* Initialises weights as HF does for a model trained from scratch:
 * normal(0, initializer_range) for linear and embedding weights, zero biases,
 * unit norm weights; GPT-2's residual projections (c_proj) get std/sqrt(2L).
 * Deterministic for a seed. */
tuna_status tuna_model_init_random(tuna_model *m, uint64_t seed);
/* Turns a causal LM (fp32 weights, no adapter) into its
 * …ForSequenceClassification reward model (config num_labels 1): the same
 * base weights, lm_head dropped, score.weight [1, C] drawn from
 * normal(0, initializer_range) for seed (HF's init of a new nn.Linear). *m is
 * replaced (the old model freed); a model that already has a score head is
 * left as it is. */
tuna_status tuna_model_to_reward(tuna_model **m, uint64_t seed);
/* Saves weights (file layout and names) as model.safetensors + config.json. */
tuna_status tuna_model_save(const tuna_model *m, const char *dir, tuna_dtype dtype);
/* Same, split as transformers' save_pretrained does when the weights exceed
 * max_shard_bytes (> 0): model-0000K-of-0000N.safetensors (tensors in order,
 * a new shard when the next tensor would pass the limit) and
 * model.safetensors.index.json {"metadata":{"total_size"},"weight_map"}.
 * Weight files of an earlier save in dir that this one does not write are
 * removed, so the folder holds one consistent set. */
tuna_status tuna_model_save_sharded(const tuna_model *m, const char *dir, tuna_dtype dtype, int64_t max_shard_bytes);

/* Modes of tuna_model_prepare: evaluation only (one layer's buffers shared by
 * all layers), training (every layer's activations kept for backward), or
 * training with gradient checkpointing (only each block's input kept; backward
 * recomputes the block). */
enum { TUNA_MODE_EVAL = 0, TUNA_MODE_TRAIN = 1, TUNA_MODE_TRAIN_CHECKPOINT = 2 };

/* Bytes tuna_model_prepare will allocate for activations of a (B,T) batch in
 * the given mode. Used by `tuna plan` and by the allocator itself so the two
 * never drift apart. */
size_t tuna_model_activation_bytes(const tuna_config *cfg, int B, int T, int mode);
/* The same for training with only the first `layers` blocks checkpointed
 * (0: TUNA_MODE_TRAIN, cfg->L: TUNA_MODE_TRAIN_CHECKPOINT); 0 when layers is
 * outside [0, L]. Gradients are identical whatever the count; each
 * checkpointed block costs one more forward of it in backward. */
size_t tuna_model_activation_bytes_checkpointed(const tuna_config *cfg, int B, int T, int layers);
size_t tuna_model_weight_bytes(const tuna_config *cfg);

/* Allocates activation buffers for batches up to B x T in a TUNA_MODE_*, and
 * gradient buffers in the training modes. Must be called before forward.
 * Calling again with other sizes reallocates. */
tuna_status tuna_model_prepare(tuna_model *m, int B, int T, int mode);
/* tuna_model_prepare for training with the first `layers` blocks
 * checkpointed (TUNA_ERR_ARG outside [0, L]). */
tuna_status tuna_model_prepare_checkpointed(tuna_model *m, int B, int T, int layers);
/* bf16 compute with Transformers' meaning (bf16=True, torch.autocast): the
 * GEMMs of every linear layer (lm_head included), forward and backward, take
 * bf16 inputs and sum in fp32; weights stored bf16 are used as stored, fp32
 * weights through a bf16 copy (2 bytes per weight; a trainable model's copy
 * is refreshed at every forward, unless the trainer's AdamW step just
 * rewrote it); norms, attention, softmax, the loss,
 * gradients, master weights and optimizers stay fp32. Returns 1 when bf16 is
 * now on, 0 when it is off (on = 0, or the CPU has no bf16 GEMM: nothing
 * changes then), -1 when the copies do not fit in memory (then off;
 * tuna_last_error says so). A frozen base whose fp32 weights are written
 * directly needs another call to refresh its copy. */
int tuna_model_set_bf16(tuna_model *m, int on);
int tuna_model_bf16(const tuna_model *m);

/* A batch of token ids (row-major [B,T], right-padded). labels follow the HF
 * convention: position t's logits are scored against labels[t+1]; -100 marks
 * positions that do not count. pos_ids (optional, NULL = 0..T-1) restarts at
 * each packed example; attention at position t then reaches back only to
 * t - pos_ids[t] (block-diagonal causal attention). */
typedef struct {
    int B, T;
    const int32_t *input_ids;  /* [B,T] */
    const int32_t *labels;     /* [B,T] or NULL (no loss computed) */
    const int32_t *pos_ids;    /* [B,T] or NULL */
    const float *row_weight;   /* [B] extra loss weight per sequence, or NULL (= 1) */
    const float *tok_weight;   /* [B,T] extra loss weight of the loss at each position t (the
                                * one scored against labels[t+1]), or NULL (= 1); backward only */
} tuna_batch;

/* Result of a forward pass: sum of per-token losses (natural log) over the
 * counted tokens, and their count. */
typedef struct {
    double loss_sum;
    int64_t tokens;
} tuna_loss;

/* Forward pass. Computes logits (kept until backward) and, with labels, the
 * loss. Returns TUNA_ERR_ARG for ids out of range or a batch larger than
 * prepared. */
tuna_status tuna_model_forward(tuna_model *m, const tuna_batch *batch, tuna_loss *loss);
/* Logits of the last forward: [B,T,V], valid until backward. With a
 * prompt-tuning adapter each row starts with P virtual positions: [B,P+T,V].
 * Forward computes them in chunks of rows and keeps only what the loss needs,
 * so a large vocabulary's [B,T,V] never exists whole in training or
 * evaluation; when they took more than one chunk (more than 64 MiB), this
 * call computes them all again into a buffer the model owns until the next
 * tuna_model_prepare. NULL (TUNA_ERR_NOMEM detail) when that allocation fails. */
const float *tuna_model_logits(tuna_model *m);
/* Backward of the last forward: ADDS to every parameter gradient the gradient
 * of (token_weight * sum over rows b of row_weight[b] * that row's counted
 * per-token losses, each times its tok_weight when the batch has them). For a mean over the counted tokens of one optimizer step
 * pass 1/total_tokens and no row weights. The batch must be the forward's:
 * TUNA_ERR_ARG when no forward ran since the last backward or its shape
 * (B, T, position ids or not) differs; the forward then stays usable. */
tuna_status tuna_model_backward(tuna_model *m, const tuna_batch *batch, float token_weight);
/* Per-row sums of counted losses of the last forward (out[B]); B x T must be
 * the forward's batch. TUNA_ERR_ARG when it is not, or when backward has run
 * since. */
tuna_status tuna_model_row_losses(const tuna_model *m, int B, int T, double *out);
/* The softmax temperature of the losses, log-probabilities and gradients of
 * the following forwards and backwards: they become those of
 * softmax(logits / temperature), as TRL's GRPO scores completions at the
 * temperature they were sampled with (tuna_model_logits then returns the
 * divided logits too). 1 (the default) restores the plain loss; generation is
 * unaffected. TUNA_ERR_ARG unless temperature > 0. */
tuna_status tuna_model_set_logit_temperature(tuna_model *m, float temperature);
/* Per-position log-probabilities of the last forward (out[B,T]): out[b,t] is
 * log p(labels[b,t+1] | row b up to t), 0 where that label does not count.
 * Same conditions as tuna_model_row_losses. */
tuna_status tuna_model_token_logps(const tuna_model *m, int B, int T, double *out);
/* Sets all gradients to zero. */
void tuna_model_zero_grad(tuna_model *m);

#include "tuna_template.h"

/* ---- pre-tokenized data: JSONL lines {"input_ids":[...], "labels":[...]} ---- */
/* A data set of token sequences, opaque: each sequence has input ids, labels
 * (-100 = not counted; they default to input_ids when a line has none) and,
 * for packed rows, position ids. Objects are made by the library
 * (tuna_pretok_new, _load, _pack, _concat, _view, tuna_cache_load,
 * tuna_text_chunks, tuna_dataset_load*) into *out (NULL on failure), each
 * owned by the caller and released with tuna_pretok_free (NULL allowed). Readers may share one object
 * between threads; a function that changes it (append, drop_uncounted) needs
 * it to itself. */
typedef struct tuna_pretok tuna_pretok;

/* Reads a JSONL file of pre-tokenized records into a new object *out. Every
 * id must lie in [0, vocab_size) (vocab_size <= 0 disables the check); labels
 * must have the input's length and hold ids or -100. Errors name FILE:LINE.
 * Blank lines are skipped. */
tuna_status tuna_pretok_load(tuna_pretok **out, const char *path, int vocab_size);
/* A new empty data set, to fill with tuna_pretok_append. */
tuna_status tuna_pretok_new(tuna_pretok **out);
/* Appends a copy of one sequence of len tokens (labels[len], -100 = not
 * counted). p must hold its own unpacked tokens of one task (not a view, not
 * a token cache's mapping, not packed or concatenated data): TUNA_ERR_ARG
 * otherwise. Views of p become invalid. */
tuna_status tuna_pretok_append(tuna_pretok *p, const int32_t *ids, const int32_t *labels, int64_t len);
/* A view of sequences [first, first + count) of base, as a data set of one
 * task (the base's position ids kept): it shares the base's tokens, copying
 * none. A view must be freed before its base and is invalid once the base is
 * freed or changed. TUNA_ERR_ARG when the range is not inside base. */
tuna_status tuna_pretok_view(const tuna_pretok *base, int64_t first, int64_t count, tuna_pretok **out);
void tuna_pretok_free(tuna_pretok *p);
/* Number of sequences; the longest sequence's length. */
int64_t tuna_pretok_count(const tuna_pretok *p);
int tuna_pretok_max_len(const tuna_pretok *p);
/* Sequence i (0 <= i < count): returns its length; *ids, *labels and *pos
 * (each pointer may be NULL) receive its tokens, valid while p is (*pos NULL
 * unless the data is packed). */
int64_t tuna_pretok_seq(const tuna_pretok *p, int64_t i, const int32_t **ids, const int32_t **labels, const int32_t **pos);
/* Tasks of multi-task data (tuna_pretok_concat): their number (1 for one data
 * set), and task k's sequences [*first, *first + *count). */
int tuna_pretok_tasks(const tuna_pretok *p);
void tuna_pretok_task(const tuna_pretok *p, int k, int64_t *first, int64_t *count);
/* Packs sequences (truncated to seq_len) into rows of at most seq_len tokens
 * by first-fit decreasing. Each row carries position ids restarting at every
 * example (so attention stays within examples) and the first label of every
 * example is set to -100 (it would otherwise be scored against the previous
 * example's last position). Deterministic. */
tuna_status tuna_pretok_pack(const tuna_pretok *in, int seq_len, tuna_pretok **out);
/* Removes sequences with no counted token (labels[1:] all -100), e.g. whose
 * response was truncated away; returns how many were removed (-1 when out of
 * memory). Packed data is left as is. */
int64_t tuna_pretok_drop_uncounted(tuna_pretok *p);
/* Token cache: a processed data set stored under dir/<key as 16 hex>.tokens,
 * memory-mapped when read back. key should hash everything the tokens depend
 * on (file content, tokenizer, template, options): see tuna_hash64. Load
 * returns TUNA_ERR_IO when there is no entry, TUNA_ERR_FORMAT when the entry is
 * damaged (any byte changed: entries carry a checksum, verified on load).
 * Store writes a temporary file and renames it. */
tuna_status tuna_cache_load(const char *dir, uint64_t key, tuna_pretok **out);
tuna_status tuna_cache_store(const char *dir, uint64_t key, const tuna_pretok *p);
/* 64-bit FNV-1a, continuing from h (start with TUNA_HASH_INIT). */
#define TUNA_HASH_INIT 0xcbf29ce484222325ULL
uint64_t tuna_hash64(uint64_t h, const void *data, size_t len);
/* Hash of a file's bytes (streamed), continuing from h. */
tuna_status tuna_hash_file(uint64_t *h, const char *path);
/* Concatenates data sets (copies of parts[0 .. n)) into one whose tasks are
 * the inputs, in order (for multi-task mixing). Inputs are all packed or all
 * unpacked. */
tuna_status tuna_pretok_concat(const tuna_pretok *const *parts, int n, tuna_pretok **out);

#include "tuna_tokenizer.h"
#include "tuna_data.h"

#ifdef __cplusplus
}
#endif
#endif
