/* resume_check.c — the run description a checkpoint carries and its
 * comparison on resume (see resume_check.h). Fingerprints are computed once,
 * when the trainer is created: the data's costs one pass over the tokens, the
 * model's a bounded sample of each tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_io.h"
#include "data/pretok_internal.h"
#include "model/adapter_hooks.h"
#include "model/model_internal.h"
#include "resume_check.h"
#include "tuna_dist.h"
#include "tuna_peft.h"
#include "core/error.h"

#define FP_SAMPLES 4096 /* values sampled per tensor */

/* Up to FP_SAMPLES evenly spaced elements (of size bytes, at most 4) of
 * p[0..n), hashed with n. */
static uint64_t hash_sample(uint64_t h, const void *p, int64_t n, size_t size) {
    unsigned char buf[FP_SAMPLES * 4];
    const unsigned char *s = p;
    int64_t step = n > FP_SAMPLES ? n / FP_SAMPLES : 1;
    size_t k = 0;
    for (int64_t i = 0; s && i < n && k < sizeof buf; i += step, k += size) memcpy(buf + k, s + i * (int64_t)size, size);
    return data_hash64(buf, k, h ^ (uint64_t)n);
}

static uint64_t hash_tensor(uint64_t h, const tuna_param *p) {
    h = data_hash64(p->name, strlen(p->name), h);
    h = data_hash64(p->shape, (size_t)p->ndim * sizeof p->shape[0], h);
    return hash_sample(h, p->data, p->data ? p->numel : 0, sizeof(float)); /* NF4 tensors: hashed from their blocks */
}

/* A weight kept as stored hashes the fp32 values hash_tensor would sample
 * from the fp32 load of the same file (bf16/f16 -> fp32 is exact), so the
 * fingerprint does not depend on how the base was loaded; NF4 tensors are
 * hashed from their blocks (resume_model_fingerprint). */
static uint64_t hash_param(uint64_t h, const tuna_model *m, int i) {
    const tuna_param_entry *e = &m->params[i];
    const tuna_param *p = &e->pub;
    if (!e->external || m->stored[e->sidx].type == STORE_NF4) return hash_tensor(h, p);
    float buf[FP_SAMPLES];
    int64_t n = p->numel, step = n > FP_SAMPLES ? n / FP_SAMPLES : 1, k = 0;
    for (int64_t j = 0; j < n && k < FP_SAMPLES; j += step) model_param_read(m, i, j, 1, &buf[k++]);
    /* the samples faulted in (with the kernel's fault-around) pages of a
     * mapped tensor that the run may never read, as an embedding's rows */
    stored_release_all(&m->stored[e->sidx]);
    h = data_hash64(p->name, strlen(p->name), h);
    h = data_hash64(p->shape, (size_t)p->ndim * sizeof p->shape[0], h);
    return data_hash64(buf, (size_t)k * sizeof(float), h ^ (uint64_t)n);
}

static uint64_t hash_config(const tuna_config *c) {
    double v[] = {c->family, c->norm, c->mlp, c->V, c->C, c->L, c->NH, c->NKV, c->HD, c->FF, c->max_positions,
                  c->norm_eps, c->learned_positions, c->qkv_bias, c->o_bias, c->mlp_bias, c->tie_embeddings,
                  c->rope_theta, c->rope_scaling, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor,
                  c->rope_original_max_positions, c->sliding_window};
    return data_hash64(v, sizeof v, 0x74756e61636667ULL);
}

uint64_t resume_model_fingerprint(tuna_model *m) {
    uint64_t h = hash_config(&m->cfg), q = (uint64_t)(m->quant_type == TUNA_QUANT_NF4); /* as stored: the fp32 values */
    h = data_hash64(&q, sizeof q, h);
    for (int i = 0; i < m->n_params; i++) h = hash_param(h, m, i);
    for (int i = 0; i < m->n_stored; i++) {
        if (m->stored[i].type != STORE_NF4) continue;
        const nf4_tensor *t = &m->stored[i].nf4;
        h = hash_sample(h, t->packed, (t->n + 1) / 2, 1);
        h = hash_sample(h, t->absmax_q, t->nblocks, 1);
    }
    tuna_trainable ad;
    if (adapter_trainable(m, &ad))
        for (int i = 0; i < ad.n_params; i++) h = hash_tensor(h, &ad.params[i].pub);
    return h;
}

uint64_t resume_data_fingerprint(const tuna_pretok *d) {
    uint64_t h = data_hash64(&d->n, sizeof d->n, 0x74756e6164617461ULL);
    for (int64_t i = 0; i < d->n; i++) {
        int64_t len = d->off[i + 1] - d->off[i];
        h = data_hash64(&len, sizeof len, h);
    }
    size_t o = (size_t)d->off[0], bytes = (size_t)(d->off[d->n] - d->off[0]) * sizeof(int32_t);
    h = data_hash64(d->ids + o, bytes, h);
    h = data_hash64(d->labels + o, bytes, h);
    if (d->pos) h = data_hash64(d->pos + o, bytes, h);
    for (int k = 0; d->n_tasks > 1 && k <= d->n_tasks; k++) {
        int64_t b = d->task_off[k] - d->task_off[0];
        h = data_hash64(&b, sizeof b, h);
    }
    return h;
}

static void set_hex(json_t *o, const char *key, uint64_t v) {
    char s[17];
    snprintf(s, sizeof s, "%016llx", (unsigned long long)v);
    json_object_set_new(o, key, json_string(s));
}

/* method ("full", "lora", "qlora", "ia3", "prompt") and the adapter's settings */
static void describe_method(json_t *ex, const tuna_model *m) {
    const tuna_peft_config *c = tuna_peft_get(m);
    const char *method = !c ? "full" : c->type == TUNA_PEFT_IA3 ? "ia3" : c->type == TUNA_PEFT_PROMPT ? "prompt"
                                     : m->quant_type == TUNA_QUANT_NF4 ? "qlora" : "lora";
    json_object_set_new(ex, "method", json_string(method));
    if (!c) return;
    if (c->type == TUNA_PEFT_LORA) {
        json_object_set_new(ex, "lora_r", json_integer(c->r));
        json_object_set_new(ex, "lora_alpha", json_real(c->alpha));
        json_object_set_new(ex, "lora_dropout", json_real(c->dropout));
        json_object_set_new(ex, "rslora", json_boolean(c->rslora));
    }
    if (c->type != TUNA_PEFT_PROMPT) json_object_set_new(ex, "targets", json_string(c->targets));
    if (c->type == TUNA_PEFT_IA3) json_object_set_new(ex, "feedforward", json_string(c->feedforward));
    if (c->type == TUNA_PEFT_PROMPT) {
        json_object_set_new(ex, "num_virtual_tokens", json_integer(c->num_virtual_tokens));
        json_object_set_new(ex, "prompt_init", json_string(c->init_from_text ? c->init_text : "random"));
    }
}

/* batch, order and objective */
static void describe_steps(json_t *ex, const tuna_pretok *d, const tuna_train_args *a, const double *cum_w, int n_tasks) {
    static const char *sched[] = {"constant", "linear", "cosine"}, *dpo_loss[] = {"sigmoid", "ipo", "hinge", "orpo", "simpo", "kto", "reward"};
    json_object_set_new(ex, "batch", json_integer(a->batch));
    json_object_set_new(ex, "micro_batch", json_integer(a->micro_batch < a->batch ? a->micro_batch : a->batch));
    json_object_set_new(ex, "seq_len", json_integer(a->seq_len));
    json_object_set_new(ex, "packed", json_boolean(d->pos != NULL));
    json_object_set_new(ex, "schedule", json_string(sched[a->schedule]));
    json_object_set_new(ex, "seed", json_integer((json_int_t)a->seed));
    json_object_set_new(ex, "shuffle", json_boolean(a->shuffle));
    json_object_set_new(ex, "loss_norm", json_string(a->loss_norm == TUNA_LOSS_NORM_TOKEN ? "token" : "sequence"));
    if (cum_w && n_tasks > 1) {
        json_t *w = json_array();
        for (int k = 0; k < n_tasks; k++) json_array_append_new(w, json_real(cum_w[k] - (k ? cum_w[k - 1] : 0)));
        json_object_set_new(ex, "task_weights", w);
    }
    if (a->dpo) {
        json_object_set_new(ex, "loss_type", json_string(dpo_loss[a->dpo->type]));
        json_object_set_new(ex, "beta", json_real(a->dpo->beta));
        json_object_set_new(ex, "label_smoothing", json_real(a->dpo->label_smoothing));
        if (a->dpo->type == TUNA_DPO_REWARD) json_object_set_new(ex, "center_rewards", json_real(a->dpo->center_rewards));
        if (a->dpo->type == TUNA_DPO_SIMPO) {
            json_object_set_new(ex, "simpo_gamma", json_real(a->dpo->simpo_gamma));
            json_object_set_new(ex, "cpo_alpha", json_real(a->dpo->cpo_alpha));
        }
        if (a->dpo->type == TUNA_DPO_KTO) {
            json_object_set_new(ex, "desirable_weight", json_real(a->dpo->desirable_weight));
            json_object_set_new(ex, "undesirable_weight", json_real(a->dpo->undesirable_weight));
            /* the items' labels are not in the sequences the data fingerprint hashes */
            if (a->kto_desirable) set_hex(ex, "kto_labels", data_hash64(a->kto_desirable, (size_t)(d->n / 2), 0x6b746f6cULL));
        }
    }
}

static void describe_adjustable(json_t *adj, const tuna_train_args *a, int total_steps) {
    json_object_set_new(adj, "lr", json_real(a->lr));
    json_object_set_new(adj, "warmup", json_real(a->warmup));
    json_object_set_new(adj, "weight_decay", json_real(a->weight_decay));
    json_object_set_new(adj, "betas", json_pack("[f,f]", (double)a->beta1, (double)a->beta2));
    json_object_set_new(adj, "eps", json_real(a->eps));
    json_object_set_new(adj, "grad_clip", json_real(a->grad_clip));
    json_object_set_new(adj, "steps", json_integer(total_steps));
    json_object_set_new(adj, "grad_checkpoint", json_boolean(a->grad_checkpoint));
    json_object_set_new(adj, "checkpoint_layers", json_integer(a->checkpoint_layers));
    json_object_set_new(adj, "bf16", json_boolean(a->bf16));
    json_object_set_new(adj, "ranks", json_integer(tuna_dist_size()));
}

json_t *resume_describe(tuna_model *m, const tuna_pretok *d, const tuna_train_args *a, int total_steps,
                        const double *cum_w, int n_tasks) {
    json_t *o = json_object(), *ex = json_object(), *adj = json_object();
    if (!o || !ex || !adj || json_object_set(o, "exact", ex) || json_object_set(o, "adjustable", adj)) {
        json_decref(o);
        json_decref(ex);
        json_decref(adj);
        return NULL;
    }
    set_hex(ex, "model", resume_model_fingerprint(m));
    set_hex(ex, "data", resume_data_fingerprint(d));
    describe_method(ex, m);
    describe_steps(ex, d, a, cum_w, n_tasks);
    describe_adjustable(adj, a, total_steps);
    json_decref(ex);
    json_decref(adj);
    return o;
}

/* v as a user reads it, with prec significant digits for reals */
static void fmt_value(char *out, size_t n, const json_t *v, int prec) {
    if (json_is_string(v)) snprintf(out, n, "%s", json_string_length(v) ? json_string_value(v) : "\"\"");
    else if (json_is_real(v)) snprintf(out, n, "%.*g", prec, json_real_value(v));
    else if (json_is_integer(v)) snprintf(out, n, "%lld", (long long)json_integer_value(v));
    else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(prec));
        snprintf(out, n, "%s", s ? s : "?");
        free(s);
    }
}

/* Appends "KEY OLD -> NEW" to buf[n] (after ", " when buf holds something);
 * the fingerprints "data", "model" and "ref_model" also say what they stand for. */
static void append_change(char *buf, size_t n, const char *key, const json_t *old, const json_t *now) {
    char a[256], b[256];
    int prec = 6;
    do {
        fmt_value(a, sizeof a, old, prec);
        fmt_value(b, sizeof b, now, prec);
        prec += 5; /* reals that print alike at 6 digits: show more */
    } while (!strcmp(a, b) && prec <= 17);
    size_t used = strlen(buf);
    const char *what = !strcmp(key, "data")        ? ": different training sequences (tokens, masks or order); fingerprint"
                       : !strcmp(key, "model")     ? ": a different model (config or weights); fingerprint"
                       : !strcmp(key, "ref_model") ? ": a different reference model (config or weights); fingerprint" : "";
    snprintf(buf + used, n - used, "%s%s%s %s -> %s", used ? ", " : "", key, what, a, b);
}

/* Lists the keys whose values differ between two objects; returns how many.
 * A key only one side has is not compared: the setting does not apply to one
 * of the runs (lora_r of a full run: their methods differ) or one tuna
 * version does not record it. */
static int list_changes(const json_t *old, const json_t *now, char *buf, size_t n) {
    const char *key;
    json_t *v;
    int count = 0;
    json_object_foreach((json_t *)now, key, v) {
        json_t *w = json_object_get(old, key);
        if (w && !json_equal(v, w)) append_change(buf, n, key, w, v), count++;
    }
    return count;
}

tuna_status resume_compare(const json_t *saved, const json_t *now, const char *path, char *notice, size_t n) {
    const json_t *ex = json_object_get(saved, "exact"), *adj = json_object_get(saved, "adjustable");
    if (!json_is_object(ex) || !json_is_object(adj))
        return core_fail(TUNA_ERR_FORMAT, "%s: resume_check needs the objects \"exact\" and \"adjustable\"", path);
    char diff[2048] = "";
    if (list_changes(ex, json_object_get(now, "exact"), diff, sizeof diff))
        return core_fail(TUNA_ERR_ARG, "%s: this run differs from the checkpoint's: %s; exact resume is impossible "
                                       "(resume with the same data and settings, or start a new run)", path, diff);
    notice[0] = 0;
    list_changes(adj, json_object_get(now, "adjustable"), notice, n);
    return TUNA_OK;
}
