/* tuna_eval.h — evaluating a model on a data set of records: the
 * response-only loss of each example, generation from each example's prompt
 * (batched, through the KV cache) scored against its reference response, and
 * the prompts of the adaptation spectrum (zero-shot, k-shot in-context
 * examples, fine-tuned). The CLI's `tuna eval` and `tuna compare` are thin
 * drivers over these. */
#ifndef TUNA_EVAL_H
#define TUNA_EVAL_H
#include "tuna.h"
#include "tuna_data.h"
#include "tuna_infer.h"
#include "tuna_template.h"
#include "tuna_tokenizer.h"

struct json_t;

/* What a model is asked and what it should answer, from one record:
 *  chat ({"messages"}, ShareGPT, Alpaca): the turns before the last assistant
 *    turn are the prompt, that turn's content the reference;
 *  prompt/completion with message lists: the prompt turns, and the content of
 *    the completion's last assistant message;
 *  prompt/completion strings: prompt_text (continued as a document, as SFT
 *    trains it) and the completion;
 *  preference records: the prompt, and the chosen response as the reference
 *    (as prompt/completion with chosen as the completion).
 * Plain text and pre-tokenized records have no single reference response:
 * TUNA_ERR_UNSUPPORTED (they still get a loss). */
typedef struct {
    tuna_message *msgs;       /* prompt turns (owned copies); n_msgs 0 for prompt_text */
    int n_msgs;
    char *prompt_text;        /* prompt/completion strings, else NULL */
    char *reference;          /* never NULL on success */
} tuna_eval_example;

tuna_status tuna_eval_example_from_record(const tuna_record *rec, tuna_eval_example *ex);
void tuna_eval_example_clear(tuna_eval_example *ex);

/* Where in-context examples go. TURNS: earlier user/assistant turns of the
 * conversation, rendered by the chat template (chat models). DOCUMENT: a
 * completion document for base models: each shot as its prompt text, a
 * newline and its reference, shots separated by a blank line, then the
 * query's prompt text and a newline (a prompt_text example is followed by its
 * reference directly, as its prompt ends where the completion begins). */
typedef enum { TUNA_SHOTS_TURNS = 0, TUNA_SHOTS_DOCUMENT = 1 } tuna_shot_format;

/* The token ids of ex's prompt with k shots before it (k may be 0). TURNS
 * needs tmpl for chat examples (a prompt_text example with k = 0 is encoded
 * as SFT encodes it). The text is encoded as SFT encodes training text: no
 * special tokens added, then the tokenizer's default prefix (BOS) put in
 * front when the text does not already start with it, so the fine-tuned
 * model sees its prompts as it saw them in training. *ids malloc'd.
 * text_out (may be NULL) receives the prompt text (malloc'd). */
tuna_status tuna_eval_prompt(tuna_tokenizer *tok, const tuna_template *tmpl, const tuna_eval_example *ex,
                             const tuna_eval_example *shots, int k, tuna_shot_format fmt, int32_t **ids, size_t *n,
                             char **text_out);

/* Scores of one prediction against its reference. */
typedef struct {
    int exact;                /* after whitespace normalisation */
    int contains;             /* normalised reference inside the normalised prediction */
    double rouge_l;           /* F1 */
    int json_valid;           /* -1 when the reference is not JSON (object or array) */
    int json_correct, json_total; /* fields of a JSON-object reference; total 0 otherwise */
    int regex;                /* -1 when no pattern */
} tuna_eval_scores;

/* regex may be NULL. A pattern that does not compile is TUNA_ERR_ARG. */
tuna_status tuna_eval_score(const char *pred, const char *ref, const char *regex, tuna_eval_scores *s);

/* Running totals over a data set (opaque). */
typedef struct tuna_eval_tally tuna_eval_tally;
tuna_eval_tally *tuna_eval_tally_new(void);
void tuna_eval_tally_free(tuna_eval_tally *t);
/* One example's loss (sum over its counted tokens; tokens 0 = none). */
void tuna_eval_tally_loss(tuna_eval_tally *t, double loss_sum, int64_t tokens);
/* One generated example: its scores (pred, ref for per-key JSON accuracy),
 * prompt and completion tokens, seconds from its prefill to its end. */
void tuna_eval_tally_generation(tuna_eval_tally *t, const char *pred, const char *ref, const tuna_eval_scores *s,
                                int prompt_tokens, int completion_tokens, double seconds);
/* The summary as a JSON object (new reference): examples; loss, tokens, ppl
 * (when any loss was added: token-weighted over the whole set); generated,
 * exact_match, contains, rouge_l, regex (means over generated examples),
 * json_valid (mean over examples with a JSON reference, json_examples
 * their count), json_fields {"overall", "per_key": {key: accuracy}},
 * mean_prompt_tokens, mean_completion_tokens, mean_latency_s,
 * tokens_per_s (completion tokens / summed latency). Keys without data are
 * left out. */
struct json_t *tuna_eval_tally_json(const tuna_eval_tally *t);
/* The value of one metric by name: exact_match, contains, rouge_l,
 * json_valid, json_fields, regex, loss, ppl. NAN when there is no data. */
double tuna_eval_tally_metric(const tuna_eval_tally *t, const char *name);
/* 1 when name is a metric tuna_eval_tally_metric knows. */
int tuna_eval_metric_known(const char *name);

/* Per-example losses over the sequences of data (their ids and labels), batch
 * rows per forward pass; loss_sum[i], tokens[i] for sequence i. Sequences
 * longer than the model's positions must be truncated by the caller.
 * on_progress (may be NULL) after each batch. Prepares the model. */
tuna_status tuna_eval_losses(tuna_model *m, const tuna_pretok *data, int batch, double *loss_sum, int64_t *tokens,
                             void (*on_progress)(void *ctx, int64_t done, int64_t total), void *ctx);

/* Generates for n prompts, batch at a time (prompts[i] of n_prompts[i]
 * tokens); sampling seed for prompt i is o->sample.seed + i, so the text
 * does not depend on the batch size. res[n] filled (free each with
 * tuna_gen_result_free). A prompt longer than the model's positions fails
 * naming its index. */
tuna_status tuna_eval_generate(tuna_model *m, const tuna_tokenizer *tok, int32_t *const *prompts,
                               const size_t *n_prompts, int n, int batch, const tuna_gen_opts *o, tuna_gen_result *res,
                               void (*on_progress)(void *ctx, int64_t done, int64_t total), void *ctx);
#endif
