/* model_probe.c — the test-only accessors of tests/model_probe.h: a model's
 * adapter tensors and buffers, dropout counter, embedding and block linears,
 * for tests that check internals the public API does not show. Linked into
 * libtuna_internal.a only (the Makefile leaves *_probe.c out of libtuna.a). */
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
