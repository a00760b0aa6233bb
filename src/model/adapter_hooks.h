/* adapter_hooks.h — the few points where an attached adapter changes the
 * model: the prompt-tuning prefix and its gradient, the per-forward dropout
 * key, the tensors an optimizer updates. Implemented in peft.c; model.c,
 * the decoder and the trainer call these instead of reading the adapter's
 * state, which only peft.c knows (not public). Every function takes NULL
 * (no adapter attached). */
#ifndef TUNA_ADAPTER_HOOKS_H
#define TUNA_ADAPTER_HOOKS_H
#include <stdint.h>

#include "model/model_internal.h"

/* Virtual tokens of prompt tuning leading every row; 0 when none. */
int peft_prompt_rows(const tuna_peft_state *p);
/* The prompt-tuning prefix [P, C] and its gradient [P, C] (NULL without
 * prompt tuning, or before gradients exist). */
const float *peft_prompt(const tuna_peft_state *p);
float *peft_prompt_grad(tuna_peft_state *p);
/* Called once at the start of every forward: in training it advances the
 * forward counter and derives that forward's dropout key from it. */
void peft_begin_forward(tuna_peft_state *p);
/* Sets the forward counter (the next training forward draws count + 1), so
 * that dropout masks follow the step number and a resumed run repeats them. */
void peft_set_forward_count(tuna_peft_state *p, uint64_t count);
/* The adapter's tensors (what an optimizer updates); 0 when none attached. */
int peft_trainable(tuna_peft_state *p, tuna_trainable *t);
void peft_zero_grads(tuna_peft_state *p);
/* Adapter buffers for N rows (grown, never shrunk), the rows they hold now,
 * and the release of the state. */
tuna_status peft_prepare(tuna_model *m, int N);
/* Planning (no model needed): trainable scalars and adapter buffer bytes for
 * N rows that an adapter of config c on a model of config cfg would need. */
tuna_status peft_plan(const tuna_config *cfg, const tuna_peft_config *c, int64_t N, int64_t *trainable, int64_t *buffer_bytes);
int peft_prepared_rows(const tuna_peft_state *p);
void peft_free(tuna_peft_state *p);
/* Tests only: the nth allocation of adapter setup on this thread from now on
 * fails (tuna_peft_attach, the adapter buffers of tuna_model_prepare); 0 never. */
void peft_fail_alloc_at(int n);
#endif
