/* mem_plan.h — the one memory estimator: the peak RSS of a tuna command
 * (sft, pretrain, dpo for every method; generate, eval, serve as stored,
 * NF4 or converted to bf16) from a checkpoint's headers (ckpt_scan) and the command's options,
 * with the size functions the allocators themselves use
 * (tuna_model_activation_bytes, tuna_decoder_bytes, peft_plan,
 * tuna_nf4_bytes). `tuna plan`, `tuna info` and the check that refuses a
 * training run that cannot fit all call it.
 *
 * Storage it assumes (issue 21): frozen weights stay as stored and are used
 * in place from the mapped file (bytes = their stored size); QLoRA keeps the
 * block linears in NF4 and the rest as stored; trainable tensors are fp32
 * with an fp32 gradient and two fp32 AdamW moments; --method full converts
 * every weight to fp32 (loading holds one tensor's mapped pages beside it). */
#ifndef TUNA_CLI_MEM_PLAN_H
#define TUNA_CLI_MEM_PLAN_H
#include <stddef.h>
#include <stdint.h>

#include "cli/ckpt_scan.h"
#include "tuna.h"
#include "tuna_peft.h"
#include "tuna_train.h"

typedef enum { MEM_SFT, MEM_PRETRAIN, MEM_DPO, MEM_GENERATE, MEM_EVAL, MEM_SERVE, MEM_GRPO } mem_job;

typedef struct {
    mem_job job;
    const char *method;    /* full, lora, qlora, ia3, prompt */
    tuna_peft_config pc;   /* rank, targets, virtual tokens (type follows method) */
    int batch, micro, seq_len, grad_checkpoint;
    int ckpt_layers;       /* without grad_checkpoint: blocks checkpointed (the first ones) */
    int ref_free;          /* dpo with a reference-free loss (orpo, simpo): no reference pass */
    int64_t data_tokens;   /* pre-tokenized data held (0: not counted) */
    int nf4;               /* inference: --quant nf4 */
    int bf16;              /* inference: --dtype bf16 (2-D weights converted to bf16) */
    int rows;              /* inference: sequences decoded at once (serve --parallel) */
    int bf16_compute;      /* training: bf16 GEMMs (--bf16; counted where this CPU has them) */
    int group;             /* grpo: rows per prompt (G; 0 or 1: one) */
} mem_opts;

typedef struct {
    double frozen;      /* weights not trained, as stored / NF4 */
    double trainable;   /* fp32 trained weights */
    double grads, moments;
    double acts;        /* activations (training) or decoder / eval buffers */
    double adapter;     /* adapter buffers for one micro-batch */
    double scratch;     /* NF4 dequantization tile */
    double data;        /* token data and the trainer's batch buffers */
    double baseline;    /* process baseline: code, libraries, BLAS buffers */
    double load;        /* while loading: final weights + one tensor in flight */
    double reference;   /* dpo: the reference pass; grpo: the sampler's decoder and, full, the
                         * frozen reference copy (counted whether or not --beta needs it) */
    double bf16;        /* bf16 compute: weight copies, rounded activations, tile */
    double peak;        /* predicted peak RSS */
    int rows, T;        /* rows per micro-batch and positions (prefix included) */
} mem_est;

void mem_opts_init(mem_opts *o, mem_job job);
/* method "full" ... "prompt" to the adapter type; -1 when unknown. */
int mem_method_type(const char *method);
tuna_status mem_estimate(const ckpt_info *ci, const mem_opts *o, mem_est *e);

/* Bytes this process may still use: TUNA_MEM_AVAILABLE (bytes, K/M/G
 * suffixes), else the lower of /proc/meminfo's MemAvailable and the cgroup
 * (v2, or v1) limit minus usage; what it came from in src. -1 unknown. */
int64_t mem_available(char *src, size_t n);
/* "16G", "512 MiB", "1073741824" to bytes; -1 when not a size. */
int64_t mem_parse_bytes(const char *s);

/* The fewest blocks to checkpoint (the first ones) for o's predicted peak to
 * be at most cap, set in o->ckpt_layers: 0 when it fits with none, -1 (and 0
 * set) when it does not fit even with all. o->grad_checkpoint must be 0. */
int mem_fit_checkpoint(const ckpt_info *ci, mem_opts *o, double cap);

/* The check sft, pretrain and dpo run before reading any weight: 0 to go on;
 * 2 after one line (needed, available, the options that would fit) when the
 * predicted peak exceeds the memory available (the lower of
 * mem_available and max_memory when > 0). When the run fits only by
 * checkpointing some blocks and the user set no checkpointing, it sets
 * a->checkpoint_layers to the fewest that fit and goes on (a note on stderr
 * unless quiet). model: the model folder (or pretrain's config.json). */
int mem_check_train(const char *cmd, const char *model, mem_job job, const char *method, const tuna_peft_config *pc,
                    int64_t max_memory, int quiet, tuna_train_args *a);
#endif
