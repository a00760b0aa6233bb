/* fuzz_grpo_completions.c — libFuzzer target for tuna grpo's --completions
 * file (src/train/grpo_data.c): any bytes must be read as groups or refused
 * with an error status and a "NAME:LINE: ..." detail; groups that read are
 * checked against their own invariants and handed to the GRPO step's filler,
 * never crashing or leaking. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/grpo_data.h"

enum { V = 64 };

/* every group through the filler, one at a time */
static void fill_all(grpo_completions *c) {
    grpo_rows r = {.rows = c->G, .K = 1, .T = c->max_len};
    r.plen = calloc((size_t)c->G, sizeof(int));
    r.clen = calloc((size_t)c->G, sizeof(int));
    r.eos_end = calloc((size_t)c->G, sizeof(int));
    r.tok = calloc((size_t)c->G * (size_t)c->max_len, sizeof(int32_t));
    r.reward = calloc((size_t)c->G, sizeof(double));
    r.per_func = calloc((size_t)c->G, sizeof(double));
    c->eos = 2;
    for (int64_t i = 0; r.plen && r.clen && r.eos_end && r.tok && r.reward && r.per_func && i < c->n; i++) {
        if (grpo_completions_fill(c, NULL, 0, &i, 1, &r) != TUNA_OK) abort();
        for (int g = 0; g < c->G; g++)
            if (r.plen[g] < 1 || r.clen[g] < 1 || r.plen[g] + r.clen[g] > c->max_len) abort();
    }
    free(r.plen); free(r.clen); free(r.eos_end); free(r.tok); free(r.reward); free(r.per_func);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) return 0;
    grpo_completions *c = NULL;
    tuna_status st = grpo_completions_read_stream(f, "fuzz.jsonl", 0, V, &c);
    fclose(f);
    if (st != TUNA_OK) {
        if (c || !tuna_last_error()[0]) abort();
        return 0;
    }
    if (!c || c->n < 1 || c->G < 1 || c->p_off[c->n] <= 0) abort();
    for (int64_t k = 0; k < c->c_off[(int64_t)c->n * c->G]; k++)
        if (c->c_ids[k] < 0 || c->c_ids[k] >= V) abort();
    fill_all(c);
    grpo_completions_free(c);
    return 0;
}
