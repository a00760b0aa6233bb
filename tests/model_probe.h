/* model_probe.h — what tests look at inside a model and its adapter that
 * the public API does not show (test-only; clearly internal): the adapter's
 * tensors and buffers, its dropout counter, the token embedding, the block
 * linears (model/linear.h describes them), and a way to run a forward again
 * without its backward. Implemented in src/model/model_probe.c, which is
 * linked into libtuna_internal.a only, never into the public libtuna.a. Tests
 * use these instead of the structs of model_internal.h. */
#ifndef TUNA_TEST_MODEL_PROBE_H
#define TUNA_TEST_MODEL_PROBE_H
#include <stdint.h>

#include "model/linear.h"
#include "tuna.h"
#include "tuna_peft.h"

/* Tensors of the attached adapter (what an optimizer updates): their number
 * (0 without an adapter) and tensor i, whose data and grad may be written. */
int probe_adapter_tensors(tuna_model *m);
tuna_param *probe_adapter_tensor(tuna_model *m, int i);
/* All of the adapter's weights, or their gradients, as one array of *n
 * floats (NULL without an adapter, or before its gradients exist). */
float *probe_adapter_weights(tuna_model *m, int64_t *n);
float *probe_adapter_grads(tuna_model *m, int64_t *n);
/* The prompt-tuning prefix [P, C] (NULL without prompt tuning). */
const float *probe_adapter_prompt(tuna_model *m);
/* Rows the adapter's buffers are prepared for (0 without an adapter). */
int probe_adapter_prepared_rows(tuna_model *m);
/* Sets the adapter's forward counter: the next training forward draws the
 * dropout mask of count + 1. */
void probe_set_forward_count(tuna_model *m, uint64_t count);
/* The nth allocation of adapter setup on this thread from now on fails
 * (0: none fails). */
void probe_fail_alloc_at(int n);
/* Forgets the last forward (as a backward would), for a forward-only probe. */
void probe_forget_forward(tuna_model *m);
/* The token embedding [V, C]. */
const float *probe_embedding(const tuna_model *m);
/* The block linears in module order (see model_linears); returns the count. */
int probe_linears(tuna_model *m, tuna_linear **out);

/* Virtual tokens a prompt-tuning adapter puts before every row (public API). */
static inline int probe_virtual_tokens(const tuna_model *m) {
    const tuna_peft_config *c = tuna_peft_get(m);
    return c && c->type == TUNA_PEFT_PROMPT ? c->num_virtual_tokens : 0;
}
#endif
