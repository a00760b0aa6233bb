/* model_probe.h — what tests look at inside a model and its adapter that
 * the public API does not show (test-only; clearly internal): the adapter's
 * tensors and buffers, its dropout counter, the token embedding, the block
 * linears (model/linear.h describes them), a way to run a forward again
 * without its backward, the trainable tensors, the lm_head's chunk of rows,
 * and where weights kept as stored live. Implemented in src/model/model_probe.c, which is
 * linked into libtuna_internal.a only, never into the public libtuna.a. Tests
 * use these instead of the structs of model_internal.h. */
#ifndef TUNA_TEST_MODEL_PROBE_H
#define TUNA_TEST_MODEL_PROBE_H
#include <stddef.h>
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

/* What an optimizer updates (the adapter's tensors when one is attached,
 * else every parameter): its weights, or their gradients (NULL before they
 * exist), as one array of *n floats. */
float *probe_trainable_weights(tuna_model *m, int64_t *n);
float *probe_trainable_grads(tuna_model *m, int64_t *n);

/* lm_head + cross-entropy run in chunks of rows (model/head.c): the most
 * bytes of logits one chunk holds; the rows per chunk the next prepare uses
 * (0: as many as fit); the rows per chunk the activations were prepared for. */
long probe_head_chunk_bytes(void);
void probe_set_head_rows(tuna_model *m, int rows);
int probe_head_rows(const tuna_model *m);
/* Gives the lm_head a weight gradient [V, C] (NULL: none, as when frozen). */
void probe_set_head_grad(tuna_model *m, float *dw);

/* Weights kept as stored (TUNA_QUANT_STORED): bytes the model owns and bytes
 * it maps from its files; whether parameter i (tuna_model_param's order) is
 * kept as stored, with its values' address and whether the model owns them
 * (a converted copy) or they lie in a mapping; whether p lies inside one of
 * the model's file mappings; the stored weight behind block linear i (in
 * probe_linears' order; i = -1: the lm_head), NULL when it computes from fp32. */
void probe_weight_bytes(const tuna_model *m, size_t *own, size_t *mapped);
int probe_param_stored(const tuna_model *m, int i, const void **data, int *owned);
int probe_in_mapping(const tuna_model *m, const void *p);
const void *probe_linear_stored(tuna_model *m, int i);

/* Virtual tokens a prompt-tuning adapter puts before every row (public API). */
static inline int probe_virtual_tokens(const tuna_model *m) {
    const tuna_peft_config *c = tuna_peft_get(m);
    return c && c->type == TUNA_PEFT_PROMPT ? c->num_virtual_tokens : 0;
}
#endif
