/* fuzz_tokenizer_json.c — libFuzzer target for the tokenizer.json loader.
 * The input is a tokenizer.json; when it loads, a few fixed strings and the
 * input itself are encoded, decoded and streamed back, so the whole pipeline
 * built from an untrusted file is exercised. Any crash, leak or UB is a bug;
 * error statuses are expected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tuna_tokenizer.h"

static void roundtrip(tuna_tokenizer *tok, const char *s, size_t n) {
    int32_t *ids;
    size_t k;
    for (int special = 0; special < 2; special++) {
        if (tuna_tokenizer_encode(tok, s, n, special, &ids, &k)) continue;
        char *text;
        if (!tuna_tokenizer_decode(tok, ids, k, special, &text, NULL)) free(text);
        tuna_detok_stream *st;
        if (!tuna_detok_stream_new(&st, tok, 0)) {
            const char *t;
            size_t tl;
            for (size_t i = 0; i < k; i++) tuna_detok_stream_push(st, ids[i], &t, &tl);
            tuna_detok_stream_finish(st, &t, &tl);
            tuna_detok_stream_free(st);
        }
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tuna_tokenizer *tok;
    if (tuna_tokenizer_load_json(&tok, (const char *)data, size, NULL, 0)) return 0;
    static const char *const samples[] = {"", "Hello world!", "  a\tb\n\nc ", "caf\xC3\xA9 \xE2\x96\x81 \xF0\x9F\x98\x80", "<s>x</s>", "123 4567"};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) roundtrip(tok, samples[i], strlen(samples[i]));
    roundtrip(tok, (const char *)data, size < 512 ? size : 512);
    int32_t any[] = {0, 1, 2, 3, 100000, -1};
    char *text;
    if (!tuna_tokenizer_decode(tok, any, 4, 0, &text, NULL)) free(text);
    tuna_tokenizer_decode(tok, any + 4, 2, 0, &text, NULL);
    tuna_tokenizer_free(tok);
    return 0;
}
