/* tuna_train.h — the trainer: full fine-tuning with PyTorch/Transformers
 * semantics (AdamW, HF schedules, gradient accumulation, global-norm clipping,
 * token- or sequence-normalised loss) over pre-tokenized sequences.
 * The library reports progress through a callback; it never prints. */
#ifndef TUNA_TRAIN_H
#define TUNA_TRAIN_H
#include "tuna.h"
#include "tuna_dpo.h"

typedef enum { TUNA_SCHED_CONSTANT = 0, TUNA_SCHED_LINEAR = 1, TUNA_SCHED_COSINE = 2 } tuna_schedule;
typedef enum { TUNA_LOSS_NORM_TOKEN = 0, TUNA_LOSS_NORM_SEQUENCE = 1 } tuna_loss_norm;

/* A caller-driven step (GRPO): what its forwards and backwards sum up. */
typedef struct {
    double loss;            /* the step's loss (before the update) */
    int64_t tokens;         /* tokens the loss counts (0: no update) */
    int64_t input_tokens;   /* all tokens processed */
} tuna_step_result;
/* Runs the forwards and backwards of optimizer step `step` (0-based) over
 * the data's items items[0 .. n) on m, ADDING the gradient of the step's
 * loss to m's gradients (zeroed before the call, adapter dropout on); the
 * trainer then clips and updates. */
typedef tuna_status (*tuna_step_fn)(void *ctx, tuna_model *m, int step, const int64_t *items, int n, tuna_step_result *r);

typedef struct {
    float lr;              /* peak learning rate */
    float beta1, beta2, eps;
    float weight_decay;    /* decoupled; not applied to biases and norm weights */
    float grad_clip;       /* max global L2 norm; 0 disables */
    tuna_schedule schedule;
    double warmup;         /* < 1: fraction of steps; >= 1: number of steps */
    int batch;             /* sequences per optimizer step */
    int micro_batch;       /* sequences per forward/backward */
    int seq_len;           /* longer sequences are truncated (right) */
    int steps;             /* optimizer steps; 0: epochs * ceil(n / batch) */
    double epochs;         /* used when steps == 0 */
    uint64_t seed;
    int shuffle;
    tuna_loss_norm loss_norm;
    int grad_checkpoint;   /* recompute each block in backward instead of keeping activations */
    int checkpoint_layers; /* with grad_checkpoint 0: recompute only the first N blocks (0: none; at most L) */
    int bf16;              /* GEMMs in bf16 (tuna_model_set_bf16, Transformers' bf16=True) where the CPU can */
    const double *task_weights; /* [data.n_tasks] sampling weights for multi-task data, or NULL (uniform by size) */
    int eval_max_len;      /* longest sequence later given to tuna_trainer_eval / _eval_dpo (0: none);
                            * buffers are sized for min(seq_len, max(train, eval)) so nothing is cut */
    /* Preference optimisation (NULL: language-model loss). The data then holds
     * pairs (sequence 2i chosen, 2i+1 rejected, prompts masked, as
     * tuna_dataset_load_preferences writes them); batch and micro_batch count
     * pairs (a micro-batch is 2 x micro_batch rows); ref_logps[data.n] are the
     * reference model's log-probabilities of each sequence's counted tokens
     * (minus tuna_eval_losses' sums), computed before training so only one model is in
     * memory. The step's loss is the mean preference loss over its pairs. */
    const tuna_dpo_args *dpo;
    const double *ref_logps;   /* NULL for the reference-free losses (ORPO, SimPO) */
    /* KTO (dpo->type TUNA_DPO_KTO): sequence 2i is item i's prompt + completion,
     * 2i+1 the same prompt with a mismatched completion (the KL row, no
     * gradient); kto_desirable[data.n / 2] its label (1 desirable, 0 not) */
    const uint8_t *kto_desirable;
    /* Caller-driven steps (NULL: the trainer's own losses): each step takes
     * the next `batch` items of the data stream (one per sequence of data;
     * GRPO's prompts) and hands them to step_fn; with step_reuse N > 1 the
     * stream advances every N steps, N consecutive steps receiving the same
     * items (GRPO's num_iterations; an epoch is then step_reuse times as
     * many steps). Activations are prepared for
     * step_rows x micro_batch rows of seq_len (not cut to the data's
     * longest). One process only. */
    tuna_step_fn step_fn;
    void *step_ctx;
    int step_rows;
    int step_reuse;
} tuna_train_args;

/* Defaults: lr 2e-5, betas 0.9/0.999, eps 1e-8, weight decay 0, clip 1.0,
 * linear schedule, warmup 0, batch 8, micro-batch 8, seq_len 512, 1 epoch,
 * seed 0, shuffle on, token normalisation. */
void tuna_train_args_default(tuna_train_args *a);

/* Learning-rate multiplier of optimizer step `step` (0-based) out of `total`,
 * as HF get_scheduler's lambdas (step 0 of a warmup has multiplier 0). */
double tuna_schedule_factor(tuna_schedule s, int step, int warmup_steps, int total);
/* Warmup steps for args and a total step count. */
int tuna_warmup_steps(const tuna_train_args *a, int total);

typedef struct {
    int step, total_steps;  /* step is 1-based after the update */
    double epoch;           /* fractional epoch reached */
    double loss;            /* mean loss of the step (before the update) */
    double lr;              /* learning rate used by this step */
    double grad_norm;       /* global L2 norm before clipping */
    int64_t tokens;         /* counted tokens in the step */
    int64_t tokens_seen;    /* all input tokens processed so far */
    double step_seconds, elapsed_seconds, tokens_per_second;
    double comm_seconds;    /* of step_seconds, spent summing across ranks (data-parallel runs) */
    tuna_dpo_stats dpo;     /* preference runs: means over the step's pairs */
} tuna_step_info;

typedef struct tuna_trainer tuna_trainer;
/* Data-parallel runs: 1 when each block's gradients are summed across ranks
 * during backward (bucketed, overlapping), 0 when after it. */
int tuna_trainer_overlaps_comm(const tuna_trainer *t);

/* Creates a trainer over model m (not owned) and data (not owned, must outlive
 * the trainer). Allocates gradients, optimizer moments (of the adapter's tensors
 * when one is attached, else of every weight) and activations for
 * (micro_batch, seq_len) up front. Threads: a trainer and its model are used
 * by one thread at a time (it runs the model's forward and backward); the
 * data is only read. */
tuna_status tuna_trainer_create(tuna_trainer **out, tuna_model *m, const tuna_pretok *data,
                                const tuna_train_args *args);
void tuna_trainer_free(tuna_trainer *t);
int tuna_trainer_total_steps(const tuna_trainer *t);
/* Runs one optimizer step; fills info. Returns TUNA_ERR_NUMERIC (naming the
 * step) if the loss or gradient norm is not finite; the weights are then left
 * as they were before the step. */
tuna_status tuna_trainer_step(tuna_trainer *t, tuna_step_info *info);
/* Writes a complete checkpoint into dir (created): the attached adapter
 * (adapter_config.json + adapter_model.safetensors) or model.safetensors and
 * config.json (F32), optimizer.safetensors (AdamW moments), trainer_state.json
 * (step, data position, tokens seen, elapsed time, the caller's extra JSON
 * object string or NULL, and "resume_check": what a resume must agree on, see
 * tuna_trainer_resume). Files are written under temporary names and renamed. */
tuna_status tuna_trainer_save(tuna_trainer *t, const char *dir, const char *extra_json);
/* Records the caller's own settings (a flat JSON object such as
 * {"eval_every":5}) in the checkpoints this trainer writes; a resume lists
 * those that changed in its notice. Keys the trainer records itself keep the
 * trainer's values. TUNA_ERR_ARG when settings_json is not a JSON object. */
tuna_status tuna_trainer_set_run_settings(tuna_trainer *t, const char *settings_json);
/* Records settings of the caller's that a resume must agree on (a flat JSON
 * object, e.g. {"ref_model":"<fingerprint>"} of a preference run's reference
 * model): a resume whose value differs is refused naming the key, as for the
 * trainer's own exact settings (a checkpoint without the key is not checked).
 * TUNA_ERR_ARG when settings_json is not a JSON object. */
tuna_status tuna_trainer_set_exact_settings(tuna_trainer *t, const char *settings_json);
/* Restores a checkpoint written by tuna_trainer_save into a trainer created
 * with the same model and arguments: weights, moments, step and data
 * position, so the next steps are exactly those of an uninterrupted run.
 * Before loading anything it compares the checkpoint's record of its run with
 * this trainer's (fingerprints taken when each trainer was created): different
 * training sequences (tokens, masks, order, count), a different starting model
 * (config or weights), method or adapter settings, batch, micro-batch, seq_len,
 * packing, schedule, seed, shuffle, loss normalisation, task weights or
 * preference loss are TUNA_ERR_ARG naming each difference (exact resume is
 * impossible); a changed learning rate, other optimizer setting, warmup, step
 * count, gradient checkpointing, rank count or caller setting is accepted and
 * listed by tuna_trainer_resume_notice. A checkpoint without that record
 * (older tuna) is resumed when its number of sequences matches, with a notice
 * saying the rest was not checked. If extra_json is not NULL it receives a
 * malloc'd copy of the extra object. */
tuna_status tuna_trainer_resume(tuna_trainer *t, const char *dir, char **extra_json);
/* After a successful tuna_trainer_resume: one line naming what changed since
 * the checkpoint ("lr 0.001 -> 0.0005, steps 10 -> 15") or what could not be
 * checked; "" when nothing. Owned by the trainer. */
const char *tuna_trainer_resume_notice(const tuna_trainer *t);
int tuna_trainer_step_count(const tuna_trainer *t);
/* Sequences of each task consumed so far (counts[n_tasks]). */
void tuna_trainer_task_counts(const tuna_trainer *t, int64_t *counts);
/* Mean loss over all counted tokens of a data set (no gradients). On failure
 * (e.g. a token id outside the vocabulary) returns the forward's status and
 * leaves *loss and *tokens unchanged. */
tuna_status tuna_trainer_eval(tuna_trainer *t, const tuna_pretok *data, double *loss, int64_t *tokens);
/* Preference metrics (means over pairs) of pair data with its reference
 * log-probabilities ref[data.n] (no gradients; DPO trainers only). */
tuna_status tuna_trainer_eval_dpo(tuna_trainer *t, const tuna_pretok *data, const double *ref, tuna_dpo_stats *stats);
#endif
