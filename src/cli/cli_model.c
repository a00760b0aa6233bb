/* cli_model.c — loading the model, tokenizer and adapter a command runs on
 * (see cli_model.h); the commands print the failure and pick the exit code. */
#include "cli_model.h"

#include <stdio.h>
#include <string.h>

#include "tuna_peft.h"
#include "core/error.h"

tuna_quant_type cli_load_mode(const char *method) {
    if (method && !strcmp(method, "full")) return TUNA_QUANT_NONE;
    return method && !strcmp(method, "qlora") ? TUNA_QUANT_NF4 : TUNA_QUANT_STORED;
}

tuna_status cli_load_model(const cli_model_spec *s, tuna_model **m, tuna_tokenizer **tok) {
    tuna_status st = tuna_model_load_quantized(m, s->dir, s->quant ? TUNA_QUANT_NF4 : cli_load_mode(NULL));
    if (st != TUNA_OK) return st;
    st = tuna_tokenizer_load(tok, s->dir);
    if (st != TUNA_OK && s->tok_err) {
        /* the caller runs without one (eval of pre-tokenized data) */
        snprintf(s->tok_err, s->tok_err_len, "%s", tuna_last_error());
        *tok = NULL;
        st = s->tok_needed ? core_fail(TUNA_ERR_ARG, "%s", s->tok_err) : TUNA_OK;
    }
    if (st == TUNA_OK && s->adapter) st = tuna_peft_load(*m, s->adapter);
    return st;
}
