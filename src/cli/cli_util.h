/* cli_util.h — small helpers every command shares: errors, warnings and
 * read progress on stderr ("tuna: error: ..." and the exit code), ending a
 * data-parallel job from one rank, option values parsed with the CLI's error
 * texts, --help detection, and the files copied or measured in model
 * folders. Calls go one way: main.c -> commands -> cli_util.c. */
#ifndef TUNA_CLI_UTIL_H
#define TUNA_CLI_UTIL_H
#include "tuna.h"
#include "tuna_data.h"

/* True when argv[i] is "-h" or "--help" for any i. */
int cli_wants_help(int argc, char **argv);
/* Parses an integer option value in [lo, hi] (an overflowing one is out of
 * range, shown as given); returns 0 on success, else prints why and -1. */
int cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_int(const char *opt, const char *s, long lo, long hi, int *out);
/* Parses a number option value in [lo, hi]; returns 0 on success, else
 * prints "OPT needs a value" (s NULL) or "OPT: 'S' is not a number in [LO,
 * HI]" and returns -1. */
int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
/* Copies src_dir/name to dst_dir/name (temporary name, then rename); silently
 * nothing when the source does not exist. */
void cli_copy_file(const char *src_dir, const char *dst_dir, const char *name);
/* Total bytes of the *.safetensors files in a folder (0 if none). */
long long cli_safetensors_bytes(const char *dir);
/* Prints "tuna: error: <fmt>" and returns 2 (bad usage/input); after
 * cli_error_where(W), "tuna: error: W: <fmt>". */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The place (e.g. "recipe.yaml:7") cli_usage_error names until the next call; NULL: none. */
void cli_error_where(const char *where);
/* Prints "tuna: error: <tuna_last_error() or status text>" and returns the
 * exit code for s. */
int cli_status_error(tuna_status s);
/* One warning line on stderr when count of total sequences or prompts (what,
 * e.g. "sequences are") are longer than the model's context of limit
 * positions; nothing when count is 0. where (a file) may be NULL. */
void cli_warn_context(const char *where, long count, long total, const char *what, long longest, int limit);
/* Unless quiet, sets o's on_read so that reading a pipe or other special
 * file prints "reading PATH: N MiB" on stderr: one line updated in place on
 * a terminal, a line per step otherwise, and the total at the end. */
void cli_read_progress(tuna_data_options *o, int quiet);
/* A failure on this rank alone of a multi-rank job: flushes this rank's
 * output, then ends every rank of the job with exit code `code` (the others
 * would wait in a collective forever). Returns when not in such a job. */
void cli_abort_job(int code);
/* 0 when path may be written as an output file (folder 0) or output folder
 * (folder 1) — absent, or a regular file / a folder; else prints why ("is a
 * character device, not a regular file") and returns 2. NULL is fine. Called
 * before any work; atomic_file_open and atomic_dir_commit check again. */
int cli_output_refused(const char *path, int folder);
#endif
