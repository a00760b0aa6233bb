/* cli_model.c — loading the model, tokenizer and adapter a command runs on,
 * and its --quant / --dtype options (see cli_model.h); the commands print the
 * failure and pick the exit code. */
#include "cli_model.h"

#include <stdio.h>
#include <string.h>

#include "cli_util.h"
#include "tuna_peft.h"
#include "core/error.h"

void cli_model_flags_init(cli_model_flags *f) { *f = (cli_model_flags){.dtype = CLI_DTYPE_AUTO}; }

/* NF4 blocks are dequantized to fp32 tiles: converting them to bf16 would
 * round what the fp32 load reproduces exactly */
static int check_combination(const cli_model_flags *f, const char *cmd) {
    if (f->nf4 && f->dtype == CLI_DTYPE_BF16)
        return cli_usage_error("%s: --quant nf4 and --dtype bf16 do not combine (NF4 weights compute in fp32): choose one", cmd);
    return 0;
}

int cli_model_flag(cli_model_flags *f, const char *cmd, int argc, char **argv, int *i) {
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(o, "--quant") && v) {
        if (strcmp(v, "nf4")) { cli_usage_error("%s: --quant must be nf4 (got '%s')", cmd, v); return -1; }
        f->nf4 = 1;
    } else if (!strcmp(o, "--dtype") && v) {
        static const char *const names[] = {"auto", "bf16", "f32"};
        static const cli_dtype vals[] = {CLI_DTYPE_AUTO, CLI_DTYPE_BF16, CLI_DTYPE_F32};
        int k = 0;
        while (k < 3 && strcmp(v, names[k])) k++;
        if (k == 3) { cli_usage_error("%s: --dtype must be auto, bf16 or f32 (got '%s')", cmd, v); return -1; }
        f->dtype = vals[k];
    } else return 0;
    (*i)++;
    return check_combination(f, cmd) ? -1 : 1;
}

tuna_quant_type cli_load_mode(const char *method) {
    if (method && !strcmp(method, "full")) return TUNA_QUANT_NONE;
    return method && !strcmp(method, "qlora") ? TUNA_QUANT_NF4 : TUNA_QUANT_STORED;
}

tuna_status cli_load_base(const char *dir, const cli_model_flags *f, tuna_model **m) {
    tuna_quant_type q = f->nf4 ? TUNA_QUANT_NF4 : f->dtype == CLI_DTYPE_BF16 ? TUNA_QUANT_BF16 : cli_load_mode(NULL);
    return tuna_model_load_quantized(m, dir, q);
}

tuna_status cli_model_set_dtype(tuna_model *m, const cli_model_flags *f, int quiet) {
    int want = f->dtype == CLI_DTYPE_BF16 || (f->dtype == CLI_DTYPE_AUTO && tuna_model_linears_bf16(m));
    int on = want ? tuna_model_set_bf16(m, 1) : 0;
    if (on < 0) return TUNA_ERR_NOMEM; /* tuna_last_error says so */
    if (!on && f->dtype == CLI_DTYPE_BF16 && !quiet)
        fprintf(stderr, "tuna: note: this CPU has no bf16 instructions (AVX512-BF16 or AMX): the bf16 weights are multiplied in fp32\n");
    return TUNA_OK;
}

tuna_status cli_load_model(const cli_model_spec *s, tuna_model **m, tuna_tokenizer **tok) {
    tuna_status st = cli_load_base(s->dir, &s->flags, m);
    if (st != TUNA_OK) return st;
    st = tuna_tokenizer_load(tok, s->dir);
    if (st != TUNA_OK && s->tok_err) {
        /* the caller runs without one (eval of pre-tokenized data) */
        snprintf(s->tok_err, s->tok_err_len, "%s", tuna_last_error());
        *tok = NULL;
        st = s->tok_needed ? core_fail(TUNA_ERR_ARG, "%s", s->tok_err) : TUNA_OK;
    }
    if (st == TUNA_OK && s->adapter) st = tuna_peft_load(*m, s->adapter);
    if (st == TUNA_OK) st = cli_model_set_dtype(*m, &s->flags, 0);
    return st;
}
