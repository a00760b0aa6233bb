/* tuna_tokenizer.h — text <-> token ids, identical to Hugging Face tokenizers.
 *
 * Supported: BPE models from an HF tokenizer.json (byte-level BPE as in GPT-2,
 * SmolLM, Llama 3, Qwen2; SentencePiece-style BPE with byte_fallback as in
 * Llama 2, TinyLlama, Mistral, Phi-3), a folder holding only vocab.json +
 * merges.txt (GPT2Tokenizer / Qwen2Tokenizer), and llama2.c's tokenizer.bin.
 * Unigram and WordPiece files are refused with TUNA_ERR_UNSUPPORTED.
 *
 * Rules: a tokenizer handle may be used by one thread at a time (encoding
 * writes the handle's pre-token cache, regex match data and scratch
 * buffers); use one handle per thread. Strings returned by
 * accessors belong to the tokenizer and live as long as it. Arrays returned
 * through pointer arguments are malloc'ed and belong to the caller (free()).
 * Text is UTF-8; invalid UTF-8 input is refused with TUNA_ERR_ARG. */
#ifndef TUNA_TOKENIZER_H
#define TUNA_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "tuna.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tuna_tokenizer tuna_tokenizer;

/* Loads the tokenizer of a model folder: tokenizer.json (+ tokenizer_config.json
 * for bos/eos/pad/unk and chat_template), else vocab.json + merges.txt with
 * tokenizer_config.json, else llama2.c tokenizer.bin. dir may also name a
 * tokenizer.json or tokenizer.bin file directly. On success *out owns the
 * tokenizer (free with tuna_tokenizer_free); on failure *out is NULL. */
tuna_status tuna_tokenizer_load(tuna_tokenizer **out, const char *dir);
/* Same, from the text of a tokenizer.json (and optionally of a
 * tokenizer_config.json, NULL if none). Used by tests and the fuzzer. */
tuna_status tuna_tokenizer_load_json(tuna_tokenizer **out, const char *json, size_t len,
                                     const char *config_json, size_t config_len);
void tuna_tokenizer_free(tuna_tokenizer *tok);

/* Encodes len bytes of UTF-8 text. add_special != 0 adds what the
 * post-processor adds (BOS/EOS), as HF add_special_tokens=True; 0 adds nothing.
 * Special-token text in the input (e.g. "<|im_end|>") becomes its id, as in HF.
 * On success *ids (malloc'ed, caller frees; may be NULL when *n is 0) holds *n ids. */
tuna_status tuna_tokenizer_encode(tuna_tokenizer *tok, const char *text, size_t len,
                                  int add_special, int32_t **ids, size_t *n);

/* Decodes ids to UTF-8 text, NUL-terminated, through the tokenizer's decoder
 * (HF decode with clean_up_tokenization_spaces=False). skip_special != 0 drops
 * special tokens. On success *text is malloc'ed (caller frees) and *len is its
 * length without the NUL. Ids out of range give TUNA_ERR_ARG. */
tuna_status tuna_tokenizer_decode(const tuna_tokenizer *tok, const int32_t *ids, size_t n,
                                  int skip_special, char **text, size_t *len);

/* Streaming decoder for generation: push ids one at a time; text comes out
 * only once every UTF-8 character in it is complete, and the concatenation of
 * everything emitted (after finish) equals tuna_tokenizer_decode of all ids. */
typedef struct tuna_detok_stream tuna_detok_stream;
tuna_status tuna_detok_stream_new(tuna_detok_stream **out, const tuna_tokenizer *tok, int skip_special);
void tuna_detok_stream_free(tuna_detok_stream *s);
/* Adds one id. *text points to the newly complete text (may be "", *len 0);
 * it is owned by the stream and valid until the next call on it. */
tuna_status tuna_detok_stream_push(tuna_detok_stream *s, int32_t id, const char **text, size_t *len);
/* Emits whatever is left (incomplete bytes become U+FFFD) and resets the stream. */
tuna_status tuna_detok_stream_finish(tuna_detok_stream *s, const char **text, size_t *len);

/* ---- vocabulary ---- */
/* Number of ids (largest id + 1, counting added tokens). */
int tuna_tokenizer_vocab_size(const tuna_tokenizer *tok);
/* Token string of id as stored in the vocabulary (e.g. "Ġthe", "▁the",
 * "<0x0A>"), or NULL when id is out of range or unused. */
const char *tuna_tokenizer_id_to_token(const tuna_tokenizer *tok, int32_t id);
/* Id of a token string (vocabulary or added token), or -1. */
int32_t tuna_tokenizer_token_to_id(const tuna_tokenizer *tok, const char *token);
/* Special token ids from tokenizer_config.json (falling back to the
 * tokenizer.json post-processor and common names); -1 when absent. */
int32_t tuna_tokenizer_bos_id(const tuna_tokenizer *tok);
int32_t tuna_tokenizer_eos_id(const tuna_tokenizer *tok);
int32_t tuna_tokenizer_pad_id(const tuna_tokenizer *tok);
int32_t tuna_tokenizer_unk_id(const tuna_tokenizer *tok);
/* 1 when id is an added token marked special (BOS, EOS, <|im_end|>, ...). */
int tuna_tokenizer_is_special(const tuna_tokenizer *tok, int32_t id);
/* The chat_template string of tokenizer_config.json, or NULL if none. */
const char *tuna_tokenizer_chat_template(const tuna_tokenizer *tok);
/* Token strings of bos/eos from tokenizer_config.json (NULL if none); the
 * chat-template module passes them to templates as bos_token/eos_token. */
const char *tuna_tokenizer_bos_token(const tuna_tokenizer *tok);
const char *tuna_tokenizer_eos_token(const tuna_tokenizer *tok);

/* ---- llama2.c ---- */
/* Converts a llama2.c tokenizer.bin into an HF-loadable tokenizer.json
 * (SentencePiece-style BPE with byte_fallback; merges ranked so that HF rank
 * BPE yields llama2.c's ids) and tokenizer_config.json (<s>=1, </s>=2,
 * <unk>=0, add_bos_token true) in out_dir, each written atomically. */
tuna_status tuna_tokenizer_convert_llama2c(const char *bin_path, const char *out_dir);

#ifdef __cplusplus
}
#endif
#endif
