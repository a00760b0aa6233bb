/* train_resume.c — the training driver's own resume records (see
 * train_resume.h). */
#include "cli/train_resume.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/json_keys.h"
#include "train/resume_check.h"
#include "core/error.h"

static void hex64(uint64_t v, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)v); }

void train_model_fingerprint(tuna_model *m, char out[17]) { hex64(resume_model_fingerprint(m), out); }

tuna_status train_set_reference(tuna_trainer *tr, const char *ref_fingerprint) {
    char s[64];
    snprintf(s, sizeof s, "{\"ref_model\":\"%s\"}", ref_fingerprint);
    return tuna_trainer_set_exact_settings(tr, s);
}

void train_progress_init(train_progress *p, const tuna_pretok *val) {
    p->best = INFINITY;
    p->bad_evals = 0;
    p->saved_best = 0;
    p->val[0] = 0;
    if (tuna_pretok_count(val) > 0) hex64(resume_data_fingerprint(val), p->val);
}

void train_progress_json(const train_progress *p, char *buf, size_t n) {
    char val[24] = "null";
    if (p->val[0]) snprintf(val, sizeof val, "\"%s\"", p->val);
    /* no evaluation yet: 1e308 (JSON has no infinity), read back as such */
    snprintf(buf, n, "{\"best\":%.17g,\"bad_evals\":%d,\"saved_best\":%d,\"val\":%s}", isfinite(p->best) ? p->best : 1e308,
             p->bad_evals, p->saved_best, val);
}

/* The saved progress's keys, each present and of its type, into *p; *val
 * receives the saved "val" (NULL: null; absent: written by an older tuna). */
static tuna_status read_progress(json_t *o, const char *path, train_progress *p, const json_t **val, int *has_val) {
    jkeys r = {o, path, "extra.", TUNA_OK};
    static const char *const need[] = {"best", "bad_evals", "saved_best"};
    for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
        if (!jkeys_get(&r, need[k])) return core_fail(TUNA_ERR_FORMAT, "%s: extra.%s is missing", path, need[k]);
    p->best = jkeys_real(&r, "best", -INFINITY, 0, INFINITY, INFINITY);
    p->bad_evals = (int)jkeys_int(&r, "bad_evals", 0, INT_MAX, 0);
    p->saved_best = (int)jkeys_int(&r, "saved_best", 0, 1, 0);
    *has_val = json_object_get(o, "val") != NULL;
    *val = jkeys_get(&r, "val");
    if (*val && !json_is_string(*val)) jkeys_fail(&r, TUNA_ERR_FORMAT, "val", *val, "must be a string or null");
    if (p->best >= 1e308) p->best = INFINITY;
    return r.st;
}

tuna_status train_progress_resume(train_progress *p, const char *extra, const char *dir, char *notice, size_t n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    notice[0] = 0;
    json_error_t jerr;
    json_t *o = json_loads(extra, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return core_fail(TUNA_ERR_FORMAT, "%s: extra must be an object", path);
    }
    train_progress s = *p;
    const json_t *val = NULL;
    int has_val = 0;
    tuna_status st = read_progress(o, path, &s, &val, &has_val);
    const char *old = val ? json_string_value(val) : "";
    if (st == TUNA_OK && !has_val)
        snprintf(notice, n, "the checkpoint records no fingerprint of its validation data (written by an older tuna): "
                            "its best validation loss was kept without checking that it was measured on the same data");
    if (st == TUNA_OK && has_val && strcmp(old, p->val))
        snprintf(notice, n, "the validation data differs from the checkpoint's (fingerprint %s -> %s): the best validation "
                            "loss and the early-stopping count are reset, the best weights are judged on this run's "
                            "validation data only", old[0] ? old : "none", p->val[0] ? p->val : "none");
    else if (st == TUNA_OK) {
        memcpy(s.val, p->val, sizeof s.val);
        *p = s;
    }
    json_decref(o);
    return st;
}
