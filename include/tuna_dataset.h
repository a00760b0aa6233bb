/* tuna_dataset.h — from raw records to training sequences: each record
 * (tuna_data.h formats) is rendered through the chat template, tokenized, and
 * given labels that count only the response tokens (or all, on request),
 * then truncated to the sequence length. The mask comes from the byte spans
 * of the assistant turns (tuna_template_assistant_spans) and the byte offsets
 * of the tokens (from the streaming decoder, so it is exact wherever
 * decode(encode(x)) == x), never from comparing token ids.
 * Processed data sets are kept in the token cache (tuna_cache_*) under a key
 * of the file's bytes, the tokenizer files, the template and the options. */
#ifndef TUNA_DATASET_H
#define TUNA_DATASET_H
#include "tuna.h"
#include "tuna_data.h"
#include "tuna_template.h"
#include "tuna_tokenizer.h"

typedef enum { TUNA_TRUNCATE_RIGHT = 0, TUNA_TRUNCATE_LEFT = 1, TUNA_TRUNCATE_DROP = 2 } tuna_truncate;

typedef struct {
    int seq_len;              /* 0: no limit */
    tuna_truncate truncate;
    int loss_on_all;          /* count every token (--loss-on all) */
    tuna_data_options data;   /* reader policy (bad records, strict, max_bad) */
    const char *cache_dir;    /* NULL: no cache */
    /* progress callback for long files (bytes read so far, total), may be NULL */
    void (*on_progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} tuna_dataset_options;

typedef struct {
    tuna_data_stats data;     /* records, good, bad by kind, by format */
    long examples;            /* sequences produced */
    long truncated, dropped;  /* by the length limit */
    long no_counted;          /* examples with no counted token */
    long ends_with_eos;       /* examples whose last counted token is EOS / a special end-of-turn token */
    int64_t tokens, counted;  /* all tokens; tokens counted by the loss (labels[1:] != -100) */
    int from_cache;           /* 1 when the result came from the token cache */
    uint64_t key;             /* cache key */
} tuna_dataset_stats;

void tuna_dataset_options_init(tuna_dataset_options *o);

/* Loads the chat template for tok: override (a built-in name or a file path)
 * when not NULL, else the tokenizer's chat_template; *out NULL when there is
 * none (records that need one then fail with a message naming --template). */
tuna_status tuna_dataset_template(tuna_template **out, const tuna_tokenizer *tok, const char *override,
                                  char **source_out);

/* Tokenizes one good record into ids/labels (malloc'd, caller frees; *n
 * tokens), before truncation. text_out (may be NULL) receives the rendered
 * text (malloc'd) for display. */
tuna_status tuna_dataset_encode_record(const tuna_record *rec, tuna_tokenizer *tok, const tuna_template *tmpl,
                                       int loss_on_all, int32_t **ids, int32_t **labels, size_t *n, char **text_out);

/* Encodes rendered text as SFT encodes training text: no special tokens
 * added, then the tokenizer's default prefix (BOS) put in front unless the
 * text already starts with it (templates that write {{ bos_token }}). Used
 * for generation prompts so a fine-tuned model sees them as in training.
 * *ids malloc'd. */
tuna_status tuna_dataset_encode_text(tuna_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n);

/* Reads and processes a whole file (streaming) into out; uses and fills the
 * cache when o->cache_dir is set. template_source is hashed into the key. */
tuna_status tuna_dataset_load(const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                              const char *template_source, const char *tokenizer_dir,
                              const tuna_dataset_options *o, tuna_pretok *out, tuna_dataset_stats *stats);
#endif
