/* hub_env.c — huggingface_hub's environment (hub_env.h):
 *   HF_ENDPOINT (https://huggingface.co), HF_HOME ($XDG_CACHE_HOME/huggingface
 *   or ~/.cache/huggingface), HF_HUB_CACHE ($HF_HOME/hub), HF_TOKEN, else the
 *   file $HF_TOKEN_PATH or $HF_HOME/token, HF_HUB_OFFLINE (1/ON/YES/TRUE). */
#include "hub/hub_env.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int truthy(const char *v) {
    return v && (!strcmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcasecmp(v, "true"));
}

/* $HF_HOME, or its default; -1 when nothing names it */
static int hf_home(char *out, size_t n) {
    const char *v = env("HF_HOME"), *xdg = env("XDG_CACHE_HOME"), *home = env("HOME");
    int k = v ? snprintf(out, n, "%s", v)
            : xdg ? snprintf(out, n, "%s/huggingface", xdg)
            : home ? snprintf(out, n, "%s/.cache/huggingface", home) : -1;
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* the token file's first line, whitespace trimmed; "" when there is none */
static void read_token_file(const char *path, char *out, size_t n) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(out, (int)n, f)) out[0] = '\0';
    fclose(f);
    size_t k = strlen(out);
    while (k && isspace((unsigned char)out[k - 1])) out[--k] = '\0';
    size_t s = strspn(out, " \t");
    memmove(out, out + s, k - s + 1);
}

static tuna_status load_token(hub_env *e, const tuna_hub_opts *o, const char *home) {
    const char *t = o && o->token ? o->token : env("HF_TOKEN");
    if (t) {
        if (snprintf(e->token, sizeof e->token, "%s", t) >= (int)sizeof e->token)
            return core_fail(TUNA_ERR_ARG, "hub: the token is longer than %zu bytes", sizeof e->token - 1);
        return TUNA_OK;
    }
    char path[PATH_MAX + 8];
    const char *tp = env("HF_TOKEN_PATH");
    if (tp) snprintf(path, sizeof path, "%s", tp);
    else if (home) snprintf(path, sizeof path, "%s/token", home);
    else path[0] = '\0';
    e->token[0] = '\0';
    if (path[0]) read_token_file(path, e->token, sizeof e->token);
    return TUNA_OK;
}

tuna_status hub_env_load(hub_env *e, const tuna_hub_opts *o) {
    char home[PATH_MAX];
    int have_home = hf_home(home, sizeof home) == 0;
    const char *ep = o && o->endpoint ? o->endpoint : env("HF_ENDPOINT");
    if (snprintf(e->endpoint, sizeof e->endpoint, "%s", ep ? ep : "https://huggingface.co") >= (int)sizeof e->endpoint)
        return core_fail(TUNA_ERR_ARG, "hub: HF_ENDPOINT is longer than %zu bytes", sizeof e->endpoint - 1);
    size_t n = strlen(e->endpoint);
    while (n && e->endpoint[n - 1] == '/') e->endpoint[--n] = '\0';
    const char *cache = o && o->cache_dir ? o->cache_dir : env("HF_HUB_CACHE");
    int k = cache ? snprintf(e->cache, sizeof e->cache, "%s", cache)
            : have_home ? snprintf(e->cache, sizeof e->cache, "%s/hub", home) : -1;
    if (k < 0 || (size_t)k >= sizeof e->cache)
        return core_fail(TUNA_ERR_ARG, "hub: no cache folder: set HF_HUB_CACHE or HF_HOME (HOME is not set)");
    e->offline = (o && o->offline) || truthy(env("HF_HUB_OFFLINE"));
    return load_token(e, o, have_home ? home : NULL);
}
