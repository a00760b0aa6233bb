/* error.c — status codes and the per-thread error detail.
 * The library records what went wrong (file, tensor, line) here and returns a
 * status; only the CLI prints. */
#include <stdarg.h>
#include <stdio.h>
#include "core/error.h"
#include "tuna.h"

static _Thread_local char last_error[1024];

const char *tuna_status_str(tuna_status s) {
    switch (s) {
#define TUNA_X_CASE(name, msg) case name: return msg;
        TUNA_STATUS_LIST(TUNA_X_CASE)
#undef TUNA_X_CASE
    }
    return "unknown status";
}

const char *tuna_last_error(void) { return last_error; }

tuna_status core_fail(tuna_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

int tuna_status_exit_code(tuna_status s) {
    switch (s) {
    case TUNA_OK: return 0;
    case TUNA_ERR_IO:
    case TUNA_ERR_FORMAT:
    case TUNA_ERR_UNSUPPORTED:
    case TUNA_ERR_ARG: return 2;
    default: return 1;
    }
}

tuna_status core_fail_in(tuna_status st, const char *where) {
    if (st == TUNA_OK) return st;
    char msg[sizeof last_error];
    snprintf(msg, sizeof msg, "%s", last_error);
    return core_fail(st, "%s: %s", where, msg);
}
