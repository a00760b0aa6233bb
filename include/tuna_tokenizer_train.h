/* tuna_tokenizer_train.h — training a byte-level BPE tokenizer from text.
 *
 * tuna_bpe_train() learns a GPT-2-style byte-level BPE vocabulary and writes a
 * Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json) that HF tokenizers, transformers.js and
 * tuna_tokenizer_load() all read. Every one of the 256 bytes is in the base
 * vocabulary, so any UTF-8 text encodes and decodes back exactly.
 *
 * The merge order follows HF's BpeTrainer: ids are the special tokens first,
 * then the 256 byte symbols sorted by their byte-level code point, then merged
 * tokens in creation order; each step merges the pair with the highest count,
 * ties going to the smallest (left id, right id). Plain-text files are read
 * line by line (newline kept), as HF's train(files) does. Where tuna differs
 * (special tokens are cut out of the training text; counts stay exact where a
 * merge re-creates an existing token) is documented in src/tokenizer/train_bpe.c.
 *
 * The library prints nothing: progress goes through an optional callback. */
#ifndef TUNA_TOKENIZER_TRAIN_H
#define TUNA_TOKENIZER_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "tuna.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called now and then during training: stage is "read" (done/total in input
 * bytes) or "merge" (done/total in merges). */
typedef void (*tuna_bpe_progress_fn)(void *ctx, const char *stage, int64_t done, int64_t total);

typedef struct {
    /* Input files: plain UTF-8 text, or JSONL ("*.jsonl": one {"text": "..."}
     * object per line, blank lines skipped). Invalid UTF-8 is refused. */
    const char *const *files;
    int n_files;
    /* Final vocabulary size, special tokens included; at least
     * n_special + 256. Training stops earlier when no pair reaches
     * min_frequency (tuna_bpe_train_stats.vocab_size says how far it got). */
    int vocab_size;
    /* Special tokens, ids 0.. in this order; the first is bos/eos/pad/unk of
     * tokenizer_config.json. NULL (with n_special 0) selects the defaults:
     * "<|endoftext|>" (0: document separator, BOS/EOS/pad), "<|im_start|>",
     * "<|im_end|>" (ChatML). Their text is cut out of the training input. */
    const char *const *special;
    int n_special;
    /* Merging stops when the best pair occurs fewer times (default 2). */
    int min_frequency;
    /* NULL: the GPT-2 pre-tokenizer regex (ByteLevel use_regex). Otherwise a
     * regex written as a Split(Isolated) pre-tokenizer before ByteLevel, as
     * Llama 3 and Qwen2 do. */
    const char *split_regex;
    /* Read at most this many bytes of input, whole lines (0: no limit). */
    int64_t max_bytes;
    /* model_max_length of tokenizer_config.json (default 2048). */
    int model_max_length;
    /* chat_template of tokenizer_config.json (Jinja source); NULL: ChatML
     * when <|im_start|> and <|im_end|> are special tokens, else none. */
    const char *chat_template;
    tuna_bpe_progress_fn progress;   /* optional */
    void *progress_ctx;
} tuna_bpe_train_opts;

/* What a training run did. */
typedef struct {
    int64_t bytes;        /* input bytes used */
    int64_t sequences;    /* lines (text) or records (JSONL) read */
    int64_t words;        /* distinct pre-tokens */
    int vocab_size;       /* ids written (may be < the request, see above) */
    int merges;           /* merges written */
    int truncated;        /* 1 when max_bytes stopped the reading */
} tuna_bpe_train_stats;

/* Fills o with the defaults (no files, vocab_size 0: the caller sets both). */
void tuna_bpe_train_opts_default(tuna_bpe_train_opts *o);

/* Trains on o->files and writes tokenizer.json, tokenizer_config.json and
 * special_tokens_map.json into out_dir (created if missing), each atomically
 * (temp name, then rename). Deterministic: the same input and options give
 * byte-identical files. stats may be NULL.
 * Errors: TUNA_ERR_ARG (bad options, vocab_size too small, bad special token),
 * TUNA_ERR_IO (unreadable input, unwritable out_dir), TUNA_ERR_FORMAT (invalid
 * UTF-8 or JSONL, naming FILE:LINE), TUNA_ERR_UNSUPPORTED (regex),
 * TUNA_ERR_NOMEM. */
tuna_status tuna_bpe_train(const tuna_bpe_train_opts *o, const char *out_dir, tuna_bpe_train_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
