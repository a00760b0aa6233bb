/* train_pretrain.c — `tuna pretrain`'s entry in the table of training
 * modes: its help, its options (--config, --tokenizer) and defaults (the
 * learning rate, schedule and warmup of pre-training), and its loader: a
 * randomly initialised model of the config's architecture, and plain text
 * cut into --seq-len sequences. */
#include <string.h>

#include "cli/commands.h"
#include "cli/train_data.h"
#include "cli/train_optab.h"
#include "core/error.h"
#include "tuna_text.h"

static const char pretrain_help[] =
    "usage: tuna pretrain --arch ARCH.json --tokenizer DIR --data TEXT --out DIR [options]\n"
    "       tuna pretrain --config RECIPE.yaml [options]\n"
    "\n"
    "Pre-training from scratch: a model with the architecture of ARCH.json (an HF\n"
    "config.json) is initialised as the family does (normal(0, initializer_range);\n"
    "GPT-2 residual projections scaled by 1/sqrt(2 layers)), TEXT (JSONL {\"text\"}\n"
    "lines, or a .txt file as one document) is tokenized with the tokenizer in DIR\n"
    "(BOS as the tokenizer adds it, EOS after each document), concatenated and cut\n"
    "into --seq-len sequences; the loss counts every token. --val FILE is text too.\n"
    "Defaults differ from sft: --lr 1e-3, --schedule cosine, --warmup 0.05.\n"
    "--config RECIPE.yaml is a recipe file as in `tuna sft --help` (the architecture's\n"
    "key: arch), except that an HF config.json given to --config (a JSON object with\n"
    "model_type or architectures) is the architecture, as --config ARCH.json always\n"
    "was: to give both, name the architecture with --arch.\n"
    "Every other option is as in `tuna sft --help`.\n";

static void pretrain_defaults(train_opts *o) {
    o->a.lr = 1e-3f;
    o->a.schedule = TUNA_SCHED_COSINE;
    o->a.warmup = 0.05;
}

static int pretrain_option(train_opts *o, const char *opt, const char *v, int *i) {
    if (!v) return 0;
    if (!strcmp(opt, "--arch")) o->config_path = v;
    else if (!strcmp(opt, "--tokenizer")) o->tok_dir = v;
    else return 0;
    (*i)++;
    return 1;
}

static int pretrain_required(const train_opts *o) {
    if (!o->config_path || !o->tok_dir || !o->data_path || !o->out_dir)
        return cli_usage_error("pretrain: --arch (or --config ARCH.json), --tokenizer, --data and --out are required");
    return 0;
}

/* the tokenizer, a model of the config's architecture, the text as sequences */
static tuna_status pretrain_load(train_opts *o, train_data *d) {
    tuna_config cfg;
    d->n_val = o->n_val;
    tuna_status st = tuna_config_load(&cfg, o->config_path);
    if (st == TUNA_OK) st = tuna_tokenizer_load(&d->tok, o->tok_dir);
    if (st == TUNA_OK && tuna_tokenizer_vocab_size(d->tok) > cfg.V)
        st = core_fail(TUNA_ERR_ARG, "%s: vocab_size %d is smaller than the tokenizer's %d ids", o->config_path, cfg.V,
                       tuna_tokenizer_vocab_size(d->tok));
    if (st == TUNA_OK) st = tuna_model_create(&d->m, &cfg);
    if (st == TUNA_OK) st = tuna_model_init_random(d->m, o->a.seed);
    if (st == TUNA_OK) st = train_apply_bf16(d->m, o);
    for (int k = 0; st == TUNA_OK && k < o->n_data; k++) st = tuna_text_chunks(d->tok, o->data_paths[k], o->a.seq_len, &d->parts[k]);
    for (int k = 0; st == TUNA_OK && k < o->n_val; k++) st = tuna_text_chunks(d->tok, o->val_paths[k], o->a.seq_len, &d->vparts[k]);
    return st;
}

static const train_optdef pretrain_options[] = {{"arch", OPT_VALUE, REC_STR, OPT_AT(config_path), NULL},
                                                {"tokenizer", OPT_VALUE, REC_STR, OPT_AT(tok_dir), NULL},
                                                {NULL, OPT_FLAG, REC_NONE, 0, NULL}};

const train_mode train_mode_pretrain = {
    .name = "pretrain",
    .help = pretrain_help,
    .methods = "full",
    .job = MEM_PRETRAIN,
    .options = pretrain_options,
    .methods_why = "pretraining trains every weight: full",
    .defaults = pretrain_defaults,
    .option = pretrain_option,
    .required = pretrain_required,
    .load = pretrain_load,
};
