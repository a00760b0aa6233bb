/* cli_paths.h — the CLI's guard for the user's files.
 *  - cli_check_paths: before any work, no output may name an input or another
 *    output, however the path is spelled (./x, a/../x, a symlink, a hard link:
 *    files are compared by device and inode, missing outputs by their resolved
 *    folder and name), a folder output may not hold an input, and a file
 *    output may not take the name of a model folder's own file (config.json,
 *    *.safetensors, tokenizer files) inside an input folder.
 *  - cli_out_dir: a folder output written under a temporary sibling and
 *    published whole (io/atomic_file.h); an existing non-empty folder is
 *    replaced only with --overwrite, and only once the new one is complete.
 *  - cli_out_names_free: for commands that add files to a folder, none of
 *    their files may exist there without --overwrite. */
#ifndef TUNA_CLI_PATHS_H
#define TUNA_CLI_PATHS_H
#include <limits.h>
#include "tuna.h"

enum {
    CLI_FILE = 0,
    CLI_DIR = 1,
    CLI_IN_PLACE = 2,   /* an output that may replace an input file (read whole first) */
    CLI_NESTED_OK = 4,  /* an input folder that may lie inside an output folder (--resume OUT/checkpoint-N) */
};

typedef struct {
    const char *opt;  /* the option as typed ("--model"), or "FILE" for a positional input */
    const char *path; /* NULL when not given */
    int flags;        /* CLI_FILE or CLI_DIR, | CLI_IN_PLACE, | CLI_NESTED_OK */
} cli_path;

/* 0 when the outputs are safe to write; else prints "tuna: error: CMD: --out
 * and --model name the same folder (M)" (or what else is wrong) and returns 2.
 * Inputs that do not exist are skipped (nothing to lose); paths NULL are not
 * given. 1 when out of memory. */
int cli_check_paths(const char *cmd, const cli_path *in, int n_in, const cli_path *out, int n_out);

/* A folder output published whole. */
typedef struct {
    char dir[PATH_MAX]; /* the final name */
    char tmp[PATH_MAX]; /* where the command writes: a hidden sibling of dir */
} cli_out_dir;

/* Refuses (prints, returns 2) an existing dir that is not a folder, or a
 * non-empty one without overwrite; else creates the temporary sibling
 * (returns 0; 1 when it cannot be created). Temporary siblings of dir left by
 * runs that were killed (their process is gone) are removed first, with a
 * note; a live run's is never touched. */
int cli_out_dir_begin(cli_out_dir *d, const char *cmd, const char *dir, int overwrite);
/* Publishes tmp as dir: renamed into place (an existing dir is swapped with it
 * atomically, then removed). On failure tmp is removed and dir is untouched. */
tuna_status cli_out_dir_commit(cli_out_dir *d);
/* Removes the temporary folder (after a failure); dir is untouched. */
void cli_out_dir_abort(cli_out_dir *d);
/* For commands that add their files to a folder that may hold others (a
 * tokenizer, then init's weights): 0 when none of names exists in dir or
 * overwrite is given; else prints "CMD: --out DIR already has NAME (add
 * --overwrite ...)" and returns 2. */
int cli_out_names_free(const char *cmd, const char *dir, const char *const *names, int n, int overwrite);
/* Removes a folder and everything in it (symlinks are not followed). */
void cli_remove_tree(const char *dir);
#endif
