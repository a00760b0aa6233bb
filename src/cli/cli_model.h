/* cli_model.h — the model a command runs on (generate, chat, eval, compare):
 * --model DIR with --quant and --adapter, and its tokenizer, loaded in one
 * place so the commands read, order and report them the same way. */
#ifndef TUNA_CLI_MODEL_H
#define TUNA_CLI_MODEL_H
#include <stddef.h>
#include "tuna.h"
#include "tuna_tokenizer.h"

typedef struct {
    const char *dir;     /* --model */
    const char *quant;   /* --quant (the caller checked it is "nf4") or NULL */
    const char *adapter; /* --adapter or NULL */
    char *tok_err;       /* NULL: the tokenizer must load; else a tokenizer that
                          * does not load leaves *tok NULL and why here */
    size_t tok_err_len;
    int tok_needed;      /* with tok_err: such a tokenizer still fails (TUNA_ERR_ARG) */
} cli_model_spec;

/* Loads the model (its block linears in NF4 with quant), its tokenizer, then
 * attaches the adapter, in that order; returns the first failure, leaving
 * what was loaded in *m and *tok for the caller to free. */
tuna_status cli_load_model(const cli_model_spec *s, tuna_model **m, tuna_tokenizer **tok);
#endif
