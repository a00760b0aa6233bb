/* model_probe.c — the test-only accessors of tests/model_probe.h: a model's
 * adapter tensors and buffers, dropout counter, embedding and block linears,
 * trainable tensors, lm_head chunk and weights kept as stored, for tests
 * that check internals the public API does not show. Linked into
 * libtuna_internal.a only (the Makefile leaves *_probe.c out of libtuna.a). */
#include <stdlib.h>

#include "../../tests/model_probe.h"
#include "model/adapter_hooks.h"
#include "model/model_internal.h"

static tuna_trainable adapter(tuna_model *m) {
    tuna_trainable t = {0};
    adapter_trainable(m, &t);
    return t;
}

int probe_adapter_tensors(tuna_model *m) { return adapter(m).n_params; }

tuna_param *probe_adapter_tensor(tuna_model *m, int i) {
    tuna_trainable t = adapter(m);
    return i >= 0 && i < t.n_params ? &t.params[i].pub : NULL;
}

float *probe_adapter_weights(tuna_model *m, int64_t *n) {
    tuna_trainable t = adapter(m);
    *n = t.n_weights;
    return t.weights;
}

float *probe_adapter_grads(tuna_model *m, int64_t *n) {
    tuna_trainable t = adapter(m);
    *n = t.n_weights;
    return t.grads;
}

const float *probe_adapter_prompt(tuna_model *m) { return adapter_prompt(m); }
int probe_adapter_prepared_rows(tuna_model *m) { return peft_prepared_rows(m); }
void probe_set_forward_count(tuna_model *m, uint64_t count) { adapter_set_forward_count(m, count); }
void probe_fail_alloc_at(int n) { peft_fail_alloc_at(n); }
void probe_forget_forward(tuna_model *m) { m->have_forward = 0; }
const float *probe_embedding(const tuna_model *m) { return m->wte; }
int probe_linears(tuna_model *m, tuna_linear **out) { return model_linears(m, out); }

float *probe_trainable_weights(tuna_model *m, int64_t *n) {
    tuna_trainable t;
    model_trainable(m, &t);
    *n = t.n_weights;
    return t.weights;
}

float *probe_trainable_grads(tuna_model *m, int64_t *n) {
    tuna_trainable t;
    model_trainable(m, &t);
    *n = t.n_weights;
    return t.grads;
}

long probe_head_chunk_bytes(void) { return HEAD_CHUNK_BYTES; }
void probe_set_head_rows(tuna_model *m, int rows) { model_set_head_rows(m, rows); }
int probe_head_rows(const tuna_model *m) { return m->acts.head_rows; }
void probe_set_head_grad(tuna_model *m, float *dw) { m->lm_head.dw = dw; }
void probe_weight_bytes(const tuna_model *m, size_t *own, size_t *mapped) { model_weight_bytes(m, own, mapped); }

int probe_param_stored(const tuna_model *m, int i, const void **data, int *owned) {
    if (i < 0 || i >= m->n_params || !m->params[i].external) return 0;
    const tuna_stored *st = &m->stored[m->params[i].sidx];
    *data = st->data;
    *owned = st->owned != NULL;
    return 1;
}

int probe_in_mapping(const tuna_model *m, const void *p) {
    for (int i = 0; i < m->n_maps; i++) {
        const char *a = m->maps[i].addr;
        if ((const char *)p >= a && (const char *)p < a + m->maps[i].len) return 1;
    }
    return 0;
}

const void *probe_linear_stored(tuna_model *m, int i) {
    if (i == -1) return m->lm_head.stored;
    tuna_linear **l = malloc((size_t)7 * m->cfg.L * sizeof *l);
    int n = l ? model_linears(m, l) : 0;
    const void *s = i >= 0 && i < n ? l[i]->stored : NULL;
    free(l);
    return s;
}
