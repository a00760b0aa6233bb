/* trainer.c — optimizer steps with PyTorch/Transformers semantics.
 *
 * One optimizer step takes the next `batch` sequences of the data stream
 * (epoch permutations concatenated, seeded), splits them into micro-batches,
 * and accumulates gradients normalised over the whole step (token: 1/total
 * counted tokens; sequence: 1/(count_i * sequences)), so accumulation gives
 * the gradient of one big batch. Then global-norm clipping
 * (torch.nn.utils.clip_grad_norm_) and AdamW (torch.optim.AdamW: decoupled
 * decay, bias correction), with decay only on weight matrices and embeddings
 * (HF Trainer excludes biases and norm weights). Everything the step needs is
 * allocated in tuna_trainer_create.
 * Preference runs (args.dpo) take pairs instead of sequences: each micro-batch
 * is one forward of the chosen and rejected rows, the preference loss on
 * their log-probabilities (minus the row losses) against the cached
 * reference ones, and one backward with per-row weights -dL/dlogp scaled by
 * the micro-batch's share of the step's pairs (TRL's mean over the batch).
 * Caller-driven runs (args.step_fn, GRPO) hand the step's items to the
 * caller, which runs the forwards and backwards; clipping, AdamW and
 * checkpoints stay here, the stream advancing every step_reuse steps. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/mix.h"
#include "core/prof.h"
#include "core/rng.h"
#include "data/pretok_internal.h"
#include "kernels/kernels.h"
#include "model/adapter_hooks.h"
#include "model/model_internal.h"
#include "train/resume_check.h"
#include "tuna_dist.h"
#include "tuna_train.h"

struct tuna_trainer {
    tuna_model *m;
    const tuna_pretok *data;
    tuna_train_args a;
    int total_steps, warmup_steps, step;
    int64_t stream_pos;        /* sequences consumed so far */
    float *adam_m, *adam_v;    /* [n_weights] */
    int grads_zero;            /* the last update left the gradients zero */
    uint8_t *decay;            /* [n_params] */
    int64_t *perm;             /* [n] permutation of the current epoch (per task range) */
    int64_t perm_epoch;
    /* multi-task mixing: positions are generated in order, choosing a task by
     * weight with a seeded hash of the position, then that task's next sequence */
    int n_tasks;
    double *cum_w;             /* [n_tasks] cumulative weights, last = 1 */
    int64_t *task_cursor;      /* [n_tasks] sequences of each task handed out */
    int64_t *task_epoch;       /* [n_tasks] epoch whose permutation is in perm */
    int64_t mix_pos;           /* next stream position to generate */
    int64_t *task_used;        /* [n_tasks] sequences consumed by finished steps */
    int64_t *seq_idx;          /* [batch] items (sequences, or pairs for DPO) */
    int64_t n_items;           /* sequences, or pairs (data->n / 2) for DPO */
    int rows_per_item;         /* 1, or 2 for DPO */
    int64_t *row_idx;          /* [rows_per_item * micro_batch] sequences of one micro-batch */
    double *d_pc, *d_pr, *pl_c, *pl_r, *rl_c, *rl_r; /* [micro_batch] DPO per-pair values */
    int64_t *n_c, *n_r;        /* [micro_batch] counted tokens of the chosen / rejected rows */
    uint8_t *des;              /* [micro_batch] KTO: the items' labels */
    /* ORPO: per-position weights and log-probabilities of a micro-batch's rows,
     * and each chosen row's first response position */
    float *tok_w;              /* [2 micro_batch, seq_len] */
    double *tok_lp;            /* [2 micro_batch, seq_len] */
    int *resp0;                /* [micro_batch] */
    tuna_dpo_args dpo;
    int64_t *seq_cnt;          /* [batch] counted tokens per sequence */
    int32_t *ids, *labels, *pos; /* [micro_batch * seq_len] */
    float *row_w;              /* [micro_batch] */
    double *row_loss;          /* [micro_batch] */
    int64_t tokens_seen;
    double elapsed;
    /* data-parallel: the trainable gradients of each block (an offset range)
     * are summed across ranks as soon as the step's last backward finishes
     * that block; the rest (embeddings, final norm, head) at the end */
    int overlap, launched;
    int64_t *layer_lo, *layer_hi;  /* [L]; lo == hi: nothing trainable there */
    int64_t (*rest)[2];            /* [n_rest] offset ranges outside the blocks */
    int n_rest;
    float *grad_base;
    tuna_status comm_st;
    json_t *run_desc;          /* what a checkpoint must agree on to be resumed (resume_check.h) */
    char resume_notice[2048];  /* what the last resume found changed or could not check, or "" */
};

void tuna_train_args_default(tuna_train_args *a) {
    memset(a, 0, sizeof *a);
    a->lr = 2e-5f;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->weight_decay = 0.0f;
    a->grad_clip = 1.0f;
    a->schedule = TUNA_SCHED_LINEAR;
    a->warmup = 0;
    a->batch = 8;
    a->micro_batch = 8;
    a->seq_len = 512;
    a->steps = 0;
    a->epochs = 1;
    a->seed = 0;
    a->shuffle = 1;
    a->loss_norm = TUNA_LOSS_NORM_TOKEN;
}

double tuna_schedule_factor(tuna_schedule s, int step, int warmup, int total) {
    if (s == TUNA_SCHED_CONSTANT) {
        /* HF "constant_with_warmup" when warmup > 0, plain "constant" otherwise */
        return step < warmup ? (double)step / (warmup > 1 ? warmup : 1) : 1.0;
    }
    if (step < warmup) return (double)step / (warmup > 1 ? warmup : 1);
    double progress = (double)(step - warmup) / (double)(total - warmup > 1 ? total - warmup : 1);
    if (s == TUNA_SCHED_LINEAR) {
        double f = (double)(total - step) / (double)(total - warmup > 1 ? total - warmup : 1);
        return f > 0 ? f : 0;
    }
    double f = 0.5 * (1.0 + cos(M_PI * progress));
    return f > 0 ? f : 0;
}

int tuna_warmup_steps(const tuna_train_args *a, int total) {
    if (a->warmup >= 1) return (int)a->warmup;
    if (a->warmup <= 0) return 0;
    return (int)ceil(a->warmup * total); /* HF: ceil(num_training_steps * warmup_ratio) */
}

void tuna_trainer_free(tuna_trainer *t) {
    if (!t) return;
    free(t->adam_m);
    free(t->adam_v);
    free(t->decay);
    free(t->perm);
    free(t->cum_w);
    free(t->task_cursor);
    free(t->task_epoch);
    free(t->task_used);
    free(t->seq_idx);
    free(t->seq_cnt);
    free(t->ids);
    free(t->labels);
    free(t->pos);
    free(t->row_w);
    free(t->row_loss);
    free(t->row_idx);
    free(t->d_pc); free(t->d_pr); free(t->pl_c); free(t->pl_r); free(t->rl_c); free(t->rl_r);
    free(t->n_c); free(t->n_r); free(t->des);
    free(t->tok_w); free(t->tok_lp); free(t->resp0);
    free(t->layer_lo); free(t->layer_hi); free(t->rest);
    json_decref(t->run_desc);
    free(t);
}

/* the block index in a parameter name ("...layers.3...", "...h.3..."), or -1 */
static int layer_of(const char *name) {
    const char *p = strstr(name, "layers.");
    if (p) p += 7;
    else {
        p = strncmp(name, "h.", 2) ? strstr(name, ".h.") : name - 1;
        if (p) p += 3;
    }
    if (!p || *p < '0' || *p > '9') return -1;
    return atoi(p);
}

/* Offsets of each block's trainable tensors; overlap only when every block's
 * tensors are one contiguous range (the parameter tables are laid out block
 * by block, so this holds for full training and for adapters). */
static void plan_buckets(tuna_trainer *t) {
    tuna_trainable tr;
    model_trainable(t->m, &tr);
    int L = t->m->cfg.L;
    t->layer_lo = malloc((size_t)L * sizeof(int64_t));
    t->layer_hi = malloc((size_t)L * sizeof(int64_t));
    int64_t *cnt = calloc((size_t)L, sizeof(int64_t));
    t->rest = malloc((size_t)(L + 2) * sizeof *t->rest);
    if (!t->layer_lo || !t->layer_hi || !cnt || !t->rest) { free(cnt); return; }
    for (int l = 0; l < L; l++) { t->layer_lo[l] = INT64_MAX; t->layer_hi[l] = INT64_MIN; }
    for (int i = 0; i < tr.n_params; i++) {
        const tuna_param *p = &tr.params[i].pub;
        int l = layer_of(p->name);
        if (l < 0 || l >= L || !p->data) continue;
        int64_t o = p->data - tr.weights;
        if (o < t->layer_lo[l]) t->layer_lo[l] = o;
        if (o + p->numel > t->layer_hi[l]) t->layer_hi[l] = o + p->numel;
        cnt[l] += p->numel;
    }
    int ok = 1;
    for (int l = 0; l < L; l++) {
        if (!cnt[l]) { t->layer_lo[l] = t->layer_hi[l] = 0; continue; }
        ok &= t->layer_hi[l] - t->layer_lo[l] == cnt[l];
    }
    free(cnt);
    if (!ok) return;
    /* the complement of the blocks' ranges in [0, W) */
    int64_t at = 0;
    t->n_rest = 0;
    for (;;) {
        int64_t next = INT64_MAX, end = 0;
        for (int l = 0; l < L; l++)
            if (t->layer_hi[l] > t->layer_lo[l] && t->layer_lo[l] >= at && t->layer_lo[l] < next) { next = t->layer_lo[l]; end = t->layer_hi[l]; }
        if (next == INT64_MAX) break;
        if (next > at && t->n_rest < L + 1) { t->rest[t->n_rest][0] = at; t->rest[t->n_rest][1] = next; t->n_rest++; }
        at = end;
    }
    if (at < tr.n_weights) { t->rest[t->n_rest][0] = at; t->rest[t->n_rest][1] = tr.n_weights; t->n_rest++; }
    t->overlap = 1;
}

static void grads_ready(void *ctx, int layer) {
    tuna_trainer *t = ctx;
    if (t->comm_st != TUNA_OK) return;
    tuna_status st = TUNA_OK;
    if (layer >= 0) {
        if (t->layer_hi[layer] > t->layer_lo[layer])
            st = tuna_dist_isum_f32(t->grad_base + t->layer_lo[layer], t->layer_hi[layer] - t->layer_lo[layer]);
        if (st == TUNA_OK) st = tuna_dist_progress();
    } else
        for (int i = 0; st == TUNA_OK && i < t->n_rest; i++) st = tuna_dist_isum_f32(t->grad_base + t->rest[i][0], t->rest[i][1] - t->rest[i][0]);
    t->comm_st = st;
    t->launched = 1;
}

/* around the backward of a rank's last micro-batch of a step: hand the
 * finished blocks to the reduction as they come */
static void overlap_begin(tuna_trainer *t) {
    if (!t->overlap) return;
    tuna_trainable tr;
    model_trainable(t->m, &tr);
    t->grad_base = tr.grads;
    t->m->grad_ready = grads_ready;
    t->m->grad_ready_ctx = t;
}

static void overlap_end(tuna_trainer *t) { t->m->grad_ready = NULL; }

int tuna_trainer_total_steps(const tuna_trainer *t) { return t->total_steps; }

/* the arguments and data a trainer can run with */
static tuna_status check_train_args(const tuna_train_args *a, const tuna_pretok *data) {
    if (a->batch <= 0 || a->micro_batch <= 0 || a->seq_len < 2)
        return core_fail(TUNA_ERR_ARG, "batch (%d), micro-batch (%d) must be positive and seq-len (%d) at least 2",
                         a->batch, a->micro_batch, a->seq_len);
    if (a->batch % a->micro_batch)
        return core_fail(TUNA_ERR_ARG, "batch %d is not a multiple of micro-batch %d", a->batch, a->micro_batch);
    if (!(a->lr >= 0) || !(a->beta1 >= 0 && a->beta1 < 1) || !(a->beta2 >= 0 && a->beta2 < 1) || !(a->eps > 0) ||
        !(a->weight_decay >= 0) || !(a->grad_clip >= 0))
        return core_fail(TUNA_ERR_ARG, "invalid optimizer settings (lr %g, betas %g/%g, eps %g, weight decay %g, clip %g)",
                         a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->grad_clip);
    if (data->n <= 0) return core_fail(TUNA_ERR_ARG, "no training sequences");
    if (a->batch % tuna_dist_size())
        return core_fail(TUNA_ERR_ARG, "--batch %d is not divisible by the %d ranks of this job (each rank takes an equal share of every batch)",
                         a->batch, tuna_dist_size());
    int ref_free = a->dpo && (a->dpo->type == TUNA_DPO_ORPO || a->dpo->type == TUNA_DPO_SIMPO);
    if (a->dpo && (data->n % 2 || (!a->ref_logps && !ref_free) || data->n_tasks > 1 || data->pos))
        return core_fail(TUNA_ERR_ARG, "preference training needs unpacked single-task pair data (2 sequences per pair) "
                                       "and reference log-probabilities");
    if (a->dpo && a->dpo->type == TUNA_DPO_KTO && !a->kto_desirable)
        return core_fail(TUNA_ERR_ARG, "KTO training needs each item's label (kto_desirable)");
    if (a->step_fn && (a->dpo || tuna_dist_size() > 1 || a->step_rows <= 0 || a->step_reuse < 0 || data->n_tasks > 1))
        return core_fail(TUNA_ERR_ARG, "caller-driven steps need one process, single-task data, step_rows > 0 and no preference loss");
    if (data->pos && a->loss_norm == TUNA_LOSS_NORM_SEQUENCE)
        return core_fail(TUNA_ERR_ARG, "sequence loss normalisation needs unpacked data (packed rows hold several examples)");
    return TUNA_OK;
}

/* steps, warmup, and the micro-batch and row length actually used (T no
 * longer than the longest sequence, at least 2) */
static void plan_schedule(tuna_trainer *t, const tuna_train_args *a, const tuna_pretok *data) {
    t->rows_per_item = a->dpo ? 2 : a->step_fn ? a->step_rows : 1;
    t->n_items = a->step_fn ? data->n : data->n / t->rows_per_item;
    if (a->dpo) t->dpo = *a->dpo;
    if (a->steps > 0) t->total_steps = a->steps;
    else {
        /* caller-driven steps: each batch of items serves step_reuse steps */
        double s = ceil(a->epochs * (double)t->n_items / a->batch) * (a->step_fn && a->step_reuse > 1 ? a->step_reuse : 1);
        t->total_steps = s < 1 ? 1 : s > 1e9 ? 1000000000 : (int)s;
    }
    t->warmup_steps = tuna_warmup_steps(a, t->total_steps);
    t->perm_epoch = -1;
    int longest = data->max_len > a->eval_max_len ? data->max_len : a->eval_max_len;
    int T = a->seq_len < longest || a->step_fn ? a->seq_len : longest;
    t->a.micro_batch = a->micro_batch < a->batch ? a->micro_batch : a->batch;
    t->a.seq_len = T < 2 ? 2 : T;
}

/* optimizer moments, the decay mask, the order and the per-micro-batch rows
 * (and DPO's per-pair sums) */
static tuna_status alloc_buffers(tuna_trainer *t, const tuna_trainable *tr) {
    const tuna_train_args *a = &t->a;
    int mb = a->micro_batch, T = a->seq_len, rows = t->rows_per_item * mb;
    int64_t W = tr->n_weights;
    t->adam_m = calloc((size_t)W, sizeof(float));
    t->adam_v = calloc((size_t)W, sizeof(float));
    t->decay = calloc((size_t)tr->n_params, 1);
    t->perm = malloc((size_t)t->data->n * sizeof(int64_t));
    t->seq_idx = malloc((size_t)a->batch * sizeof(int64_t));
    t->seq_cnt = malloc((size_t)a->batch * sizeof(int64_t));
    t->ids = malloc((size_t)rows * T * sizeof(int32_t));
    t->labels = malloc((size_t)rows * T * sizeof(int32_t));
    t->pos = malloc((size_t)rows * T * sizeof(int32_t));
    t->row_w = malloc((size_t)rows * sizeof(float));
    t->row_loss = malloc((size_t)rows * sizeof(double));
    t->row_idx = malloc((size_t)rows * sizeof(int64_t));
    int ok = 1;
    if (a->dpo) {
        double **dd[6] = {&t->d_pc, &t->d_pr, &t->pl_c, &t->pl_r, &t->rl_c, &t->rl_r};
        for (int k = 0; k < 6; k++) ok &= (*dd[k] = malloc((size_t)mb * sizeof(double))) != NULL;
        ok &= (t->n_c = malloc((size_t)mb * sizeof(int64_t))) != NULL;
        ok &= (t->n_r = malloc((size_t)mb * sizeof(int64_t))) != NULL;
        ok &= (t->des = malloc((size_t)mb)) != NULL;
        if (a->dpo->type == TUNA_DPO_ORPO) {
            ok &= (t->tok_w = malloc((size_t)rows * T * sizeof(float))) != NULL;
            ok &= (t->tok_lp = malloc((size_t)rows * T * sizeof(double))) != NULL;
            ok &= (t->resp0 = malloc((size_t)mb * sizeof(int))) != NULL;
        }
    }
    if (!ok || !t->adam_m || !t->adam_v || !t->decay || !t->perm || !t->seq_idx || !t->seq_cnt || !t->ids || !t->labels || !t->pos ||
        !t->row_w || !t->row_loss || !t->row_idx)
        return core_fail(TUNA_ERR_NOMEM, "out of memory for optimizer state (%.1f MiB)", 2.0 * W * 4 / 1048576.0);
    return TUNA_OK;
}

/* the tasks' cumulative sampling weights (given, or each task's size) */
static tuna_status plan_tasks(tuna_trainer *t, const tuna_pretok *data, const tuna_train_args *a) {
    t->n_tasks = data->n_tasks > 1 ? data->n_tasks : 1;
    t->cum_w = calloc((size_t)t->n_tasks, sizeof(double));
    t->task_cursor = calloc((size_t)t->n_tasks, sizeof(int64_t));
    t->task_epoch = calloc((size_t)t->n_tasks, sizeof(int64_t));
    t->task_used = calloc((size_t)t->n_tasks, sizeof(int64_t));
    if (!t->cum_w || !t->task_cursor || !t->task_epoch || !t->task_used) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (t->n_tasks == 1) return TUNA_OK;
    double sum = 0;
    for (int k = 0; k < t->n_tasks; k++) {
        int64_t size = data->task_off[k + 1] - data->task_off[k];
        double w = a->task_weights ? a->task_weights[k] : (double)size;
        if (!(w >= 0) || size == 0)
            return core_fail(TUNA_ERR_ARG, "task %d: weight %g and %lld sequences (need weight >= 0 and data)", k + 1, w,
                             (long long)size);
        sum += w;
        t->cum_w[k] = sum;
    }
    if (!(sum > 0)) return core_fail(TUNA_ERR_ARG, "task weights sum to 0");
    for (int k = 0; k < t->n_tasks; k++) t->cum_w[k] /= sum;
    for (int k = 0; k < t->n_tasks; k++) t->task_epoch[k] = -1;
    return TUNA_OK;
}

/* several ranks: gradients reduced in buckets while backward runs, if every
 * rank can (every rank must issue the same collectives) */
static tuna_status plan_overlap(tuna_trainer *t) {
    if (tuna_dist_size() <= 1) return TUNA_OK;
    if (!getenv("TUNA_NO_OVERLAP")) plan_buckets(t);
    int any_cannot = 0;
    tuna_status st = tuna_dist_any(!t->overlap, &any_cannot);
    if (st != TUNA_OK) return st;
    t->overlap = !any_cannot;
    return TUNA_OK;
}

tuna_status tuna_trainer_create(tuna_trainer **out, tuna_model *m, const tuna_pretok *data,
                                const tuna_train_args *args) {
    *out = NULL;
    tuna_status st = check_train_args(args, data);
    if (st != TUNA_OK) return st;
    tuna_trainer *t = calloc(1, sizeof *t);
    if (!t) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    t->m = m;
    t->data = data;
    t->a = *args;
    plan_schedule(t, args, data);
    if (args->bf16 && !tuna_model_bf16(m) && tuna_model_set_bf16(m, 1) < 0) {
        free(t);
        return TUNA_ERR_NOMEM;
    }
    t->a.bf16 = tuna_model_bf16(m); /* what runs: off where the CPU has no bf16 GEMM */
    int rows = t->rows_per_item * t->a.micro_batch;
    st = tuna_model_prepare_checkpointed(m, rows, t->a.seq_len,
                                         args->grad_checkpoint ? tuna_model_config(m)->L : args->checkpoint_layers);
    tuna_trainable tr;
    if (st == TUNA_OK) {
        model_trainable(m, &tr);
        st = alloc_buffers(t, &tr);
    }
    if (st == TUNA_OK) st = plan_tasks(t, data, args);
    if (st == TUNA_OK) {
        /* decay weight matrices and embeddings; not biases or norm weights (all 1-D) */
        for (int i = 0; i < tr.n_params; i++) t->decay[i] = tr.params[i].pub.ndim >= 2;
        /* before any checkpoint replaces the weights: the model's identity is the starting one */
        t->run_desc = resume_describe(m, data, args, t->total_steps, t->n_tasks > 1 ? t->cum_w : NULL, t->n_tasks);
        if (!t->run_desc) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    }
    if (st == TUNA_OK) st = plan_overlap(t);
    if (st != TUNA_OK) { tuna_trainer_free(t); return st; }
    *out = t;
    return TUNA_OK;
}

/* Fisher-Yates shuffle of p[0 .. n) with the PCG stream (seed, stream) */
static void shuffle_range(int64_t *p, int64_t n, uint64_t seed, uint64_t stream) {
    tuna_rng r;
    rng_seed(&r, seed, stream);
    for (int64_t k = n - 1; k > 0; k--) {
        int64_t j = (int64_t)(((uint64_t)rng_u32(&r) << 32 | rng_u32(&r)) % (uint64_t)(k + 1));
        int64_t tmp = p[k];
        p[k] = p[j];
        p[j] = tmp;
    }
}

/* the task-mixed stream: position -> sequence, generated in order */
static int64_t mixed_seq_at(tuna_trainer *t, int64_t pos) {
    if (pos < t->mix_pos) { /* going back (resume): replay from the start */
        t->mix_pos = 0;
        for (int k = 0; k < t->n_tasks; k++) { t->task_cursor[k] = 0; t->task_epoch[k] = -1; }
    }
    int64_t seq = 0;
    while (t->mix_pos <= pos) {
        double u = (double)(core_splitmix64(t->a.seed * 0x100000001b3ULL ^ (uint64_t)t->mix_pos) >> 11) / 9007199254740992.0;
        int k = 0;
        while (k < t->n_tasks - 1 && u >= t->cum_w[k]) k++;
        int64_t lo = t->data->task_off[k], n = t->data->task_off[k + 1] - lo;
        int64_t c = t->task_cursor[k]++, epoch = c / n, i = c % n;
        if (epoch != t->task_epoch[k]) {
            for (int64_t j = 0; j < n; j++) t->perm[lo + j] = lo + j;
            if (t->a.shuffle) shuffle_range(t->perm + lo, n, t->a.seed, ((uint64_t)(k + 1) << 32) | (uint64_t)epoch);
            t->task_epoch[k] = epoch;
        }
        seq = t->perm[lo + i];
        t->mix_pos++;
    }
    return seq;
}

void tuna_trainer_task_counts(const tuna_trainer *t, int64_t *counts) {
    for (int k = 0; k < t->n_tasks; k++) counts[k] = t->task_used[k];
}

static int task_of(const tuna_trainer *t, int64_t seq) {
    int k = 0;
    while (k < t->n_tasks - 1 && seq >= t->data->task_off[k + 1]) k++;
    return k;
}

static int64_t seq_at(tuna_trainer *t, int64_t pos) {
    if (t->n_tasks > 1) return mixed_seq_at(t, pos);
    int64_t n = t->n_items, epoch = pos / n, i = pos % n;
    if (!t->a.shuffle) return i;
    if (epoch != t->perm_epoch) {
        for (int64_t k = 0; k < n; k++) t->perm[k] = k;
        shuffle_range(t->perm, n, t->a.seed, (uint64_t)epoch + 1);
        t->perm_epoch = epoch;
    }
    return t->perm[i];
}

/* Fills the micro-batch buffers with sequences idx[0 .. nb) (truncated to
 * seq_len, right-padded); returns the padded length. */
static int fill_rows(tuna_trainer *t, const int64_t *idx, int nb, int64_t *input_tokens) {
    const tuna_pretok *d = t->data;
    int T = 1;
    for (int j = 0; j < nb; j++) {
        int64_t len = d->off[idx[j] + 1] - d->off[idx[j]];
        if (len > t->a.seq_len) len = t->a.seq_len;
        if (len > T) T = (int)len;
    }
    for (int j = 0; j < nb; j++) {
        int64_t o = d->off[idx[j]], len = d->off[idx[j] + 1] - o;
        if (len > t->a.seq_len) len = t->a.seq_len;
        *input_tokens += len;
        for (int k = 0; k < T; k++) {
            t->ids[j * T + k] = k < len ? d->ids[o + k] : 0;
            t->labels[j * T + k] = k < len ? d->labels[o + k] : -100;
            /* packed rows restart positions per example; padding attends to itself only */
            t->pos[j * T + k] = k < len ? (d->pos ? d->pos[o + k] : k) : 0;
        }
    }
    return T;
}

static int fill_micro(tuna_trainer *t, int j0, int nb, int64_t *input_tokens) {
    return fill_rows(t, t->seq_idx + j0, nb, input_tokens);
}

static int64_t counted_tokens(const tuna_trainer *t, const tuna_pretok *d, int64_t seq) {
    int64_t o = d->off[seq], len = d->off[seq + 1] - o, c = 0;
    if (len > t->a.seq_len) len = t->a.seq_len;
    for (int64_t k = 1; k < len; k++) c += d->labels[o + k] != -100;
    return c;
}

/* acc += w * s, field by field (means over pairs combine by pair share;
 * KTO's per-label means by their counts, divided out by kto_stats_finish) */
static void dpo_stats_add(tuna_dpo_stats *acc, const tuna_dpo_stats *s, double w, int kto) {
    double wc = kto ? s->count_chosen : w, wr = kto ? s->count_rejected : w;
    acc->loss += s->loss * w;
    acc->rewards_chosen += s->rewards_chosen * wc;
    acc->rewards_rejected += s->rewards_rejected * wr;
    acc->rewards_margins += s->rewards_margins * w;
    acc->rewards_accuracies += s->rewards_accuracies * w;
    acc->logps_chosen += s->logps_chosen * wc;
    acc->logps_rejected += s->logps_rejected * wr;
    acc->nll_loss += s->nll_loss * w;
    acc->log_odds_ratio += s->log_odds_ratio * w;
    acc->log_odds_chosen += s->log_odds_chosen * w;
    acc->kl += s->kl * w;
    acc->count_chosen += s->count_chosen;
    acc->count_rejected += s->count_rejected;
}

static void kto_stats_finish(tuna_dpo_stats *s) {
    if (s->count_chosen) { s->rewards_chosen /= s->count_chosen; s->logps_chosen /= s->count_chosen; }
    if (s->count_rejected) { s->rewards_rejected /= s->count_rejected; s->logps_rejected /= s->count_rejected; }
    s->rewards_margins = s->rewards_chosen - s->rewards_rejected;
}

/* ORPO: the chosen NLL in full; SimPO: cpo_alpha of it; else none */
static double nll_coef(const tuna_dpo_args *a) {
    return a->type == TUNA_DPO_ORPO ? 1.0 : a->type == TUNA_DPO_SIMPO ? a->cpo_alpha : 0.0;
}

/* the preference loss of one micro-batch's nb pairs (KTO: items) from its
 * row losses; d_pc, d_pr the derivatives (KTO: d_pr 0, the KL rows carry none) */
static tuna_status micro_loss(tuna_trainer *t, int nb, int64_t item0, const int64_t *pairs, tuna_dpo_stats *s) {
    for (int j = 0; t->dpo.type != TUNA_DPO_ORPO && j < nb; j++) {
        t->pl_c[j] = -t->row_loss[2 * j];
        t->pl_r[j] = -t->row_loss[2 * j + 1];
    }
    if (t->dpo.type != TUNA_DPO_KTO)
        return tuna_dpo_loss(&t->dpo, nb, t->pl_c, t->pl_r, t->rl_c, t->rl_r, t->n_c, t->n_r, t->d_pc, t->d_pr, s);
    for (int j = 0; j < nb; j++) t->des[j] = t->a.kto_desirable[pairs[item0 + j]];
    double kl = tuna_kto_kl(nb, t->pl_r, t->rl_r);
    for (int j = 0; j < nb; j++) t->d_pr[j] = 0;
    return tuna_kto_loss(&t->dpo, nb, t->pl_c, t->rl_c, t->des, kl, t->d_pc, s);
}

/* the NLL's tokens in the chosen rows of pairs [0, npairs): the counted ones
 * (SimPO), or every predicted one, prompt included (ORPO) */
static int64_t chosen_tokens(const tuna_trainer *t, const int64_t *pairs, int npairs, int whole) {
    int64_t n = 0;
    for (int j = 0; j < npairs; j++) {
        int64_t s = 2 * pairs[j], len = t->data->off[s + 1] - t->data->off[s];
        if (len > t->a.seq_len) len = t->a.seq_len;
        n += whole ? (len > 1 ? len - 1 : 0) : counted_tokens(t, t->data, s);
    }
    return n;
}

/* ORPO (TRL's ORPOTrainer): the chosen NLL is over the whole chosen row,
 * prompt included, so the chosen rows' prompt labels are unmasked after
 * fill_rows; resp0[j] keeps each one's first response position */
static void orpo_unmask(tuna_trainer *t, int nb, int T) {
    for (int j = 0; j < nb; j++) {
        int32_t *lab = t->labels + (size_t)2 * j * T;
        const int32_t *ids = t->ids + (size_t)2 * j * T;
        int r0 = 0;
        while (r0 < T && lab[r0] == -100) r0++;
        t->resp0[j] = r0;
        for (int k = 1; k < r0; k++) lab[k] = ids[k];
    }
}

/* ORPO: the chosen rows' response log-probabilities (position k scores
 * label k + 1) into pl_c, their NLL sum returned; rejected rows as usual */
static tuna_status orpo_logps(tuna_trainer *t, int nb, int T, double *nll_sum) {
    tuna_status st = tuna_model_token_logps(t->m, 2 * nb, T, t->tok_lp);
    if (st != TUNA_OK) return st;
    *nll_sum = 0;
    for (int j = 0; j < nb; j++) {
        const double *lp = t->tok_lp + (size_t)2 * j * T;
        double resp = 0, all = 0;
        for (int k = 0; k + 1 < T; k++) {
            all += lp[k];
            if (k + 1 >= t->resp0[j]) resp += lp[k];
        }
        t->pl_c[j] = resp;
        t->pl_r[j] = -t->row_loss[2 * j + 1];
        *nll_sum -= all;
    }
    return TUNA_OK;
}

/* ORPO's backward weights: chosen rows by position (the NLL's coef / n_nll
 * everywhere, -dL/dlogp on the response), rejected rows by row */
static void orpo_weights(tuna_trainer *t, int nb, int T, double share, double nll_w) {
    for (int j = 0; j < nb; j++) {
        float *wc = t->tok_w + (size_t)2 * j * T, *wr = wc + T;
        for (int k = 0; k < T; k++) {
            wc[k] = (float)(nll_w + (k + 1 >= t->resp0[j] ? -t->d_pc[j] * share : 0));
            wr[k] = 1.0f;
        }
        t->row_w[2 * j] = 1.0f;
        t->row_w[2 * j + 1] = (float)(-t->d_pr[j] * share);
    }
}

/* Preference loss of pairs pairs[0 .. npairs) of t->data (reference ref;
 * NULL for ORPO and SimPO), micro-batch by micro-batch; with train,
 * accumulates the gradient of the mean loss (ORPO, SimPO: plus the chosen
 * rows' token-mean NLL over all npairs, times nll_coef; ORPO's over whole
 * rows through per-position weights). Stats are means over the pairs. */
static tuna_status run_dpo(tuna_trainer *t, const double *ref, const int64_t *pairs, int npairs, int train,
                           tuna_dpo_stats *out, int64_t *tokens_out, int64_t *input_tokens) {
    const tuna_pretok *d = t->data; /* fill_rows reads the rows from it too */
    tuna_dpo_stats acc = {0};
    int64_t tokens = 0;
    int kto = t->dpo.type == TUNA_DPO_KTO;
    int orpo = t->dpo.type == TUNA_DPO_ORPO, with_nll = orpo || t->dpo.type == TUNA_DPO_SIMPO; /* reported even when not trained */
    if (with_nll) ref = NULL; /* reference-free */
    double coef = nll_coef(&t->dpo), nll_n = with_nll ? (double)chosen_tokens(t, pairs, npairs, orpo) : 0;
    /* training: this rank's share of the step's pairs (the shares are summed by the caller) */
    int lo = train ? (int)((int64_t)npairs * tuna_dist_rank() / tuna_dist_size()) : 0;
    int hi = train ? (int)((int64_t)npairs * (tuna_dist_rank() + 1) / tuna_dist_size()) : npairs;
    for (int j0 = lo; j0 < hi; j0 += t->a.micro_batch) {
        int nb = hi - j0 < t->a.micro_batch ? hi - j0 : t->a.micro_batch;
        for (int j = 0; j < nb; j++) {
            int64_t p = pairs[j0 + j];
            t->row_idx[2 * j] = 2 * p;
            t->row_idx[2 * j + 1] = 2 * p + 1;
            t->n_c[j] = counted_tokens(t, d, 2 * p);
            t->n_r[j] = counted_tokens(t, d, 2 * p + 1);
            t->rl_c[j] = ref ? ref[2 * p] : 0;
            t->rl_r[j] = ref ? ref[2 * p + 1] : 0;
            tokens += t->n_c[j] + (kto ? 0 : t->n_r[j]);
        }
        int T = fill_rows(t, t->row_idx, 2 * nb, input_tokens);
        if (orpo) orpo_unmask(t, nb, T);
        tuna_batch bt = {2 * nb, T, t->ids, t->labels, NULL, t->row_w, orpo ? t->tok_w : NULL};
        tuna_loss l;
        tuna_status st = tuna_model_forward(t->m, &bt, &l);
        if (st != TUNA_OK) return st;
        st = tuna_model_row_losses(t->m, 2 * nb, T, t->row_loss);
        double nll_sum = 0;
        if (st == TUNA_OK && orpo) st = orpo_logps(t, nb, T, &nll_sum);
        for (int j = 0; !orpo && j < nb; j++) nll_sum += t->row_loss[2 * j];
        tuna_dpo_stats s;
        if (st == TUNA_OK) st = micro_loss(t, nb, j0, pairs, &s);
        if (st != TUNA_OK) return st;
        double share = (double)nb / npairs, nll_w = nll_n > 0 ? coef / nll_n : 0;
        dpo_stats_add(&acc, &s, share, kto);
        if (nll_n > 0) acc.nll_loss += nll_sum / nll_n;
        if (train) {
            /* row loss = -logp, so its weight is -dL/dlogp (and the NLL's 1/tokens) */
            for (int j = 0; !orpo && j < nb; j++) {
                t->row_w[2 * j] = (float)(-t->d_pc[j] * share + nll_w);
                t->row_w[2 * j + 1] = (float)(-t->d_pr[j] * share);
            }
            if (orpo) orpo_weights(t, nb, T, share, nll_w);
            int last = j0 + nb >= hi;
            if (last) overlap_begin(t);
            st = tuna_model_backward(t->m, &bt, 1.0f);
            if (last) overlap_end(t);
            if (st != TUNA_OK) return st;
        } else t->m->have_forward = 0;
    }
    if (kto) kto_stats_finish(&acc);
    acc.loss += coef * acc.nll_loss;
    *out = acc;
    *tokens_out = tokens;
    return TUNA_OK;
}

static tuna_status run_batch(tuna_trainer *t, int nseq, int train, double *loss_out, int64_t *tokens_out,
                             int64_t *input_tokens) {
    const tuna_pretok *d = t->data;
    int64_t total = 0, seqs_counted = 0;
    for (int j = 0; j < nseq; j++) {
        int64_t o = d->off[t->seq_idx[j]], len = d->off[t->seq_idx[j] + 1] - o, c = 0;
        if (len > t->a.seq_len) len = t->a.seq_len;
        for (int64_t k = 1; k < len; k++) c += d->labels[o + k] != -100;
        t->seq_cnt[j] = c;
        total += c;
        seqs_counted += c > 0;
    }
    *tokens_out = total;
    *loss_out = 0;
    if (total == 0) return TUNA_OK;
    int seqnorm = t->a.loss_norm == TUNA_LOSS_NORM_SEQUENCE;
    double loss = 0;
    /* training: this rank's share of the step's sequences; the counts above
     * are the whole step's, so every rank normalises by the global total */
    int lo = train ? (int)((int64_t)nseq * tuna_dist_rank() / tuna_dist_size()) : 0;
    int hi = train ? (int)((int64_t)nseq * (tuna_dist_rank() + 1) / tuna_dist_size()) : nseq;
    for (int j0 = lo; j0 < hi; j0 += t->a.micro_batch) {
        int nb = hi - j0 < t->a.micro_batch ? hi - j0 : t->a.micro_batch;
        int T = fill_micro(t, j0, nb, input_tokens);
        for (int j = 0; j < nb; j++)
            t->row_w[j] = t->seq_cnt[j0 + j] ? 1.0f / (float)((double)t->seq_cnt[j0 + j] * seqs_counted) : 0.0f;
        tuna_batch bt = {nb, T, t->ids, t->labels, d->pos ? t->pos : NULL, seqnorm ? t->row_w : NULL, NULL};
        tuna_loss l;
        tuna_status st = tuna_model_forward(t->m, &bt, &l);
        if (st != TUNA_OK) return st;
        if (seqnorm) {
            st = tuna_model_row_losses(t->m, nb, T, t->row_loss);
            if (st != TUNA_OK) return st;
            for (int j = 0; j < nb; j++)
                if (t->seq_cnt[j0 + j]) loss += t->row_loss[j] / (double)t->seq_cnt[j0 + j] / (double)seqs_counted;
        } else loss += l.loss_sum / (double)total;
        if (train) {
            int last = j0 + nb >= hi;
            if (last) overlap_begin(t);
            st = tuna_model_backward(t->m, &bt, seqnorm ? 1.0f : (float)(1.0 / (double)total));
            if (last) overlap_end(t);
            if (st != TUNA_OK) return st;
        }
    }
    *loss_out = loss;
    return TUNA_OK;
}

/* what one step's forward and backward passes sum up */
typedef struct {
    double loss;
    tuna_dpo_stats ds;
    int64_t tokens, input_tokens;
} step_sums;

/* the step's sequences through forward and backward, gradients summed into
 * the model's (adapter dropout on) */
static tuna_status forward_backward(tuna_trainer *t, step_sums *s) {
    tuna_model *m = t->m;
    const tuna_train_args *a = &t->a;
    for (int j = 0; j < a->batch; j++) t->seq_idx[j] = seq_at(t, t->stream_pos + j);
    for (int j = 0; j < a->batch; j++) t->task_used[task_of(t, t->seq_idx[j])]++;
    if (!t->grads_zero) tuna_model_zero_grad(m);
    t->grads_zero = 0;
    tuna_peft_set_training(m, 1); /* adapter dropout on */
    /* dropout masks follow the step number, so a resumed run draws the same ones */
    /* data-parallel: this rank's first micro-batch is number lo/micro of the
     * step, so it draws the masks one process would draw for those rows */
    adapter_set_forward_count(m, ((uint64_t)t->step << 20) +
                                        (uint64_t)((int64_t)a->batch * tuna_dist_rank() / tuna_dist_size() / a->micro_batch));
    tuna_status st;
    if (a->step_fn) {
        tuna_step_result r = {0, 0, 0};
        st = a->step_fn(a->step_ctx, m, t->step, t->seq_idx, a->batch, &r);
        s->loss = r.loss, s->tokens = r.tokens, s->input_tokens = r.input_tokens;
    } else if (a->dpo) {
        st = run_dpo(t, a->ref_logps, t->seq_idx, a->batch, 1, &s->ds, &s->tokens, &s->input_tokens);
        s->loss = s->ds.loss;
    } else st = run_batch(t, a->batch, 1, &s->loss, &s->tokens, &s->input_tokens);
    tuna_peft_set_training(m, 0);
    return st;
}

/* several ranks: each holds its share's loss and gradient, already scaled by
 * the whole step's normalisation, so the sums are the one-process values */
static tuna_status reduce_ranks(tuna_trainer *t, float *g, int64_t W, step_sums *s) {
    tuna_dpo_stats *ds = &s->ds;
    double r[11] = {s->loss, ds->rewards_chosen, ds->rewards_rejected, ds->rewards_margins, ds->rewards_accuracies,
                    ds->logps_chosen, ds->logps_rejected, (double)s->input_tokens, ds->nll_loss, ds->log_odds_ratio,
                    ds->log_odds_chosen};
    int64_t tk = t->a.dpo ? s->tokens : 0; /* sft's count is already the step's */
    tuna_status st;
    /* the gradient sums started during backward, or all of it now */
    if (t->launched) st = t->comm_st != TUNA_OK ? t->comm_st : tuna_dist_wait();
    else st = tuna_dist_sum_f32(g, W);
    t->launched = 0;
    t->comm_st = TUNA_OK;
    if (st == TUNA_OK) st = tuna_dist_sum_f64(r, 11);
    if (st == TUNA_OK && t->a.dpo) st = tuna_dist_sum_i64(&tk, 1);
    if (st != TUNA_OK) return st;
    s->loss = r[0];
    ds->loss = r[0];
    ds->rewards_chosen = r[1];
    ds->rewards_rejected = r[2];
    ds->rewards_margins = r[3];
    ds->rewards_accuracies = r[4];
    ds->logps_chosen = r[5];
    ds->logps_rejected = r[6];
    s->input_tokens = (int64_t)r[7];
    ds->nll_loss = r[8];
    ds->log_odds_ratio = r[9];
    ds->log_odds_chosen = r[10];
    if (t->a.dpo) s->tokens = tk;
    return TUNA_OK;
}

/* One AdamW update's constants (adamw_update). */
typedef struct {
    float c, keep, b1, b2, eps, step_size, bc2_sqrt;
    int clip;
} adam_k;

/* values per task of the update: a multiple of 32, so a weight's bf16 copy
 * is rounded in the same groups as k_f32_to_bf16 rounds it */
#define ADAM_BLOCK 4096

/* AdamW on [b0, b1): the gradient read (clipped in a register) and zeroed
 * for the next step, the weight updated, then its bf16 copy cp (if any)
 * rewritten while the block is in cache */
static void adam_block(const adam_k *k, float *restrict p, float *restrict g, float *restrict am, float *restrict av,
                       uint16_t *cp, int64_t b0, int64_t b1) {
    /* an unclipped gradient is multiplied by 1 (x * 1.0f == x) */
    const float c = k->clip ? k->c : 1.0f, keep = k->keep, b1c = 1.0f - k->b1, b2 = k->b2, b2c = 1.0f - k->b2;
    const float bc2 = k->bc2_sqrt, eps = k->eps, step = k->step_size;
    int64_t i = b0;
#ifdef __AVX512F__
    /* 16 at a time, the scalar loop's operations in its order (IEEE mul,
     * add, div and sqrt, no fused multiply-add: the same bits); gcc leaves
     * the scalar loop unvectorized because sqrtf may set errno */
    const __m512 vc = _mm512_set1_ps(c), vkeep = _mm512_set1_ps(keep), vb1c = _mm512_set1_ps(b1c),
                 vb2 = _mm512_set1_ps(b2), vb2c = _mm512_set1_ps(b2c), vbc2 = _mm512_set1_ps(bc2),
                 veps = _mm512_set1_ps(eps), vstep = _mm512_set1_ps(step);
    for (; i + 16 <= b1; i += 16) {
        __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), vc), m = _mm512_loadu_ps(am + i), v = _mm512_loadu_ps(av + i);
        _mm512_storeu_ps(g + i, _mm512_setzero_ps());
        __m512 w = _mm512_mul_ps(_mm512_loadu_ps(p + i), vkeep);
        m = _mm512_add_ps(m, _mm512_mul_ps(vb1c, _mm512_sub_ps(gi, m)));
        v = _mm512_add_ps(_mm512_mul_ps(vb2, v), _mm512_mul_ps(_mm512_mul_ps(vb2c, gi), gi));
        __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v), vbc2), veps);
        w = _mm512_sub_ps(w, _mm512_div_ps(_mm512_mul_ps(vstep, m), denom));
        _mm512_storeu_ps(am + i, m);
        _mm512_storeu_ps(av + i, v);
        _mm512_storeu_ps(p + i, w);
    }
#endif
    for (; i < b1; i++) {
        float gi = g[i] * c;
        g[i] = 0.0f;
        p[i] *= keep;
        am[i] += b1c * (gi - am[i]);
        av[i] = b2 * av[i] + b2c * gi * gi;
        float denom = sqrtf(av[i]) / bc2 + eps;
        p[i] -= step * am[i] / denom;
    }
    if (cp) k_f32_to_bf16_serial(cp, p + b0, b1 - b0);
}

/* the gradient clipped to grad_clip (by its norm), then AdamW with bias
 * correction; weight decay only where t->decay says. The clipped gradient
 * g * c is formed in the update's own loop (the same float product as
 * scaling g first); the loop also zeroes the gradients (the next step's
 * zeroing skipped: t->grads_zero) and, with bf16 compute, rewrites the
 * weights' bf16 copies (the next forward's refresh skipped): one pass over
 * the weights where there were four. */
static void adamw_update(tuna_trainer *t, const tuna_trainable *tr, double lr, double norm) {
    const tuna_train_args *a = &t->a;
    float *g = tr->grads, *p = tr->weights, *am = t->adam_m, *av = t->adam_v;
    double coef = a->grad_clip > 0 ? a->grad_clip / (norm + 1e-6) : 1.0;
    int step = t->step + 1;
    double bc1 = 1.0 - pow(a->beta1, step), bc2 = 1.0 - pow(a->beta2, step);
    adam_k k = {(float)coef, 1.0f, a->beta1, a->beta2, a->eps, (float)(lr / bc1), (float)sqrt(bc2), coef < 1.0};
    int64_t covered = 0;
    int copies = 0;
    for (int pi = 0; pi < tr->n_params; pi++) {
        const tuna_param *pp = &tr->params[pi].pub;
        int64_t o0 = pp->data - p, o1 = o0 + pp->numel;
        uint16_t *cp = a->bf16 ? model_bf16_copy_of(t->m, pp->data) : NULL;
        adam_k kp = k;
        kp.keep = t->decay[pi] ? (float)(1.0 - lr * a->weight_decay) : 1.0f;
#pragma omp parallel for schedule(static)
        for (int64_t b0 = o0; b0 < o1; b0 += ADAM_BLOCK)
            adam_block(&kp, p, g, am, av, cp ? cp + (b0 - o0) : NULL, b0, b0 + ADAM_BLOCK < o1 ? b0 + ADAM_BLOCK : o1);
        covered += pp->numel;
        copies += cp != NULL;
    }
    t->grads_zero = covered == tr->n_weights;
    if (a->bf16 && copies == model_bf16_copies(t->m)) model_bf16_copies_written(t->m);
}

static void fill_step_info(const tuna_trainer *t, tuna_step_info *info, const step_sums *s, double lr, double norm,
                           double dt, double comm0) {
    info->step = t->step;
    info->total_steps = t->total_steps;
    info->epoch = (double)t->stream_pos / (double)t->n_items;
    info->dpo = s->ds;
    info->loss = s->loss;
    info->lr = lr;
    info->grad_norm = norm;
    info->tokens = s->tokens;
    info->tokens_seen = t->tokens_seen;
    info->step_seconds = dt;
    info->elapsed_seconds = t->elapsed;
    info->tokens_per_second = dt > 0 ? s->input_tokens / dt : 0;
    info->comm_seconds = tuna_dist_comm_seconds() - comm0;
}

static tuna_status step_once(tuna_trainer *t, tuna_step_info *info, double t0) {
    const tuna_train_args *a = &t->a;
    double lr = a->lr * tuna_schedule_factor(a->schedule, t->step, t->warmup_steps, t->total_steps);
    step_sums s = {0, {0}, 0, 0};
    tuna_status st = forward_backward(t, &s);
    if (st != TUNA_OK) return st;
    tuna_trainable tr;
    model_trainable(t->m, &tr);
    const int64_t W = tr.n_weights;
    float *g = tr.grads;
    double comm0 = tuna_dist_comm_seconds();
    if (tuna_dist_size() > 1 && (st = reduce_ranks(t, g, W, &s)) != TUNA_OK) return st;
    double ss = 0;
    /* simd: vector partial sums (a chain of scalar double adds took 0.1 s
     * per step for 124M gradients) */
#pragma omp parallel for simd reduction(+ : ss)
    for (int64_t i = 0; i < W; i++) ss += (double)g[i] * g[i];
    double norm = sqrt(ss);
    if (!isfinite(s.loss) || !isfinite(norm))
        return core_fail(TUNA_ERR_NUMERIC, "step %d: loss is %g and gradient norm %g; stopping (weights not updated)",
                         t->step + 1, s.loss, norm);
    if (s.tokens > 0) adamw_update(t, &tr, lr, norm);
    /* caller-driven steps reuse their items step_reuse times */
    if (!a->step_fn || a->step_reuse <= 1 || (t->step + 1) % a->step_reuse == 0) t->stream_pos += a->batch;
    t->step++;
    t->tokens_seen += s.input_tokens;
    double dt = core_now_s() - t0;
    t->elapsed += dt;
    if (info) fill_step_info(t, info, &s, lr, norm, dt, comm0);
    return TUNA_OK;
}

/* one step, its kernels counted when profiling (core/prof.h) */
tuna_status tuna_trainer_step(tuna_trainer *t, tuna_step_info *info) {
    prof_step_begin();
    int64_t seen = t->tokens_seen;
    double t0 = core_now_s();
    tuna_status st = step_once(t, info, t0);
    prof_step_end(core_now_s() - t0, t->tokens_seen - seen);
    return st;
}

tuna_status tuna_trainer_eval_dpo(tuna_trainer *t, const tuna_pretok *data, const double *ref, tuna_dpo_stats *stats) {
    if (!t->a.dpo) return core_fail(TUNA_ERR_ARG, "preference metrics need a preference trainer");
    if (t->dpo.type == TUNA_DPO_KTO) return core_fail(TUNA_ERR_ARG, "KTO evaluation data needs labels: not available");
    if (data->n < 2 || data->n % 2) return core_fail(TUNA_ERR_ARG, "preference evaluation data must hold pairs");
    tuna_dpo_stats acc = {0};
    int64_t npairs = data->n / 2, idx[256], tokens, dummy = 0;
    const tuna_pretok *saved = t->data; /* the row buffers are filled from t->data */
    t->data = data;
    for (int64_t p0 = 0; p0 < npairs; p0 += 256) {
        int nb = (int)(npairs - p0 < 256 ? npairs - p0 : 256);
        for (int j = 0; j < nb; j++) idx[j] = p0 + j;
        tuna_dpo_stats s;
        tuna_status st = run_dpo(t, ref, idx, nb, 0, &s, &tokens, &dummy);
        if (st != TUNA_OK) { t->data = saved; return st; }
        dpo_stats_add(&acc, &s, (double)nb / npairs, 0);
    }
    t->data = saved;
    *stats = acc;
    return TUNA_OK;
}

tuna_status tuna_trainer_eval(tuna_trainer *t, const tuna_pretok *data, double *loss_out, int64_t *tokens_out) {
    const tuna_pretok *saved = t->data;
    int64_t *saved_idx = t->seq_idx;
    int cap = t->a.batch;
    double sum = 0;
    int64_t tokens = 0, dummy = 0;
    t->data = data;
    tuna_status st = TUNA_OK;
    int64_t idx[1024];
    t->seq_idx = idx;
    int chunk = t->a.micro_batch < 1024 ? t->a.micro_batch : 1024;
    (void)cap;
    for (int64_t s0 = 0; st == TUNA_OK && s0 < data->n; s0 += chunk) {
        int nb = (int)(data->n - s0 < chunk ? data->n - s0 : chunk);
        for (int j = 0; j < nb; j++) idx[j] = s0 + j;
        int T = fill_micro(t, 0, nb, &dummy);
        tuna_batch bt = {.B = nb, .T = T, .input_ids = t->ids, .labels = t->labels, .pos_ids = data->pos ? t->pos : NULL};
        tuna_loss l;
        st = tuna_model_forward(t->m, &bt, &l);
        if (st != TUNA_OK) break; /* l was not written */
        sum += l.loss_sum;
        tokens += l.tokens;
    }
    t->data = saved;
    t->seq_idx = saved_idx;
    t->m->have_forward = 0;
    if (st != TUNA_OK) return st;
    *loss_out = tokens ? sum / (double)tokens : NAN;
    *tokens_out = tokens;
    return TUNA_OK;
}

/* ---------------- checkpoints ---------------- */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "core/json_error.h"
#include "core/error.h"

int tuna_trainer_step_count(const tuna_trainer *t) { return t->step; }
int tuna_trainer_overlaps_comm(const tuna_trainer *t) { return t->overlap; }

tuna_status tuna_trainer_save(tuna_trainer *t, const char *dir, const char *extra_json) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return core_fail(atomic_write_status(errno), "%s: cannot create: %s", dir, strerror(errno));
    /* an adapter run checkpoints the adapter (PEFT files), not the frozen base */
    tuna_status st = tuna_peft_get(t->m) ? tuna_peft_save(t->m, dir) : tuna_model_save(t->m, dir, TUNA_DTYPE_F32);
    if (st != TUNA_OK) return st;
    st_writer *w = st_writer_new();
    if (!w) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    char name[200], path[PATH_MAX];
    tuna_trainable tr;
    model_trainable(t->m, &tr);
    for (int i = 0; st == TUNA_OK && i < tr.n_params; i++) {
        const tuna_param *p = &tr.params[i].pub;
        int64_t shape[1] = {p->numel}, off = p->data - tr.weights;
        snprintf(name, sizeof name, "exp_avg.%s", p->name);
        st = st_writer_add(w, name, ST_F32, 1, shape, t->adam_m + off);
        snprintf(name, sizeof name, "exp_avg_sq.%s", p->name);
        if (st == TUNA_OK) st = st_writer_add(w, name, ST_F32, 1, shape, t->adam_v + off);
    }
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    if (st == TUNA_OK) st = st_writer_finish(w, path);
    else st_writer_free(w);
    if (st != TUNA_OK) return st;
    json_t *o = json_pack("{s:i, s:I, s:I, s:f, s:i, s:I}", "step", t->step, "stream_pos", (json_int_t)t->stream_pos,
                          "tokens_seen", (json_int_t)t->tokens_seen, "elapsed_seconds", t->elapsed, "total_steps",
                          t->total_steps, "train_sequences", (json_int_t)t->data->n);
    json_object_set(o, "resume_check", t->run_desc);
    if (extra_json) {
        json_t *e = json_loads(extra_json, 0, NULL);
        if (e) json_object_set_new(o, "extra", e);
    }
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    st = atomic_file_write_json(path, o, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(o);
    return st;
}

/* Adds the caller's flat JSON object to part ("exact" or "adjustable") of
 * the run's description; the trainer's own keys keep their values. */
static tuna_status add_settings(tuna_trainer *t, const char *part, const char *settings_json) {
    json_error_t jerr;
    json_t *o = json_loads(settings_json, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return core_fail(TUNA_ERR_ARG, "run settings: not a JSON object: %s", o ? settings_json : jerr.text);
    }
    int rc = json_object_update_missing(json_object_get(t->run_desc, part), o);
    json_decref(o);
    return rc ? core_fail(TUNA_ERR_NOMEM, "out of memory") : TUNA_OK;
}

tuna_status tuna_trainer_set_run_settings(tuna_trainer *t, const char *settings_json) {
    return add_settings(t, "adjustable", settings_json);
}

tuna_status tuna_trainer_set_exact_settings(tuna_trainer *t, const char *settings_json) {
    return add_settings(t, "exact", settings_json);
}

const char *tuna_trainer_resume_notice(const tuna_trainer *t) { return t->resume_notice; }

/* The values of a checkpoint's trainer_state.json that a resume restores. */
typedef struct {
    int step;
    int64_t stream_pos, tokens_seen;
    double elapsed;
    char *extra; /* malloc'd compact JSON or NULL */
} saved_state;

/* Checks trainer_state.json (object o, read from path) against this run and
 * takes its values into *s; t->resume_notice says what changed or could not
 * be checked. */
static tuna_status parse_state(tuna_trainer *t, const json_t *o, const char *path, saved_state *s) {
    const json_t *js = json_object_get(o, "step"), *jp = json_object_get(o, "stream_pos"),
                 *jn = json_object_get(o, "train_sequences"), *jc = json_object_get(o, "resume_check");
    if (!json_is_integer(js) || !json_is_integer(jp) || json_integer_value(js) < 0 || json_integer_value(jp) < 0)
        return core_fail(TUNA_ERR_FORMAT, "%s: missing step or stream_pos", path);
    if (json_is_integer(jn) && json_integer_value(jn) != t->data->n)
        return core_fail(TUNA_ERR_ARG, "%s: checkpoint was trained on %lld sequences, this run has %lld (same data needed to resume)",
                         path, (long long)json_integer_value(jn), (long long)t->data->n);
    if (jc) {
        tuna_status st = resume_compare(jc, t->run_desc, path, t->resume_notice, sizeof t->resume_notice);
        if (st != TUNA_OK) return st;
    } else
        snprintf(t->resume_notice, sizeof t->resume_notice,
                 "the checkpoint records no fingerprint of its run's data and settings (written by an older tuna): "
                 "resumed without checking that they are the same%s", json_is_integer(jn) ? " (only the number of sequences is)" : "");
    s->step = (int)json_integer_value(js);
    s->stream_pos = json_integer_value(jp);
    s->tokens_seen = json_integer_value(json_object_get(o, "tokens_seen"));
    s->elapsed = json_number_value(json_object_get(o, "elapsed_seconds"));
    const json_t *e = json_object_get(o, "extra");
    s->extra = e ? json_dumps(e, JSON_COMPACT) : NULL;
    return TUNA_OK;
}

static tuna_status read_state(tuna_trainer *t, const char *dir, saved_state *s) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o) return core_fail(TUNA_ERR_FORMAT, "%s: %s", path, tuna_json_error_text(&jerr));
    tuna_status st = parse_state(t, o, path, s);
    json_decref(o);
    return st;
}

/* The checkpoint's weights (or adapter) and AdamW moments. */
static tuna_status load_weights_and_moments(tuna_trainer *t, const char *dir) {
    char path[PATH_MAX];
    tuna_model *m = t->m;
    tuna_status st = tuna_peft_get(m) ? tuna_peft_load_weights(m, dir) : tuna_model_load_weights(m, dir);
    if (st != TUNA_OK) return st;
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    st_file f;
    st = st_open(&f, path);
    if (st != TUNA_OK) return st;
    char name[200];
    tuna_trainable tr;
    model_trainable(m, &tr);
    for (int i = 0; st == TUNA_OK && i < tr.n_params; i++) {
        const tuna_param *p = &tr.params[i].pub;
        int64_t off = p->data - tr.weights;
        for (int k = 0; k < 2 && st == TUNA_OK; k++) {
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            const st_tensor *tt = st_find(&f, name);
            if (!tt || tt->dtype != ST_F32 || tt->numel != p->numel)
                st = core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' missing or of the wrong size", path, name);
            else st = st_to_f32(tt, (k ? t->adam_v : t->adam_m) + off);
        }
    }
    st_close(&f);
    return st;
}

tuna_status tuna_trainer_resume(tuna_trainer *t, const char *dir, char **extra_json) {
    saved_state s = {0};
    t->resume_notice[0] = 0;
    /* the run is checked before anything of the checkpoint is loaded */
    tuna_status st = read_state(t, dir, &s);
    if (st == TUNA_OK) st = load_weights_and_moments(t, dir);
    if (st != TUNA_OK) {
        free(s.extra);
        return st;
    }
    t->step = s.step;
    t->stream_pos = s.stream_pos;
    t->tokens_seen = s.tokens_seen;
    t->elapsed = s.elapsed;
    if (extra_json) *extra_json = s.extra;
    else free(s.extra);
    t->perm_epoch = -1;
    /* replay the data stream up to the resumed position (cheap: no model work) */
    for (int k = 0; k < t->n_tasks; k++) t->task_used[k] = 0;
    for (int64_t p = 0; p < t->stream_pos; p++) t->task_used[task_of(t, seq_at(t, p))]++;
    return TUNA_OK;
}
