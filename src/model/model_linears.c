/* model_linears.c — a model's block linears in module order (Llama: q k v o
 * gate up down; GPT-2: c_attn attn.c_proj c_fc mlp.c_proj), and with
 * lm_head: naming them, switching them to bf16, probing them all walk this
 * list. */
#include "model/model_internal.h"

int model_linears(tuna_model *m, tuna_linear **out) {
    int n = 0;
    for (int l = 0; l < m->cfg.L; l++) {
        tuna_block *k = &m->blocks[l];
        if (m->cfg.family == TUNA_FAMILY_GPT2) {
            out[n++] = &k->qkv; out[n++] = &k->o; out[n++] = &k->fc; out[n++] = &k->down;
        } else {
            out[n++] = &k->q; out[n++] = &k->k; out[n++] = &k->v; out[n++] = &k->o;
            out[n++] = &k->gate; out[n++] = &k->up; out[n++] = &k->down;
        }
    }
    return n;
}

int model_all_linears(tuna_model *m, tuna_linear **out) {
    int n = model_linears(m, out);
    out[n++] = &m->lm_head;
    return n;
}
