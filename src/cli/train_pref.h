/* train_pref.h — what the preference modes share (train_dpo.c provides it,
 * train_kto.c uses it): the models of a run whose data is loaded. */
#ifndef TUNA_CLI_TRAIN_PREF_H
#define TUNA_CLI_TRAIN_PREF_H
#include "cli/train_mode.h"

/* With d's data (parts[0], vparts[0]) and d->ref_train / ref_val allocated:
 * the reference log-probabilities of every sequence (from --ref-model,
 * loaded and freed first, or from the starting policy; none for the
 * reference-free losses), then the policy with its adapter into d->m;
 * o->a.ref_logps set. */
tuna_status train_pref_models(train_opts *o, train_data *d);
#endif
