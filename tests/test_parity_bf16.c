/* test_parity_bf16.c — tuna's bf16 compute (tuna_model_set_bf16) against
 * PyTorch's bf16 autocast.
 *
 * For each parity fixture tests/fixtures/parity/<name>/ this builds the same
 * right-padded batch as test_parity.c and runs forward+backward three times
 * on one model: fp32; bf16 on (tuna_model_set_bf16(m, 1)); bf16 off again.
 * The bf16 run is compared with expected_bf16.safetensors (written by
 * tools/make_bf16_fixtures.py: the same model code under
 * torch.autocast("cpu", dtype=torch.bfloat16)), with issue 22's budgets:
 *   logits   relative L2 ||a-b|| / ||b|| <= 1e-2 AND max-norm relative
 *            max|a-b| / max|b| <= 1e-2 (both over all B*T*V logits; the
 *            second bounds the worst logit against the logit scale);
 *   loss     |a-b| / |b| <= 1e-2;
 *   every gradient tensor  relative L2 <= 2e-2.
 * The bf16 run must also differ from the fp32 run (logits relative L2 >=
 * 1e-4: fp32 rounding alone gives ~1e-7, bf16 inputs ~1e-3), so an
 * implementation that silently stays fp32 fails; and after
 * tuna_model_set_bf16(m, 0) logits, loss and gradients must equal the fp32
 * run's bit for bit. The fp32 run itself must first meet the float64
 * expected.safetensors with test_parity.c's budgets (so the references
 * belong to this model and batch); the bf16 run's distance from float64 is
 * printed. Last, the same cycle for the llama_lora PEFT
 * adapter (tests/fixtures/peft/llama_lora/adapter0) on llama_gqa, against
 * expected_bf16_lora.safetensors (autocast, and float64.* for float64).
 *
 * Where the CPU has no bf16 GEMM (tuna_bf16_supported() == 0, e.g. with
 * ONEDNN_MAX_CPU_ISA=AVX512_CORE) the comparison is skipped (a failure under
 * CI=true) and the test checks the fallback instead: tuna_model_set_bf16
 * returns 0 and the results stay the fp32 ones bit for bit.
 * Run from the repository root. */
#include <stdint.h>

#include "check.h"
#include "model_probe.h"
#include "parity_fixture.h"
#include "tuna.h"
#include "tuna_peft.h"

/* Budgets of a comparison: logits (relative L2 and max-norm relative),
 * loss (relative), each gradient (relative L2). */
typedef struct {
    double logits, loss, grad;
} budget;
static const budget BF16 = {1e-2, 1e-2, 2e-2}; /* issue 22 */
static const budget FP32 = {1e-5, 1e-5, 1e-4}; /* test_parity.c's, for the LoRA fixture's float64 part */
#define BF16_FLOOR 1e-4 /* least logits rel L2 between the bf16 and fp32 runs */

static int bf16_ok; /* tuna_bf16_supported() */

/* ---------------- results of one run ---------------- */

/* Logits, mean loss and the trainable tensors' gradients (file layout) of
 * one forward+backward, or of a reference file. names point into the model. */
typedef struct {
    float *logits;
    long n_logits;
    double loss;
    int n;
    const char **names;
    float **grads;
    long *numel;
} run_out;

static void run_free(run_out *o) {
    for (int i = 0; i < o->n; i++) free(o->grads ? o->grads[i] : NULL);
    free(o->logits);
    free(o->names);
    free(o->grads);
    free(o->numel);
    memset(o, 0, sizeof *o);
}

/* What an optimizer would update: the adapter's tensors, else every parameter. */
static int trainable_count(tuna_model *m) {
    int a = probe_adapter_tensors(m);
    return a ? a : tuna_model_num_params(m);
}
static const tuna_param *trainable(tuna_model *m, int i) {
    return probe_adapter_tensors(m) ? probe_adapter_tensor(m, i) : tuna_model_param(m, i);
}

static int run_alloc(run_out *o, int n) {
    o->n = n;
    o->names = calloc((size_t)n, sizeof *o->names);
    o->grads = calloc((size_t)n, sizeof *o->grads);
    o->numel = calloc((size_t)n, sizeof *o->numel);
    return o->names && o->grads && o->numel ? 0 : -1;
}

static int capture_grads(tuna_model *m, run_out *o, const char *fx) {
    if (run_alloc(o, trainable_count(m)) != 0) return -1;
    for (int i = 0; i < o->n; i++) {
        const tuna_param *p = trainable(m, i);
        o->names[i] = p->name;
        o->numel[i] = (long)p->numel;
        o->grads[i] = grad_file_layout(p, fx);
        if (!o->grads[i]) return -1;
    }
    return 0;
}

/* zero_grad, forward, logits, backward (token weight 1/tokens) into *o. */
static int run_once(tuna_model *m, const tuna_batch *bt, run_out *o, const char *fx) {
    memset(o, 0, sizeof *o);
    tuna_model_zero_grad(m);
    tuna_loss l = {0, 0};
    tuna_status st = tuna_model_forward(m, bt, &l);
    CHECKF(st == TUNA_OK, "%s: forward: %s", fx, tuna_last_error());
    CHECKF(st != TUNA_OK || l.tokens == count_tokens(bt->labels, bt->B, bt->T), "%s: counted %lld tokens", fx,
           (long long)l.tokens);
    const float *lg = st == TUNA_OK ? tuna_model_logits(m) : NULL;
    if (!lg || l.tokens <= 0) return -1;
    o->n_logits = (long)bt->B * bt->T * tuna_model_config(m)->V;
    o->logits = malloc((size_t)o->n_logits * sizeof(float));
    if (!o->logits) return -1;
    memcpy(o->logits, lg, (size_t)o->n_logits * sizeof(float));
    o->loss = l.loss_sum / (double)l.tokens;
    st = tuna_model_backward(m, bt, 1.0f / (float)l.tokens);
    CHECKF(st == TUNA_OK, "%s: backward: %s", fx, tuna_last_error());
    return st == TUNA_OK ? capture_grads(m, o, fx) : -1;
}

/* The reference in file `path` (<pre>logits, <pre>loss, <pre>grad.<name>
 * for every trainable tensor of m) as a run_out. */
static int load_ref(tuna_model *m, const char *path, const char *pre, long n_logits, run_out *o, const char *fx) {
    memset(o, 0, sizeof *o);
    st_file f;
    tuna_status st = st_open(&f, path);
    CHECKF(st == TUNA_OK, "%s: %s", path, tuna_last_error());
    if (st != TUNA_OK) return -1;
    char key[300];
    int rc = run_alloc(o, trainable_count(m));
    snprintf(key, sizeof key, "%sloss", pre);
    float *loss = expected_f32(&f, fx, key, 1);
    snprintf(key, sizeof key, "%slogits", pre);
    o->n_logits = n_logits;
    o->logits = expected_f32(&f, fx, key, n_logits);
    rc |= !loss || !o->logits;
    o->loss = loss ? loss[0] : NAN;
    for (int i = 0; rc == 0 && i < o->n; i++) {
        const tuna_param *p = trainable(m, i);
        snprintf(key, sizeof key, "%sgrad.%s", pre, p->name);
        o->names[i] = p->name;
        o->numel[i] = (long)p->numel;
        o->grads[i] = expected_f32(&f, fx, key, p->numel);
        rc |= !o->grads[i];
    }
    free(loss);
    st_close(&f);
    return rc ? -1 : 0;
}

/* ---------------- comparisons ---------------- */

typedef struct {
    double log_l2, log_max, loss, grad;
    const char *grad_name;
} errs;

static double rel_max(const float *a, const float *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) m = fmax(m, fabs((double)b[i]));
    return max_abs_diff(a, b, n) / (m > 1e-30 ? m : 1e-30);
}

/* Errors of got against want; with b, each checked against its budget
 * (`what` names the comparison in failures). */
static errs compare(const run_out *got, const run_out *want, const char *fx, const char *what, const budget *b) {
    errs e = {rel_l2(got->logits, want->logits, got->n_logits), rel_max(got->logits, want->logits, got->n_logits),
              fabs(got->loss - want->loss) / fabs(want->loss), 0, "-"};
    e.loss = e.loss == e.loss ? e.loss : INFINITY;
    CHECKF(got->n == want->n, "%s %s: %d gradients vs %d", fx, what, got->n, want->n);
    for (int i = 0; i < got->n && i < want->n; i++) {
        double g = rel_l2(got->grads[i], want->grads[i], got->numel[i]);
        if (b)
            CHECKF(g <= b->grad, "%s %s: grad %s rel L2 %.2e > %.0e (max abs %.2e)", fx, what, got->names[i], g,
                   b->grad, max_abs_diff(got->grads[i], want->grads[i], got->numel[i]));
        if (!(g <= e.grad)) {
            e.grad = g;
            e.grad_name = got->names[i];
        }
    }
    if (b) {
        CHECKF(e.log_l2 <= b->logits, "%s %s: logits rel L2 %.2e > %.0e", fx, what, e.log_l2, b->logits);
        CHECKF(e.log_max <= b->logits, "%s %s: logits max-norm rel %.2e > %.0e", fx, what, e.log_max, b->logits);
        CHECKF(e.loss <= b->loss, "%s %s: loss %.7f vs %.7f (rel %.2e)", fx, what, got->loss, want->loss, e.loss);
    }
    return e;
}

static void print_errs(const char *fx, const char *what, errs e) {
    printf("%s %s: logits rel L2 %.1e, max-norm rel %.1e; loss rel %.1e; grads worst rel L2 %.1e (%s)\n", fx, what,
           e.log_l2, e.log_max, e.loss, e.grad, e.grad_name);
}

/* Bit-identical logits, loss and gradients. */
static void check_identical(const run_out *a, const run_out *b, const char *fx, const char *what) {
    int same = a->n_logits == b->n_logits && a->n == b->n && a->loss == b->loss &&
               memcmp(a->logits, b->logits, (size_t)a->n_logits * sizeof(float)) == 0;
    CHECKF(same, "%s %s: logits or loss differ from the fp32 run (loss %.9f vs %.9f)", fx, what, a->loss, b->loss);
    for (int i = 0; same && i < a->n; i++)
        CHECKF(memcmp(a->grads[i], b->grads[i], (size_t)a->numel[i] * sizeof(float)) == 0,
               "%s %s: grad %s differs from the fp32 run", fx, what, a->names[i]);
}

/* ---------------- the fp32 / bf16 / fp32 cycle ---------------- */

/* want: the autocast reference the bf16 run must meet; f64: the float64
 * reference, which the fp32 run must meet with test_parity.c's budgets
 * (proving both files belong to this model, adapter and batch). */
static void bf16_cycle(tuna_model *m, const tuna_batch *bt, const char *fx, const run_out *want,
                       const run_out *f64) {
    run_out f32, b16 = {0}, back = {0};
    if (run_once(m, bt, &f32, fx) != 0) goto done;
    compare(&f32, f64, fx, "fp32 vs float64", &FP32); /* the references belong to this model and batch */
    int on = tuna_model_set_bf16(m, 1);
    CHECKF(on == bf16_ok, "%s: tuna_model_set_bf16(m, 1) returned %d, tuna_bf16_supported() %d", fx, on, bf16_ok);
    if (run_once(m, bt, &b16, fx) != 0) goto done;
    if (!on) {
        check_identical(&b16, &f32, fx, "bf16 refused"); /* fp32 stays, nothing changes */
    } else {
        print_errs(fx, "bf16 vs autocast", compare(&b16, want, fx, "bf16 vs autocast", &BF16));
        print_errs(fx, "bf16 vs float64", compare(&b16, f64, fx, "bf16 vs float64", NULL));
        errs d = compare(&b16, &f32, fx, "bf16 vs fp32 run", NULL);
        CHECKF(d.log_l2 >= BF16_FLOOR, "%s: bf16 logits differ from fp32 by rel L2 %.2e < %.0e: bf16 not used?",
               fx, d.log_l2, BF16_FLOOR);
    }
    CHECKF(tuna_model_set_bf16(m, 0) == 0, "%s: tuna_model_set_bf16(m, 0) did not return 0", fx);
    if (run_once(m, bt, &back, fx) == 0) check_identical(&back, &f32, fx, "bf16 off again");
done:
    run_free(&f32);
    run_free(&b16);
    run_free(&back);
}

/* Loads tests/fixtures/parity/<fx> (with the adapter folder `adapter` when
 * not NULL), its padded batch, and prepares it for training. */
static tuna_model *load_prepared(const char *fx, const char *adapter, batch_buf *bb) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "tests/fixtures/parity/%s", fx);
    snprintf(path, sizeof path, "%s/data.jsonl", dir);
    tuna_model *m = NULL;
    tuna_status st = tuna_model_load(&m, dir);
    CHECKF(st == TUNA_OK, "%s: load: %s", fx, tuna_last_error());
    if (st == TUNA_OK && adapter) {
        st = tuna_peft_load(m, adapter);
        CHECKF(st == TUNA_OK, "%s: adapter %s: %s", fx, adapter, tuna_last_error());
    }
    int rd = st == TUNA_OK ? read_jsonl_batch(path, bb) : -1;
    CHECKF(st != TUNA_OK || rd == 0, "%s: cannot read %s", fx, path);
    if (rd == 0) {
        st = tuna_model_prepare(m, bb->B, bb->T, 1);
        CHECKF(st == TUNA_OK, "%s: prepare(%d,%d): %s", fx, bb->B, bb->T, tuna_last_error());
    }
    if (st == TUNA_OK && rd == 0) return m;
    tuna_model_free(m);
    return NULL;
}

/* One case: the model of tests/fixtures/parity/<dir> (with the PEFT adapter
 * folder `adapter` when not NULL), and in that folder the autocast reference
 * file `ref` and the float64 reference file `f64`, whose names start with
 * `f64_pre`. */
typedef struct {
    const char *name, *dir, *adapter, *ref, *f64, *f64_pre;
} bf16_case;

static const bf16_case CASES[] = {
    {"gpt2", "gpt2", NULL, "expected_bf16", "expected", ""},
    {"gpt2_noprefix", "gpt2_noprefix", NULL, "expected_bf16", "expected", ""},
    {"llama_gqa", "llama_gqa", NULL, "expected_bf16", "expected", ""},
    {"llama_tied", "llama_tied", NULL, "expected_bf16", "expected", ""},
    {"qwen2", "qwen2", NULL, "expected_bf16", "expected", ""},
    {"mistral", "mistral", NULL, "expected_bf16", "expected", ""},
    /* LoRA r 4 on q_proj, v_proj (A and B nonzero) on the fp32 base: the
     * frozen base computes from its bf16 shadow */
    {"llama_gqa+lora", "llama_gqa", "tests/fixtures/peft/llama_lora/adapter0", "expected_bf16_lora",
     "expected_bf16_lora", "float64."},
};

static void run_case(const bf16_case *c) {
    batch_buf bb = {0, 0, NULL, NULL};
    run_out ref = {0}, f64 = {0};
    char ref_path[600], f64_path[600];
    snprintf(ref_path, sizeof ref_path, "tests/fixtures/parity/%s/%s.safetensors", c->dir, c->ref);
    snprintf(f64_path, sizeof f64_path, "tests/fixtures/parity/%s/%s.safetensors", c->dir, c->f64);
    tuna_model *m = load_prepared(c->dir, c->adapter, &bb);
    if (!m) goto done;
    CHECKF(!c->adapter || probe_adapter_tensors(m) > 0, "%s: the adapter has no tensors", c->name);
    long n_logits = (long)bb.B * bb.T * tuna_model_config(m)->V;
    if (load_ref(m, ref_path, "", n_logits, &ref, c->name) != 0) goto done;
    if (load_ref(m, f64_path, c->f64_pre, n_logits, &f64, c->name) != 0) goto done;
    tuna_batch bt = {.B = bb.B, .T = bb.T, .input_ids = bb.ids, .labels = bb.labels};
    bf16_cycle(m, &bt, c->name, &ref, &f64);
done:
    run_free(&ref);
    run_free(&f64);
    batch_buf_free(&bb);
    tuna_model_free(m);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the lines so far survive a crash in a later case */
    bf16_ok = tuna_bf16_supported();
    printf("kernels: %s; bf16 %s\n", tuna_kernels_info(), bf16_ok ? "supported" : "not supported");
    if (!bf16_ok)
        test_absent("bf16 parity", "this CPU runs no bf16 GEMM (tuna_bf16_supported() == 0); "
                                   "checking the fp32 fallback only");
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) run_case(&CASES[i]);
    return test_done();
}
