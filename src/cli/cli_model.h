/* cli_model.h — the model a command runs on (generate, chat, eval, compare):
 * --model DIR with --quant and --adapter, and its tokenizer, loaded in one
 * place so the commands read, order and report them the same way. */
#ifndef TUNA_CLI_MODEL_H
#define TUNA_CLI_MODEL_H
#include <stddef.h>
#include "tuna.h"
#include "tuna_peft.h"
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

/* How a command loads its base model: --method full in fp32 (its weights
 * train); qlora with the block linears in NF4 and the embeddings and lm_head
 * as stored; every other method (lora, ia3, prompt), and with method NULL the
 * commands that only run the model (generate, chat, eval, compare, serve),
 * with every frozen weight as stored (bf16 stays bf16, mapped from the file;
 * an fp32 checkpoint stays fp32: the same results). */
tuna_quant_type cli_load_mode(const char *method);

/* Loads the model (its block linears in NF4 with quant, else as stored), its tokenizer, then
 * attaches the adapter, in that order; returns the first failure, leaving
 * what was loaded in *m and *tok for the caller to free. */
tuna_status cli_load_model(const cli_model_spec *s, tuna_model **m, tuna_tokenizer **tok);
#endif
