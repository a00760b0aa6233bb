/* train_resume.h — what the training driver (cmd_train.c) adds to its
 * checkpoints for a resume, beyond the trainer's own record:
 *  - exact: a preference run's reference model fingerprint ("ref_model"),
 *    so a resume with another reference model is refused;
 *  - trainer_state.json "extra": the driver's progress — the best validation
 *    loss so far, the evaluations since it improved (early stopping), whether
 *    the best weights were written — and "val", a fingerprint of the
 *    validation sequences that best was measured on (null: none).
 * On a resume whose validation sequences differ, the progress is reset (best
 * judged on this run's validation data only) with a notice: the best weights
 * are then rewritten at the first evaluation, or the final ones at the end. */
#ifndef TUNA_CLI_TRAIN_RESUME_H
#define TUNA_CLI_TRAIN_RESUME_H
#include <stddef.h>

#include "tuna_train.h"

typedef struct {
    double best;     /* INFINITY: no evaluation yet */
    int bad_evals;   /* evaluations since best improved */
    int saved_best;  /* the best weights are in the output folder */
    char val[17];    /* fingerprint of the validation sequences; "" when none */
} train_progress;

/* A fingerprint of a model (its config and weights) as 16 hex digits. */
void train_model_fingerprint(tuna_model *m, char out[17]);
/* Records a preference run's reference model fingerprint as an exact setting. */
tuna_status train_set_reference(tuna_trainer *tr, const char *ref_fingerprint);
/* Fresh progress for a run validated on val (n = 0: no validation data). */
void train_progress_init(train_progress *p, const tuna_pretok *val);
/* The progress as the "extra" JSON object of a checkpoint. */
void train_progress_json(const train_progress *p, char *buf, size_t n);
/* Takes a checkpoint's "extra" (the JSON text tuna_trainer_resume returned,
 * from folder dir) into *p, strictly: a missing key or a value of the wrong
 * type is TUNA_ERR_FORMAT naming DIR/trainer_state.json and the key. notice
 * receives what was reset or could not be checked, or "". */
tuna_status train_progress_resume(train_progress *p, const char *extra, const char *dir, char *notice, size_t n);
#endif
