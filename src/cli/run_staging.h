/* run_staging.h — the output folder of a training run (sft, pretrain, dpo),
 * so that a run that fails never damages what --out held before:
 *   - before any work, an existing non-empty --out is refused unless it is
 *     the folder of the --resume checkpoint (the run continues there) or
 *     --overwrite is given; staging folders left by a killed run are removed;
 *   - a new run writes its files (metrics.jsonl, train_args.json, tokenizer
 *     files, weights, checkpoints) in a hidden sibling of --out on the same
 *     file system, .NAME.run-PID;
 *   - that folder replaces --out when the run has written its first complete
 *     result: the first checkpoint, a best-weights save or the final save,
 *     whichever comes first (io/atomic_file.h: synced, then exchanged with the
 *     old --out in one rename, the old content removed only afterwards). From
 *     then on the run writes in --out itself, file by file atomically;
 *   - a run that fails before that point removes its staging folder: --out is
 *     byte for byte as it was, or absent when it was new.
 * When --out is a mount point (a container's volume) or its parent folder is
 * not writable, the folder cannot be swapped: the staging folder is then a
 * hidden entry of --out itself (.tuna-run-PID) and the commit moves --out's
 * old entries aside (.tuna-old-PID), the new ones up, and removes the old —
 * the same outcome, but several renames instead of one.
 * A resume of --out's own checkpoint writes in place, but only once the
 * checkpoint was accepted (a refused --resume leaves the folder untouched). */
#ifndef TUNA_CLI_RUN_STAGING_H
#define TUNA_CLI_RUN_STAGING_H
#include <limits.h>
#include <stddef.h>

#include "tuna.h"

typedef struct {
    char out[PATH_MAX];   /* --out as given */
    char stage[PATH_MAX]; /* the staging sibling until the commit, else "" */
    const char *dir;      /* where the run writes now: stage, then out */
    int inside;           /* stage is an entry of out (out cannot be swapped) */
} cli_run_dir;

/* The check before any work. Returns 0, or 2 after printing one line: --out
 * exists and is not a folder, or is a non-empty folder that is not the
 * --resume checkpoint's own (resume may be NULL) and overwrite is 0.
 * *in_place is set when the run continues in out (a resume of its own
 * checkpoint). Staging folders of out left by dead processes are removed
 * (or, after a crash mid-replacement with out absent, put back) with a notice. */
int cli_run_dir_check(const char *out, const char *resume, int overwrite, int *in_place);
/* Starts the run's folder: out itself when in_place (created when missing),
 * else a fresh staging sibling. */
tuna_status cli_run_dir_begin(cli_run_dir *r, const char *out, int in_place);
/* The staged folder takes out's place (nothing to do once done or in place). */
tuna_status cli_run_dir_commit(cli_run_dir *r);
/* 1 once the run's files are in out (committed or in place). */
int cli_run_dir_committed(const cli_run_dir *r);
/* After a failure: removes the staging folder, leaving out as it was;
 * nothing once committed. Safe on a zero-initialised r. */
void cli_run_dir_abort(cli_run_dir *r);
/* dir/name into buf (n bytes); returns buf. */
char *cli_run_dir_path(const cli_run_dir *r, const char *name, char *buf, size_t n);
#endif
