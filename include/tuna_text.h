/* tuna_text.h — plain text into training sequences (src/data/text_chunks.c). */
#ifndef TUNA_TEXT_H
#define TUNA_TEXT_H
#include "tuna.h"
#include "tuna_tokenizer.h"
/* Tokenizes the documents of path (JSONL {"text": ...} lines, or a whole
 * other file as one document) with default special tokens plus EOS after each,
 * concatenates them and cuts sequences of seq_len tokens (labels = ids).
 * Errors name FILE:LINE. A new data set in *out. */
tuna_status tuna_text_chunks(tuna_tokenizer *tok, const char *path, int seq_len, tuna_pretok **out);
#endif
