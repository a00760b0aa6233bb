/* train_checkpoint.h — the results a training run writes in its folder
 * (run_staging.h): checkpoints (OUT/checkpoint-STEP, each complete or
 * absent, the previous one removed only once the next is in place) and the
 * trained weights. Either is a complete result: a staged run's folder takes
 * --out's place at the first one. */
#ifndef TUNA_CLI_TRAIN_CHECKPOINT_H
#define TUNA_CLI_TRAIN_CHECKPOINT_H
#include <stddef.h>

#include "cli/run_staging.h"
#include "tuna_train.h"

/* Writes rd->dir/checkpoint-STEP with the trainer's state, extra (the
 * driver's progress as JSON) and model_dir's tokenizer files, then removes
 * the previous checkpoint prev (a name in the run's folder, "" for none)
 * and sets prev to the new one's name. */
tuna_status train_write_checkpoint(tuna_trainer *tr, cli_run_dir *rd, const char *extra, char *prev, size_t prev_n,
                                   const char *model_dir);
/* A run resumed from OUT/checkpoint-STEP of its own output folder takes that
 * checkpoint as its previous one (prev: its name in OUT). */
void train_adopt_checkpoint(const char *resume, const char *out_dir, int step, char *prev, size_t prev_n);
/* Writes the result: the adapter when one is trained, else the model (in
 * dtype dt). */
tuna_status train_save_result(tuna_model *m, cli_run_dir *rd, tuna_dtype dt);
#endif
