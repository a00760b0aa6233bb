/* tuna_score.h — scoring a generated response against the reference, as
 * evaluation harnesses do: exact match and containment after whitespace
 * normalisation, a regular expression, JSON validity, JSON field accuracy,
 * and ROUGE-L F1 (rouge-score's default tokenisation). Pure functions of
 * their inputs; nothing is printed. */
#ifndef TUNA_SCORE_H
#define TUNA_SCORE_H
#include "tuna.h"

/* s with leading/trailing whitespace removed and inner runs of whitespace
 * collapsed to one space (malloc'd). */
char *tuna_score_normalize(const char *s);
/* 1 when the normalised strings are equal. */
int tuna_score_exact(const char *pred, const char *ref);
/* 1 when the normalised reference occurs in the normalised prediction. */
int tuna_score_contains(const char *pred, const char *ref);
/* 1 when pattern (PCRE2, UTF) matches somewhere in pred; 0 when not;
 * TUNA_ERR_ARG (negative) for a pattern that does not compile. */
int tuna_score_regex(const char *pred, const char *pattern);
/* 1 when pred (surrounding whitespace allowed) is one JSON object or array. */
int tuna_score_json_valid(const char *pred);
/* Of the reference object's keys, how many the prediction (a JSON object)
 * has with an equal value (numbers compare by value: 3 == 3.0). A prediction
 * that is not a JSON object gets every key wrong. A reference that is not a
 * JSON object is TUNA_ERR_FORMAT. */
tuna_status tuna_score_json_fields(const char *pred, const char *ref, int *correct, int *total);
/* The same, calling on_key(ctx, key, ok) for each key of the reference in
 * its order (per-key accuracy over a data set). */
tuna_status tuna_score_json_fields_each(const char *pred, const char *ref, int *correct, int *total,
                                        void (*on_key)(void *ctx, const char *key, int ok), void *ctx);
/* ROUGE-L F1 over lowercase [a-z0-9]+ tokens (0 when either side has none). */
double tuna_score_rouge_l(const char *pred, const char *ref);
#endif
