/* rewards.c — GRPO's reward functions (see rewards.h): --reward specs parsed
 * into a list of functions through one table of kinds, the built-in checks
 * scored through eval's scorers (score.c), outside programs through
 * reward_cmd.c and reward models through reward_model.c; a completion's
 * reward is the weighted sum. Scratch buffers grow only, so a training
 * step's scoring allocates nothing once they have reached their size (an
 * outside program's input excepted). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "train/reward_cmd.h"
#include "train/reward_model.h"
#include "train/rewards.h"
#include "tuna_score.h"

typedef enum { RW_JSON_VALID, RW_JSON_FIELDS, RW_EXACT, RW_CONTAINS, RW_REGEX, RW_LENGTH, RW_CMD, RW_MODEL } rw_kind;

typedef struct {
    rw_kind kind;
    char *name;                  /* the spec without its weight */
    const char *arg;             /* inside name: after "KIND:" (NULL without) */
    double weight;
    pcre2_code *re;              /* regex */
    pcre2_match_data *md;
    long min, max;               /* length, in code points */
    reward_model *rm;            /* model */
} rw_func;

struct grpo_rewards {
    rw_func *f;                  /* [count] */
    int count, cap;
    double timeout_s;
    double *col;                 /* [n] one function's values */
    char **texts;                /* [n] prompt + completion, for a reward model */
    size_t *text_cap;            /* [n] */
    int n_cap;
};

/* the kinds: name, whether an argument follows "NAME:", whether the record's
 * reference answer is needed */
static const struct { const char *name; rw_kind kind; int has_arg, needs_ref; } kinds[] = {
    {"json_valid", RW_JSON_VALID, 0, 0}, {"json_fields", RW_JSON_FIELDS, 0, 1}, {"exact", RW_EXACT, 0, 1},
    {"contains", RW_CONTAINS, 0, 1},     {"regex", RW_REGEX, 1, 0},             {"length", RW_LENGTH, 1, 0},
    {"cmd", RW_CMD, 1, 0},               {"model", RW_MODEL, 1, 0},
};
#define N_KINDS ((int)(sizeof kinds / sizeof *kinds))

tuna_status grpo_rewards_new(grpo_rewards **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return core_fail(TUNA_ERR_NOMEM, "reward functions");
    (*out)->timeout_s = 60;
    return TUNA_OK;
}

static void func_clear(rw_func *f) {
    free(f->name);
    pcre2_match_data_free(f->md);
    pcre2_code_free(f->re);
    reward_model_free(f->rm);
}

void grpo_rewards_free(grpo_rewards *r) {
    if (!r) return;
    for (int k = 0; k < r->count; k++) func_clear(&r->f[k]);
    for (int i = 0; i < r->n_cap; i++) free(r->texts[i]);
    free(r->f);
    free(r->col);
    free(r->texts);
    free(r->text_cap);
    free(r);
}

void grpo_rewards_set_timeout(grpo_rewards *r, double seconds) {
    if (seconds > 0 && isfinite(seconds)) r->timeout_s = seconds;
}

int grpo_rewards_count(const grpo_rewards *r) { return r->count; }
const char *grpo_rewards_name(const grpo_rewards *r, int k) { return r->f[k].name; }
double grpo_rewards_weight(const grpo_rewards *r, int k) { return r->f[k].weight; }

static int kind_needs_ref(rw_kind k) {
    for (int i = 0; i < N_KINDS; i++)
        if (kinds[i].kind == k) return kinds[i].needs_ref;
    return 0;
}

int grpo_rewards_need_reference(const grpo_rewards *r) {
    for (int k = 0; k < r->count; k++)
        if (kind_needs_ref(r->f[k].kind)) return 1;
    return 0;
}

/* ---- parsing a spec ---- */

/* s[0..n) as a weight: a decimal number (not inf/nan), finite */
static int parse_weight(const char *s, size_t n, double *w) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp || !strchr("+-.0123456789", s[0])) return 0;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end;
    *w = strtod(tmp, &end);
    return end == tmp + n && isfinite(*w);
}

/* "MIN-MAX" with 0 <= MIN <= MAX, decimal */
static tuna_status parse_length(rw_func *f) {
    const char *a = f->arg;
    char *end;
    if (a[0] < '0' || a[0] > '9') goto bad;
    f->min = strtol(a, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9') goto bad;
    f->max = strtol(end + 1, &end, 10);
    if (*end || f->min > f->max || f->max == LONG_MAX) goto bad;
    return TUNA_OK;
bad:
    return core_fail(TUNA_ERR_ARG, "reward '%s': expected length:MIN-MAX, characters with 0 <= MIN <= MAX (e.g. length:20-200)",
                     f->name);
}

static tuna_status compile_regex(rw_func *f) {
    int err;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF;
#ifdef PCRE2_MATCH_INVALID_UTF
    opts |= PCRE2_MATCH_INVALID_UTF; /* a completion's stray bytes never match, not an error */
#endif
    f->re = pcre2_compile((PCRE2_SPTR)f->arg, PCRE2_ZERO_TERMINATED, opts, &err, &off, NULL);
    if (!f->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return core_fail(TUNA_ERR_ARG, "reward '%s': the pattern does not compile: %s at offset %zu", f->name,
                         (char *)msg, (size_t)off);
    }
    f->md = pcre2_match_data_create_from_pattern(f->re, NULL);
    return f->md ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "reward '%s': match data", f->name);
}

/* a reward model's failure, its detail prefixed with "reward model:DIR" */
static tuna_status in_func(tuna_status s, const rw_func *f) {
    if (s == TUNA_OK) return s;
    char where[512];
    snprintf(where, sizeof where, "reward %s", f->name);
    return core_fail_in(s, where);
}

/* the kind's own setup once name, arg and weight are known */
static tuna_status func_setup(rw_func *f) {
    switch (f->kind) {
    case RW_REGEX: return compile_regex(f);
    case RW_LENGTH: return parse_length(f);
    case RW_MODEL: return in_func(reward_model_open(&f->rm, f->arg), f);
    default: return TUNA_OK;
    }
}

/* spec into f (name, arg, weight, kind); nothing set up yet */
static tuna_status parse_spec(const char *spec, rw_func *f) {
    size_t head = strcspn(spec, ":");
    int i = 0;
    while (i < N_KINDS && (strlen(kinds[i].name) != head || strncmp(spec, kinds[i].name, head))) i++;
    if (i == N_KINDS)
        return core_fail(TUNA_ERR_ARG, "reward '%s': unknown function (json_valid, json_fields, exact, contains, "
                         "regex:PATTERN, length:MIN-MAX, cmd:PROGRAM, model:DIR; each optionally :WEIGHT)", spec);
    size_t len = strlen(spec);
    const char *last = strrchr(spec, ':');
    f->kind = kinds[i].kind;
    f->weight = 1;
    /* NAME:WEIGHT for the kinds without an argument; NAME:ARG:WEIGHT for the others */
    if (last && (!kinds[i].has_arg || last > spec + head) &&
        parse_weight(last + 1, len - (size_t)(last + 1 - spec), &f->weight))
        len = (size_t)(last - spec);
    if (!kinds[i].has_arg && len != head)
        return core_fail(TUNA_ERR_ARG, "reward '%s': %s takes no argument; after ':' only a weight (a number)", spec,
                         kinds[i].name);
    if (kinds[i].has_arg && len <= head + 1)
        return core_fail(TUNA_ERR_ARG, "reward '%s': %s needs an argument (%s:...)", spec, kinds[i].name, kinds[i].name);
    f->name = strndup(spec, len);
    if (!f->name) return core_fail(TUNA_ERR_NOMEM, "reward '%s'", spec);
    f->arg = kinds[i].has_arg ? f->name + head + 1 : NULL;
    return TUNA_OK;
}

tuna_status grpo_rewards_add(grpo_rewards *r, const char *spec) {
    if (!spec || !*spec) return core_fail(TUNA_ERR_ARG, "reward: empty function spec");
    rw_func f = {0};
    tuna_status s = parse_spec(spec, &f);
    for (int k = 0; s == TUNA_OK && k < r->count; k++)
        if (!strcmp(r->f[k].name, f.name)) s = core_fail(TUNA_ERR_ARG, "reward '%s' given twice", f.name);
    if (s == TUNA_OK) s = func_setup(&f);
    if (s == TUNA_OK && r->count == r->cap) {
        int cap = r->cap * 2 + 4;
        rw_func *g = realloc(r->f, (size_t)cap * sizeof *g);
        if (g) { r->f = g; r->cap = cap; }
        else s = core_fail(TUNA_ERR_NOMEM, "reward functions");
    }
    if (s != TUNA_OK) { func_clear(&f); return s; }
    r->f[r->count++] = f;
    return TUNA_OK;
}

/* ---- scoring ---- */

static long code_points(const char *s) {
    long n = 0;
    size_t len = strlen(s);
    for (size_t i = 0; i < len; n++) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        i += k > 0 ? (size_t)k : 1; /* a stray byte counts as one character */
    }
    return n;
}

static tuna_status json_fields(const rw_func *f, int i, const char *pred, const char *ref, double *v) {
    int correct, total;
    tuna_status s = tuna_score_json_fields(pred, ref, &correct, &total);
    if (s != TUNA_OK) {
        char where[64];
        snprintf(where, sizeof where, "reward %s, completion %d", f->name, i + 1);
        return core_fail_in(s, where);
    }
    /* an empty reference object: whether the answer is JSON at all */
    *v = total ? (double)correct / total : tuna_score_json_valid(pred);
    return TUNA_OK;
}

/* one built-in function on completion i */
static tuna_status builtin(const rw_func *f, int i, const char *pred, const char *ref, double *v) {
    if (kind_needs_ref(f->kind) && !ref)
        return core_fail(TUNA_ERR_ARG, "reward %s needs each record's reference answer; completion %d has none",
                         f->name, i + 1);
    switch (f->kind) {
    case RW_JSON_VALID: *v = tuna_score_json_valid(pred); return TUNA_OK;
    case RW_JSON_FIELDS: return json_fields(f, i, pred, ref, v);
    case RW_EXACT: *v = tuna_score_exact(pred, ref); return TUNA_OK;
    case RW_CONTAINS: *v = tuna_score_contains(pred, ref); return TUNA_OK;
    case RW_REGEX: *v = pcre2_match(f->re, (PCRE2_SPTR)pred, strlen(pred), 0, 0, f->md, NULL) >= 0; return TUNA_OK;
    case RW_LENGTH: {
        long c = code_points(pred);
        *v = c >= f->min && c <= f->max;
        return TUNA_OK;
    }
    default: return core_fail(TUNA_ERR_INTERNAL, "reward %s: not a built-in", f->name);
    }
}

/* room for n completions in the scratch buffers */
static tuna_status reserve(grpo_rewards *r, int n) {
    if (n <= r->n_cap) return TUNA_OK;
    double *col = realloc(r->col, (size_t)n * sizeof *col);
    if (col) r->col = col;
    char **t = col ? realloc(r->texts, (size_t)n * sizeof *t) : NULL;
    if (t) r->texts = t;
    size_t *tc = t ? realloc(r->text_cap, (size_t)n * sizeof *tc) : NULL;
    if (!tc) return core_fail(TUNA_ERR_NOMEM, "reward scratch for %d completions", n);
    r->text_cap = tc;
    for (int i = r->n_cap; i < n; i++) { r->texts[i] = NULL; r->text_cap[i] = 0; }
    r->n_cap = n;
    return TUNA_OK;
}

/* a reward model's scores of prompt + completion */
static tuna_status model_scores(grpo_rewards *r, const rw_func *f, int n, const char *const *prompts,
                                const char *const *completions, double *out) {
    for (int i = 0; i < n; i++) {
        size_t a = strlen(prompts[i]), b = strlen(completions[i]);
        if (a + b + 1 > r->text_cap[i]) {
            char *t = realloc(r->texts[i], a + b + 1);
            if (!t) return core_fail(TUNA_ERR_NOMEM, "reward %s: text of %zu bytes", f->name, a + b + 1);
            r->texts[i] = t;
            r->text_cap[i] = a + b + 1;
        }
        memcpy(r->texts[i], prompts[i], a);
        memcpy(r->texts[i] + a, completions[i], b + 1);
    }
    return in_func(reward_model_score(f->rm, n, (const char *const *)r->texts, out), f);
}

/* function f's values of the n completions into out */
static tuna_status score_func(grpo_rewards *r, const rw_func *f, int n, const char *const *prompts,
                              const char *const *completions, const char *const *refs, double *out) {
    if (f->kind == RW_CMD) return reward_cmd_run(f->name, f->arg, r->timeout_s, n, prompts, completions, refs, out);
    if (f->kind == RW_MODEL) return model_scores(r, f, n, prompts, completions, out);
    for (int i = 0; i < n; i++) {
        tuna_status s = builtin(f, i, completions[i], refs ? refs[i] : NULL, &out[i]);
        if (s != TUNA_OK) return s;
    }
    return TUNA_OK;
}

tuna_status grpo_rewards_score(grpo_rewards *r, int n, const char *const *prompts, const char *const *completions,
                               const char *const *refs, double *per_func, double *total) {
    if (r->count == 0) return core_fail(TUNA_ERR_ARG, "reward: no reward function given (--reward)");
    if (n <= 0) return TUNA_OK; /* no program started for nothing */
    tuna_status s = reserve(r, n);
    if (s != TUNA_OK) return s;
    for (int i = 0; i < n; i++) total[i] = 0;
    for (int k = 0; k < r->count; k++) {
        s = score_func(r, &r->f[k], n, prompts, completions, refs, r->col);
        if (s != TUNA_OK) return s;
        for (int i = 0; i < n; i++) {
            if (per_func) per_func[(size_t)i * r->count + k] = r->col[i];
            total[i] += r->f[k].weight * r->col[i];
        }
    }
    return TUNA_OK;
}
