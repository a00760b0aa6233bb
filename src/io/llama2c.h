/* llama2c.h — the llama2.c checkpoint header (7 int32: dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size — negative when the classifier is
 * separate —, seq_len) as a tuna_config, checked against the file's size;
 * shared by the importer and `tuna info`. */
#ifndef TUNA_IO_LLAMA2C_H
#define TUNA_IO_LLAMA2C_H
#include <stdio.h>

#include "tuna.h"

/* Reads the header of the open checkpoint f (named path in messages). */
tuna_status llama2c_config(FILE *f, const char *path, tuna_config *cfg);
#endif
