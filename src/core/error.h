/* error.h — internal helpers over the per-thread error detail (error.c). */
#ifndef TUNA_CORE_ERROR_H
#define TUNA_CORE_ERROR_H
#include "tuna.h"

/* Records a failure detail (printf-style) for this thread, read back with
 * tuna_last_error, and returns s: the one way library code reports failure. */
tuna_status core_fail(tuna_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* st unchanged; when it is a failure, the recorded detail becomes
 * "<where>: <detail>" (e.g. the file a tensor's message did not name). */
tuna_status core_fail_in(tuna_status st, const char *where);
#endif
