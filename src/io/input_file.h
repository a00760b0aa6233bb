/* input_file.h — how every data input is opened (training, validation and
 * evaluation data, the data commands' FILE, tokenizer training text, the
 * lines of tokenize): once, through input_file_open.
 *   - a regular file is opened as it is (read, measured and rewound freely);
 *   - a directory is refused ("PATH: is a directory");
 *   - anything else readable (a pipe, a FIFO, /dev/stdin fed by a pipe, a
 *     process substitution <(...), a character device) can be read only once
 *     and has no size: it is read whole, once, into an anonymous memory file,
 *     so the caller may sniff, rewind and measure it like a regular file.
 *     That copy is bounded: at most TUNA_INPUT_MAX_BYTES bytes (default
 *     2 GiB) and lines of at most TUNA_INPUT_MAX_LINE bytes (default 256 MiB),
 *     environment variables holding a number of bytes; beyond either the
 *     open fails with one line naming the file and the limit (TUNA_ERR_ARG),
 *     never with part of the data. /dev/zero thus fails at its first line.
 * Reading such a copy can report progress (input_file_open_ex): after every
 * TUNA_INPUT_PROGRESS_BYTES bytes (default 64 MiB; a positive number of
 * bytes) and once more at the end when it reported before, so small pipes
 * say nothing.
 * Such inputs have no identity to key a cache on: input_file_is_regular says
 * which is which without reading anything. Internal to libtuna and the CLI. */
#ifndef TUNA_IO_INPUT_FILE_H
#define TUNA_IO_INPUT_FILE_H
#include <stdint.h>
#include <stdio.h>
#include "tuna.h"

#define INPUT_MAX_BYTES_DEFAULT (2ULL << 30)
#define INPUT_MAX_LINE_DEFAULT (256ULL << 20)
#define INPUT_PROGRESS_BYTES_DEFAULT (64ULL << 20)

/* Where a pipe's copy reports progress: on_read(ctx, path, bytes so far,
 * done) with done 1 on the last call. on_read may be NULL. */
typedef struct {
    void (*on_read)(void *ctx, const char *path, uint64_t bytes, int done);
    void *ctx;
} input_progress;

/* Opens path for reading (binary) as described above; *out is a seekable
 * stream the caller closes with fclose. prefix > 0: the caller reads no more
 * than prefix bytes, so a pipe is copied only that far (tokenizer training's
 * --max-bytes). Errors: TUNA_ERR_IO (cannot open or read: "PATH: cannot
 * open: reason"), TUNA_ERR_ARG (a directory, a limit exceeded, a bad limit
 * in the environment). */
tuna_status input_file_open(const char *path, uint64_t prefix, FILE **out);
/* Same, reporting the copy of a non-regular input to p (may be NULL). */
tuna_status input_file_open_ex(const char *path, uint64_t prefix, const input_progress *p, FILE **out);
/* 1 when path names (after symbolic links) a regular file, else 0. */
int input_file_is_regular(const char *path);
#endif
