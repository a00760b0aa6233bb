/* fixture_compare.h — what the trainers' PyTorch-fixture tests share: a
 * run's per-step metrics read back from metrics.jsonl and checked against the
 * fixture's expected_steps.safetensors, and the saved weights compared tensor
 * by tensor with the fixture's expected ones. */
#ifndef TUNA_TESTS_FIXTURE_COMPARE_H
#define TUNA_TESTS_FIXTURE_COMPARE_H
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/safetensors.h"

/* per-step values of key in run_dir/metrics.jsonl (training lines only: those with a loss) */
static inline int run_metric(const char *run_dir, const char *key, double *out, int max) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[16384];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (o && json_object_get(o, "loss") && json_is_number(json_object_get(o, key)))
            out[n++] = json_number_value(json_object_get(o, key));
        json_decref(o);
    }
    fclose(f);
    return n;
}

enum {
    CMP_SAME_COUNT = 1,   /* got must hold exactly want's tensors */
    CMP_SKIP_KEY_BIAS = 2 /* GPT-2's attn.c_attn.bias compared without its key third */
};

/* worst relative L2 error of every tensor of want against got (same names);
 * INFINITY when a file does not open or a tensor is missing (named in worst_name) */
static inline double compare_tensors_flags(const char *got_path, const char *want_path, int flags, int *n_checked,
                                           char *worst_name, size_t wn) {
    st_file got, want;
    double worst = INFINITY;
    *n_checked = 0;
    if (st_open(&got, got_path) != TUNA_OK) return worst;
    if (st_open(&want, want_path) != TUNA_OK) { st_close(&got); return worst; }
    worst = !(flags & CMP_SAME_COUNT) || got.n_tensors == want.n_tensors ? 0 : INFINITY;
    for (int i = 0; i < want.n_tensors; i++) {
        const st_tensor *w = &want.tensors[i], *g = st_find(&got, w->name);
        if (!g || g->numel != w->numel) { worst = INFINITY; snprintf(worst_name, wn, "%s (missing)", w->name); break; }
        float *a = malloc((size_t)w->numel * 4), *b = malloc((size_t)w->numel * 4);
        if (a && b && st_to_f32(g, a) == TUNA_OK && st_to_f32(w, b) == TUNA_OK) {
            long n = (long)w->numel;
            if ((flags & CMP_SKIP_KEY_BIAS) && strstr(w->name, "attn.c_attn.bias")) { /* q third, then v third where k was */
                long C = n / 3;
                memmove(a + C, a + 2 * C, (size_t)C * 4);
                memmove(b + C, b + 2 * C, (size_t)C * 4);
                n = 2 * C;
            }
            double e = rel_l2(a, b, n);
            if (e > worst) { worst = e; snprintf(worst_name, wn, "%s", w->name); }
            (*n_checked)++;
        } else worst = INFINITY;
        free(a);
        free(b);
    }
    st_close(&got);
    st_close(&want);
    return worst;
}

static inline double compare_tensors(const char *got_path, const char *want_path, int *n_checked, char *worst_name, size_t wn) {
    return compare_tensors_flags(got_path, want_path, 0, n_checked, worst_name, wn);
}
/* A run's weights after the fixture's steps against the fixture's: a LoRA
 * fixture (named "lora...") compares OUT/adapter_model.safetensors with
 * FIXTURE/expected/adapter_model.safetensors, others model.safetensors with
 * FIXTURE/expected.safetensors; at least min_tensors within 1e-4 (relative L2). */
static inline void check_fixture_weights(const char *tag, const char *name, const char *fixture, const char *out, int flags,
                                         int min_tensors) {
    char got[600], want[600], wname[256] = "";
    int lora = strstr(name, "lora") != NULL, nt = 0;
    snprintf(got, sizeof got, "%s/%s", out, lora ? "adapter_model.safetensors" : "model.safetensors");
    snprintf(want, sizeof want, "%s/%s", fixture, lora ? "expected/adapter_model.safetensors" : "expected.safetensors");
    double worst = compare_tensors_flags(got, want, flags, &nt, wname, sizeof wname);
    printf("%s %s: %d tensors after 3 steps, worst rel L2 %.3g (%s)\n", tag, name, nt, worst, wname);
    CHECKF(nt >= min_tensors && worst <= 1e-4, "%s: %d tensors, worst rel %.3g (%s)", name, nt, worst, wname);
}

/* one logged metric against a tensor of 3 step values in expected_steps.safetensors:
 * error |got - want| / (|want| + floor), or absolute when floor < 0 */
typedef struct {
    const char *key, *metric;
    double floor, tol;
} fixture_step;

static inline void check_fixture_steps(const char *tag, const char *name, const char *fixture, const char *out,
                                       const fixture_step *c, int n) {
    char path[600];
    st_file steps;
    snprintf(path, sizeof path, "%s/expected_steps.safetensors", fixture);
    if (st_open(&steps, path) != TUNA_OK) { CHECKF(0, "%s: cannot open %s", name, path); return; }
    for (int k = 0; k < n; k++) {
        const st_tensor *t = st_find(&steps, c[k].key);
        float want[3];
        double got[8], worst = 0;
        int m = run_metric(out, c[k].metric, got, 8);
        CHECKF(t && t->numel == 3 && m == 3, "%s: %s (%d steps logged)", name, c[k].key, m);
        if (!t || t->numel != 3 || m != 3 || st_to_f32(t, want) != TUNA_OK) continue;
        for (int i = 0; i < 3; i++)
            worst = fmax(worst, fabs(got[i] - want[i]) / (c[k].floor < 0 ? 1 : fabs(want[i]) + c[k].floor));
        printf("%s %s: %s %.6g %.6g %.6g, worst %s %.3g\n", tag, name, c[k].metric, got[0], got[1], got[2],
               c[k].floor < 0 ? "abs" : "rel", worst);
        CHECKF(worst <= c[k].tol, "%s: %s worst %.3g (budget %.3g)", name, c[k].metric, worst, c[k].tol);
    }
    st_close(&steps);
}
#endif
