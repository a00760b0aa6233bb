/* convert_tokenizer.c — the tokenizer half of `tuna convert llama2c`. */
#include "commands.h"
#include "tuna_tokenizer.h"

tuna_status cli_convert_llama2c_tokenizer(const char *bin, const char *out_dir) {
    return tuna_tokenizer_convert_llama2c(bin, out_dir);
}
