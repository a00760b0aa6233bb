/* train_metrics.h — the lines of metrics.jsonl written by the training
 * driver (cmd_train.c; see train_metrics.c for the rules). */
#ifndef TUNA_CLI_TRAIN_METRICS_H
#define TUNA_CLI_TRAIN_METRICS_H
#include <stdio.h>

#include <jansson.h>

#include "core/prof.h"
#include "tuna_train.h"

/* A number as JSON: a real, or null when not finite. New reference. */
json_t *cli_json_num(double v);
/* Sets o[prefix + name] = v (the reference to v is taken); a key already in
 * o gets " #2", " #3", ... appended, so no line repeats a key. */
void cli_json_set_named(json_t *o, const char *prefix, const char *name, json_t *v);
/* A training step's line: step, epoch, loss, lr, grad_norm, tokens,
 * tokens_per_s, elapsed_s (+ step_s, allreduce_s when ranks > 1; + TRL's
 * preference metrics when dpo_type, a tuna_dpo_loss_type, is >= 0). New reference, NULL when out of memory. */
json_t *cli_metrics_step(const tuna_step_info *info, int ranks, int dpo_type);
/* TRL's preference metric names of loss type `type`, after prefix ("" or "eval_"). */
void cli_metrics_dpo(json_t *o, const char *prefix, const tuna_dpo_stats *d, int type);
/* The line closing a profiled run (--profile): {"profile": {steps,
 * step_s, tokens, tokens_per_s, gemm_s, dequant_s, attention_s, rest_s,
 * gemm_gflop, gemm_gflop_per_s}}. New reference, NULL when out of memory. */
json_t *cli_metrics_profile(const prof_totals *p);
/* Writes o as one compact line and flushes; releases o (NULL allowed: an
 * error). Returns 0, or -1 when o is NULL or the write failed. */
int cli_metrics_write(FILE *f, json_t *o);
#endif
