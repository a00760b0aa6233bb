/* train_optab.h — the table of the training commands' options: every
 * option's name, whether it is a flag, takes a value or may be repeated, and
 * where its resolved value lives in train_opts (for the run's recipe.yaml).
 * The one list of option names: train_opts_parse takes no option that is
 * not in it, a recipe file's keys are exactly its names (with '_' or '-'),
 * and recipe.yaml is written in its order. Each mode's own options come
 * from its entry (train_mode.options), then the shared groups below. */
#ifndef TUNA_CLI_TRAIN_OPTAB_H
#define TUNA_CLI_TRAIN_OPTAB_H
#include <stddef.h>

#include "cli/train_opts.h"

typedef enum { OPT_FLAG, OPT_VALUE, OPT_LIST } opt_arity;

/* how recipe.yaml records an option's resolved value (the field at off) */
typedef enum {
    REC_NONE,     /* not recorded: a decision of this run (--resume, --overwrite, --dry-run), or another option's other name */
    REC_STR,      /* const char *; NULL: null */
    REC_INT,      /* int */
    REC_INT_SET,  /* int; 0 (not given): null */
    REC_I64_SET,  /* int64_t; 0 (not given): null */
    REC_U64,      /* uint64_t */
    REC_FLOAT,    /* float */
    REC_DOUBLE,   /* double */
    REC_FLAG,     /* int; nonzero: true */
    REC_NOT_FLAG, /* int; zero: true (--no-shuffle sets shuffle 0) */
    REC_CHOICE,   /* an int-sized enum, the index into choices */
    REC_DATA,     /* --data: the paths and weights of train_opts */
    REC_VALS,     /* --val: the paths of train_opts */
    REC_BETAS,    /* --betas: the trainer's beta1, beta2 */
    REC_REWARDS,  /* grpo's --reward: the specs of train_opts */
} opt_rec;

typedef struct train_optdef {
    const char *name;    /* without "--"; NULL ends a table */
    opt_arity arity;
    opt_rec rec;
    size_t off;          /* offsetof(train_opts, the field) */
    const char *choices; /* REC_CHOICE: the enum's names, '|'-separated */
} train_optdef;

#define OPT_AT(field) offsetof(train_opts, field)
/* --model and --adapter, the first options of the modes that start from a model */
#define OPTDEFS_MODEL                                                                                                   \
    {"model", OPT_VALUE, REC_STR, OPT_AT(model_dir), NULL}, {"adapter", OPT_VALUE, REC_STR, OPT_AT(adapter_dir), NULL}

/* The k-th option of mode's commands (its own first), NULL past the last. */
const train_optdef *optab_at(const train_mode *mode, int k);
/* The option named name (no "--"); as_key: a recipe key, where '_' and '-'
 * are the same. NULL when mode has no such option. */
const train_optdef *optab_find(const train_mode *mode, const char *name, int as_key);
/* The recipe keys of mode, ", "-separated, into buf (cut to n). */
void optab_keys(const train_mode *mode, char *buf, size_t n);
#endif
