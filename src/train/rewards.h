/* rewards.h — GRPO's reward functions: the built-in verifiable checks
 * (json_valid, json_fields against the record's reference, exact, contains,
 * regex:PATTERN, length:MIN-MAX), an outside program (cmd:PROGRAM) and a
 * reward model (model:DIR), each with a weight; a completion's reward is the
 * weighted sum (TRL's reward_weights). */
#ifndef TUNA_TRAIN_REWARDS_H
#define TUNA_TRAIN_REWARDS_H
#include "tuna.h"

typedef struct grpo_rewards grpo_rewards;

/* A new empty set (*out). */
tuna_status grpo_rewards_new(grpo_rewards **out);
void grpo_rewards_free(grpo_rewards *r);
/* Adds one --reward SPEC: NAME or NAME:ARG, optionally ending in :WEIGHT
 * (default 1). TUNA_ERR_ARG (one line naming the spec) when unknown or
 * malformed; a model:DIR is loaded here. */
tuna_status grpo_rewards_add(grpo_rewards *r, const char *spec);
/* --reward-timeout: seconds a cmd: program may take per call (default 60). */
void grpo_rewards_set_timeout(grpo_rewards *r, double seconds);
int grpo_rewards_count(const grpo_rewards *r);
/* function k's name as TRL logs it (rewards/NAME/mean) and its weight */
const char *grpo_rewards_name(const grpo_rewards *r, int k);
double grpo_rewards_weight(const grpo_rewards *r, int k);
/* 1 when some function needs each record's reference answer (json_fields, exact, contains) */
int grpo_rewards_need_reference(const grpo_rewards *r);
/* Scores n completions: prompts[i] (the text the policy was given),
 * completions[i] (its text), refs[i] (the record's reference, or NULL).
 * per_func[i * count + k] receives function k's value, total[i] the weighted
 * sum. A failing program, a non-number, a timeout: TUNA_ERR_ARG/TUNA_ERR_IO
 * naming the function and the line. */
tuna_status grpo_rewards_score(grpo_rewards *r, int n, const char *const *prompts, const char *const *completions,
                               const char *const *refs, double *per_func, double *total);
#endif
