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
 * be prepared for other batches while the decoder is in use.
 * Threads: a decoder is used by one thread at a time. Its steps write only
 * its own caches and workspace (not the model's activations) and read the
 * model's weights, so several decoders may step one plain model (no adapter,
 * not NF4), or shares of one fp32 base with their own adapters
 * (tuna_model_share), from different threads at once. Steps do write an
 * attached adapter's buffers and an NF4 base's dequantization tile: decoders
 * (and forwards) on one adapted model, or over one NF4 base, take turns.
 * Creating a decoder or setting its model prepares the model's adapter:
 * nothing else may use that model meanwhile. */
tuna_status tuna_decoder_create(tuna_decoder **out, tuna_model *m, int max_rows, int max_ctx, int max_tokens);
/* Bytes tuna_decoder_create allocates for these sizes (computed by the code
 * that carves the block): what `tuna plan` counts for generation. */
size_t tuna_decoder_bytes(const tuna_config *c, int max_rows, int max_ctx, int max_tokens);
void tuna_decoder_free(tuna_decoder *d);
/* Makes the next steps run m (a model of the same shape, e.g. the base with
 * another adapter: tuna_model_share); rows keep their caches, so a row must
 * be stepped with the model that started it. */
tuna_status tuna_decoder_set_model(tuna_decoder *d, tuna_model *m);
/* Empties a row (its next tokens start at position 0). */
void tuna_decoder_reset(tuna_decoder *d, int row);
/* The model's vocabulary size (logits per row). */
int tuna_decoder_vocab(const tuna_decoder *d);
/* Positions held by a row (virtual tokens included). */
int tuna_decoder_length(const tuna_decoder *d, int row);
/* Appends n tokens to each of the nrows rows listed (ids[r * n + t] for
 * rows[r]) and writes the logits of each row's last new position to
 * logits[r * V]. Errors: ids outside the vocabulary, a row over max_ctx or
 * the model's positions, more than max_tokens tokens. */
tuna_status tuna_decoder_step(tuna_decoder *d, const int *rows, int nrows, const int32_t *ids, int n, float *logits);

#include "tuna_sample.h"
#include "tuna_tokenizer.h"

/* Text generation from one prompt with the KV cache: sampling (see
 * tuna_sample.h), stop at an EOS id or a stop string (the text is cut before
 * it), or after max_new_tokens. on_text, when set, receives the text as it is
 * produced (whole UTF-8 characters; text that could still become a stop
 * string is held back until it cannot). */
typedef struct {
    int max_new_tokens;
    tuna_sample_args sample;
    const int32_t *eos_ids;   /* generation ends after any of these (not part of the text) */
    int n_eos;
    const char *const *stop;  /* stop strings */
    int n_stop;
    void (*on_text)(void *ctx, const char *text, size_t len);
    void *ctx;
} tuna_gen_opts;

typedef struct {
    int32_t *ids;             /* generated ids (malloc'd), EOS excluded */
    int n;
    char *text;               /* generated text (malloc'd, NUL-terminated), cut before a stop string */
    size_t text_len;
    int prompt_tokens;
    int stopped;              /* 1: EOS or stop string; 0: max_new_tokens */
    double prompt_seconds, decode_seconds;
} tuna_gen_result;

/* Generates from one prompt with decoder row 0. on_text streams the text. */
tuna_status tuna_generate(tuna_decoder *d, const tuna_tokenizer *tok, const int32_t *prompt, int n_prompt,
                          const tuna_gen_opts *o, tuna_gen_result *res);
/* Generates from nrows prompts at once with decoder rows 0..nrows-1: each
 * prompt is prefilled on its own, then every unfinished row takes one token
 * per forward pass, so the decode steps are shared. Row r samples with
 * seeds[r] (NULL: o->sample.seed for all), so a prompt gives the same text
 * whatever else is in the batch. on_text is used only when nrows == 1.
 * res[nrows] is filled; prompt_seconds is the row's prefill, decode_seconds
 * from then until the row finished (waiting for other rows included). */
tuna_status tuna_generate_batch(tuna_decoder *d, const tuna_tokenizer *tok, const int32_t *const *prompts,
                                const int *n_prompts, int nrows, const uint64_t *seeds, const tuna_gen_opts *o,
                                tuna_gen_result *res);
void tuna_gen_result_free(tuna_gen_result *r);

/* One sequence being generated, for callers that run the decoder themselves
 * (a server that admits requests while others decode): the caller steps the
 * decoder (prompt first, then tuna_gen_seq_last each step) and hands each
 * forward's logits to push_logits, which samples (o->sample, its seed), streams
 * through o->on_text and ends the sequence at EOS, a stop string or
 * max_new_tokens. o is copied; its eos/stop arrays must outlive the sequence.
 * tuna_generate_batch is built on these. */
typedef struct tuna_gen_seq tuna_gen_seq;
tuna_status tuna_gen_seq_create(tuna_gen_seq **out, const tuna_tokenizer *tok, int model_vocab, const int32_t *prompt,
                                int n_prompt, const tuna_gen_opts *o);
void tuna_gen_seq_free(tuna_gen_seq *s);
/* logits [model_vocab] of the sequence's last position (modified in place).
 * TUNA_ERR_NUMERIC, the step named, when one is NaN or +inf. */
tuna_status tuna_gen_seq_push_logits(tuna_gen_seq *s, float *logits);
int tuna_gen_seq_done(const tuna_gen_seq *s);
int tuna_gen_seq_generated(const tuna_gen_seq *s);      /* ids generated so far (EOS excluded) */
int32_t tuna_gen_seq_last(const tuna_gen_seq *s);       /* the id to feed next */
/* Flushes the held-back text to on_text and fills res (as tuna_generate). */
tuna_status tuna_gen_seq_result(tuna_gen_seq *s, tuna_gen_result *res);
#endif
