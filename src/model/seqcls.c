/* seqcls.c — a causal LM turned into a reward model (HF's
 * …ForSequenceClassification with one label): the base's weights kept, the
 * lm_head dropped, a new score head. The score head's forward and backward
 * are head.c's; the parameter table's score.weight is model.c's. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "model/model_internal.h"

/* GPT2LMHeadModel -> GPT2ForSequenceClassification, XForCausalLM -> XForSequenceClassification */
static tuna_status seqcls_arch(tuna_config *c) {
    const char *a = c->architecture, *suf = "ForCausalLM";
    size_t n = strlen(a), ns = strlen(suf);
    char base[64];
    if (!strcmp(a, "GPT2LMHeadModel")) snprintf(base, sizeof base, "GPT2");
    else if (n > ns && !strcmp(a + n - ns, suf)) snprintf(base, sizeof base, "%.*s", (int)(n - ns), a);
    else return core_fail(TUNA_ERR_UNSUPPORTED, "a %s cannot become a reward model", a[0] ? a : "model without architecture");
    char arch[sizeof base + 32];
    snprintf(arch, sizeof arch, "%sForSequenceClassification", base);
    if (strlen(arch) >= sizeof c->architecture) return core_fail(TUNA_ERR_UNSUPPORTED, "architecture name %s too long", arch);
    memcpy(c->architecture, arch, strlen(arch) + 1);
    c->num_labels = 1;
    return TUNA_OK;
}

/* every tensor of r but the score head from m, in table order (the tables
 * differ only in their last entry: lm_head, or none when tied, against score) */
static tuna_status copy_base(tuna_model *r, const tuna_model *m) {
    int n = r->n_params - 1;
    if (m->n_params < n) return core_fail(TUNA_ERR_INTERNAL, "reward model: %d tensors, the base has %d", n, m->n_params);
    for (int i = 0; i < n; i++) {
        const tuna_param *d = &r->params[i].pub, *s = &m->params[i].pub;
        if (d->numel != s->numel || d->ndim != s->ndim)
            return core_fail(TUNA_ERR_INTERNAL, "reward model: tensor '%s' does not match the base's '%s'", d->name, s->name);
        model_param_read(m, i, 0, s->numel, d->data);
    }
    return TUNA_OK;
}

tuna_status tuna_model_to_reward(tuna_model **m, uint64_t seed) {
    tuna_model *lm = *m;
    if (lm->cfg.num_labels) return TUNA_OK;
    if (lm->peft) return core_fail(TUNA_ERR_ARG, "reward model: turn the base into one before attaching an adapter");
    tuna_config c = lm->cfg;
    tuna_status st = seqcls_arch(&c);
    tuna_model *r = NULL;
    if (st == TUNA_OK) st = tuna_model_create(&r, &c);
    if (st == TUNA_OK) st = copy_base(r, lm); /* named as HF names them: GPT-2's "transformer.*" */
    if (st != TUNA_OK) {
        if (r) tuna_model_free(r);
        return st;
    }
    tuna_rng rng;
    rng_seed(&rng, seed, 0x73636f7265 /* "score" */);
    float std = c.initializer_range > 0 ? c.initializer_range : 0.02f;
    float *w = r->params[r->n_params - 1].pub.data;
    for (int i = 0; i < c.C; i++) w[i] = std * rng_normal(&rng);
    tuna_model_free(lm);
    *m = r;
    return TUNA_OK;
}
