/* tuna_sample.h — choosing the next token from logits as Hugging Face
 * transformers' generate() does: repetition penalty, then temperature,
 * top-k, top-p and min-p warping, then a draw from the softmax with a seeded
 * generator; temperature 0 is greedy (argmax, lowest id on ties). */
#ifndef TUNA_SAMPLE_H
#define TUNA_SAMPLE_H
#include "tuna.h"

typedef struct {
    float temperature;        /* 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off */
    uint64_t seed;
} tuna_sample_args;

/* HF's defaults when sampling: temperature 1, top_k 50, top_p 1, min_p 0,
 * repetition penalty 1, seed 0. */
void tuna_sample_args_default(tuna_sample_args *a);

typedef struct tuna_sampler tuna_sampler;
/* Scratch for vocab_size logits is allocated here: no allocation per token.
 * Invalid arguments are TUNA_ERR_ARG with the argument named. */
tuna_status tuna_sampler_create(tuna_sampler **out, int vocab_size, const tuna_sample_args *a);
void tuna_sampler_free(tuna_sampler *s);
/* The next id. logits [vocab_size] are modified in place; context holds the
 * ids so far (prompt and generated), for the repetition penalty. */
int32_t tuna_sampler_next(tuna_sampler *s, float *logits, const int32_t *context, int n_context);
#endif
