/* train_loop.h — a training run once its model, data and trainer are
 * ready: resume, the output folder, train_args.json and metrics.jsonl, the
 * steps with their progress line, validation with early stopping (the best
 * weights kept), checkpoints, a stop on Ctrl-C or SIGTERM, the
 * general-text check before and after, and report.html. */
#ifndef TUNA_CLI_TRAIN_LOOP_H
#define TUNA_CLI_TRAIN_LOOP_H
#include "cli/train_mode.h"

/* Runs the training of tr (built on d) to its end; in_place: the run
 * continues in --out (a resume of its own checkpoint). Returns the exit
 * code (1 after a stop asked by a signal, with the resume command printed). */
int train_run(train_opts *o, train_data *d, tuna_trainer *tr, int in_place);
/* 1 once Ctrl-C or SIGTERM asked the run to stop. */
int train_stop_requested(void);
#endif
