/* cli_model.h — the model a command runs on (generate, chat, eval, serve,
 * compare): --model DIR with --quant, --dtype and --adapter, and its
 * tokenizer, loaded in one place so the commands read, order and report them
 * the same way. */
#ifndef TUNA_CLI_MODEL_H
#define TUNA_CLI_MODEL_H
#include <stddef.h>
#include "tuna.h"
#include "tuna_peft.h"
#include "tuna_tokenizer.h"

/* --dtype: the precision the linear layers compute in. CLI_DTYPE_STORED (the
 * zero value, for commands without the option): weights as stored, fp32
 * compute, as before --dtype existed. */
typedef enum { CLI_DTYPE_STORED = 0, CLI_DTYPE_AUTO, CLI_DTYPE_BF16, CLI_DTYPE_F32 } cli_dtype;

/* --quant and --dtype of the commands that run a model (generate, chat,
 * eval, serve); cli_model_flags_init sets dtype auto, the default. */
typedef struct {
    int nf4;         /* --quant nf4 */
    cli_dtype dtype; /* --dtype auto|bf16|f32 */
} cli_model_flags;
void cli_model_flags_init(cli_model_flags *f);
/* 1: argv[*i] was --quant or --dtype (its value consumed), 0: neither, -1:
 * a bad value or a combination refused (one line printed; exit 2). cmd names
 * the command in the message. */
int cli_model_flag(cli_model_flags *f, const char *cmd, int argc, char **argv, int *i);
/* The lines of --help for these options. */
#define CLI_MODEL_FLAGS_HELP                                                                      \
    "  --quant nf4            the block linears in NF4 (as QLoRA stores them)\n"                  \
    "  --dtype auto|bf16|f32  auto (default): weights as stored, a bf16 model computed in bf16;\n" \
    "                         bf16: weights converted to bf16 at load, computed in bf16;\n"        \
    "                         f32: computed in fp32 (bf16 weights converted as they are used)\n"

typedef struct {
    const char *dir;     /* --model */
    cli_model_flags flags; /* --quant, --dtype (zero: as stored, fp32 compute) */
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

/* The base model of dir as f says: its block linears in NF4 with --quant
 * nf4, its weights converted to bf16 with --dtype bf16, else as stored. */
tuna_status cli_load_base(const char *dir, const cli_model_flags *f, tuna_model **m);
/* Once the model (and its adapter) is loaded: bf16 compute on for --dtype
 * bf16, and for auto when every linear's weight is bf16
 * (tuna_model_linears_bf16); a CPU without bf16 instructions keeps fp32, with
 * one notice on stderr for --dtype bf16 unless quiet (a share of a base
 * already told). TUNA_ERR_NOMEM when the bf16 copies do not fit. */
tuna_status cli_model_set_dtype(tuna_model *m, const cli_model_flags *f, int quiet);

/* Loads the model (cli_load_base), its tokenizer, attaches the adapter, then
 * sets the compute dtype, in that order; returns the first failure, leaving
 * what was loaded in *m and *tok for the caller to free. */
tuna_status cli_load_model(const cli_model_spec *s, tuna_model **m, tuna_tokenizer **tok);
#endif
