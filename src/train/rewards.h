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
/* Adds one --reward SPEC, KIND or KIND:ARG, optionally followed by :WEIGHT
 * (a decimal number, default 1; negative allowed):
 *   json_valid      1 when the completion is one JSON object or array
 *                   (surrounding whitespace allowed), else 0 (eval's json_valid)
 *   json_fields     the share of the reference object's fields the completion
 *                   (a JSON object) has with an equal value (3 == 3.0); 0 when
 *                   it is not JSON; an empty reference object: json_valid
 *   exact, contains eval's: equal / the reference inside the completion, after
 *                   whitespace normalisation; 1 or 0
 *   regex:PATTERN   1 when the PCRE2 pattern (UTF) matches somewhere in the
 *                   completion, else 0; compiled here
 *   length:MIN-MAX  1 when MIN <= the completion's characters (Unicode code
 *                   points; a byte that is not UTF-8 counts as one) <= MAX
 *   cmd:PROGRAM     an outside program, /bin/sh -c PROGRAM (reward_cmd.h)
 *   model:DIR       a reward model's score of prompt + completion
 *                   (reward_model.h), loaded here
 * The kinds without an argument take a weight after their one colon
 * (json_valid:0.5); those with one only after a second colon, and the weight
 * is what follows the last colon when it is a number: regex:5 is the pattern
 * "5" (weight 1), regex:a:5 the pattern "a" with weight 5, regex:a:5:1 the
 * pattern "a:5". A function's name (TRL logs rewards/NAME/mean) is its spec
 * without the weight: "json_fields", "regex:^\{", "cmd:./score.sh".
 * TUNA_ERR_ARG (one line naming the spec) when unknown, malformed (a pattern
 * that does not compile, MIN > MAX) or given twice; a model's load failure
 * as reward_model_open returns it, its detail prefixed "reward model:DIR". */
tuna_status grpo_rewards_add(grpo_rewards *r, const char *spec);
/* --reward-timeout: seconds a cmd: program may take per call (default 60;
 * the CLI checks the value: one not > 0 leaves the setting as it was). */
void grpo_rewards_set_timeout(grpo_rewards *r, double seconds);
int grpo_rewards_count(const grpo_rewards *r);
/* function k's name as TRL logs it (rewards/NAME/mean) and its weight */
const char *grpo_rewards_name(const grpo_rewards *r, int k);
double grpo_rewards_weight(const grpo_rewards *r, int k);
/* 1 when some function needs each record's reference answer (json_fields, exact, contains) */
int grpo_rewards_need_reference(const grpo_rewards *r);
/* Scores n completions: prompts[i] (the text the policy was given),
 * completions[i] (its text), refs[i] (the record's reference, or NULL).
 * per_func[i * count + k] receives function k's value (per_func may be
 * NULL), total[i] the weighted sum. refs may be NULL (no references).
 * Functions needing references (grpo_rewards_need_reference) fail with
 * TUNA_ERR_ARG when refs[i] is NULL, json_fields with TUNA_ERR_FORMAT when
 * it is not a JSON object ("reward json_fields, completion I: ..."). A
 * program's failure, a non-number in its output, its timeout: TUNA_ERR_ARG
 * naming the function and the line (TUNA_ERR_IO when it cannot start). No
 * function given: TUNA_ERR_ARG. */
tuna_status grpo_rewards_score(grpo_rewards *r, int n, const char *const *prompts, const char *const *completions,
                               const char *const *refs, double *per_func, double *total);
#endif
