/* grpo_sample.h — tuna grpo's sampling mode: prompts from --data records
 * (JSONL; TRL's prompt-only records too; through the chat template, as
 * tuna eval builds them), G completions per
 * prompt sampled with the KV-cache decoder (the step's batch x G rows
 * decoded together, row seeds from the seed, the generation batch and the
 * row, so a resumed run samples the same), scored by the --reward
 * functions (src/train/rewards.h). */
#ifndef TUNA_CLI_GRPO_SAMPLE_H
#define TUNA_CLI_GRPO_SAMPLE_H
#include "cli/train_mode.h"
#include "train/grpo_step.h"

typedef struct grpo_sampler grpo_sampler;

/* The prompts of o's --data file as d->parts[0] (one sequence each), the
 * reward functions (names[k] of *K), the row length into o->a.seq_len. */
tuna_status grpo_sampler_load(grpo_sampler **out, train_opts *o, train_data *d, const char **names, int *K);
void grpo_sampler_free(grpo_sampler *s);
/* grpo_fill_fn (ctx: the sampler) */
tuna_status grpo_sampler_fill(void *ctx, tuna_model *m, int64_t gen, const int64_t *items, int n, grpo_rows *rows);
#endif
