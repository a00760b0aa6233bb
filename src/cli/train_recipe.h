/* train_recipe.h — recipe files for sft, dpo and pretrain: `--config
 * RECIPE.yaml` (or .json) read into the same options the command line gives
 * (train_recipe.c: the recipe's options first, then the command line's, so
 * the command line wins and one parser checks both), and the run's resolved
 * options written back as recipe.yaml (train_recipe_out.c). Keys are the
 * option names of train_optab.h. */
#ifndef TUNA_CLI_TRAIN_RECIPE_H
#define TUNA_CLI_TRAIN_RECIPE_H
#include "cli/train_optab.h"

struct recipe;

/* A command line with a recipe's options put first. */
typedef struct train_argv {
    int argc;
    char **argv;        /* argv[0] the command, then the recipe's options, then the command line's */
    const char **where; /* per entry: "FILE:LINE" for a recipe's, NULL for the command line's */
    struct recipe *rec; /* owned: the recipe's values point into it */
    char **owned;       /* owned strings (option names, joined values, places) */
    int n_owned, cap_owned, cap;
} train_argv;

/* argc/argv (argv[0] the command) of mode with --config FILE replaced by
 * the recipe's options, put before the rest: a repeatable option given on
 * the command line (--data, --val) drops the recipe's. For pretrain,
 * --config naming an HF config.json (a JSON object with "model_type" or
 * "architectures") is the architecture, --arch. Returns 0, or 2 (1 when out
 * of memory) after printing "tuna: error: FILE:LINE: ..."; free *out with
 * train_argv_free either way. */
int train_recipe_expand(train_argv *out, const train_mode *mode, int argc, char **argv);
void train_argv_free(train_argv *a);
/* recipe.yaml's text: every recorded option of o in the table's order, as
 * resolved after the checks. malloc'd; NULL when out of memory. */
char *train_recipe_text(const train_opts *o);
#endif
