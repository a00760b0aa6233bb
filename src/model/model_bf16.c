/* model_bf16.c — switching a model's linear layers to bf16 compute (see
 * tuna_model_set_bf16 in tuna.h and the bf16 part of linear.c): one shared
 * linear_bf16 for the model's buffers, a bf16 copy of each fp32 weight, and
 * the refresh of those copies when the weights may have changed. */
#include <stdlib.h>

#include "core/error.h"
#include "kernels/kernels.h"
#include "model/model_internal.h"

/* the fp32 weight a linear's bf16 copy is made from: its own, or a stored
 * F32 one (mapped in place); NULL: none (bf16 as stored, or converted by tiles) */
static const float *copy_source(const tuna_linear *l) {
    if (l->w) return l->w;
    return l->stored && l->stored->type == STORE_F32 && stored_in_order(l->stored) ? l->stored->data : NULL;
}

static void refresh_copies(tuna_model *m) {
    tuna_linear *ls[MODEL_LINEARS_MAX];
    int n = model_all_linears(m, ls);
    for (int i = 0; i < n; i++)
        if (ls[i]->w16) k_f32_to_bf16(ls[i]->w16, copy_source(ls[i]), (long)ls[i]->OC * ls[i]->IC);
}

static void bf16_off(tuna_model *m, tuna_linear **ls, int n) {
    for (int i = 0; i < n; i++) {
        free(ls[i]->w16);
        ls[i]->w16 = NULL;
        ls[i]->bf16 = NULL;
    }
    if (m->bf16) linear_bf16_free(m->bf16);
    free(m->bf16);
    m->bf16 = NULL;
    free(m->att16);
    m->att16 = NULL;
    m->att16_bytes = 0;
}

/* turns it on: the copies made (0) or out of memory (-1, then off) */
static int bf16_on(tuna_model *m, tuna_linear **ls, int n) {
    if (!m->bf16 && !(m->bf16 = calloc(1, sizeof *m->bf16))) return -1;
    for (int i = 0; i < n; i++) {
        tuna_linear *l = ls[i];
        l->bf16 = m->bf16;
        const float *src = copy_source(l);
        if (src && !l->w16 && !(l->w16 = malloc((size_t)l->OC * l->IC * sizeof *l->w16))) return -1;
        if (l->w16) k_f32_to_bf16(l->w16, src, (long)l->OC * l->IC);
    }
    linear_bf16_flush(m->bf16);
    return 0;
}

int tuna_model_set_bf16(tuna_model *m, int on) {
    tuna_linear *ls[MODEL_LINEARS_MAX];
    int n = model_all_linears(m, ls), r = 0;
    if (on && k_bf16_ready()) {
        r = bf16_on(m, ls, n) ? -1 : 1;
        if (r < 0) core_fail(TUNA_ERR_NOMEM, "out of memory for the bf16 copies of the weights");
    }
    if (r <= 0) bf16_off(m, ls, n);
    return r;
}

double model_bf16_bytes(const tuna_config *c, long N, int T, int tiles, double copy_values, int full) {
    long qkv = (long)(c->NH + 2 * c->NKV) * c->HD, in = c->FF > c->C ? c->FF : c->C;
    long rows = full ? head_rows_bf16_full(c->V, N) : head_rows(c->V, N, 0);
    long out = c->FF > qkv ? c->FF : qkv, head = rows * c->V;
    double logits = 4.0 * (double)(rows - head_rows(c->V, N, 0)) * c->V; /* beyond the activations' chunk */
    if (c->NH * c->HD > in) in = (long)c->NH * c->HD;
    if (head > N * out) out = head / N + 1;
    double att = (double)k_attention_bf16_scratch((int)(N / T), T, c->NH, c->NKV, c->HD);
    return 2.0 * N * (in + out) + (tiles ? 2.0 * LINEAR_TILE : 0) + 2.0 * copy_values + att + logits;
}

/* m's attention scratch for B x T (grown when smaller); NULL: off or no memory */
static void *att_scratch(tuna_model *m, int B, int T) {
    const tuna_config *c = &m->cfg;
    size_t need = k_attention_bf16_scratch(B, T, c->NH, c->NKV, c->HD);
    if (!m->bf16) return NULL;
    if (m->att16_bytes >= need) return m->att16;
    free(m->att16);
    m->att16 = malloc(need);
    m->att16_bytes = m->att16 ? need : 0;
    return m->att16;
}

int model_bf16_attention_fwd(tuna_model *m, float *out, const float *q, const float *k, const float *v, const int32_t *pos,
                             int B, int T, int sq, int sk, int sv) {
    const tuna_config *c = &m->cfg;
    void *s = att_scratch(m, B, T);
    return s && !k_attention_fwd_bf16(out, s, q, k, v, pos, B, T, c->NH, c->NKV, c->HD, sq, sk, sv);
}

int model_bf16_attention_bwd(tuna_model *m, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const int32_t *pos, int B, int T, int sq, int sk, int sv) {
    const tuna_config *c = &m->cfg;
    void *s = att_scratch(m, B, T);
    return s && !k_attention_bwd_bf16(dq, dk, dv, s, dout, q, k, v, pos, B, T, c->NH, c->NKV, c->HD, sq, sk, sv);
}

int tuna_model_bf16(const tuna_model *m) { return m->bf16 != NULL; }

int tuna_model_linears_bf16(const tuna_model *m) {
    tuna_linear *ls[MODEL_LINEARS_MAX];
    int n = model_all_linears((tuna_model *)m, ls);
    for (int i = 0; i < n; i++)
        if (!ls[i]->stored || ls[i]->stored->type != STORE_BF16) return 0;
    return 1;
}

void model_bf16_begin(tuna_model *m) {
    if (!m->bf16) return;
    if (!m->base_frozen && !m->bf16_fresh) refresh_copies(m);
    m->bf16_fresh = 0;
    linear_bf16_flush(m->bf16);
}

uint16_t *model_bf16_copy_of(tuna_model *m, const float *w) {
    tuna_linear *ls[MODEL_LINEARS_MAX];
    int n = m->bf16 ? model_all_linears(m, ls) : 0;
    for (int i = 0; i < n; i++)
        if (ls[i]->w16 && ls[i]->w == w) return ls[i]->w16;
    return NULL;
}

int model_bf16_copies(tuna_model *m) {
    tuna_linear *ls[MODEL_LINEARS_MAX];
    int n = m->bf16 ? model_all_linears(m, ls) : 0, c = 0;
    for (int i = 0; i < n; i++) c += ls[i]->w16 != NULL;
    return c;
}

void model_bf16_copies_written(tuna_model *m) { m->bf16_fresh = 1; }
void model_bf16_copies_stale(tuna_model *m) { m->bf16_fresh = 0; }

void model_bf16_free(tuna_model *m) {
    if (m->bf16) tuna_model_set_bf16(m, 0);
}
