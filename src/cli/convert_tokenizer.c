/* convert_tokenizer.c — the tokenizer half of `tuna convert llama2c`. */
#include "commands.h"
#include "tuna_tokenizer.h"

/* TEMPORARY (integration): weak until the tokenizer module lands */
extern tuna_status tuna_tokenizer_convert_llama2c(const char *bin_path, const char *out_dir) __attribute__((weak));

tuna_status cli_convert_llama2c_tokenizer(const char *bin, const char *out_dir) {
    if (!tuna_tokenizer_convert_llama2c) return tuna_fail(TUNA_ERR_UNSUPPORTED, "tokenizer conversion not built");
    return tuna_tokenizer_convert_llama2c(bin, out_dir);
}
