/* resume_check.h — what a checkpoint must agree on to be resumed exactly
 * (internal to the trainer; tests call it directly).
 *
 * A trainer describes its run once, when it is created, as a JSON object
 * {"exact": {...}, "adjustable": {...}} that tuna_trainer_save writes into
 * trainer_state.json as "resume_check":
 *  - exact: what decides the batches drawn and the gradients taken — a
 *    fingerprint of the training sequences (tokens, labels, positions, task
 *    ranges, in the order they are stored: with the seed, shuffle and task
 *    weights below this fixes the order they are consumed in), a fingerprint
 *    of the model (config and a sample of every tensor, taken before any
 *    checkpoint is loaded), the method and its adapter settings, batch,
 *    micro-batch, seq_len, packing, schedule, seed, shuffle, loss
 *    normalisation, task weights, preference loss; and the caller's exact
 *    settings (tuna_trainer_set_exact_settings: dpo's reference model);
 *  - adjustable: what a resumed run may change on purpose — learning rate and
 *    the other optimizer settings, warmup, the step count, gradient
 *    checkpointing, the number of ranks, and the caller's own settings.
 * A resume with a different exact part is refused, naming what differs; the
 * adjustable changes are listed in a notice. */
#ifndef TUNA_RESUME_CHECK_H
#define TUNA_RESUME_CHECK_H
#include <jansson.h>
#include <stddef.h>

#include "tuna_train.h"

/* 64-bit fingerprints (stable across runs and machines: integer and float
 * bits only). The data's covers sequence lengths, ids, labels, positions and
 * task ranges; the model's its config, every tensor's name and shape, up to
 * 4096 evenly spaced values of each fp32 tensor, the quantization, and the
 * attached adapter's tensors likewise. */
uint64_t resume_data_fingerprint(const tuna_pretok *d);
uint64_t resume_model_fingerprint(tuna_model *m);

/* The run's description (a new reference; NULL when out of memory).
 * cum_w[n_tasks] are the cumulative normalised sampling weights of
 * multi-task data (NULL for one task); total_steps the run's step count. */
json_t *resume_describe(tuna_model *m, const tuna_pretok *d, const tuna_train_args *a, int total_steps,
                        const double *cum_w, int n_tasks);

/* Compares a checkpoint's description (saved, from path) with this run's.
 * A difference in the exact part is TUNA_ERR_ARG naming every differing
 * setting ("seq_len 64 -> 32"); a malformed one TUNA_ERR_FORMAT. On TUNA_OK,
 * notice receives the adjustable changes ("lr 0.001 -> 0.0005, steps 10 ->
 * 15") or "" when there are none. */
tuna_status resume_compare(const json_t *saved, const json_t *now, const char *path, char *notice, size_t n);
#endif
