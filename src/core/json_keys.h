/* json_keys.h — strict reading of typed keys from a JSON object, for the
 * settings files tuna takes from a model or adapter folder (config.json,
 * generation_config.json, adapter_config.json). Integers must be JSON
 * integers (a real with an integral value counts, as Python accepts 64.0)
 * in the caller's range; numbers must be numbers in range and finite as a
 * float; booleans booleans; strings strings (optionally from a list). null is
 * the same as absent (HF writes null for "use the default"). A value of the
 * wrong type or out of range records one line
 *     <file>: <prefix><key> <the value as JSON writes it>: <what is wrong>
 * and the reader keeps that first error in st; the getters then return the
 * default, so a caller reads every key and checks st once. Internal. */
#ifndef TUNA_CORE_JSON_KEYS_H
#define TUNA_CORE_JSON_KEYS_H
#include <jansson.h>
#include <stdint.h>
#include "tuna.h"

typedef struct {
    json_t *o;            /* the object read (borrowed) */
    const char *path;     /* its file, for messages */
    const char *prefix;   /* key path before the key, e.g. "rope_scaling." ("" at the top) */
    tuna_status st;       /* TUNA_OK, or the first error */
} jkeys;

/* the value of key, or NULL when absent or null */
json_t *jkeys_get(const jkeys *r, const char *key);
/* records an error about key's value v (the first only); st: TUNA_ERR_FORMAT,
 * or TUNA_ERR_UNSUPPORTED for a valid value tuna does not implement */
void jkeys_fail(jkeys *r, tuna_status st, const char *key, const json_t *v, const char *fmt, ...);
/* an integer in [lo, hi]; def when absent */
long long jkeys_int(jkeys *r, const char *key, long long lo, long long hi, long long def);
/* a number in [lo, hi] (lo excluded when lo_open; hi at most FLT_MAX); def when absent */
float jkeys_num(jkeys *r, const char *key, double lo, int lo_open, double hi, double def);
/* the same as a double (hi at most DBL_MAX), for values kept at full precision */
double jkeys_real(jkeys *r, const char *key, double lo, int lo_open, double hi, double def);
int jkeys_bool(jkeys *r, const char *key, int def);
/* a string (any when allowed is NULL, else one of the NULL-terminated list:
 * another is TUNA_ERR_UNSUPPORTED, the list named); def when absent */
const char *jkeys_str(jkeys *r, const char *key, const char *const *allowed, const char *def);
/* token ids: an integer, or a list of them (HF's EOS lists), each in
 * [0, INT_MAX]; -1 alone (some configs' "none") or absent gives none. Up to
 * max ids into ids; returns how many the value holds (all are checked). */
int jkeys_token_ids(jkeys *r, const char *key, int32_t *ids, int max);
#endif
