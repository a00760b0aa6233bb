/* reward_cmd.h — GRPO's outside reward program (--reward cmd:PROGRAM): one
 * process per call, run as /bin/sh -c PROGRAM in its own process group; the
 * completions go to its stdin as JSONL, one object a line,
 *   {"prompt": "...", "completion": "...", "reference": "..." or null}
 * (UTF-8; bytes that are not UTF-8 sent as U+FFFD), and it prints one number
 * a line on its stdout, in the same order. Its stderr passes through. */
#ifndef TUNA_TRAIN_REWARD_CMD_H
#define TUNA_TRAIN_REWARD_CMD_H
#include <stddef.h>

#include "tuna.h"

/* Runs prog on n completions (refs[i] may be NULL; refs itself may be NULL)
 * and writes its n numbers to out. Input and output move concurrently
 * (poll), so large inputs cannot deadlock. name ("cmd:PROG") starts every
 * message. TUNA_ERR_ARG when the program exits with a status other than 0
 * or is killed by a signal, prints other than n lines or a line that is not
 * a finite number (the message names the line), or has not finished after
 * timeout_s seconds (its process group is then killed); TUNA_ERR_IO when it
 * cannot be started. The child is always reaped; SIGPIPE (a program that
 * exits without reading its input) is caught in this thread, never delivered. */
tuna_status reward_cmd_run(const char *name, const char *prog, double timeout_s, int n, const char *const *prompts,
                           const char *const *completions, const char *const *refs, double *out);

/* The program's output (len bytes, not NUL-terminated, may hold any byte)
 * as n numbers: one per line ("\n" or "\r\n"; the last newline optional),
 * spaces and tabs around a number allowed, nan and inf refused.
 * TUNA_ERR_ARG naming the line when it is not a number, or the count when
 * there are fewer or more lines than n. */
tuna_status reward_cmd_parse(const char *name, const char *buf, size_t len, int n, double *out);

/* The JSONL the program reads (malloc'd in *buf, *len bytes, NUL after). */
tuna_status reward_cmd_input(int n, const char *const *prompts, const char *const *completions,
                             const char *const *refs, char **buf, size_t *len);
#endif
