/* train_optab.c — the options every training command shares (data, method,
 * optimizer, run), in the order recipe.yaml lists them; see train_optab.h.
 * The parsers of their values are train_opts.c's groups. */
#include "cli/train_optab.h"

#include <stdio.h>
#include <string.h>

#include "cli/train_mode.h"

static const train_optdef shared[] = {
    /* data */
    {"data", OPT_LIST, REC_DATA, 0, NULL},
    {"val", OPT_LIST, REC_VALS, 0, NULL},
    {"val-split", OPT_VALUE, REC_DOUBLE, OPT_AT(val_split), NULL},
    {"template", OPT_VALUE, REC_STR, OPT_AT(template_arg), NULL},
    {"loss-on", OPT_VALUE, REC_CHOICE, OPT_AT(dso.loss_on_all), "response|all"},
    {"truncate", OPT_VALUE, REC_CHOICE, OPT_AT(dso.truncate), "right|left|drop"},
    {"max-bad", OPT_VALUE, REC_DOUBLE, OPT_AT(dso.data.max_bad), NULL},
    {"strict", OPT_FLAG, REC_FLAG, OPT_AT(dso.data.strict), NULL},
    {"pack", OPT_FLAG, REC_FLAG, OPT_AT(pack), NULL},
    {"cache-dir", OPT_VALUE, REC_STR, OPT_AT(cache_dir), NULL},
    {"no-cache", OPT_FLAG, REC_FLAG, OPT_AT(no_cache), NULL},
    {"general-eval", OPT_VALUE, REC_STR, OPT_AT(general), NULL},
    /* method */
    {"method", OPT_VALUE, REC_STR, OPT_AT(method), NULL},
    {"lora-r", OPT_VALUE, REC_INT, OPT_AT(pc.r), NULL},
    {"lora-alpha", OPT_VALUE, REC_FLOAT, OPT_AT(pc.alpha), NULL},
    {"lora-dropout", OPT_VALUE, REC_FLOAT, OPT_AT(pc.dropout), NULL},
    {"rslora", OPT_FLAG, REC_FLAG, OPT_AT(pc.rslora), NULL},
    {"lora-targets", OPT_VALUE, REC_STR, OPT_AT(lora_targets), NULL},
    {"ia3-targets", OPT_VALUE, REC_STR, OPT_AT(ia3_targets), NULL},
    {"ia3-feedforward", OPT_VALUE, REC_STR, OPT_AT(ia3_ff), NULL},
    {"num-virtual-tokens", OPT_VALUE, REC_INT, OPT_AT(pc.num_virtual_tokens), NULL},
    {"prompt-init", OPT_VALUE, REC_STR, OPT_AT(prompt_init), NULL},
    /* optimizer, batches, length */
    {"lr", OPT_VALUE, REC_FLOAT, OPT_AT(a.lr), NULL},
    {"schedule", OPT_VALUE, REC_CHOICE, OPT_AT(a.schedule), "constant|linear|cosine"},
    {"warmup", OPT_VALUE, REC_DOUBLE, OPT_AT(a.warmup), NULL},
    {"weight-decay", OPT_VALUE, REC_FLOAT, OPT_AT(a.weight_decay), NULL},
    {"betas", OPT_VALUE, REC_BETAS, 0, NULL},
    {"eps", OPT_VALUE, REC_FLOAT, OPT_AT(a.eps), NULL},
    {"grad-clip", OPT_VALUE, REC_FLOAT, OPT_AT(a.grad_clip), NULL},
    {"batch", OPT_VALUE, REC_INT, OPT_AT(a.batch), NULL},
    {"micro-batch", OPT_VALUE, REC_INT, OPT_AT(a.micro_batch), NULL},
    {"seq-len", OPT_VALUE, REC_INT, OPT_AT(a.seq_len), NULL},
    {"epochs", OPT_VALUE, REC_DOUBLE, OPT_AT(a.epochs), NULL},
    {"steps", OPT_VALUE, REC_INT_SET, OPT_AT(a.steps), NULL},
    {"loss-norm", OPT_VALUE, REC_CHOICE, OPT_AT(a.loss_norm), "token|sequence"},
    {"seed", OPT_VALUE, REC_U64, OPT_AT(a.seed), NULL},
    {"no-shuffle", OPT_FLAG, REC_NOT_FLAG, OPT_AT(a.shuffle), NULL},
    {"grad-checkpoint", OPT_FLAG, REC_FLAG, OPT_AT(a.grad_checkpoint), NULL},
    {"checkpoint-layers", OPT_VALUE, REC_INT, OPT_AT(a.checkpoint_layers), NULL},
    {"bf16", OPT_FLAG, REC_FLAG, OPT_AT(a.bf16), NULL},
    /* the run: output, cadence, checks */
    {"out", OPT_VALUE, REC_STR, OPT_AT(out_dir), NULL},
    {"save-dtype", OPT_VALUE, REC_STR, OPT_AT(save_dtype), NULL},
    {"eval-every", OPT_VALUE, REC_INT_SET, OPT_AT(eval_every), NULL},
    {"early-stop", OPT_VALUE, REC_INT_SET, OPT_AT(early_stop), NULL},
    {"save-every", OPT_VALUE, REC_INT_SET, OPT_AT(save_every), NULL},
    {"max-memory", OPT_VALUE, REC_I64_SET, OPT_AT(max_memory), NULL},
    {"no-mem-check", OPT_FLAG, REC_FLAG, OPT_AT(no_mem_check), NULL},
    {"quiet", OPT_FLAG, REC_FLAG, OPT_AT(quiet), NULL},
    {"profile", OPT_FLAG, REC_FLAG, OPT_AT(profile), NULL},
    {"resume", OPT_VALUE, REC_NONE, 0, NULL},
    {"overwrite", OPT_FLAG, REC_NONE, 0, NULL},
    {"dry-run", OPT_FLAG, REC_NONE, 0, NULL},
    {NULL, OPT_FLAG, REC_NONE, 0, NULL},
};

const train_optdef *optab_at(const train_mode *mode, int k) {
    int own = 0;
    while (mode->options && mode->options[own].name) own++;
    if (k < own) return &mode->options[k];
    k -= own;
    return k < (int)(sizeof shared / sizeof *shared) - 1 ? &shared[k] : NULL;
}

/* name equals def's, '_' standing for '-' when as_key */
static int same_name(const char *def, const char *name, int as_key) {
    for (; *def && *name; def++, name++)
        if (*def != *name && !(as_key && *def == '-' && *name == '_')) return 0;
    return *def == *name;
}

const train_optdef *optab_find(const train_mode *mode, const char *name, int as_key) {
    const train_optdef *d;
    for (int k = 0; (d = optab_at(mode, k)) != NULL; k++)
        if (same_name(d->name, name, as_key)) return d;
    return NULL;
}

void optab_keys(const train_mode *mode, char *buf, size_t n) {
    const train_optdef *d;
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; (d = optab_at(mode, k)) != NULL && len + 1 < n; k++) {
        int w = snprintf(buf + len, n - len, "%s%s", k ? ", " : "", d->name);
        if (w < 0) break;
        len = len + (size_t)w < n ? len + (size_t)w : n - 1;
    }
    for (char *c = buf; *c; c++)
        if (*c == '-') *c = '_';
}
