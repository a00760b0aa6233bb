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
    /* the model's vocabulary size: every token id and label (but -100) of a
     * record must be below it, else FILE:LINE is an error (0: not checked) */
    int vocab_size;
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
    /* non-empty: what went wrong with the cache, one line for the user (a
     * damaged entry read again; a cache folder that cannot be written, so
     * the run goes on uncached) */
    char cache_note[1024];
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

/* Reads and processes a whole file (streaming) into a new data set *out;
 * uses and fills the cache when o->cache_dir is set and path is a regular
 * file (a pipe or device is read once, uncached). template_source is hashed into the key. A hit
 * applies o->data's bad-record policy to the counts and first bad records
 * the entry keeps (the callback sees at most the first 100, without their
 * raw bytes), so it fails, and reports, as reading the file would. A damaged
 * entry is read again and replaced; a cache that cannot be written leaves
 * the data in memory; a file whose bytes changed between the key's read and
 * the tokenizing read is not stored; each says so in stats->cache_note. */
tuna_status tuna_dataset_load(const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                              const char *template_source, const char *tokenizer_dir,
                              const tuna_dataset_options *o, tuna_pretok **out, tuna_dataset_stats *stats);

/* ---- preference pairs (tuna dpo) ----
 * Encoded as TRL's DPOTrainer does: a conversational record's prompt is
 * rendered with the generation prompt, each response is the rest of the full
 * rendering (prompt + response messages) after the text common to all three
 * renderings; string records are used as they are (no template). The prompt
 * is encoded as SFT encodes text (the tokenizer's BOS in front once), each
 * response without special tokens, and a response gets the tokenizer's EOS
 * appended unless it already holds a stop token (EOS or a special token the
 * template writes, e.g. <|im_end|>); template text after the response's last
 * stop token (ChatML's "
") is left out, as SFT's mask leaves it out.
 * Pre-tokenized records {"prompt_ids","chosen_ids","rejected_ids"} are used as
 * given. */
typedef struct {
    int32_t *prompt, *chosen, *rejected;
    size_t n_prompt, n_chosen, n_rejected;
} tuna_pref_tokens;
void tuna_pref_tokens_free(tuna_pref_tokens *p);

/* Encodes one TUNA_RECORD_PREFERENCE or TUNA_RECORD_PREFERENCE_TOKENS record
 * (tok and tmpl may be NULL for the latter). */
tuna_status tuna_dataset_encode_preference(const tuna_record *rec, tuna_tokenizer *tok, const tuna_template *tmpl,
                                           tuna_pref_tokens *out);

typedef struct {
    int max_len;              /* prompt + response tokens (0: no limit) */
    int max_prompt_len;       /* 0: no limit */
    double val_fraction;      /* records sent to val_out (tuna_record_is_val), 0: none */
    uint64_t val_seed;
    tuna_data_options data;   /* reader policy */
} tuna_pref_options;

typedef struct {
    tuna_data_stats data;
    long pairs, val_pairs;
    long prompts_truncated;   /* prompt cut to its last max_prompt_len tokens */
    long responses_truncated; /* pairs whose responses were cut to fit max_len */
    long dropped;             /* pairs whose prompt leaves no room for a response */
    int64_t tokens, counted;  /* over both sequences of every pair (train and val) */
} tuna_pref_stats;

/* Reads a preference file into pairs: sequence 2i is prompt + chosen, 2i+1
 * prompt + rejected, labels -100 on the prompt (so the model's row losses
 * are minus the responses' log-probabilities). Truncation, as TRL: the prompt
 * keeps its last max_prompt_len tokens; when prompt + response exceeds
 * max_len the response keeps its first tokens. A record of another kind
 * (chat, text, ...) fails with FILE:LINE. New data sets in *out and *val_out
 * (val_out may be NULL; without val_fraction *val_out holds no pair). */
tuna_status tuna_dataset_load_preferences(const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                                          const tuna_pref_options *o, tuna_pretok **out, tuna_pretok **val_out,
                                          tuna_pref_stats *stats);
/* ---- unpaired items (tuna kto) ----
 * Records {"prompt","completion","label"} (strings, or message lists encoded
 * as the preference records' prompt and chosen response are) or
 * {"prompt_ids","completion_ids","label"} (used as given); label true
 * (desirable) or false. As TRL's KTOTrainer (_get_kl_dataset), the items are
 * taken in file order in consecutive chunks of `chunk`, and item i's KL row
 * is its own prompt with the previous item's completion in its chunk (the
 * chunk's first takes the chunk's last). Sequence 2i is item i's prompt +
 * completion, 2i+1 its KL row, prompts masked (-100); truncation as
 * tuna_dataset_load_preferences (an item whose prompt leaves no room is left
 * out before the chunks are formed). A record without a label, or of another
 * kind, fails with FILE:LINE. New *out and *desirable[items] (1: true). */
typedef struct {
    int max_len, max_prompt_len;  /* as tuna_pref_options (0: no limit) */
    int chunk;                    /* TRL's per-device batch: at least 2 */
    tuna_data_options data;       /* reader policy */
} tuna_kto_options;

typedef struct {
    tuna_data_stats data;
    long items, desirable, undesirable;
    long prompts_truncated, completions_truncated, dropped;
    int64_t tokens, counted;      /* the completion rows' (KL rows not counted) */
} tuna_kto_stats;

tuna_status tuna_dataset_load_kto(const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                                  const tuna_kto_options *o, tuna_pretok **out, uint8_t **desirable, tuna_kto_stats *stats);
#endif
