/* grpo_data.h — `tuna grpo --completions FILE.jsonl`: groups of completions
 * with their rewards given instead of sampled, one JSON object per line
 * {"prompt_ids": [...], "completion_ids": [[...], ... G], "rewards": [... G]},
 * read whole and checked (one line naming FILE:LINE per fault), then handed
 * to the GRPO step in file order (grpo_completions_fill). */
#ifndef TUNA_TRAIN_GRPO_DATA_H
#define TUNA_TRAIN_GRPO_DATA_H
#include <stdio.h>

#include "train/grpo_step.h"

typedef struct {
    int n, G;              /* lines (groups) and completions per group */
    int64_t *p_off;        /* [n + 1] into p_ids */
    int32_t *p_ids;
    int64_t *c_off;        /* [n * G + 1] into c_ids */
    int32_t *c_ids;
    double *rewards;       /* [n * G] */
    int max_len;           /* longest prompt + completion */
    int32_t eos;           /* a completion ending with it ended (-1: none known) */
} grpo_completions;

/* Reads path. G > 0: every line must have G completions, else the first
 * line sets G. Ids must be in [0, V). TUNA_ERR_FORMAT "FILE:LINE: ..." for a
 * line that is not such an object (missing key, not a list of integers,
 * empty prompt or completion, G differing, an id outside the vocabulary,
 * rewards not numbers), TUNA_ERR_IO when unreadable, TUNA_ERR_ARG when empty. */
tuna_status grpo_completions_read(const char *path, int G, int V, grpo_completions **out);
/* The same from an open stream f, messages naming path. */
tuna_status grpo_completions_read_stream(FILE *f, const char *path, int G, int V, grpo_completions **out);
void grpo_completions_free(grpo_completions *c);
/* grpo_fill_fn over a grpo_completions (ctx): item i is line i */
tuna_status grpo_completions_fill(void *ctx, tuna_model *m, int64_t gen, const int64_t *items, int n, grpo_rows *rows);
#endif
