/* tuna_infer.h — incremental decoding with a KV cache, for generation and
 * evaluation. A decoder holds, per row (one sequence each), the keys and
 * values of every position seen so far, so each step only processes the new
 * tokens: a prompt is prefilled in one call, then one token per call. Rows
 * advance independently, so prompts of different lengths share the decode
 * steps. Works with adapters (LoRA/IA3 unmerged; prompt tuning prepends its
 * virtual tokens when a row starts) and NF4-quantized bases. */
#ifndef TUNA_INFER_H
#define TUNA_INFER_H
#include "tuna.h"

typedef struct tuna_decoder tuna_decoder;

/* Caches for max_rows rows of at most max_ctx positions (virtual tokens
 * included); one call processes at most max_tokens new tokens in all. All
 * memory is allocated here. The model must outlive the decoder and must not
 * be prepared for other batches while the decoder is in use. */
tuna_status tuna_decoder_create(tuna_decoder **out, tuna_model *m, int max_rows, int max_ctx, int max_tokens);
void tuna_decoder_free(tuna_decoder *d);
/* Empties a row (its next tokens start at position 0). */
void tuna_decoder_reset(tuna_decoder *d, int row);
/* Positions held by a row (virtual tokens included). */
int tuna_decoder_length(const tuna_decoder *d, int row);
/* Appends n tokens to each of the nrows rows listed (ids[r * n + t] for
 * rows[r]) and writes the logits of each row's last new position to
 * logits[r * V]. Errors: ids outside the vocabulary, a row over max_ctx or
 * the model's positions, more than max_tokens tokens. */
tuna_status tuna_decoder_step(tuna_decoder *d, const int *rows, int nrows, const int32_t *ids, int n, float *logits);
#endif
