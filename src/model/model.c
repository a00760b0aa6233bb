/* model.c — one decoder for GPT-2 and the Llama family, driven by tuna_config.
 *
 * Parameters live in one fp32 allocation carved by a table of named tensors
 * (model_build); gradients in a second one of the same layout. Activations for
 * a (B,T) batch live in one allocation whose size tuna_model_activation_bytes
 * computes with the same code that carves it (acts_layout). Forward keeps what
 * backward needs; backward is written by hand per layer and ADDS into the
 * gradient buffers, so micro-batches accumulate. Nothing is allocated inside
 * forward or backward. The lm_head and the loss run in chunks of rows (head.c). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "model/adapter_hooks.h"
#include "model/model_internal.h"
#include "core/error.h"

/* ---------------- parameter table ---------------- */

typedef struct {
    tuna_model *m;
    int pass;            /* 0: count and assign offsets; 1: resolve pointers */
    int64_t offset;
    int idx;
    int last2d;          /* index of the last 2-D tensor added (a linear's weight) */
} builder;

/* Registers one tensor; returns its fp32 storage (pass 1) or NULL (pass 0). */
static float *add_param(builder *b, float **grad_out, const char *name, int ndim, int64_t d0, int64_t d1,
                        int transposed, int optional_in_file) {
    tuna_model *m = b->m;
    int64_t numel = ndim == 1 ? d0 : d0 * d1;
    if (b->pass == 0) {
        tuna_param_entry *e = &m->params[b->idx];
        snprintf(e->name, sizeof e->name, "%s", name);
        e->pub.name = e->name;
        e->pub.ndim = ndim;
        e->pub.shape[0] = d0;
        e->pub.shape[1] = ndim > 1 ? d1 : 0;
        e->pub.numel = numel;
        e->pub.transposed = transposed;
        e->optional_in_file = optional_in_file;
        e->pub.data = NULL; /* resolved in pass 1 */
    } else {
        tuna_param_entry *e = &m->params[b->idx];
        if (ndim == 2) b->last2d = b->idx;
        b->idx++;
        if (e->external) { /* kept as stored: model->stored[e->sidx] */
            e->pub.data = e->pub.grad = NULL;
            if (grad_out) *grad_out = NULL;
            return NULL;
        }
        int64_t off = b->offset;
        e->pub.data = m->weights + off;
        e->pub.grad = m->grads ? m->grads + off : NULL;
        if (grad_out) *grad_out = e->pub.grad;
        b->offset += numel;
        return e->pub.data;
    }
    b->idx++;
    b->offset += numel;
    return NULL;
}

static void set_linear(builder *b, tuna_linear *l, int IC, int OC, float *w, float *dw, float *bias, float *dbias) {
    l->wparam = b->last2d;
    l->IC = IC;
    l->OC = OC;
    l->w = w;
    l->dw = dw;
    l->b = bias;
    l->db = dbias;
}

/* Walks the architecture once; pass 0 fills names/shapes/offsets, pass 1 sets
 * every pointer. One walk for both passes keeps the table and the views from
 * drifting apart. */
static int walk_params(builder *b) {
    tuna_model *m = b->m;
    const tuna_config *c = &m->cfg;
    char nm[200];
    const char *P = m->prefix;
    int64_t C = c->C, V = c->V, FF = c->FF, QD = (int64_t)c->NH * c->HD, KD = (int64_t)c->NKV * c->HD;
    float *g = NULL;
#define GP(ptr) (b->pass ? (ptr) : NULL)
    if (c->family == TUNA_FAMILY_GPT2) {
        snprintf(nm, sizeof nm, "%swte.weight", P);
        m->wte_param = b->idx;
        m->wte = add_param(b, &m->dwte, nm, 2, V, C, 0, 0);
        snprintf(nm, sizeof nm, "%swpe.weight", P);
        m->wpe_param = b->idx;
        m->wpe = add_param(b, &m->dwpe, nm, 2, c->max_positions, C, 0, 0);
        for (int l = 0; l < c->L; l++) {
            tuna_block *k = &m->blocks[l];
            float *w, *dw, *bi, *dbi;
            snprintf(nm, sizeof nm, "%sh.%d.ln_1.weight", P, l); k->ln1_w = add_param(b, &k->dln1_w, nm, 1, C, 0, 0, 0);
            snprintf(nm, sizeof nm, "%sh.%d.ln_1.bias", P, l);   k->ln1_b = add_param(b, &k->dln1_b, nm, 1, C, 0, 0, 0);
            /* Conv1D stores [in, out]: the file is the transpose of our [out, in] */
            snprintf(nm, sizeof nm, "%sh.%d.attn.c_attn.weight", P, l); w = add_param(b, &dw, nm, 2, C, 3 * C, 1, 0);
            snprintf(nm, sizeof nm, "%sh.%d.attn.c_attn.bias", P, l);   bi = add_param(b, &dbi, nm, 1, 3 * C, 0, 0, 0);
            if (b->pass) set_linear(b, &k->qkv, (int)C, (int)(3 * C), w, dw, bi, dbi);
            snprintf(nm, sizeof nm, "%sh.%d.attn.c_proj.weight", P, l); w = add_param(b, &dw, nm, 2, C, C, 1, 0);
            snprintf(nm, sizeof nm, "%sh.%d.attn.c_proj.bias", P, l);   bi = add_param(b, &dbi, nm, 1, C, 0, 0, 0);
            if (b->pass) set_linear(b, &k->o, (int)C, (int)C, w, dw, bi, dbi);
            snprintf(nm, sizeof nm, "%sh.%d.ln_2.weight", P, l); k->ln2_w = add_param(b, &k->dln2_w, nm, 1, C, 0, 0, 0);
            snprintf(nm, sizeof nm, "%sh.%d.ln_2.bias", P, l);   k->ln2_b = add_param(b, &k->dln2_b, nm, 1, C, 0, 0, 0);
            snprintf(nm, sizeof nm, "%sh.%d.mlp.c_fc.weight", P, l); w = add_param(b, &dw, nm, 2, C, FF, 1, 0);
            snprintf(nm, sizeof nm, "%sh.%d.mlp.c_fc.bias", P, l);   bi = add_param(b, &dbi, nm, 1, FF, 0, 0, 0);
            if (b->pass) set_linear(b, &k->fc, (int)C, (int)FF, w, dw, bi, dbi);
            snprintf(nm, sizeof nm, "%sh.%d.mlp.c_proj.weight", P, l); w = add_param(b, &dw, nm, 2, FF, C, 1, 0);
            snprintf(nm, sizeof nm, "%sh.%d.mlp.c_proj.bias", P, l);   bi = add_param(b, &dbi, nm, 1, C, 0, 0, 0);
            if (b->pass) set_linear(b, &k->down, (int)FF, (int)C, w, dw, bi, dbi);
        }
        snprintf(nm, sizeof nm, "%sln_f.weight", P); m->lnf_w = add_param(b, &m->dlnf_w, nm, 1, C, 0, 0, 0);
        snprintf(nm, sizeof nm, "%sln_f.bias", P);   m->lnf_b = add_param(b, &m->dlnf_b, nm, 1, C, 0, 0, 0);
    } else {
        m->wte_param = b->idx;
        m->wpe_param = -1;
        m->wte = add_param(b, &m->dwte, "model.embed_tokens.weight", 2, V, C, 0, 0);
        for (int l = 0; l < c->L; l++) {
            tuna_block *k = &m->blocks[l];
            float *w, *dw, *bi = NULL, *dbi = NULL;
            const char *L = "model.layers";
            snprintf(nm, sizeof nm, "%s.%d.input_layernorm.weight", L, l);
            k->ln1_w = add_param(b, &k->dln1_w, nm, 1, C, 0, 0, 0);
            struct { const char *n; tuna_linear *lin; int64_t in, out; int bias; } lins[] = {
                {"self_attn.q_proj", &k->q, C, QD, c->qkv_bias}, {"self_attn.k_proj", &k->k, C, KD, c->qkv_bias},
                {"self_attn.v_proj", &k->v, C, KD, c->qkv_bias}, {"self_attn.o_proj", &k->o, QD, C, c->o_bias},
            };
            for (int i = 0; i < 4; i++) {
                snprintf(nm, sizeof nm, "%s.%d.%s.weight", L, l, lins[i].n);
                w = add_param(b, &dw, nm, 2, lins[i].out, lins[i].in, 0, 0);
                bi = dbi = NULL;
                if (lins[i].bias) {
                    snprintf(nm, sizeof nm, "%s.%d.%s.bias", L, l, lins[i].n);
                    bi = add_param(b, &dbi, nm, 1, lins[i].out, 0, 0, 0);
                }
                if (b->pass) set_linear(b, lins[i].lin, (int)lins[i].in, (int)lins[i].out, w, dw, bi, dbi);
            }
            snprintf(nm, sizeof nm, "%s.%d.post_attention_layernorm.weight", L, l);
            k->ln2_w = add_param(b, &k->dln2_w, nm, 1, C, 0, 0, 0);
            struct { const char *n; tuna_linear *lin; int64_t in, out; } mlps[] = {
                {"mlp.gate_proj", &k->gate, C, FF}, {"mlp.up_proj", &k->up, C, FF}, {"mlp.down_proj", &k->down, FF, C},
            };
            for (int i = 0; i < 3; i++) {
                snprintf(nm, sizeof nm, "%s.%d.%s.weight", L, l, mlps[i].n);
                w = add_param(b, &dw, nm, 2, mlps[i].out, mlps[i].in, 0, 0);
                bi = dbi = NULL;
                if (c->mlp_bias) {
                    snprintf(nm, sizeof nm, "%s.%d.%s.bias", L, l, mlps[i].n);
                    bi = add_param(b, &dbi, nm, 1, mlps[i].out, 0, 0, 0);
                }
                if (b->pass) set_linear(b, mlps[i].lin, (int)mlps[i].in, (int)mlps[i].out, w, dw, bi, dbi);
            }
        }
        m->lnf_w = add_param(b, &m->dlnf_w, "model.norm.weight", 1, C, 0, 0, 0);
    }
    if (c->num_labels > 0) { /* a …ForSequenceClassification model: score.weight instead of lm_head */
        float *w = add_param(b, &g, "score.weight", 2, c->num_labels, C, 0, 0);
        if (b->pass) set_linear(b, &m->lm_head, (int)C, c->num_labels, w, g, NULL, NULL);
    } else if (c->tie_embeddings) {
        if (b->pass) set_linear(b, &m->lm_head, (int)C, (int)V, m->wte, m->dwte, NULL, NULL);
        m->lm_head.wparam = m->wte_param;
    } else {
        float *w = add_param(b, &g, "lm_head.weight", 2, V, C, 0, 0);
        if (b->pass) set_linear(b, &m->lm_head, (int)C, (int)V, w, g, NULL, NULL);
    }
#undef GP
    return b->idx;
}

static int count_params(tuna_model *m) {
    /* an upper bound: per layer at most 2+2+ (4 linears * 2) + 3*2 + 2 */
    return 8 + m->cfg.L * 24;
}

/* Frozen weights kept as stored (TUNA_QUANT_STORED, and NF4's embeddings and
 * lm_head): every 2-D tensor; norms and biases are always fp32. */
static int is_stored_weight(const tuna_model *m, const tuna_param_entry *e) {
    return m->quant_type != TUNA_QUANT_NONE && e->pub.ndim == 2;
}

static void name_linears(tuna_model *m) {
    tuna_linear *ls[8 * 1024];
    int n = m->cfg.L * 7 <= 8 * 1024 ? model_linears(m, ls) : 0;
    for (int i = 0; i < n; i++) {
        const char *pn = m->params[ls[i]->wparam].name;
        size_t len = strlen(pn) - strlen(".weight");
        /* PEFT module paths are those of GPT2LMHeadModel: always "transformer.h..." */
        const char *pre = m->cfg.family == TUNA_FAMILY_GPT2 && !m->prefix[0] ? "transformer." : "";
        snprintf(m->linear_names[i], sizeof m->linear_names[i], "%s%.*s", pre, (int)len, pn);
        ls[i]->name = m->linear_names[i];
    }
}

tuna_status model_build(tuna_model *m, int with_grads) {
    m->blocks = calloc((size_t)m->cfg.L, sizeof *m->blocks);
    m->params = calloc((size_t)count_params(m), sizeof *m->params);
    m->linear_names = calloc((size_t)m->cfg.L * 7, sizeof *m->linear_names);
    if (!m->blocks || !m->params || !m->linear_names) return core_fail(TUNA_ERR_NOMEM, "out of memory building the model");
    if (m->cfg.L * 7 > 8 * 1024) return core_fail(TUNA_ERR_UNSUPPORTED, "more than %d layers", 8 * 1024 / 7);
    builder b = {m, 0, 0, 0, 0};
    m->n_params = walk_params(&b);
    m->n_weights = 0;
    m->n_stored = 0;
    for (int i = 0; i < m->n_params; i++) {
        tuna_param_entry *e = &m->params[i];
        e->external = is_stored_weight(m, e);
        if (e->external) e->sidx = m->n_stored++;
        else m->n_weights += e->pub.numel;
    }
    m->stored = calloc((size_t)(m->n_stored ? m->n_stored : 1), sizeof *m->stored);
    if (!m->stored) return core_fail(TUNA_ERR_NOMEM, "out of memory building the model");
    m->weights = calloc((size_t)m->n_weights, sizeof(float));
    if (!m->weights)
        return core_fail(TUNA_ERR_NOMEM, "out of memory: %lld parameters need %.1f MiB", (long long)m->n_weights,
                         m->n_weights * 4.0 / 1048576.0);
    if (with_grads) {
        m->grads = calloc((size_t)m->n_weights, sizeof(float));
        if (!m->grads) return core_fail(TUNA_ERR_NOMEM, "out of memory for gradients");
    }
    b = (builder){m, 1, 0, 0, 0};
    walk_params(&b);
    name_linears(m);
    return TUNA_OK;
}

/* the conversion tile: LINEAR_TILE values or the largest stored row */
static int64_t tile_values(const tuna_model *m) {
    int64_t tile = 1;
    for (int i = 0; i < m->n_params; i++) {
        const tuna_param_entry *e = &m->params[i];
        if (!e->external) continue;
        int64_t cols = e->pub.transposed ? e->pub.shape[0] : e->pub.shape[1], rows = LINEAR_TILE / cols;
        int64_t outs = e->pub.numel / cols;
        if (rows < 1) rows = 1;
        if (rows > outs) rows = outs;
        if (rows * cols > tile) tile = rows * cols;
    }
    return tile;
}

static void link_linear(tuna_model *m, tuna_linear *l) {
    const tuna_param_entry *e = &m->params[l->wparam];
    l->stored = e->external ? &m->stored[e->sidx] : NULL;
}

tuna_status model_link_stored(tuna_model *m) {
    if (m->n_stored && !m->stored_scratch) {
        m->stored_scratch = malloc((size_t)tile_values(m) * sizeof(float));
        if (!m->stored_scratch) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_stored; i++) m->stored[i].scratch = m->stored_scratch;
    tuna_linear *ls[8 * 1024];
    int n = model_linears(m, ls);
    for (int i = 0; i < n; i++) link_linear(m, ls[i]);
    link_linear(m, &m->lm_head);
    return TUNA_OK;
}

/* fp32 table or stored tensor of parameter i */
static void param_read(const tuna_model *m, int i, const float *f32, int64_t start, int64_t count, float *out, int add) {
    const tuna_param_entry *e = &m->params[i];
    if (e->external) { stored_read(&m->stored[e->sidx], start, count, out, add); return; }
    if (add) for (int64_t j = 0; j < count; j++) out[j] += f32[start + j];
    else memcpy(out, f32 + start, (size_t)count * sizeof(float));
}

void model_param_read(const tuna_model *m, int i, int64_t start, int64_t count, float *out) {
    param_read(m, i, m->params[i].pub.data, start, count, out, 0);
}

void model_embed_row(const tuna_model *m, int64_t row, float *out) {
    param_read(m, m->wte_param, m->wte, row * m->cfg.C, m->cfg.C, out, 0);
}

void model_embed_done(const tuna_model *m) {
    const tuna_param_entry *e = &m->params[m->wte_param];
    if (e->external && !m->cfg.tie_embeddings) stored_release_all(&m->stored[e->sidx]);
}

void model_pos_add(const tuna_model *m, int64_t row, float *out) {
    param_read(m, m->wpe_param, m->wpe, row * m->cfg.C, m->cfg.C, out, 1);
}

void model_weight_bytes(const tuna_model *m, size_t *own, size_t *mapped) {
    size_t o = (size_t)m->n_weights * sizeof(float), mp = 0;
    for (int i = 0; i < m->n_stored; i++) {
        o += stored_own_bytes(&m->stored[i]);
        mp += stored_mapped_bytes(&m->stored[i]);
    }
    *own = o;
    *mapped = mp;
}

static tuna_status alloc_grads(tuna_model *m) {
    if (m->grads) return TUNA_OK;
    m->grads = calloc((size_t)m->n_weights, sizeof(float));
    if (!m->grads) return core_fail(TUNA_ERR_NOMEM, "out of memory for gradients");
    builder b = {m, 1, 0, 0, 0}; /* pass 1 again: offsets are recomputed in walk order */
    walk_params(&b);
    return TUNA_OK;
}

/* Drops the base's gradients (an adapter is attached): pointers re-walked to NULL. */
void model_freeze_base(tuna_model *m) {
    m->base_frozen = 1;
    free(m->grads);
    m->grads = NULL;
    builder b = {m, 1, 0, 0, 0};
    walk_params(&b);
    m->acts.B = 0; /* the next prepare rebuilds activations (adapter buffers, prefix) */
}

void model_unfreeze_base(tuna_model *m) {
    m->base_frozen = 0;
    m->acts.B = 0; /* the next prepare rebuilds activations (no prefix) */
}

tuna_status tuna_model_create(tuna_model **out, const tuna_config *cfg) {
    *out = NULL;
    tuna_status st = tuna_config_validate(cfg);
    if (st != TUNA_OK) return st;
    tuna_model *m = calloc(1, sizeof *m);
    if (!m) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    if (cfg->family == TUNA_FAMILY_GPT2) snprintf(m->prefix, sizeof m->prefix, "transformer.");
    st = model_build(m, 0);
    if (st != TUNA_OK) { tuna_model_free(m); return st; }
    /* norms start at identity: weight 1 */
    for (int l = 0; l < cfg->L; l++) {
        for (int c = 0; c < cfg->C; c++) m->blocks[l].ln1_w[c] = m->blocks[l].ln2_w[c] = 1.0f;
    }
    for (int c = 0; c < cfg->C; c++) m->lnf_w[c] = 1.0f;
    *out = m;
    return TUNA_OK;
}

static void acts_free(tuna_acts *a) {
    free(a->full_logits);
    free(a->base);
    free(a->resid);
    memset(a, 0, sizeof *a);
}

void tuna_model_free(tuna_model *m) {
    if (!m) return;
    model_bf16_free(m);
    acts_free(&m->acts);
    adapter_free(m);
    if (!m->shares_weights) {
        for (int i = 0; m->stored && i < m->n_stored; i++) stored_free(&m->stored[i]);
        free(m->stored);
        free(m->stored_scratch);
        free(m->weights);
        for (int i = 0; i < m->n_maps; i++) munmap(m->maps[i].addr, m->maps[i].len);
        free(m->maps);
    }
    free(m->linear_names);
    free(m->grads);
    free(m->params);
    free(m->blocks);
    free(m);
}

/* A second model over the same weight memory: its own tables and linears
 * (where an adapter can hang), the base's weights, norms and NF4 storage. */
tuna_status tuna_model_share(tuna_model **out, tuna_model *base) {
    *out = NULL;
    if (base->peft || base->shares_weights)
        return core_fail(TUNA_ERR_ARG, "only a plain loaded model (no adapter, not itself shared) can be shared");
    tuna_model *m = calloc(1, sizeof *m);
    if (!m) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    m->cfg = base->cfg;
    memcpy(m->prefix, base->prefix, sizeof m->prefix);
    m->shares_weights = 1;
    m->quant_type = base->quant_type;
    m->stored = base->stored;
    m->n_stored = base->n_stored;
    m->stored_scratch = base->stored_scratch;
    m->blocks = calloc((size_t)m->cfg.L, sizeof *m->blocks);
    m->params = calloc((size_t)count_params(m), sizeof *m->params);
    m->linear_names = calloc((size_t)m->cfg.L * 7, sizeof *m->linear_names);
    if (!m->blocks || !m->params || !m->linear_names) { tuna_model_free(m); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    builder b = {m, 0, 0, 0, 0};
    m->n_params = walk_params(&b);
    for (int i = 0; i < m->n_params; i++) {
        m->params[i].external = base->params[i].external;
        m->params[i].sidx = base->params[i].sidx;
    }
    m->weights = base->weights;
    m->n_weights = base->n_weights;
    b = (builder){m, 1, 0, 0, 0};
    walk_params(&b);
    name_linears(m);
    model_link_stored(m); /* the scratch exists: nothing to allocate */
    *out = m;
    return TUNA_OK;
}

/* A model without weights for planning (mem_plan, peft_plan): the parameter
 * table and the linears' sizes and module names, every tensor marked
 * external so nothing is allocated or carved. Free with tuna_model_free. */
tuna_status model_skeleton(tuna_model **out, const tuna_config *cfg) {
    *out = NULL;
    tuna_status st = tuna_config_validate(cfg);
    if (st != TUNA_OK) return st;
    if (cfg->L * 7 > 8 * 1024) return core_fail(TUNA_ERR_UNSUPPORTED, "more than %d layers", 8 * 1024 / 7);
    tuna_model *m = calloc(1, sizeof *m);
    if (!m) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    if (cfg->family == TUNA_FAMILY_GPT2) snprintf(m->prefix, sizeof m->prefix, "transformer.");
    m->blocks = calloc((size_t)cfg->L, sizeof *m->blocks);
    m->params = calloc((size_t)count_params(m), sizeof *m->params);
    m->linear_names = calloc((size_t)cfg->L * 7, sizeof *m->linear_names);
    if (!m->blocks || !m->params || !m->linear_names) { tuna_model_free(m); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    builder b = {m, 0, 0, 0, 0};
    m->n_params = walk_params(&b);
    for (int i = 0; i < m->n_params; i++) m->params[i].external = 1;
    b = (builder){m, 1, 0, 0, 0};
    walk_params(&b);
    name_linears(m);
    *out = m;
    return TUNA_OK;
}

const tuna_config *tuna_model_config(const tuna_model *m) { return &m->cfg; }
int tuna_model_num_params(const tuna_model *m) { return m->n_params; }
const tuna_param *tuna_model_param(const tuna_model *m, int i) {
    if (i < 0 || i >= m->n_params) return NULL;
    return &m->params[i].pub;
}
const tuna_param *tuna_model_find_param(const tuna_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return tuna_model_param(m, i);
    return NULL;
}
int64_t tuna_model_param_count(const tuna_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) {
        const tuna_param_entry *e = &m->params[i];
        if (!e->external || m->stored[e->sidx].type != STORE_NF4) n += e->pub.numel;
    }
    return n;
}

/* ---------------- activations ---------------- */

/* Points layer l's per-layer buffers at slot i's. */
static void share_slot(tuna_acts *a, int l, int i) {
    a->mean1[l] = a->mean1[i]; a->rstd1[l] = a->rstd1[i];
    a->qkv[l] = a->qkv[i]; a->attn_out[l] = a->attn_out[i];
    a->resid_mid[l] = a->resid_mid[i]; a->mean2[l] = a->mean2[i];
    a->rstd2[l] = a->rstd2[i]; a->mlp_a[l] = a->mlp_a[i]; a->mlp_b[l] = a->mlp_b[i];
}

/* Computes the layout of the activation block; with base != NULL also carves
 * the pointers. Returns bytes needed. In training, layers [0, ckpt) are
 * checkpointed (backward recomputes them from resid[l]) and share one set of
 * buffers; every other layer keeps its own. In eval every layer shares one
 * set and the residual stream alternates between two buffers. The norm
 * outputs and the MLP activation are always one buffer for all layers. */
static size_t acts_layout(const tuna_config *c, int B, int T, int mode, int ckpt, int head_knob, tuna_acts *a,
                          char *base) {
    int train = mode != TUNA_MODE_EVAL;
    size_t off = 0;
    long N = (long)B * T;
    int L = c->L, nthr = omp_get_max_threads();
    long QKV = (long)(c->NH + 2 * c->NKV) * c->HD, QD = (long)c->NH * c->HD;
#define CARVE(ptr, count, type)                                    \
    do {                                                           \
        if (base) (ptr) = (type *)(base + off);                    \
        off += (((size_t)(count) * sizeof(type)) + 63) & ~(size_t)63; \
    } while (0)
    int nres = train ? L + 1 : 2, nl = train ? (ckpt > 0) + L - ckpt : 1;
    for (int i = 0; i < nres; i++) CARVE(a->resid[i], N * c->C, float);
    /* norm outputs are recomputed in backward from the kept input and
     * mean/rstd (one elementwise pass): one buffer each serves every layer */
    CARVE(a->norm1[0], N * c->C, float);
    CARVE(a->norm2[0], N * c->C, float);
    for (int i = 0; i < nl; i++) {
        CARVE(a->mean1[i], N, float);
        CARVE(a->rstd1[i], N, float);
        CARVE(a->qkv[i], N * QKV, float);
        CARVE(a->attn_out[i], N * QD, float);
        CARVE(a->resid_mid[i], N * c->C, float);
        CARVE(a->mean2[i], N, float);
        CARVE(a->rstd2[i], N, float);
        CARVE(a->mlp_a[i], N * c->FF, float);
        if (c->mlp == TUNA_MLP_SWIGLU) CARVE(a->mlp_b[i], N * c->FF, float);
    }
    /* the MLP activation is recomputed in backward from mlp_a (one cheap
     * elementwise pass), so one buffer serves every layer */
    CARVE(a->mlp_act[0], N * c->FF, float);
    /* attention probabilities are never kept: T*T per thread for the forward,
     * twice that for backward, which recomputes them */
    CARVE(a->att_scratch, (long)nthr * 2 * T * T, float);
    a->att_slots = nthr;
    CARVE(a->normf, N * c->C, float);
    CARVE(a->meanf, N, float);
    CARVE(a->rstdf, N, float);
    /* the logits of one chunk of rows only (head.c) */
    a->head_rows = head_rows(c->V, N, head_knob);
    CARVE(a->logits, (long)a->head_rows * c->V, float);
    CARVE(a->lse, N, float);
    CARVE(a->tgt_logit, N, float);
    CARVE(a->tok_w, N, float);
    CARVE(a->targets, N, int32_t);
    CARVE(a->pos, N, int32_t);
    if (c->family == TUNA_FAMILY_LLAMA) {
        CARVE(a->rope_cos, (long)T * c->HD / 2, float);
        CARVE(a->rope_sin, (long)T * c->HD / 2, float);
    }
    if (train) {
        CARVE(a->dresid, N * c->C, float);
        CARVE(a->dtmp, N * c->C, float);
        CARVE(a->dqkv, N * QKV, float);
        CARVE(a->dattn, N * QD, float);
        CARVE(a->dmlp_a, N * c->FF, float);
        if (c->mlp == TUNA_MLP_SWIGLU) CARVE(a->dmlp_b, N * c->FF, float);
        CARVE(a->dmlp_act, N * c->FF, float);
    }
#undef CARVE
    if (base)
        for (int i = 1; i < L; i++) {
            a->mlp_act[i] = a->mlp_act[0];
            a->norm1[i] = a->norm1[0];
            a->norm2[i] = a->norm2[0];
        }
    if (base && train)
        /* layer l < ckpt uses the shared slot 0; layer l >= ckpt slot (ckpt > 0) + l - ckpt;
         * descending, so each slot is read before its index is reassigned */
        for (int l = L - 1; l >= 0; l--) share_slot(a, l, l < ckpt ? 0 : (ckpt > 0) + l - ckpt);
    if (base && !train) {
        for (int l = 1; l < L; l++) share_slot(a, l, 0);
        for (int i = 2; i <= L; i++) a->resid[i] = a->resid[i % 2];
    }
    return off;
}

/* Layers checkpointed in a mode: all in TUNA_MODE_TRAIN_CHECKPOINT, none otherwise. */
static int mode_ckpt(const tuna_config *c, int mode) { return mode == TUNA_MODE_TRAIN_CHECKPOINT ? c->L : 0; }

size_t tuna_model_activation_bytes(const tuna_config *cfg, int B, int T, int mode) {
    tuna_acts dummy;
    memset(&dummy, 0, sizeof dummy);
    return acts_layout(cfg, B, T, mode, mode_ckpt(cfg, mode), 0, &dummy, NULL);
}

size_t tuna_model_activation_bytes_checkpointed(const tuna_config *cfg, int B, int T, int layers) {
    if (layers < 0 || layers > cfg->L) return 0;
    tuna_acts dummy;
    memset(&dummy, 0, sizeof dummy);
    return acts_layout(cfg, B, T, TUNA_MODE_TRAIN, layers, 0, &dummy, NULL);
}

size_t tuna_model_weight_bytes(const tuna_config *c) {
    tuna_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *c;
    tmp.params = calloc((size_t)count_params(&tmp), sizeof *tmp.params);
    tmp.blocks = calloc((size_t)c->L, sizeof *tmp.blocks);
    if (!tmp.params || !tmp.blocks) { free(tmp.params); free(tmp.blocks); return 0; }
    builder b = {&tmp, 0, 0, 0, 0};
    walk_params(&b);
    free(tmp.params);
    free(tmp.blocks);
    return (size_t)b.offset * sizeof(float);
}

void model_rope_tables(const tuna_config *c, float *cos_t, float *sin_t, int T) {
    int half = c->HD / 2;
    for (int i = 0; i < half; i++) {
        /* HF: inv_freq = 1 / theta^(2i/HD), computed in fp32 */
        float inv = (float)(1.0 / pow((double)c->rope_theta, (double)(2 * i) / c->HD));
        if (c->rope_scaling == TUNA_ROPE_LINEAR) inv = inv / c->rope_factor;
        else if (c->rope_scaling == TUNA_ROPE_LLAMA3) {
            double old = c->rope_original_max_positions;
            double low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
            double wl = 2.0 * M_PI / inv;
            if (wl > low_wl) inv = (float)(inv / c->rope_factor);
            else if (wl >= high_wl) {
                double smooth = (old / wl - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (float)((1.0 - smooth) * inv / c->rope_factor + smooth * inv);
            }
        }
        for (int t = 0; t < T; t++) {
            float f = (float)t * inv; /* fp32 product, as torch computes it */
            cos_t[(long)t * half + i] = cosf(f);
            sin_t[(long)t * half + i] = sinf(f);
        }
    }
}

/* tuna_model_prepare with the first ckpt layers checkpointed (training modes). */
static tuna_status prepare(tuna_model *m, int B, int T, int mode, int ckpt) {
    if (B <= 0 || T <= 0) return core_fail(TUNA_ERR_ARG, "batch size %d and sequence length %d must be positive", B, T);
    int train = mode != TUNA_MODE_EVAL;
    int P = adapter_prompt_rows(m);
    T += P; /* prompt tuning: virtual tokens lead every row */
    if (m->acts.base && m->acts.B == B && m->acts.T == T && m->acts.mode == mode && m->acts.ckpt == ckpt) return TUNA_OK;
    if (train && !m->base_frozen && m->n_stored)
        return core_fail(TUNA_ERR_UNSUPPORTED,
                         "a model whose weights are kept %s cannot be fully fine-tuned: load it in fp32 "
                         "(tuna_model_load), or attach an adapter",
                         m->quant_type == TUNA_QUANT_NF4 ? "in NF4" : "as stored (bf16, f16 or GGUF blocks)");
    if (train && !m->base_frozen) {
        tuna_status st = alloc_grads(m);
        if (st != TUNA_OK) return st;
    }
    if (m->peft) {
        tuna_status st = adapter_prepare(m, B * T);
        if (st != TUNA_OK) return st;
    }
    acts_free(&m->acts);
    tuna_acts *a = &m->acts;
    int L = m->cfg.L;
    /* the 13 per-layer pointer arrays share one small allocation (freed via resid) */
    float **arr = calloc((size_t)(13 * (L + 1)), sizeof(float *));
    if (!arr) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    float ***slots[] = {&a->resid, &a->norm1, &a->mean1, &a->rstd1, &a->qkv, &a->attn_out,
                        &a->resid_mid, &a->norm2, &a->mean2, &a->rstd2, &a->mlp_a, &a->mlp_b, &a->mlp_act};
    for (int i = 0; i < 13; i++) *slots[i] = arr + (long)i * (L + 1);
    int knob = m->head_rows;
    if (!knob && train && !m->base_frozen && m->bf16) knob = head_rows_bf16_full(m->cfg.V, (long)B * T);
    size_t bytes = acts_layout(&m->cfg, B, T, mode, ckpt, knob, a, NULL);
    char *base = NULL;
    if (posix_memalign((void **)&base, 64, bytes ? bytes : 64) != 0) {
        free(arr);
        memset(a, 0, sizeof *a);
        return core_fail(TUNA_ERR_NOMEM, "out of memory: activations for batch %d x %d need %.1f MiB", B, T,
                         bytes / 1048576.0);
    }
    acts_layout(&m->cfg, B, T, mode, ckpt, knob, a, base);
    a->base = base;
    a->bytes = bytes;
    a->B = B;
    a->T = T;
    a->train = train;
    a->mode = mode;
    a->ckpt = ckpt;
    a->P = P;
    if (m->cfg.family == TUNA_FAMILY_LLAMA) model_rope_tables(&m->cfg, a->rope_cos, a->rope_sin, T);
    m->have_forward = 0;
    return TUNA_OK;
}

tuna_status tuna_model_prepare(tuna_model *m, int B, int T, int mode) {
    if (mode < TUNA_MODE_EVAL || mode > TUNA_MODE_TRAIN_CHECKPOINT) return core_fail(TUNA_ERR_ARG, "unknown mode %d", mode);
    return prepare(m, B, T, mode, mode_ckpt(&m->cfg, mode));
}

tuna_status tuna_model_prepare_checkpointed(tuna_model *m, int B, int T, int layers) {
    if (layers < 0 || layers > m->cfg.L)
        return core_fail(TUNA_ERR_ARG, "%d checkpointed layers asked for; the model has %d", layers, m->cfg.L);
    return prepare(m, B, T, layers == m->cfg.L ? TUNA_MODE_TRAIN_CHECKPOINT : TUNA_MODE_TRAIN, layers);
}

/* ---------------- forward / backward ---------------- */

static void qkv_views(const tuna_model *m, float *base, int N, float **q, float **k, float **v, int *sq, int *sk,
                      int *sv) {
    const tuna_config *c = &m->cfg;
    if (c->family == TUNA_FAMILY_GPT2) {
        *q = base; *k = base + c->C; *v = base + 2 * c->C;
        *sq = *sk = *sv = 3 * c->C;
    } else {
        *q = base;
        *k = base + (long)N * c->NH * c->HD;
        *v = *k + (long)N * c->NKV * c->HD;
        *sq = c->NH * c->HD;
        *sk = *sv = c->NKV * c->HD;
    }
}

static void norm_fwd(const tuna_config *c, float *out, float *mean, float *rstd, const float *x, const float *w,
                     const float *b, int N) {
    if (c->norm == TUNA_NORM_LAYERNORM) k_layernorm_fwd(out, mean, rstd, x, w, b, N, c->C, c->norm_eps);
    else k_rmsnorm_fwd(out, rstd, x, w, N, c->C, c->norm_eps);
}

static void norm_bwd(const tuna_config *c, float *din, float *dw, float *db, const float *dout, const float *x,
                     const float *w, const float *mean, const float *rstd, int N) {
    if (c->norm == TUNA_NORM_LAYERNORM) k_layernorm_bwd(din, dw, db, dout, x, w, mean, rstd, N, c->C);
    else k_rmsnorm_bwd(din, dw, dout, x, w, rstd, N, c->C);
}

static tuna_status check_id(const tuna_config *c, const tuna_batch *bt, int n) {
    int id = bt->input_ids[n];
    if (id < 0 || id >= c->V)
        return core_fail(TUNA_ERR_ARG, "token id %d at row %d position %d is outside the vocabulary (0..%d)", id, n / bt->T,
                         n % bt->T, c->V - 1);
    return TUNA_OK;
}

/* Backward and the row losses read what the last forward kept for its batch:
 * they must be given that batch's shape (B x T, packed or not). */
static tuna_status check_forward_batch(const tuna_model *m, const char *what, int B, int T, int packed) {
    const tuna_acts *a = &m->acts;
    if (!m->have_forward) return core_fail(TUNA_ERR_ARG, "%s without a preceding forward", what);
    if (B != a->fwd_B || T != a->fwd_T || packed != a->fwd_packed)
        return core_fail(TUNA_ERR_ARG, "%s of a batch %d x %d%s, but the last forward ran on %d x %d%s", what, B, T,
                         packed ? " with position ids" : "", a->fwd_B, a->fwd_T, a->fwd_packed ? " with position ids" : "");
    return TUNA_OK;
}

static tuna_status check_batch(tuna_model *m, const tuna_batch *bt) {
    const tuna_config *c = &m->cfg;
    tuna_acts *a = &m->acts;
    if (!a->base) return core_fail(TUNA_ERR_ARG, "model not prepared for a batch (call tuna_model_prepare)");
    if (bt->B <= 0 || bt->T <= 0 || bt->B > a->B || bt->T + a->P > a->T)
        return core_fail(TUNA_ERR_ARG, "batch %d x %d exceeds the prepared %d x %d", bt->B, bt->T, a->B, a->T - a->P);
    if (a->P && bt->pos_ids)
        return core_fail(TUNA_ERR_UNSUPPORTED, "prompt tuning does not support packed rows (position ids)");
    if (c->learned_positions && !bt->pos_ids && bt->T + a->P > c->max_positions)
        return core_fail(TUNA_ERR_ARG, "%d tokens%s exceed the model's %d learned positions", bt->T + a->P,
                         a->P ? " (with the virtual tokens of prompt tuning)" : "", c->max_positions);
    if (c->sliding_window > 0 && bt->T + a->P > c->sliding_window)
        return core_fail(TUNA_ERR_UNSUPPORTED,
                         "sequence of %d tokens exceeds the model's sliding_window of %d (sliding-window attention is not implemented)",
                         bt->T, c->sliding_window);
    int maxpos = c->learned_positions ? c->max_positions : a->T;
    for (int n = 0; n < bt->B * bt->T; n++) {
        tuna_status st = check_id(c, bt, n);
        if (st != TUNA_OK) return st;
        int p = bt->pos_ids ? bt->pos_ids[n] : n % bt->T;
        if (p < 0 || p >= maxpos || p > n % bt->T)
            return core_fail(TUNA_ERR_ARG, "position %d at row %d position %d is out of range (max %d)", p,
                             n / bt->T, n % bt->T, maxpos - 1);
        if (bt->labels) {
            int lb = bt->labels[n];
            if (lb != -100 && (lb < 0 || lb >= c->V))
                return core_fail(TUNA_ERR_ARG, "label %d at row %d position %d is outside the vocabulary", lb,
                                 n / bt->T, n % bt->T);
        }
    }
    return TUNA_OK;
}

static void block_forward(tuna_model *m, int l, int B, int T, int packed);

tuna_status tuna_model_forward(tuna_model *m, const tuna_batch *bt, tuna_loss *loss) {
    tuna_status st = check_batch(m, bt);
    if (st != TUNA_OK) return st;
    const tuna_config *c = &m->cfg;
    tuna_acts *a = &m->acts;
    /* rows are [P virtual tokens | T tokens]; TT = T + P */
    int B = bt->B, T = bt->T, P = a->P, TT = T + P, N = B * TT, C = c->C;
    for (int n = 0; n < N; n++) {
        int b = n / TT, t = n % TT, tl = t + 1 - P; /* the label position row n is scored against */
        a->pos[n] = bt->pos_ids ? bt->pos_ids[n] : t;
        a->targets[n] = (bt->labels && t < TT - 1 && tl >= 0 && bt->labels[b * T + tl] != -100) ? bt->labels[b * T + tl] : -1;
    }
    adapter_begin_forward(m); /* this forward's dropout key */
    model_bf16_begin(m);
    /* embeddings */
    float *x = a->resid[0];
    const float *prompt = adapter_prompt(m);
    for (int n0 = 0; n0 < N; n0 += STORED_LOOKUP_ROWS) {
        int n1 = n0 + STORED_LOOKUP_ROWS < N ? n0 + STORED_LOOKUP_ROWS : N;
#pragma omp parallel for
        for (int n = n0; n < n1; n++) {
            int b = n / TT, t = n % TT;
            float *xn = x + (long)n * C;
            if (t < P) memcpy(xn, prompt + (long)t * C, (size_t)C * sizeof(float));
            else model_embed_row(m, bt->input_ids[b * T + t - P], xn);
            if (c->learned_positions) model_pos_add(m, a->pos[n], xn);
        }
        model_embed_done(m);
    }
    for (int l = 0; l < c->L; l++) block_forward(m, l, B, TT, bt->pos_ids != NULL);
    norm_fwd(c, a->normf, a->meanf, a->rstdf, a->resid[c->L], m->lnf_w, m->lnf_b, N);
    int64_t count = 0;
    double sum = c->num_labels ? head_score_forward(m, B, TT, &count) : head_forward(m, N, &count);
    if (loss) {
        loss->loss_sum = sum;
        loss->tokens = count;
    }
    m->have_forward = 1;
    a->fwd_B = B;
    a->fwd_T = T;
    a->fwd_packed = bt->pos_ids != NULL;
    return TUNA_OK;
}

/* One transformer block: resid[l] -> resid[l+1], keeping what backward needs
 * in layer slot l. Backward calls it again under gradient checkpointing. */
static void block_forward(tuna_model *m, int l, int B, int T, int packed) {
    const tuna_config *c = &m->cfg;
    tuna_acts *a = &m->acts;
    int N = B * T, C = c->C;
    if (m->bf16) linear_bf16_flush(m->bf16); /* a recomputation rewrites what the last linear read */
    {
        tuna_block *k = &m->blocks[l];
        float *xin = a->resid[l], *xout = a->resid[l + 1];
        norm_fwd(c, a->norm1[l], a->mean1[l], a->rstd1[l], xin, k->ln1_w, k->ln1_b, N);
        float *q, *kk, *v;
        int sq, sk, sv;
        qkv_views(m, a->qkv[l], N, &q, &kk, &v, &sq, &sk, &sv);
        if (c->family == TUNA_FAMILY_GPT2) linear_forward(&k->qkv, a->qkv[l], a->norm1[l], N);
        else {
            linear_forward(&k->q, q, a->norm1[l], N);
            linear_forward(&k->k, kk, a->norm1[l], N);
            linear_forward(&k->v, v, a->norm1[l], N);
            k_rope(q, a->pos, a->rope_cos, a->rope_sin, N, c->NH, c->HD, sq, 0);
            k_rope(kk, a->pos, a->rope_cos, a->rope_sin, N, c->NKV, c->HD, sk, 0);
        }
        if (!model_bf16_attention_fwd(m, a->attn_out[l], q, kk, v, packed ? a->pos : NULL, B, T, sq, sk, sv))
            k_attention_fwd(a->attn_out[l], a->att_scratch, 0, a->att_slots, q, kk, v, packed ? a->pos : NULL, B, T, c->NH, c->NKV,
                            c->HD, sq, sk, sv);
        linear_forward(&k->o, a->resid_mid[l], a->attn_out[l], N);
        float *rm = a->resid_mid[l];
#pragma omp parallel for simd
        for (long i = 0; i < (long)N * C; i++) rm[i] += xin[i];
        norm_fwd(c, a->norm2[l], a->mean2[l], a->rstd2[l], rm, k->ln2_w, k->ln2_b, N);
        if (c->mlp == TUNA_MLP_GELU_TANH) {
            linear_forward(&k->fc, a->mlp_a[l], a->norm2[l], N);
            k_gelu_fwd(a->mlp_act[l], a->mlp_a[l], (long)N * c->FF);
        } else {
            linear_forward(&k->gate, a->mlp_a[l], a->norm2[l], N);
            linear_forward(&k->up, a->mlp_b[l], a->norm2[l], N);
            k_swiglu_fwd(a->mlp_act[l], a->mlp_a[l], a->mlp_b[l], (long)N * c->FF);
        }
        linear_forward(&k->down, xout, a->mlp_act[l], N);
#pragma omp parallel for simd
        for (long i = 0; i < (long)N * C; i++) xout[i] += rm[i];
    }
}

tuna_status tuna_model_backward(tuna_model *m, const tuna_batch *bt, float token_weight) {
    tuna_acts *a = &m->acts;
    if (!a->train) return core_fail(TUNA_ERR_ARG, "model prepared without gradients (train=0)");
    tuna_status st = check_forward_batch(m, "backward", bt->B, bt->T, bt->pos_ids != NULL);
    const tuna_config *c = &m->cfg;
    for (int n = 0; st == TUNA_OK && n < bt->B * bt->T; n++) st = check_id(c, bt, n); /* embedding gradient rows */
    if (st != TUNA_OK) return st;
    int B = bt->B, T = bt->T, P = a->P, TT = T + P, N = B * TT, C = c->C;
    m->have_forward = 0;
    for (int n = 0; n < N; n++) {
        int b = n / TT, t = n % TT - P; /* t < 0: a virtual prompt position (never counted) */
        float w = token_weight * (bt->row_weight ? bt->row_weight[b] : 1.0f);
        a->tok_w[n] = bt->tok_weight && t >= 0 ? w * bt->tok_weight[(long)b * T + t] : w;
    }
    /* with a frozen embedding and no prompt nothing needs the gradient of the
     * first layer's input: skip those GEMMs */
    float *dprompt = P ? adapter_prompt_grad(m) : NULL;
    int need_dx0 = m->dwte || dprompt;
    if (c->num_labels) head_score_backward(m, B, TT);
    else head_backward(m, N);
    memset(a->dresid, 0, (size_t)N * C * sizeof(float));
    norm_bwd(c, a->dresid, m->dlnf_w, m->dlnf_b, a->dtmp, a->resid[c->L], m->lnf_w, a->meanf, a->rstdf, N);
    for (int l = c->L - 1; l >= 0; l--) {
        tuna_block *k = &m->blocks[l];
        if (l < a->ckpt - 1) {
            /* recompute a checkpointed block into the shared set; its output
             * resid[l+1] is rewritten with the same values, while dresid (its
             * gradient) lives elsewhere. The last checkpointed block's
             * activations are still in that set from the forward. */
            block_forward(m, l, B, TT, bt->pos_ids != NULL);
        }
        /* MLP: resid[l+1] = resid_mid + down(act) */
        /* the activation (down's input) is recomputed into dmlp_a, which is free until the activation's backward */
        if (c->mlp == TUNA_MLP_GELU_TANH) k_gelu_fwd(a->dmlp_a, a->mlp_a[l], (long)N * c->FF);
        else k_swiglu_fwd(a->dmlp_a, a->mlp_a[l], a->mlp_b[l], (long)N * c->FF);
        linear_backward(&k->down, a->dmlp_act, 0, a->dresid, a->dmlp_a, N);
        /* the MLP's input (norm2 output) is recomputed from resid_mid and the kept statistics */
        norm_fwd(c, a->norm2[l], a->mean2[l], a->rstd2[l], a->resid_mid[l], k->ln2_w, k->ln2_b, N);
        if (c->mlp == TUNA_MLP_GELU_TANH) {
            k_gelu_bwd(a->dmlp_a, a->dmlp_act, a->mlp_a[l], (long)N * c->FF);
            linear_backward(&k->fc, a->dtmp, 0, a->dmlp_a, a->norm2[l], N);
        } else {
            k_swiglu_bwd(a->dmlp_a, a->dmlp_b, a->dmlp_act, a->mlp_a[l], a->mlp_b[l], (long)N * c->FF);
            linear_backward(&k->gate, a->dtmp, 0, a->dmlp_a, a->norm2[l], N);
            linear_backward(&k->up, a->dtmp, 1, a->dmlp_b, a->norm2[l], N);
        }
        norm_bwd(c, a->dresid, k->dln2_w, k->dln2_b, a->dtmp, a->resid_mid[l], k->ln2_w, a->mean2[l], a->rstd2[l], N);
        /* attention: resid_mid = resid[l] + o(attn_out) */
        linear_backward(&k->o, a->dattn, 0, a->dresid, a->attn_out[l], N);
        float *q, *kk, *v, *dq, *dk, *dv;
        int sq, sk, sv;
        qkv_views(m, a->qkv[l], N, &q, &kk, &v, &sq, &sk, &sv);
        qkv_views(m, a->dqkv, N, &dq, &dk, &dv, &sq, &sk, &sv);
        const int32_t *pos = bt->pos_ids ? a->pos : NULL;
        if (!model_bf16_attention_bwd(m, dq, dk, dv, a->dattn, q, kk, v, pos, B, TT, sq, sk, sv))
            k_attention_bwd(dq, dk, dv, a->att_scratch, a->att_slots, a->dattn, NULL, q, kk, v, pos, B, TT, c->NH, c->NKV, c->HD, sq,
                            sk, sv);
        float *dx = l > 0 || need_dx0 ? a->dtmp : NULL;
        norm_fwd(c, a->norm1[l], a->mean1[l], a->rstd1[l], a->resid[l], k->ln1_w, k->ln1_b, N);
        if (c->family == TUNA_FAMILY_GPT2) linear_backward(&k->qkv, dx, 0, a->dqkv, a->norm1[l], N);
        else {
            k_rope(dq, a->pos, a->rope_cos, a->rope_sin, N, c->NH, c->HD, sq, 1);
            k_rope(dk, a->pos, a->rope_cos, a->rope_sin, N, c->NKV, c->HD, sk, 1);
            linear_backward(&k->q, dx, 0, dq, a->norm1[l], N);
            linear_backward(&k->k, dx, 1, dk, a->norm1[l], N);
            linear_backward(&k->v, dx, 1, dv, a->norm1[l], N);
        }
        if (dx) norm_bwd(c, a->dresid, k->dln1_w, k->dln1_b, a->dtmp, a->resid[l], k->ln1_w, a->mean1[l], a->rstd1[l], N);
        if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, l);
    }
    if (!need_dx0) {
        if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, -1);
        return TUNA_OK;
    }
    /* embeddings: each thread owns a slice of channels, so repeated ids never race */
    float *dx = a->dresid;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (int n = 0; n < N; n++) {
            int b = n / TT, t = n % TT;
            float *dw = t < P ? dprompt + (long)t * C : m->dwte ? m->dwte + (long)bt->input_ids[b * T + t - P] * C : NULL;
            const float *d = dx + (long)n * C;
            if (dw)
                for (int i = c0; i < c1; i++) dw[i] += d[i];
            if (c->learned_positions && m->dwpe) {
                float *dp = m->dwpe + (long)a->pos[n] * C;
                for (int i = c0; i < c1; i++) dp[i] += d[i];
            }
        }
    }
    if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, -1);
    return TUNA_OK;
}

void tuna_model_zero_grad(tuna_model *m) {
    if (m->grads) memset(m->grads, 0, (size_t)m->n_weights * sizeof(float));
    adapter_zero_grads(m);
}

void model_trainable(tuna_model *m, tuna_trainable *t) {
    if (!adapter_trainable(m, t)) *t = (tuna_trainable){m->params, m->n_params, m->weights, m->grads, m->n_weights};
}

tuna_status tuna_model_init_random(tuna_model *m, uint64_t seed) {
    const tuna_config *c = &m->cfg;
    tuna_rng rng;
    rng_seed(&rng, seed, 0x74756e61 /* "tuna" */);
    float std = c->initializer_range > 0 ? c->initializer_range : 0.02f;
    for (int i = 0; i < m->n_params; i++) {
        tuna_param *p = &m->params[i].pub;
        size_t n = strlen(p->name);
        int is_bias = n > 5 && !strcmp(p->name + n - 5, ".bias");
        if (is_bias) { memset(p->data, 0, (size_t)p->numel * sizeof(float)); continue; }
        if (!p->data) continue; /* quantized */
        if (p->ndim == 1) { for (int64_t j = 0; j < p->numel; j++) p->data[j] = 1.0f; continue; }
        float s = std;
        if (c->family == TUNA_FAMILY_GPT2 && n > 14 && !strcmp(p->name + n - 14, "c_proj.weight"))
            s = std / sqrtf(2.0f * c->L);
        for (int64_t j = 0; j < p->numel; j++) p->data[j] = s * rng_normal(&rng);
    }
    return TUNA_OK;
}

tuna_status tuna_model_row_losses(const tuna_model *m, int B, int T, double *out) {
    const tuna_acts *a = &m->acts;
    tuna_status st = check_forward_batch(m, "row losses", B, T, a->fwd_packed);
    if (st != TUNA_OK) return st;
    int TT = T + a->P;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int t = 0; t < TT; t++) {
            long n = (long)b * TT + t;
            if (a->targets[n] >= 0) s += (double)a->lse[n] - a->tgt_logit[n];
        }
        out[b] = s;
    }
    return TUNA_OK;
}

tuna_status tuna_model_token_logps(const tuna_model *m, int B, int T, double *out) {
    const tuna_acts *a = &m->acts;
    tuna_status st = check_forward_batch(m, "token log-probabilities", B, T, a->fwd_packed);
    if (st != TUNA_OK) return st;
    int P = a->P, TT = T + P;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            long n = (long)b * TT + P + t;
            out[(long)b * T + t] = a->targets[n] >= 0 ? (double)a->tgt_logit[n] - a->lse[n] : 0.0;
        }
    return TUNA_OK;
}
