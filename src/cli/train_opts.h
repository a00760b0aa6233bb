/* train_opts.h — the options of a training command (sft, pretrain, dpo) as
 * one struct: parsed from argv (and a --config recipe's keys) with the
 * command's error texts and exit codes, checked, and recorded as the run's train_args.json. What is
 * particular to one command (its own options, defaults and checks) comes
 * from its entry in the table of modes (train_mode.h). */
#ifndef TUNA_CLI_TRAIN_OPTS_H
#define TUNA_CLI_TRAIN_OPTS_H
#include <limits.h>

#include <jansson.h>

#include "tuna_dataset.h"
#include "tuna_peft.h"
#include "tuna_train.h"

enum { TRAIN_MAX_DATA = 16 };

typedef struct train_mode train_mode;
struct train_data;
struct train_argv;

typedef struct train_opts {
    const train_mode *mode;
    const char *cmd; /* the mode's name */
    /* inputs and output (NULL: not given) */
    const char *model_dir, *config_path, *tok_dir, *ref_model, *adapter_dir, *resume, *out_dir;
    const char *general, *template_arg, *cache_dir;
    const char *data_paths[TRAIN_MAX_DATA], *val_paths[TRAIN_MAX_DATA];
    char data_buf[TRAIN_MAX_DATA][PATH_MAX]; /* the --data paths, weight cut off */
    double data_w[TRAIN_MAX_DATA];           /* their weights; -1: none given */
    int n_data, n_val, any_weight;
    const char *data_path, *val_path; /* the first --data, --val */
    double val_split;
    int pack, no_cache, overwrite, quiet, no_mem_check;
    int64_t max_memory;   /* --max-memory: bytes the run may use (0: what the machine has) */
    int profile; /* --profile or TUNA_PROFILE=1: where the steps' time goes (core/prof.h) */
    int dry_run; /* --dry-run: the options checked and the resolved recipe printed, nothing run */
    tuna_dataset_options dso;
    /* the method and its adapter */
    const char *method, *save_dtype, *prompt_init, *lora_targets, *ia3_targets, *ia3_ff;
    tuna_peft_config pc;
    /* the trainer */
    tuna_train_args a;
    int lr_given, mb_given, eval_every, early_stop, save_every;
    tuna_dpo_args dargs; /* dpo's loss (a.dpo points here) */
    int max_prompt_len;
    struct {             /* grpo's own (train_grpo.c) */
        const char *completions;     /* --completions FILE.jsonl, or NULL: sampling */
        int G, G_given, max_new, num_iterations, loss_type, scale, top_k;
        double temperature, top_p, min_p, epsilon, epsilon_high, beta, reward_timeout;
        const char *rewards[TRAIN_MAX_DATA];
        int n_rewards;
    } grpo;
    /* derived by train_opts_check */
    int is_full, is_qlora;
    tuna_dtype sdt;
    const char *files_dir; /* the folder whose tokenizer files the output gets */
    /* owned, released by train_opts_free */
    struct train_argv *args; /* the command line with --config RECIPE expanded (train_recipe.h) */
    char *recipe_text;       /* recipe.yaml: the resolved options (train_recipe_text), set once checked */
} train_opts;

/* Parses argv (argv[0] the command) for mode into *o, a recipe given by
 * --config first (train_recipe.h; the command line wins), then requires the
 * mode's inputs. Returns 0, or 2 after printing "tuna: error: ..." (for a
 * recipe's value, "FILE:LINE: ..."). Release *o with train_opts_free. */
int train_opts_parse(train_opts *o, const train_mode *mode, int argc, char **argv);
void train_opts_free(train_opts *o);
/* the --model and --adapter options of the modes that start from a model */
int train_model_option(train_opts *o, const char *opt, const char *v, int *i);
/* "CMD: --model, --data and --out are required" unless given: 0 or 2 */
int train_model_required(const train_opts *o);
/* --out may not be or hold an input (--resume OUT/checkpoint-N aside):
 * 0, or the exit code after printing why (cli_check_paths). */
/* --model, --ref-model, --adapter, --tokenizer given as Hub ids (cli_hub.h)
 * replaced by their snapshot folders; 0 or the exit code */
int train_opts_resolve_hub(train_opts *o);
int train_opts_check_paths(const train_opts *o);
/* The checks that need no file read, and the settings derived from the
 * options (the learning rate's default, the adapter's config). 0 or 2. */
int train_opts_check(train_opts *o);
/* train_args.json: every setting of the run, the trainer's total steps, the
 * data's sizes and the model's parameters. New reference. */
json_t *train_opts_json(const train_opts *o, const struct train_data *d, int total);
#endif
