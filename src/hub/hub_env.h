/* hub_env.h — where a pull goes and with what: the endpoint, the token and the
 * cache folder, from the caller's options or else huggingface_hub's
 * environment variables (the same names and defaults as the Python tools). */
#ifndef TUNA_HUB_ENV_H
#define TUNA_HUB_ENV_H
#include <limits.h>
#include "tuna_hub.h"

typedef struct {
    char endpoint[1024]; /* no trailing '/' */
    char token[1024];    /* "" when none */
    char cache[PATH_MAX];
    int offline;
} hub_env;

/* TUNA_ERR_ARG when a value is too long or no cache folder can be named
 * (no HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME or HOME). */
tuna_status hub_env_load(hub_env *e, const tuna_hub_opts *o);
#endif
