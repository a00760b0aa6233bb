/* param_rows.c — a parameter's file rows with the adapter folded in, a tile
 * of rows at a time (see param_rows.h). The delta is the one
 * tuna_peft_merge adds in place, computed by the same GEMM call restricted to
 * the tile's rows (or, for GPT-2's transposed Conv1D weights, the tile's
 * columns of our [out, in] layout): each element's sum over the rank runs in
 * the same order, so f32 files are bit-identical to the in-place merge's. */
#include "model/param_rows.h"

#include <stdlib.h>

#include "kernels/kernels.h"
#include "model/model_internal.h"

#define TILE_VALUES ((int64_t)1 << 22) /* 16 MiB of fp32 */
static int64_t tile_values = TILE_VALUES;

void param_rows_tile_at(int64_t values) { tile_values = values > 0 ? values : TILE_VALUES; }

/* the adapted linear whose weight (*bias = 0) or IA3-scaled bias (*bias = 1)
 * is parameter i, when the model folds its adapter on write */
static const tuna_linear *folded_linear(const tuna_model *m, int i, int *bias) {
    *bias = 0;
    if (!m->fold_on_write) return NULL;
    tuna_linear *ls[8 * 1024];
    int n = model_linears((tuna_model *)m, ls);
    for (int k = 0; k < n; k++) {
        const tuna_adapter *a = ls[k]->adapter;
        if (!a) continue;
        if (ls[k]->wparam == i) return ls[k];
        if (a->kind == TUNA_ADAPTER_IA3 && !a->ff && ls[k]->b && ls[k]->b == m->params[i].pub.data) return *bias = 1, ls[k];
    }
    return NULL;
}

int param_rows_needed(const tuna_model *m, int i) {
    int bias;
    return m->params[i].external || folded_linear(m, i, &bias) != NULL;
}

static void file_shape(const tuna_param *p, int64_t *rows, int64_t *cols) {
    *rows = p->ndim >= 2 ? p->shape[0] : 1;
    *cols = *rows ? p->numel / *rows : 0;
}

tuna_status rows_tile_init(rows_tile *t, const tuna_model *m) {
    int64_t cap = 0;
    for (int i = 0; i < m->n_params; i++) {
        int64_t rows, cols, numel = m->params[i].pub.numel;
        file_shape(&m->params[i].pub, &rows, &cols);
        int64_t want = numel < tile_values ? numel : cols > tile_values ? cols : tile_values;
        if (want > cap) cap = want;
    }
    t->cap = cap;
    t->buf = malloc((size_t)(cap ? cap : 1) * sizeof(float));
    return t->buf ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory for a tile of %lld values", (long long)cap);
}

void rows_tile_free(rows_tile *t) {
    free(t->buf);
    t->buf = NULL;
}

void param_rows_init(param_rows *r, const tuna_model *m, int i, rows_tile *t, int ours, int64_t align) {
    const tuna_param *p = &m->params[i].pub;
    *r = (param_rows){.m = m, .i = i, .tile = t, .transposed = p->transposed && !ours};
    r->fold = folded_linear(m, i, &r->bias);
    file_shape(p, &r->rows, &r->cols);
    if (p->transposed && ours) r->rows = p->shape[1], r->cols = p->shape[0];
    int64_t b = r->cols ? t->cap / r->cols : r->rows;
    if (align > 1 && b > align) b = b / align * align;
    r->block = b < 1 ? 1 : b;
}

/* the delta of a tile of our layout's rows [o0, o0+nr) x columns [c0, c0+nc)
 * (ld nc), added or scaled in place as tuna_peft_merge does */
static void fold_tile(const tuna_linear *l, float *t, int64_t o0, int64_t nr, int64_t c0, int64_t nc) {
    const tuna_adapter *a = l->adapter;
    if (a->kind == TUNA_ADAPTER_LORA) {
        k_gemm(0, 0, (int)nr, (int)nc, a->r, a->scale, a->B + o0 * a->r, a->r, a->A + c0, l->IC, 1.0f, t, (int)nc);
        return;
    }
    for (int64_t o = 0; o < nr; o++)
        for (int64_t c = 0; c < nc; c++) t[o * nc + c] *= a->ff ? a->s[c0 + c] : a->s[o0 + o];
}

/* file rows [t0, t1) into the tile, folded: our rows (a plain weight), our
 * columns (a transposed one: the tile is [OC, t1 - t0]), or the bias */
static void fill(param_rows *r, int64_t t0, int64_t t1) {
    float *t = r->tile->buf;
    int64_t k = t1 - t0;
    if (!r->transposed) {
        model_param_read(r->m, r->i, t0 * r->cols, k * r->cols, t);
        if (r->bias) for (int64_t o = 0; o < r->cols; o++) t[o] *= r->fold->adapter->s[o];
        else if (r->fold) fold_tile(r->fold, t, t0, k, 0, r->cols);
    } else {
        /* ours is [cols, rows]: file rows are our columns */
        for (int64_t o = 0; o < r->cols; o++) model_param_read(r->m, r->i, o * r->rows + t0, k, t + o * k);
        if (r->fold) fold_tile(r->fold, t, 0, r->cols, t0, k);
    }
    r->t0 = t0;
    r->t1 = t1;
}

/* the mapped pages of the rows now in the tile, once they are used (the
 * writers read rows in order, and a permutation stays inside a tile) */
static void release_tile(const param_rows *r) {
    const tuna_param_entry *e = &r->m->params[r->i];
    if (e->external && !r->transposed && r->t1 > r->t0)
        stored_release(&r->m->stored[e->sidx], r->t0 * r->cols, (r->t1 - r->t0) * r->cols);
}

void param_rows_read(void *ctx, int64_t row, float *out) {
    param_rows *r = ctx;
    if (row < r->t0 || row >= r->t1) {
        int64_t t0 = row / r->block * r->block, t1 = t0 + r->block < r->rows ? t0 + r->block : r->rows;
        release_tile(r);
        fill(r, t0, t1);
    }
    const float *t = r->tile->buf;
    int64_t k = r->t1 - r->t0, j = row - r->t0;
    if (!r->transposed) for (int64_t c = 0; c < r->cols; c++) out[c] = t[j * r->cols + c];
    else for (int64_t c = 0; c < r->cols; c++) out[c] = t[c * k + j];
    if (row == r->rows - 1) release_tile(r);
}
