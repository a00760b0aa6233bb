/* train_mode.h — the table of training modes behind the sft, pretrain, dpo,
 * kto, reward and grpo commands. The driver (cmd_train.c) parses the shared options and runs
 * the shared loop; each mode brings its help text, its own options, defaults
 * and checks, its data loader (model, tokenizer and data into a
 * train_data) and its own train_args.json keys. A new mode is a new entry:
 * the driver calls the mode files, never the reverse. */
#ifndef TUNA_CLI_TRAIN_MODE_H
#define TUNA_CLI_TRAIN_MODE_H
#include <jansson.h>

#include "cli/mem_plan.h"
#include "cli/train_opts.h"
#include "tuna_train.h"

/* What a mode's loader fills in; released by train_data_free. */
typedef struct train_data {
    tuna_model *m;
    tuna_tokenizer *tok;                   /* NULL: pre-tokenized data only */
    tuna_pretok *parts[TRAIN_MAX_DATA];    /* per --data file */
    tuna_pretok *vparts[TRAIN_MAX_DATA];   /* per --val file, or per --data file's --val-split share */
    int n_val;                             /* vparts in use */
    tuna_pretok *data, *val;               /* what the trainer takes: the parts joined (val: empty when none) */
    double *ref_train, *ref_val;           /* preference pairs: reference log-probabilities per sequence */
    char ref_fp[17];                       /* preference pairs: the reference model's fingerprint */
    uint8_t *kto_desirable;                /* kto: each item's label */
    char exact[1024];                      /* the mode's settings a resume must agree on (a JSON object, or "") */
    void *mode_state;                      /* the mode's own, released by mode_free */
    void (*mode_free)(void *state);
} train_data;

struct train_mode {
    const char *name;    /* the command */
    const char *help;    /* its --help text */
    const char *methods; /* the --method values it takes, ", "-separated */
    const char *methods_why; /* the error's words for them instead of the list (NULL: the list) */
    int pairs;           /* rows are (chosen, rejected) pairs: preference loss, metrics and evaluation */
    int items;           /* rows are the items of a caller-driven step (GRPO's prompts): kept as loaded */
    mem_job job;         /* what the memory check before loading sizes (mem_plan.h) */
    /* its own options (train_optab.h), before the shared ones; NULL-name ended */
    const struct train_optdef *options;
    /* settings before the options are read (NULL: the trainer's defaults) */
    void (*defaults)(train_opts *o);
    /* its own options: 1 when argv[*i] (value v, NULL at the end) was one
     * (*i advanced past its value), 0 when not, 2 when bad (printed) */
    int (*option)(train_opts *o, const char *opt, const char *v, int *i);
    /* 0 when the inputs it needs were given, else 2 (printed) */
    int (*required)(const train_opts *o);
    /* its checks once the method is known: 0 or 2 (printed); NULL: none */
    int (*check)(train_opts *o);
    /* its default learning rate for o's method (NULL: sft's) */
    float (*default_lr)(const train_opts *o);
    /* model, tokenizer and data into d (parts, vparts, n_val) */
    tuna_status (*load)(train_opts *o, train_data *d);
    /* its own keys of train_args.json (NULL: none) */
    void (*args_json)(json_t *ja, const train_opts *o, const train_data *d);
    /* its own keys of each step's metrics.jsonl line (NULL: none) */
    void (*step_metrics)(json_t *line, const tuna_step_info *info, const train_data *d);
    /* its words in the progress line after the loss (" | reward 0.53"; NULL: none) */
    void (*step_note)(char *buf, size_t n, const train_data *d);
};

extern const train_mode train_mode_sft, train_mode_pretrain, train_mode_dpo, train_mode_kto, train_mode_reward,
    train_mode_grpo;

#endif
