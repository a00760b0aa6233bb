/* bench_tokenizer.c — encoding throughput on one core, in MB/s of UTF-8 input,
 * for a byte-level BPE (GPT-2) and a SentencePiece-style BPE (Llama 2), over a
 * few MB of English prose. Also reports decode throughput.
 *
 *   build/bench/bench_tokenizer [TEXT_FILE] [TOKENIZER_DIR...]
 * Defaults: ../shared/data/text/general/war-and-peace.txt with the gpt2 and
 * llama2 tokenizers of ../shared/data/tokenizers. The text is encoded in
 * chunks of about 64 KiB cut at line ends (as a data pipeline would feed it),
 * once to warm the pre-token cache, then timed; the best of 3 runs is shown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tuna_tokenizer.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    if (p) { p[n] = '\0'; *len = (size_t)n; }
    return p;
}

/* Encodes the whole text in line-aligned chunks; returns seconds, sets ids. */
static double encode_all(tuna_tokenizer *tok, const char *text, size_t len, size_t *ntok, int32_t **all, size_t *cap) {
    double t0 = now();
    *ntok = 0;
    for (size_t pos = 0; pos < len;) {
        size_t end = pos + 65536 < len ? pos + 65536 : len;
        while (end < len && text[end - 1] != '\n') end++;
        int32_t *ids;
        size_t n;
        if (tuna_tokenizer_encode(tok, text + pos, end - pos, 0, &ids, &n)) {
            fprintf(stderr, "encode failed: %s\n", tuna_last_error());
            exit(1);
        }
        if (*ntok + n > *cap) {
            *cap = (*ntok + n) * 2;
            *all = realloc(*all, *cap * sizeof **all);
        }
        memcpy(*all + *ntok, ids, n * sizeof *ids);
        *ntok += n;
        free(ids);
        pos = end;
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    const char *root = getenv("TUNA_SHARED_DATA");
    if (!root) root = "../shared/data";
    char textp[1024], d1[1024], d2[1024];
    snprintf(textp, sizeof textp, "%s/text/general/war-and-peace.txt", root);
    snprintf(d1, sizeof d1, "%s/tokenizers/gpt2", root);
    snprintf(d2, sizeof d2, "%s/tokenizers/llama2", root);
    const char *text_path = argc > 1 ? argv[1] : textp;
    const char *defaults[] = {d1, d2};
    const char **dirs = argc > 2 ? (const char **)argv + 2 : defaults;
    int ndirs = argc > 2 ? argc - 2 : 2;

    size_t len;
    char *text = slurp(text_path, &len);
    if (!text) { printf("SKIP bench_tokenizer: %s not found\n", text_path); return 0; }
    printf("bench_tokenizer: %s, %.2f MB, one thread\n", text_path, (double)len / 1e6);
    for (int d = 0; d < ndirs; d++) {
        tuna_tokenizer *tok;
        double t0 = now();
        if (tuna_tokenizer_load(&tok, dirs[d])) { printf("SKIP %s: %s\n", dirs[d], tuna_last_error()); continue; }
        double tload = now() - t0;
        int32_t *all = NULL;
        size_t cap = 0, ntok = 0;
        double cold = encode_all(tok, text, len, &ntok, &all, &cap), best = 1e30;
        for (int r = 0; r < 3; r++) {
            double t = encode_all(tok, text, len, &ntok, &all, &cap);
            if (t < best) best = t;
        }
        t0 = now();
        char *dec;
        size_t dl;
        if (tuna_tokenizer_decode(tok, all, ntok, 0, &dec, &dl)) { fprintf(stderr, "decode failed: %s\n", tuna_last_error()); return 1; }
        double tdec = now() - t0;
        printf("  %-40s load %.2fs  encode %.1f MB/s (first pass %.1f MB/s)  %zu tokens, %.2f bytes/token  decode %.1f MB/s%s\n",
               dirs[d], tload, (double)len / 1e6 / best, (double)len / 1e6 / cold, ntok, (double)len / (double)ntok,
               (double)dl / 1e6 / tdec, dl == len && !memcmp(dec, text, len) ? "  round trip exact" : "");
        free(dec);
        free(all);
        tuna_tokenizer_free(tok);
    }
    free(text);
    return 0;
}
