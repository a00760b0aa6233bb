/* train_checkpoint.c — what a training run writes as results (see
 * train_checkpoint.h): a checkpoint is written in a temporary folder,
 * synced and renamed into place (io/atomic_file.h), and only then is the
 * previous one removed, so a crash at any point leaves one complete
 * checkpoint; a removed one is renamed to a hidden name first, so a kill
 * never leaves a half-removed folder looking like a checkpoint. */
#define _XOPEN_SOURCE 700
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_paths.h"
#include "cli/commands.h"
#include "cli/train_checkpoint.h"
#include "io/atomic_file.h"
#include "tuna_peft.h"

/* Removes a checkpoint folder of OUT so that a kill never leaves a half-removed
 * one looking like a checkpoint: renamed to a hidden name first, then deleted. */
static void discard_checkpoint(const char *out_dir, const char *dir) {
    char gone[2 * PATH_MAX + 8];
    const char *base = strrchr(dir, '/');
    snprintf(gone, sizeof gone, "%s/.%s.old", out_dir, base ? base + 1 : dir);
    cli_remove_tree(gone);
    if (rename(dir, gone) == 0) cli_remove_tree(gone);
}

tuna_status train_write_checkpoint(tuna_trainer *tr, cli_run_dir *rd, const char *extra, char *prev, size_t prev_n,
                                   const char *model_dir) {
    char tmp[PATH_MAX], fin[PATH_MAX], old[PATH_MAX];
    const char *out_dir = rd->dir;
    int step = tuna_trainer_step_count(tr);
    snprintf(fin, sizeof fin, "%s/checkpoint-%d", out_dir, step);
    snprintf(tmp, sizeof tmp, "%s/.checkpoint-%d.tmp", out_dir, step);
    /* a device or file of that name is refused, not discarded below */
    tuna_status st = atomic_check_output(fin, 1);
    if (st != TUNA_OK) return st;
    cli_remove_tree(tmp);
    st = tuna_trainer_save(tr, tmp, extra);
    if (st != TUNA_OK) { cli_remove_tree(tmp); return st; }
    const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "tokenizer.model"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) cli_copy_file(model_dir, tmp, names[k]);
    discard_checkpoint(out_dir, fin);
    st = atomic_dir_commit(tmp, fin);
    if (st != TUNA_OK) { cli_remove_tree(tmp); return st; }
    snprintf(old, sizeof old, "%s/%s", out_dir, prev);
    if (prev[0] && strcmp(old, fin)) discard_checkpoint(out_dir, old);
    snprintf(prev, prev_n, "checkpoint-%d", step);
    return cli_run_dir_commit(rd);
}

void train_adopt_checkpoint(const char *resume, const char *out_dir, int step, char *prev, size_t prev_n) {
    char own[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    snprintf(own, sizeof own, "%s/checkpoint-%d", out_dir, step);
    if (realpath(resume, a) && realpath(own, b) && !strcmp(a, b)) snprintf(prev, prev_n, "checkpoint-%d", step);
}

tuna_status train_save_result(tuna_model *m, cli_run_dir *rd, tuna_dtype dt) {
    tuna_status st = tuna_peft_get(m) ? tuna_peft_save(m, rd->dir) : tuna_model_save(m, rd->dir, dt);
    return st == TUNA_OK ? cli_run_dir_commit(rd) : st;
}
