/* train_data.h — what the mode loaders share (the model and its adapter, a
 * tokenizer when the folder has one, the vocabulary check), and what the
 * driver does to every mode's data before training: the --val-split
 * shares, examples with no counted token left out, the context check,
 * packing, and the parts joined into one training and one validation set. */
#ifndef TUNA_CLI_TRAIN_DATA_H
#define TUNA_CLI_TRAIN_DATA_H
#include "cli/train_mode.h"

/* A model folder with tokenizer files, or a GGUF file (its vocabulary is inside). */
int train_has_tokenizer(const char *model_dir);
/* The model of --model: NF4-quantized for --method qlora. */
tuna_status train_load_model(tuna_model **m, const train_opts *o);
/* --bf16: the model's GEMMs in bf16 (a one-line note, once, where this CPU
 * has no bf16 GEMM: fp32 then) */
tuna_status train_apply_bf16(tuna_model *m, const train_opts *o);
/* Attaches the adapter to train (not for --method full): the one of
 * --adapter (its config wins), or a fresh one from the options,
 * PEFT-initialised; says what is trained unless quiet. */
tuna_status train_attach_adapter(tuna_model *m, tuna_tokenizer *tok, train_opts *o);
/* Every id and label (-100 aside) inside a vocabulary of V: TUNA_ERR_FORMAT
 * naming path otherwise (data from the token cache was not checked record
 * by record). */
tuna_status train_check_vocab(const tuna_pretok *p, int V, const char *path);
/* After the mode's loader: the shared steps, ending with d->data and d->val. */
tuna_status train_data_prepare(train_opts *o, train_data *d);
/* Releases everything d holds. */
void train_data_free(train_data *d);
#endif
