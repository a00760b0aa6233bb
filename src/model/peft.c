/* peft.c — adapters in Hugging Face PEFT's semantics and file format.
 *
 * An attached adapter owns a table of named tensors (PEFT key names, e.g.
 * base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight) carved from
 * one buffer plus one gradient buffer, so the trainer treats it exactly like
 * a model's parameter table. LoRA and IA3 state hangs on the adapted
 * tuna_linear (see linear.c for their forward/backward); prompt tuning is a
 * [P, C] table the decoder prepends to every row. Attaching freezes the base:
 * its gradients are freed and never allocated again.
 *
 * The adapter's state is private to this file: the model, the decoder and
 * the trainer reach it only through model/adapter_hooks.h.
 *
 * Target matching is PEFT's: a list matches a module whose path equals a name
 * or ends with "." + name; a string is a regular expression that must match
 * the whole module path. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json_keys.h"
#include "core/mix.h"
#include "core/rng.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "model/adapter_hooks.h"
#include "model/model_internal.h"
#include "core/json_error.h"

static const adapter_ops peft_ops; /* the hooks, defined with them below */

/* An attached adapter: its own table of named tensors in PEFT's key names,
 * carved from one buffer (and one gradient buffer), the per-layer states hung
 * on the linears, and the prompt-tuning prefix. */
struct tuna_peft_state {
    tuna_peft_config cfg;
    tuna_param_entry *params;
    int n_params;
    float *weights, *grads;
    int64_t n_weights;
    tuna_adapter *ad;        /* [n_ad] one per adapted linear */
    int n_ad;
    tuna_adapter_rt rt;
    float *saved;            /* h / z buffers of every adapted layer, for Nmax rows */
    int Nmax;
    uint64_t seed, forwards; /* dropout streams: one per training forward */
    int P;                   /* virtual tokens (prompt tuning) */
    float *prompt, *dprompt; /* [P, C] */
};

#define KEY_PREFIX "base_model.model."

static const char *family_default_targets(const tuna_model *m, tuna_peft_type t) {
    int gpt2 = m->cfg.family == TUNA_FAMILY_GPT2;
    if (t == TUNA_PEFT_IA3) return gpt2 ? "c_attn,mlp.c_proj" : "k_proj,v_proj,down_proj";
    return gpt2 ? "c_attn" : "q_proj,v_proj"; /* PEFT's LoRA defaults for gpt2 / llama */
}

void tuna_peft_config_default(tuna_peft_config *c, tuna_peft_type type) {
    memset(c, 0, sizeof *c);
    c->type = type;
    c->r = 16;
    c->alpha = 32;
    c->num_virtual_tokens = 20;
}

/* ---------------- target matching ---------------- */

static int ends_with_component(const char *path, const char *name, size_t nlen) {
    size_t pl = strlen(path);
    if (pl == nlen && !strncmp(path, name, nlen)) return 1;
    return pl > nlen && path[pl - nlen - 1] == '.' && !strncmp(path + pl - nlen, name, nlen);
}

static int list_match(const char *list, const char *path) {
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && ends_with_component(path, p, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Which block linears an adapter of config c adapts: sets flags[i] (1 adapted,
 * 2 adapted as IA3 feedforward). Errors when a name matches nothing. */
static tuna_status select_targets(tuna_model *m, const tuna_peft_config *c, tuna_linear **ls, int n, char *flags) {
    const char *targets = c->targets[0] ? c->targets : family_default_targets(m, c->type);
    int all = !strcmp(targets, "all-linear");
    pcre2_code *re = NULL;
    if (c->targets_regex && !all) {
        int err;
        PCRE2_SIZE off;
        re = pcre2_compile((PCRE2_SPTR)targets, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            return core_fail(TUNA_ERR_ARG, "target_modules regex '%s': %s at offset %zu", targets, (char *)msg, (size_t)off);
        }
    }
    pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    int count = 0;
    for (int i = 0; i < n; i++) {
        const char *path = ls[i]->name;
        int hit = all || (re ? pcre2_match(re, (PCRE2_SPTR)path, strlen(path), 0, 0, md, NULL) >= 0 : list_match(targets, path));
        flags[i] = (char)hit;
        if (hit && c->type == TUNA_PEFT_IA3) {
            const char *ff = c->feedforward[0] ? c->feedforward : (m->cfg.family == TUNA_FAMILY_GPT2 ? "mlp.c_proj" : "down_proj");
            if (list_match(ff, path)) flags[i] = 2;
        }
        count += hit;
    }
    if (md) pcre2_match_data_free(md);
    if (re) pcre2_code_free(re);
    if (!count)
        return core_fail(TUNA_ERR_ARG, "target modules '%s' match no linear layer of this %s (names: %s)", targets,
                         m->cfg.architecture,
                         m->cfg.family == TUNA_FAMILY_GPT2 ? "c_attn, c_proj, c_fc, attn.c_proj, mlp.c_proj"
                                                           : "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
    /* every listed name must match something (a typo would silently train less) */
    if (!all && !re) {
        const char *p = targets;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            int any = 0;
            for (int i = 0; i < n && !any; i++) any = len && ends_with_component(ls[i]->name, p, len);
            if (len && !any)
                return core_fail(TUNA_ERR_ARG, "target module '%.*s' matches no linear layer of this %s", (int)len, p,
                                 m->cfg.architecture);
            if (!e) break;
            p = e + 1;
        }
    }
    return TUNA_OK;
}

/* ---------------- allocation ---------------- */

/* Every allocation of adapter setup goes through peft_calloc / peft_malloc so
 * that tests can make the Nth one fail (peft_fail_alloc_at, declared in
 * model_internal.h; per thread, 0 = never) and check that each failure leaves
 * the model as it was. */
static _Thread_local int fail_countdown;

void peft_fail_alloc_at(int n) { fail_countdown = n > 0 ? n : 0; }

static int injected_failure(void) { return fail_countdown > 0 && --fail_countdown == 0; }
static void *peft_calloc(size_t n, size_t size) { return injected_failure() ? NULL : calloc(n, size); }
static void *peft_malloc(size_t size) { return injected_failure() ? NULL : malloc(size); }

/* ---------------- state ---------------- */

static void peft_free(tuna_peft_state *p) {
    if (!p) return;
    free(p->params);
    free(p->weights);
    free(p->grads);
    free(p->ad);
    free(p->rt.scratch_in);
    free(p->rt.scratch_out);
    free(p->saved);
    free(p);
}

/* What adapter i hangs on a linear, for sizing: kind 0 (none), LoRA of rank
 * r, or IA3 (ff: on the input side, keeps nothing). */
typedef struct { int kind, r, ff; } adapter_shape;

/* Floats of the three buffers peft_prepare allocates for N rows: scratch in,
 * scratch out, and the h / z every adapted layer keeps. One function for the
 * allocator and for planning (peft_plan), so the two cannot drift. */
static void buffer_floats(tuna_linear **ls, const adapter_shape *s, int n, int64_t N, int64_t f[3]) {
    int64_t max_in = 1, max_out = 1, saved = 0, max_r = 0;
    for (int i = 0; i < n; i++) {
        if (!s[i].kind) continue;
        if (ls[i]->IC > max_in) max_in = ls[i]->IC;
        if (ls[i]->OC > max_out) max_out = ls[i]->OC;
        if (s[i].kind == TUNA_ADAPTER_LORA) {
            if (s[i].r > max_r) max_r = s[i].r;
            saved += N * s[i].r;
        } else if (!s[i].ff) saved += N * ls[i]->OC;
    }
    /* IA3's dz [N, OC] or scaled input [N, IC]; LoRA's dhT [r, N] + dBT [r, OC] */
    int64_t out_n = N * (max_in > max_out ? max_in : max_out);
    if (max_r * (N + max_out) > out_n) out_n = max_r * (N + max_out);
    f[0] = N * max_in;
    f[1] = out_n;
    f[2] = saved ? saved : 1;
}

static tuna_status peft_prepare(tuna_model *m, int N) {
    tuna_peft_state *p = m->peft;
    if (N <= p->Nmax) return TUNA_OK;
    /* sizes come from the linears the adapters hang on */
    tuna_linear *ls[8 * 1024];
    int n = model_linears(m, ls);
    adapter_shape *shapes = malloc((size_t)(n ? n : 1) * sizeof *shapes);
    if (!shapes) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        tuna_adapter *a = ls[i]->adapter;
        shapes[i] = a ? (adapter_shape){a->kind, a->r, a->ff} : (adapter_shape){0, 0, 0};
    }
    int64_t f[3];
    buffer_floats(ls, shapes, n, N, f);
    free(shapes);
    /* all three new buffers before any old one is freed: on failure the
     * adapters keep their buffers (and h / z pointers) for Nmax rows */
    float *in = peft_malloc((size_t)f[0] * sizeof(float));
    float *out = in ? peft_malloc((size_t)f[1] * sizeof(float)) : NULL;
    float *keep = out ? peft_malloc((size_t)f[2] * sizeof(float)) : NULL;
    if (!keep) {
        free(in);
        free(out);
        return core_fail(TUNA_ERR_NOMEM, "out of memory for adapter buffers of %d rows", N);
    }
    free(p->rt.scratch_in);
    free(p->rt.scratch_out);
    free(p->saved);
    p->rt.scratch_in = in;
    p->rt.scratch_out = out;
    p->saved = keep;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        tuna_adapter *a = ls[i]->adapter;
        if (!a) continue;
        if (a->kind == TUNA_ADAPTER_LORA) { a->h = p->saved + off; off += (int64_t)N * a->r; }
        else if (!a->ff) { a->z = p->saved + off; off += (int64_t)N * ls[i]->OC; }
    }
    p->Nmax = N;
    return TUNA_OK;
}

static void set_entry(tuna_param_entry *e, const char *name, int64_t d0, int64_t d1) {
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->pub.name = e->name;
    e->pub.ndim = 2;
    e->pub.shape[0] = d0;
    e->pub.shape[1] = d1;
    e->pub.numel = d0 * d1;
}

/* A new adapter's rank above a layer's smaller dimension adds parameters but
 * no capacity (B·A cannot exceed rank min(in, out)): refused, naming the first
 * such layer. An adapter read from files is taken as saved (PEFT allows it). */
static tuna_status check_rank(int r, tuna_linear **ls, int n, const char *flags) {
    for (int i = 0; i < n; i++) {
        int lim = ls[i]->IC < ls[i]->OC ? ls[i]->IC : ls[i]->OC;
        if (flags[i] && r > lim)
            return core_fail(TUNA_ERR_ARG, "LoRA rank r = %d is larger than layer %s allows: min(in %d, out %d) = %d", r,
                             ls[i]->name, ls[i]->IC, ls[i]->OC, lim);
    }
    return TUNA_OK;
}

static tuna_status attach(tuna_model *m, const tuna_peft_config *c, uint64_t seed, int fresh) {
    if (m->peft) return core_fail(TUNA_ERR_ARG, "an adapter is already attached");
    if (c->type == TUNA_PEFT_LORA && (c->r <= 0 || !(c->alpha > 0) || !(c->dropout >= 0 && c->dropout < 1)))
        return core_fail(TUNA_ERR_ARG, "LoRA needs r > 0 (got %d), alpha > 0 (got %g) and 0 <= dropout < 1 (got %g)", c->r,
                         c->alpha, c->dropout);
    if (c->type == TUNA_PEFT_PROMPT && (c->num_virtual_tokens <= 0 || c->num_virtual_tokens > 4096))
        return core_fail(TUNA_ERR_ARG, "prompt tuning needs 1..4096 virtual tokens (got %d)", c->num_virtual_tokens);
    if (c->type < TUNA_PEFT_LORA || c->type > TUNA_PEFT_PROMPT) return core_fail(TUNA_ERR_ARG, "unknown adapter type %d", c->type);
    tuna_linear *ls[8 * 1024];
    int n = model_linears(m, ls);
    char flags[8 * 1024];
    memset(flags, 0, sizeof flags);
    if (c->type != TUNA_PEFT_PROMPT) {
        tuna_status st = select_targets(m, c, ls, n, flags);
        if (st == TUNA_OK && fresh && c->type == TUNA_PEFT_LORA) st = check_rank(c->r, ls, n, flags);
        if (st != TUNA_OK) return st;
    }
    tuna_peft_state *p = peft_calloc(1, sizeof *p);
    if (!p) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    p->cfg = *c;
    if (!p->cfg.targets[0] && c->type != TUNA_PEFT_PROMPT)
        snprintf(p->cfg.targets, sizeof p->cfg.targets, "%s", family_default_targets(m, c->type));
    if (c->type == TUNA_PEFT_IA3 && !p->cfg.feedforward[0])
        snprintf(p->cfg.feedforward, sizeof p->cfg.feedforward, "%s", m->cfg.family == TUNA_FAMILY_GPT2 ? "mlp.c_proj" : "down_proj");
    p->seed = seed;
    p->rt.dropout = c->type == TUNA_PEFT_LORA ? c->dropout : 0;
    int n_ad = 0;
    for (int i = 0; i < n; i++) n_ad += flags[i] != 0;
    int per = c->type == TUNA_PEFT_LORA ? 2 : 1;
    int np = c->type == TUNA_PEFT_PROMPT ? 1 : n_ad * per;
    p->params = peft_calloc((size_t)np, sizeof *p->params);
    p->ad = peft_calloc((size_t)(n_ad ? n_ad : 1), sizeof *p->ad);
    if (!p->params || !p->ad) { peft_free(p); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    /* pass 1: names and shapes */
    char key[160];
    int k = 0;
    if (c->type == TUNA_PEFT_PROMPT) {
        set_entry(&p->params[k++], "prompt_embeddings", c->num_virtual_tokens, m->cfg.C);
        p->P = c->num_virtual_tokens;
    }
    for (int i = 0; i < n; i++) {
        if (!flags[i]) continue;
        tuna_linear *l = ls[i];
        if (c->type == TUNA_PEFT_LORA) {
            snprintf(key, sizeof key, KEY_PREFIX "%s.lora_A.weight", l->name);
            set_entry(&p->params[k++], key, c->r, l->IC);
            snprintf(key, sizeof key, KEY_PREFIX "%s.lora_B.weight", l->name);
            set_entry(&p->params[k++], key, l->OC, c->r);
        } else {
            snprintf(key, sizeof key, KEY_PREFIX "%s.ia3_l", l->name);
            if (flags[i] == 2) set_entry(&p->params[k++], key, 1, l->IC);
            else set_entry(&p->params[k++], key, l->OC, 1);
        }
    }
    p->n_params = k;
    for (int i = 0; i < k; i++) p->n_weights += p->params[i].pub.numel;
    p->weights = peft_calloc((size_t)p->n_weights, sizeof(float));
    p->grads = peft_calloc((size_t)p->n_weights, sizeof(float));
    if (!p->weights || !p->grads) { peft_free(p); return core_fail(TUNA_ERR_NOMEM, "out of memory for the adapter"); }
    int64_t off = 0;
    for (int i = 0; i < k; i++) {
        p->params[i].pub.data = p->weights + off;
        p->params[i].pub.grad = p->grads + off;
        off += p->params[i].pub.numel;
    }
    /* pass 2: hang the states on the linears and initialise as PEFT does */
    tuna_rng rng;
    rng_seed(&rng, seed, 0x70656674 /* "peft" */);
    k = 0;
    if (c->type == TUNA_PEFT_PROMPT) {
        p->prompt = p->params[0].pub.data;
        p->dprompt = p->params[0].pub.grad;
        for (int64_t j = 0; j < p->params[0].pub.numel; j++) p->prompt[j] = rng_normal(&rng); /* nn.Embedding: N(0,1) */
        k = 1;
    }
    int ai = 0;
    for (int i = 0; i < n; i++) {
        if (!flags[i]) continue;
        tuna_linear *l = ls[i];
        tuna_adapter *a = &p->ad[ai];
        a->id = ai++;
        a->rt = &p->rt;
        if (c->type == TUNA_PEFT_LORA) {
            a->kind = TUNA_ADAPTER_LORA;
            a->r = c->r;
            a->scale = c->rslora ? c->alpha / sqrtf((float)c->r) : c->alpha / (float)c->r;
            a->A = p->params[k].pub.data;
            a->dA = p->params[k].pub.grad;
            a->B = p->params[k + 1].pub.data;
            a->dB = p->params[k + 1].pub.grad;
            /* kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = 1/sqrt(in); B = 0 */
            float bound = 1.0f / sqrtf((float)l->IC);
            for (int64_t j = 0; j < (int64_t)c->r * l->IC; j++) a->A[j] = bound * (2.0f * rng_uniform(&rng) - 1.0f);
            k += 2;
        } else {
            a->kind = TUNA_ADAPTER_IA3;
            a->ff = flags[i] == 2;
            a->s = p->params[k].pub.data;
            a->ds = p->params[k].pub.grad;
            for (int64_t j = 0; j < p->params[k].pub.numel; j++) a->s[j] = 1.0f;
            k += 1;
        }
        l->adapter = a;
    }
    p->n_ad = ai;
    m->peft = p;
    m->peft_ops = &peft_ops;
    model_freeze_base(m);
    return TUNA_OK;
}

tuna_status tuna_peft_attach(tuna_model *m, const tuna_peft_config *c, uint64_t seed) { return attach(m, c, seed, 1); }

/* Planning: the trainable scalars and the adapter buffers (bytes, for N rows)
 * that attaching c to a model of config cfg would allocate, by the target
 * matching and sizing code attach and peft_prepare run. */
tuna_status peft_plan(const tuna_config *cfg, const tuna_peft_config *c, int64_t N, int64_t *trainable, int64_t *buffer_bytes) {
    *trainable = *buffer_bytes = 0;
    if (c->type == TUNA_PEFT_PROMPT) {
        *trainable = (int64_t)c->num_virtual_tokens * cfg->C;
        return TUNA_OK;
    }
    tuna_model *m;
    tuna_status st = model_skeleton(&m, cfg);
    if (st != TUNA_OK) return st;
    tuna_linear *ls[8 * 1024];
    char flags[8 * 1024];
    int n = model_linears(m, ls);
    adapter_shape *shapes = malloc((size_t)(n ? n : 1) * sizeof *shapes);
    st = shapes ? select_targets(m, c, ls, n, flags) : core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; st == TUNA_OK && i < n; i++) {
        int lora = c->type == TUNA_PEFT_LORA;
        shapes[i] = flags[i] ? (adapter_shape){lora ? TUNA_ADAPTER_LORA : TUNA_ADAPTER_IA3, c->r, flags[i] == 2} : (adapter_shape){0, 0, 0};
        if (flags[i]) *trainable += lora ? (int64_t)c->r * (ls[i]->IC + ls[i]->OC) : flags[i] == 2 ? ls[i]->IC : ls[i]->OC;
    }
    if (st == TUNA_OK) {
        int64_t f[3];
        buffer_floats(ls, shapes, n, N, f);
        *buffer_bytes = (f[0] + f[1] + f[2]) * (int64_t)sizeof(float);
    }
    free(shapes);
    tuna_model_free(m);
    return st;
}

const tuna_peft_config *tuna_peft_get(const tuna_model *m) { return m->peft ? &m->peft->cfg : NULL; }
int64_t tuna_peft_num_trainable(const tuna_model *m) { return m->peft ? m->peft->n_weights : 0; }
int tuna_peft_num_adapted(const tuna_model *m) { return m->peft ? m->peft->n_ad : 0; }
void tuna_peft_set_training(tuna_model *m, int training) {
    if (m->peft) m->peft->rt.training = training;
}

tuna_status tuna_peft_set_enabled(tuna_model *m, int enabled) {
    if (!m->peft) return TUNA_OK;
    if (m->peft->P) return core_fail(TUNA_ERR_UNSUPPORTED, "a prompt-tuning adapter cannot be switched off");
    m->peft->rt.disabled = !enabled;
    return TUNA_OK;
}

tuna_status tuna_peft_prompt_init_tokens(tuna_model *m, const int32_t *ids, int n) {
    if (!m->peft || !m->peft->P) return core_fail(TUNA_ERR_ARG, "no prompt-tuning adapter attached");
    if (n <= 0) return core_fail(TUNA_ERR_ARG, "prompt init text has no tokens");
    int C = m->cfg.C;
    for (int i = 0; i < m->peft->P; i++) {
        int id = ids[i % n];
        if (id < 0 || id >= m->cfg.V) return core_fail(TUNA_ERR_ARG, "prompt init token %d outside the vocabulary", id);
        model_embed_row(m, id, m->peft->prompt + (int64_t)i * C);
    }
    return TUNA_OK;
}

/* ---------------- hooks called by the model (adapter_hooks.h) ---------------- */

static int peft_prompt_rows(const tuna_peft_state *p) { return p->P; }
static const float *peft_prompt(const tuna_peft_state *p) { return p->prompt; }
static float *peft_prompt_grad(tuna_peft_state *p) { return p->dprompt; }

static void peft_begin_forward(tuna_peft_state *p) {
    if (p->rt.training) p->rt.key = core_splitmix64(p->seed ^ core_splitmix64(++p->forwards));
}

static void peft_set_forward_count(tuna_peft_state *p, uint64_t count) { p->forwards = count; }

static void peft_trainable(tuna_peft_state *p, tuna_trainable *t) {
    *t = (tuna_trainable){p->params, p->n_params, p->weights, p->grads, p->n_weights};
}

static void peft_zero_grads(tuna_peft_state *p) {
    if (p->grads) memset(p->grads, 0, (size_t)p->n_weights * sizeof(float));
}

/* Tests only (adapter_hooks.h): the rows the adapter buffers hold now. */
int peft_prepared_rows(const tuna_model *m) { return m->peft ? m->peft->Nmax : 0; }

static const adapter_ops peft_ops = {
    .prompt_rows = peft_prompt_rows, .prompt = peft_prompt, .prompt_grad = peft_prompt_grad,
    .begin_forward = peft_begin_forward, .set_forward_count = peft_set_forward_count,
    .trainable = peft_trainable, .zero_grads = peft_zero_grads, .prepare = peft_prepare, .free = peft_free};

/* ---------------- merge ---------------- */

/* Removes the adapter: the model is a plain (trainable) model again. */
static void detach(tuna_model *m) {
    tuna_linear *ls[8 * 1024];
    int n = model_linears(m, ls);
    for (int i = 0; i < n; i++) ls[i]->adapter = NULL;
    adapter_free(m);
    model_unfreeze_base(m);
    m->fold_on_write = 0;
}

/* The fp32 weight the adapter is folded into: w, or a weight kept as stored
 * (bf16, f16) turned into an owned fp32 copy first (only the adapted layers
 * grow); NULL when out of memory. */
static float *merge_target(tuna_model *m, tuna_linear *l) {
    if (!l->stored) return l->w;
    const tuna_param_entry *e = &m->params[l->wparam];
    tuna_stored *s = &m->stored[e->sidx];
    float *w = malloc((size_t)s->n * sizeof(float));
    if (!w) return NULL;
    stored_read(s, 0, s->n, w, 0);
    float *scratch = s->scratch;
    stored_free(s);
    *s = (tuna_stored){.type = STORE_F32, .n = e->pub.numel, .data = w, .owned = w, .scratch = scratch};
    return w;
}

/* whether m's adapter can be folded into its weights */
static tuna_status check_mergeable(const tuna_model *m) {
    const tuna_peft_state *p = m->peft;
    if (!p) return core_fail(TUNA_ERR_ARG, "no adapter attached");
    if (p->cfg.type == TUNA_PEFT_PROMPT)
        return core_fail(TUNA_ERR_UNSUPPORTED, "a prompt-tuning adapter cannot be merged into weights (it adds virtual tokens)");
    if (m->quant_type == TUNA_QUANT_NF4)
        return core_fail(TUNA_ERR_UNSUPPORTED, "cannot merge into a quantized base; load the original weights to merge");
    return TUNA_OK;
}

tuna_status tuna_peft_merge_on_write(tuna_model *m) {
    tuna_status st = check_mergeable(m);
    if (st == TUNA_OK) m->fold_on_write = 1;
    return st;
}

tuna_status tuna_peft_merge(tuna_model *m) {
    tuna_status st = check_mergeable(m);
    if (st != TUNA_OK) return st;
    if (m->shares_weights && m->n_stored)
        return core_fail(TUNA_ERR_UNSUPPORTED, "cannot merge into weights shared with another model");
    tuna_linear *ls[8 * 1024];
    int n = model_linears(m, ls);
    for (int i = 0; i < n; i++) {
        tuna_linear *l = ls[i];
        tuna_adapter *a = l->adapter;
        if (!a) continue;
        float *w = merge_target(m, l);
        if (!w) return core_fail(TUNA_ERR_NOMEM, "out of memory merging %s", l->name);
        if (a->kind == TUNA_ADAPTER_LORA) {
            k_gemm(0, 0, l->OC, l->IC, a->r, a->scale, a->B, a->r, a->A, l->IC, 1.0f, w, l->IC);
        } else if (a->ff) {
            for (int o = 0; o < l->OC; o++)
                for (int i2 = 0; i2 < l->IC; i2++) w[(int64_t)o * l->IC + i2] *= a->s[i2];
        } else {
            for (int o = 0; o < l->OC; o++) {
                for (int i2 = 0; i2 < l->IC; i2++) w[(int64_t)o * l->IC + i2] *= a->s[o];
                if (l->b) l->b[o] *= a->s[o];
            }
        }
    }
    detach(m);
    return TUNA_OK;
}

/* ---------------- files ---------------- */

static json_t *name_list(const char *csv) {
    json_t *a = json_array();
    const char *p = csv;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) json_array_append_new(a, json_stringn(p, n));
        if (!e) break;
        p = e + 1;
    }
    return a;
}

/* "all-linear" is saved as PEFT saves it: the set of module names it matched */
static json_t *targets_json(const tuna_model *m, const tuna_peft_config *c) {
    if (c->targets_regex) return json_string(c->targets);
    if (strcmp(c->targets, "all-linear")) return name_list(c->targets);
    return name_list(m->cfg.family == TUNA_FAMILY_GPT2 ? "c_attn,c_proj,c_fc" : "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
}

static tuna_status write_json_atomic(json_t *o, const char *path) {
    return atomic_file_write_json(path, o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
}

static json_t *number(double v) {
    return v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v) : json_real(v);
}

tuna_status tuna_peft_save(const tuna_model *m, const char *dir) {
    const tuna_peft_state *p = m->peft;
    if (!p) return core_fail(TUNA_ERR_ARG, "no adapter attached");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return core_fail(atomic_write_status(errno), "%s: cannot create: %s", dir, strerror(errno));
    const tuna_peft_config *c = &p->cfg;
    json_t *o = json_object();
    json_object_set_new(o, "base_model_name_or_path", c->base_model[0] ? json_string(c->base_model) : json_null());
    json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(o, "inference_mode", json_true());
    json_object_set_new(o, "revision", json_null());
    if (c->type == TUNA_PEFT_LORA) {
        json_object_set_new(o, "peft_type", json_string("LORA"));
        json_object_set_new(o, "r", json_integer(c->r));
        json_object_set_new(o, "lora_alpha", number(c->alpha));
        json_object_set_new(o, "lora_dropout", json_real(c->dropout));
        json_object_set_new(o, "target_modules", targets_json(m, c));
        json_object_set_new(o, "fan_in_fan_out", json_boolean(m->cfg.family == TUNA_FAMILY_GPT2));
        json_object_set_new(o, "use_rslora", json_boolean(c->rslora));
        json_object_set_new(o, "bias", json_string("none"));
        json_object_set_new(o, "use_dora", json_false());
        json_object_set_new(o, "init_lora_weights", json_true());
        json_object_set_new(o, "modules_to_save", json_null());
        json_object_set_new(o, "layers_to_transform", json_null());
        json_object_set_new(o, "layers_pattern", json_null());
        json_object_set_new(o, "rank_pattern", json_object());
        json_object_set_new(o, "alpha_pattern", json_object());
    } else if (c->type == TUNA_PEFT_IA3) {
        json_object_set_new(o, "peft_type", json_string("IA3"));
        json_object_set_new(o, "target_modules", targets_json(m, c));
        json_object_set_new(o, "feedforward_modules", name_list(c->feedforward));
        json_object_set_new(o, "fan_in_fan_out", json_boolean(m->cfg.family == TUNA_FAMILY_GPT2));
        json_object_set_new(o, "init_ia3_weights", json_true());
        json_object_set_new(o, "modules_to_save", json_null());
    } else {
        json_object_set_new(o, "peft_type", json_string("PROMPT_TUNING"));
        json_object_set_new(o, "num_virtual_tokens", json_integer(c->num_virtual_tokens));
        json_object_set_new(o, "token_dim", json_integer(m->cfg.C));
        json_object_set_new(o, "num_transformer_submodules", json_integer(1));
        json_object_set_new(o, "num_attention_heads", json_integer(m->cfg.NH));
        json_object_set_new(o, "num_layers", json_integer(m->cfg.L));
        json_object_set_new(o, "prompt_tuning_init", json_string(c->init_from_text ? "TEXT" : "RANDOM"));
        json_object_set_new(o, "prompt_tuning_init_text", c->init_from_text ? json_string(c->init_text) : json_null());
        json_object_set_new(o, "tokenizer_name_or_path",
                            c->init_from_text && c->tokenizer_name[0] ? json_string(c->tokenizer_name) : json_null());
        json_object_set_new(o, "tokenizer_kwargs", json_null());
    }
    char path[PATH_MAX];
    st_writer *w = st_writer_new();
    if (!w) { json_decref(o); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    st_writer_meta(w, "format", "pt");
    tuna_status st = TUNA_OK;
    for (int i = 0; st == TUNA_OK && i < p->n_params; i++) {
        const tuna_param *t = &p->params[i].pub;
        st = st_writer_add(w, t->name, ST_F32, 2, t->shape, t->data);
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (st == TUNA_OK) st = st_writer_finish(w, path);
    else st_writer_free(w);
    if (st == TUNA_OK) {
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        st = write_json_atomic(o, path);
    }
    json_decref(o);
    return st;
}

/* Reads a list of names or a regex string into out (comma-joined). */
static tuna_status read_names(const json_t *v, char *out, size_t cap, int *is_regex, const char *path, const char *key) {
    if (is_regex) *is_regex = 0;
    out[0] = 0;
    if (json_is_string(v)) {
        if (!is_regex) return core_fail(TUNA_ERR_FORMAT, "%s: \"%s\" must be a list of module names", path, key);
        const char *s = json_string_value(v);
        if (strlen(s) >= cap) return core_fail(TUNA_ERR_FORMAT, "%s: \"%s\" is too long", path, key);
        snprintf(out, cap, "%s", s);
        *is_regex = strcmp(s, "all-linear") != 0;
        return TUNA_OK;
    }
    if (!json_is_array(v)) return core_fail(TUNA_ERR_FORMAT, "%s: \"%s\" must be a list of module names or a string", path, key);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e) || !json_string_value(e)[0] || strchr(json_string_value(e), ','))
            return core_fail(TUNA_ERR_FORMAT, "%s: \"%s\"[%zu] is not a module name", path, key, i);
        size_t len = strlen(out);
        if (len + strlen(json_string_value(e)) + 2 >= cap) return core_fail(TUNA_ERR_FORMAT, "%s: \"%s\" is too long", path, key);
        snprintf(out + len, cap - len, "%s%s", len ? "," : "", json_string_value(e));
    }
    return TUNA_OK;
}

static int is_empty_or_null(const json_t *v) {
    return !v || json_is_null(v) || json_is_false(v) || (json_is_object(v) && json_object_size(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0);
}

tuna_status tuna_peft_read_config(tuna_peft_config *c, const char *dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o) {
        if (access(path, F_OK) != 0) return core_fail(TUNA_ERR_IO, "%s: no adapter_config.json (not a PEFT adapter folder)", dir);
        return core_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, tuna_json_error_text(&jerr));
    }
    tuna_status st = TUNA_OK;
    jkeys keys = {o, path, "", TUNA_OK}; /* the typed keys, read strictly (core/json_keys.h) */
    const char *type = jkeys_str(&keys, "peft_type", NULL, NULL), *task = jkeys_str(&keys, "task_type", NULL, NULL);
    if ((st = keys.st) != TUNA_OK) goto done;
    if (!json_is_object(o) || !type) {
        st = core_fail(TUNA_ERR_FORMAT, "%s: missing \"peft_type\"", path);
        goto done;
    }
    if (task && strcmp(task, "CAUSAL_LM")) {
        st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: task_type %s (tuna trains causal language models: CAUSAL_LM)", path, task);
        goto done;
    }
    if (!strcmp(type, "LORA")) tuna_peft_config_default(c, TUNA_PEFT_LORA);
    else if (!strcmp(type, "IA3")) tuna_peft_config_default(c, TUNA_PEFT_IA3);
    else if (!strcmp(type, "PROMPT_TUNING")) tuna_peft_config_default(c, TUNA_PEFT_PROMPT);
    else {
        st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: peft_type %s is not supported (LORA, IA3, PROMPT_TUNING)", path, type);
        goto done;
    }
    const char *base = jkeys_str(&keys, "base_model_name_or_path", NULL, NULL);
    if ((st = keys.st) != TUNA_OK) goto done;
    if (base) snprintf(c->base_model, sizeof c->base_model, "%s", base);
    /* options tuna does not implement must not be silently ignored */
    const char *unsupported[] = {"use_dora", "rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save",
                                 "use_qalora", "lora_bias", "megatron_config", "exclude_modules"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (!is_empty_or_null(json_object_get(o, unsupported[i]))) {
            st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: option \"%s\" is set; tuna does not support it", path, unsupported[i]);
            goto done;
        }
    if (c->type == TUNA_PEFT_LORA) {
        if (!jkeys_get(&keys, "r") || !jkeys_get(&keys, "lora_alpha")) {
            st = core_fail(TUNA_ERR_FORMAT, "%s: \"r\" must be a positive integer and \"lora_alpha\" a number", path);
            goto done;
        }
        static const char *const biases[] = {"none", NULL};
        c->r = (int)jkeys_int(&keys, "r", 1, 65536, 8);
        c->alpha = jkeys_num(&keys, "lora_alpha", -FLT_MAX, 0, FLT_MAX, 8);
        c->dropout = jkeys_num(&keys, "lora_dropout", 0, 0, 1, 0);
        c->rslora = jkeys_bool(&keys, "use_rslora", 0);
        jkeys_str(&keys, "bias", biases, "none");
        if ((st = keys.st) != TUNA_OK) goto done;
    }
    if (c->type != TUNA_PEFT_PROMPT) {
        json_t *t = json_object_get(o, "target_modules");
        if (!t || json_is_null(t)) {
            c->targets[0] = 0; /* PEFT's defaults for the model type */
        } else {
            st = read_names(t, c->targets, sizeof c->targets, &c->targets_regex, path, "target_modules");
            if (st != TUNA_OK) goto done;
        }
        if (c->type == TUNA_PEFT_IA3) {
            json_t *ff = json_object_get(o, "feedforward_modules");
            if (ff && !json_is_null(ff)) {
                st = read_names(ff, c->feedforward, sizeof c->feedforward, NULL, path, "feedforward_modules");
                if (st != TUNA_OK) goto done;
            }
        }
    } else {
        if (!jkeys_get(&keys, "num_virtual_tokens")) {
            st = core_fail(TUNA_ERR_FORMAT, "%s: \"num_virtual_tokens\" must be an integer in 1..4096", path);
            goto done;
        }
        static const char *const inits[] = {"RANDOM", "TEXT", NULL};
        c->num_virtual_tokens = (int)jkeys_int(&keys, "num_virtual_tokens", 1, 4096, 1);
        long long ns = jkeys_int(&keys, "num_transformer_submodules", 1, INT_MAX, 1);
        const char *init = jkeys_str(&keys, "prompt_tuning_init", inits, "RANDOM");
        const char *text = jkeys_str(&keys, "prompt_tuning_init_text", NULL, NULL);
        const char *tok = jkeys_str(&keys, "tokenizer_name_or_path", NULL, NULL);
        if ((st = keys.st) != TUNA_OK) goto done;
        if (ns != 1) {
            st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: num_transformer_submodules %lld (decoder-only models use 1)", path, ns);
            goto done;
        }
        c->init_from_text = !strcmp(init, "TEXT");
        if (text) snprintf(c->init_text, sizeof c->init_text, "%s", text);
        if (tok) snprintf(c->tokenizer_name, sizeof c->tokenizer_name, "%s", tok);
    }
done:
    json_decref(o);
    return st;
}

tuna_status tuna_peft_load_weights(tuna_model *m, const char *dir) {
    tuna_peft_state *p = m->peft;
    if (!p) return core_fail(TUNA_ERR_ARG, "no adapter attached");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (access(path, F_OK) != 0) {
        char bin[PATH_MAX + 32];
        snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
        if (access(bin, F_OK) == 0)
            return core_fail(TUNA_ERR_UNSUPPORTED, "%s: only adapter_model.bin (pickle); save the adapter with safe_serialization", dir);
        return core_fail(TUNA_ERR_IO, "%s: no adapter_model.safetensors", dir);
    }
    st_file f;
    tuna_status st = st_open(&f, path);
    if (st != TUNA_OK) return st;
    for (int i = 0; st == TUNA_OK && i < p->n_params; i++) {
        tuna_param *t = &p->params[i].pub;
        const st_tensor *x = st_find(&f, t->name);
        if (!x) { st = core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is missing", path, t->name); break; }
        int ok = x->ndim == 2 && x->shape[0] == t->shape[0] && x->shape[1] == t->shape[1];
        if (!ok) {
            st = core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' has %d dims [%lld, %lld, ...], expected [%lld, %lld]", path, t->name,
                           x->ndim, (long long)x->shape[0], (long long)(x->ndim > 1 ? x->shape[1] : 0),
                           (long long)t->shape[0], (long long)t->shape[1]);
            break;
        }
        if (x->dtype != ST_F32 && x->dtype != ST_F16 && x->dtype != ST_BF16) {
            st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16, BF16 supported)", path, t->name,
                           st_dtype_name(x->dtype));
            break;
        }
        st = st_to_f32(x, t->data);
        st = core_fail_in(st, path); /* a NaN or infinite weight: name the file */
    }
    for (int j = 0; st == TUNA_OK && j < f.n_tensors; j++) {
        int found = 0;
        for (int i = 0; i < p->n_params && !found; i++) found = !strcmp(p->params[i].name, f.tensors[j].name);
        if (!found)
            st = core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' does not belong to this adapter on this model (targets: %s)", path,
                           f.tensors[j].name, p->cfg.type == TUNA_PEFT_PROMPT ? "prompt" : p->cfg.targets);
    }
    st_close(&f);
    return st;
}

tuna_status tuna_peft_load(tuna_model *m, const char *dir) {
    tuna_peft_config c;
    tuna_status st = tuna_peft_read_config(&c, dir);
    if (st != TUNA_OK) return st;
    if (c.type == TUNA_PEFT_PROMPT) {
        /* token_dim must be the model's width */
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        json_t *o = json_load_file(path, 0, NULL);
        jkeys r = {json_is_object(o) ? o : NULL, path, "", TUNA_OK};
        long long td = jkeys_int(&r, "token_dim", 1, INT_MAX, m->cfg.C);
        json_decref(o);
        if (r.st != TUNA_OK) return r.st;
        if (td != m->cfg.C) return core_fail(TUNA_ERR_FORMAT, "%s: token_dim %lld but the model's hidden size is %d", path, td, m->cfg.C);
    }
    st = attach(m, &c, 0, 0);
    if (st != TUNA_OK) return st;
    st = tuna_peft_load_weights(m, dir);
    if (st != TUNA_OK) {
        detach(m); /* leave the model as it was */
    }
    return st;
}
