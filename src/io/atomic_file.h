/* atomic_file.h — how every output file and folder tuna writes reaches its
 * final name, so that a crash or a power loss leaves either the old version or
 * the complete new one, never a half-written file or neither:
 *   file:   a temporary sibling in the same folder (path.tmp.PID.N), written,
 *           flushed and fsync'd, renamed over path, then the folder fsync'd
 *           (the rename itself is only durable once its folder is);
 *   folder: every file in it and the folder itself fsync'd, renamed into
 *           place (or exchanged with the folder it replaces; or, for a
 *           mount point, its entries moved in), then the parent fsync'd —
 *           only after that may the caller remove what the new folder
 *           replaces (an older checkpoint, a run's old output).
 * Internal to libtuna (and the CLI); all writers go through it, nothing else
 * publishes a file with rename(). Functions return TUNA_OK or record the path and the reason
 * with core_fail. */
#ifndef TUNA_IO_ATOMIC_FILE_H
#define TUNA_IO_ATOMIC_FILE_H
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include "tuna.h"
#include "core/error.h"

typedef struct {
    FILE *f;     /* write through this between open and commit */
    char *path;  /* the final name */
    char *tmp;   /* the temporary sibling */
} atomic_file;

/* TUNA_OK when path may be replaced by an output: it does not exist, or is
 * a regular file (folder 0) or a folder (folder 1), a symbolic link counting
 * as what it points at. Else "path: is a character device, not a regular
 * file: ..." (a device, FIFO, socket or folder where a file is expected; a
 * file where a folder is; a link to nothing) as TUNA_ERR_IO: renaming over
 * such a path would replace the device or pipe itself, never write to it. */
tuna_status atomic_check_output(const char *path, int folder);
/* Refuses what atomic_check_output refuses, then creates path's temporary
 * sibling (mode 0666 less the umask, like fopen; the
 * permission bits of the regular file it will replace, if any) and opens it
 * for writing. A symbolic link to a regular file: the file it points at is
 * replaced (beside it), the link stays. On failure nothing is left behind. */
tuna_status atomic_file_open(atomic_file *a, const char *path);
/* The status of a failed create, write or sync with errno err: TUNA_ERR_WRITE
 * when the system ran out of room or failed (ENOSPC, EDQUOT, EFBIG, EIO: the
 * CLI exits 1), else TUNA_ERR_IO (a path that cannot be written: exit 2). */
tuna_status atomic_write_status(int err);
/* Records "path: write failed: reason" with that status and returns it. */
tuna_status atomic_write_failed(const char *path, int err);
/* Flushes, fsyncs and closes the file, renames it to its final name and
 * fsyncs the folder. On failure the temporary file is removed. Either way a is
 * cleared. */
tuna_status atomic_file_commit(atomic_file *a);
/* Closes and removes the temporary file (after a failure); safe on a cleared
 * or zero-initialised a, and to repeat. */
void atomic_file_abort(atomic_file *a);

/* The whole of path's content at once: len bytes, or a JSON value dumped with
 * jansson's flags (the same bytes as json_dump_file). */
tuna_status atomic_file_write(const char *path, const void *data, size_t len);
tuna_status atomic_file_write_json(const char *path, const json_t *j, size_t flags);

/* Makes everything under tmp_dir durable (files, subfolders, tmp_dir), renames
 * tmp_dir to dir (which must not exist or be an empty folder: anything else
 * is refused first, as atomic_check_output does) and fsyncs dir's parent. */
tuna_status atomic_dir_commit(const char *tmp_dir, const char *dir);
/* As atomic_dir_commit, but dir may hold files: then the two folders are
 * exchanged in one step (renameat2 RENAME_EXCHANGE), so dir is at every
 * moment the old folder or the new one; *exchanged = 1, and tmp_dir holds the
 * old content for the caller to remove. On a file system without the exchange,
 * dir is moved aside to tmp_dir.old first (a crash right then leaves dir
 * absent and the old content there). */
tuna_status atomic_dir_replace(const char *tmp_dir, const char *dir, int *exchanged);
/* For a folder that cannot be renamed (a mount point): tmp_dir and aside are
 * entries of dir. tmp_dir's content is made durable, dir's other entries are
 * moved into aside (created), tmp_dir's moved up into dir, and dir fsync'd;
 * the caller then removes aside and the empty tmp_dir. On failure everything
 * is moved back. Several renames, not one: a crash midway leaves dir's
 * entries split between dir and aside. */
tuna_status atomic_dir_move_in(const char *tmp_dir, const char *dir, const char *aside);
/* fsync of everything under dir: depth first, each folder after its
 * content, dir last. */
tuna_status atomic_sync_tree(const char *dir);
/* fsync of a folder (so the names created or renamed in it are durable). */
tuna_status atomic_sync_dir(const char *dir);
#endif
