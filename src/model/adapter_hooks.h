/* adapter_hooks.h — the few points where an attached adapter changes the
 * model: the prompt-tuning prefix and its gradient, the per-forward dropout
 * key, the tensors an optimizer updates, its buffers and their release.
 * peft.c fills an adapter_ops table and sets it with the state when it
 * attaches; model.c, the decoder and the trainer call the adapter_* wrappers
 * below, which go through that table, so the model never calls into peft.c
 * (calls go one way: peft.c -> model.c) and never reads the adapter's state,
 * which only peft.c knows (not public). Every wrapper is a no-op (0, NULL)
 * when no adapter is attached. */
#ifndef TUNA_ADAPTER_HOOKS_H
#define TUNA_ADAPTER_HOOKS_H
#include <stddef.h>
#include <stdint.h>

#include "model/model_internal.h"

struct adapter_ops {
    /* virtual tokens of prompt tuning leading every row (0: none) */
    int (*prompt_rows)(const tuna_peft_state *p);
    /* the prompt-tuning prefix [P, C] and its gradient [P, C] (NULL without
     * prompt tuning, or before gradients exist) */
    const float *(*prompt)(const tuna_peft_state *p);
    float *(*prompt_grad)(tuna_peft_state *p);
    /* at the start of every forward: in training, advances the forward
     * counter and derives that forward's dropout key from it */
    void (*begin_forward)(tuna_peft_state *p);
    /* sets the forward counter (the next training forward draws count + 1),
     * so dropout masks follow the step number and a resumed run repeats them */
    void (*set_forward_count)(tuna_peft_state *p, uint64_t count);
    /* the adapter's tensors (what an optimizer updates) and their zeroing */
    void (*trainable)(tuna_peft_state *p, tuna_trainable *t);
    void (*zero_grads)(tuna_peft_state *p);
    /* adapter buffers for N rows (grown, never shrunk) */
    tuna_status (*prepare)(tuna_model *m, int N);
    void (*free)(tuna_peft_state *p);
};

static inline int adapter_prompt_rows(const tuna_model *m) { return m->peft ? m->peft_ops->prompt_rows(m->peft) : 0; }
static inline const float *adapter_prompt(const tuna_model *m) { return m->peft ? m->peft_ops->prompt(m->peft) : NULL; }
static inline float *adapter_prompt_grad(tuna_model *m) { return m->peft ? m->peft_ops->prompt_grad(m->peft) : NULL; }
static inline void adapter_begin_forward(tuna_model *m) { if (m->peft) m->peft_ops->begin_forward(m->peft); }
static inline void adapter_set_forward_count(tuna_model *m, uint64_t count) {
    if (m->peft) m->peft_ops->set_forward_count(m->peft, count);
}
/* 0 when no adapter is attached (t untouched) */
static inline int adapter_trainable(tuna_model *m, tuna_trainable *t) {
    if (!m->peft) return 0;
    m->peft_ops->trainable(m->peft, t);
    return 1;
}
static inline void adapter_zero_grads(tuna_model *m) { if (m->peft) m->peft_ops->zero_grads(m->peft); }
static inline tuna_status adapter_prepare(tuna_model *m, int N) { return m->peft ? m->peft_ops->prepare(m, N) : TUNA_OK; }
/* releases the attached adapter's state (the model's pointers are cleared) */
static inline void adapter_free(tuna_model *m) {
    if (m->peft) m->peft_ops->free(m->peft);
    m->peft = NULL;
    m->peft_ops = NULL;
}

/* Planning (peft.c; no model needed): trainable scalars and adapter buffer
 * bytes for N rows that an adapter of config c on a model of config cfg would
 * need (the sizes peft_prepare allocates). */
tuna_status peft_plan(const tuna_config *cfg, const tuna_peft_config *c, int64_t N, int64_t *trainable, int64_t *buffer_bytes);
/* Tests only (peft.c): the nth allocation of adapter setup on this thread
 * from now on fails (tuna_peft_attach, the adapter buffers of
 * tuna_model_prepare); 0 never. */
void peft_fail_alloc_at(int n);
/* Tests only (peft.c): the rows the adapter's buffers hold now (0: none). */
int peft_prepared_rows(const tuna_model *m);
#endif
