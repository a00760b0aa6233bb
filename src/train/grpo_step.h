/* grpo_step.h — one GRPO optimizer step as the trainer's caller-driven step
 * (tuna_train_args.step_fn): a generation batch (groups of G completions
 * with their rewards, from a filler: given completions or sampling) turned
 * into advantages, old and reference log-probabilities kept for the
 * num_iterations steps that reuse it, then micro-batch by micro-batch the
 * policy's forward, the per-token loss (grpo.h) and a backward with
 * per-position weights -dL/dlogp. The step's metrics, TRL's, are kept for
 * the caller. */
#ifndef TUNA_TRAIN_GRPO_STEP_H
#define TUNA_TRAIN_GRPO_STEP_H
#include "train/grpo.h"
#include "tuna_train.h"

/* One generation batch: n_groups x G rows, row r's prompt + completion in
 * tok[r * T ..] (plen[r] + clen[r] <= T tokens). */
typedef struct {
    int rows, K, T;
    int *plen, *clen;   /* [rows] */
    int *eos_end;       /* [rows] the completion ends with its EOS */
    int32_t *tok;       /* [rows * T] */
    double *reward;     /* [rows] weighted sum of the functions */
    double *per_func;   /* [rows * K] each function's value */
} grpo_rows;

/* Fills rows[0 .. n * G) for generation batch gen of the items (prompts)
 * items[0 .. n): prompts, completions, rewards. */
typedef tuna_status (*grpo_fill_fn)(void *ctx, tuna_model *m, int64_t gen, const int64_t *items, int n, grpo_rows *rows);

typedef struct {
    grpo_loss_args loss;
    grpo_scale scale;
    int G, batch, micro_batch; /* groups per step and per forward */
    int num_iterations;        /* optimizer steps per generation batch */
    int T;                     /* longest prompt + completion */
    int K;                     /* reward functions */
    double temperature;        /* the sampling temperature: log-probabilities of softmax(logits / it), as TRL's */
    tuna_model *ref;           /* beta != 0, full training: the frozen starting model (not owned);
                                * NULL: the policy with its adapter switched off */
    grpo_fill_fn fill;
    void *fill_ctx;
} grpo_step_config;

/* TRL's per-step metrics of the last step */
typedef struct {
    grpo_reward_stats rs;
    double *fmean, *fstd;      /* [K] per function (owned by the step) */
    double kl, clip_low, clip_high, clip_region;
    double len_mean, len_min, len_max, clipped_ratio;
    int64_t gen_tokens;        /* prompt + completion tokens of the generation batch */
} grpo_metrics;

typedef struct grpo_step grpo_step;

/* Buffers for c's sizes, all allocated here (none in a step). */
tuna_status grpo_step_new(grpo_step **out, const grpo_step_config *c);
void grpo_step_free(grpo_step *s);
/* tuna_step_fn: ctx is the grpo_step */
tuna_status grpo_step_run(void *ctx, tuna_model *m, int step, const int64_t *items, int n, tuna_step_result *r);
const grpo_metrics *grpo_step_metrics(const grpo_step *s);
#endif
