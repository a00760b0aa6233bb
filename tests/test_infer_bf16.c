/* test_infer_bf16.c — bf16 inference (issue 22 item 2): the TUNA_QUANT_BF16
 * load mode and the --dtype option of generate, chat, eval, serve and plan.
 *
 * Library: an fp32 (GPT-2, with its transposed Conv1D weights; Llama) or f16
 * checkpoint loaded with TUNA_QUANT_BF16 keeps every 2-D weight as an owned
 * bf16 copy whose bits are the round-to-nearest-even of the fp32 load's
 * values (norms and biases stay fp32), the model owns 2 bytes per 2-D value,
 * and its logits with bf16 compute are within 1e-2 relative L2 of the fp32
 * ones (bf16 keeps 8 significant bits: each product is off by up to 2^-8
 * relative, averaging out over a dot product).
 *
 * CLI, on an fp32 copy of models/tuna-stories (the shipped model is bf16):
 * `generate --dtype bf16` gives exactly the tokens of the bf16 original under
 * the default (auto: bf16 weights computed in bf16; the conversion rounds
 * the fp32 copy back to the original bits), and its first greedy tokens match
 * `--dtype f32`'s (GREEDY_SAME of them; greedy decoding diverges for good at
 * the first near-tie, so only a prefix is compared); `eval --dtype bf16`'s
 * loss is within 1e-2 relative of `--dtype f32`'s; an adapter runs in every
 * mode; bad --dtype values and --quant nf4 with --dtype bf16 end with exit 2
 * and one line; under ONEDNN_MAX_CPU_ISA=AVX512_CORE (no bf16 GEMMs) --dtype
 * bf16 prints one notice and computes as the fp32 path from bf16 weights
 * (the tokens of `--dtype f32` on the bf16 original); `plan --dtype bf16`
 * counts exactly the bytes the bf16 load owns, and `info` shows that plan's
 * peak. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/safetensors.h"
#include "model_probe.h"
#include "tuna.h"
#include "tuna_peft.h"

#define STORIES "models/tuna-stories"
#define GREEDY_SAME 8
#define LOGIT_TOL 1e-2
#define LOSS_TOL 1e-2

static char tmp[512];

/* logits [2*12, V] of one eval forward into a new buffer (NULL on failure) */
static float *eval_logits(tuna_model *m) {
    const tuna_config *c = tuna_model_config(m);
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 7 + 3) % c->V);
    tuna_batch bt = {2, 12, ids, ids, NULL, NULL, NULL};
    tuna_loss l;
    if (tuna_model_prepare(m, 2, 12, TUNA_MODE_EVAL) != TUNA_OK || tuna_model_forward(m, &bt, &l) != TUNA_OK) return NULL;
    float *out = malloc((size_t)24 * c->V * sizeof(float));
    if (out) memcpy(out, tuna_model_logits(m), (size_t)24 * c->V * sizeof(float));
    return out;
}

/* every 2-D weight of b an owned bf16 copy rounding f's fp32 values; the 1-D
 * ones fp32; *own2: the bytes that takes */
static int weights_rounded(tuna_model *b, tuna_model *f, size_t *own2) {
    int ok = 1;
    *own2 = 0;
    for (int i = 0; i < tuna_model_num_params(f); i++) {
        const tuna_param *p = tuna_model_param(f, i);
        const void *data;
        int owned, stored = probe_param_stored(b, i, &data, &owned);
        *own2 += (size_t)p->numel * (p->ndim == 2 ? 2 : 4);
        if (p->ndim != 2) { ok &= !stored; continue; }
        ok &= stored && owned;
        const uint16_t *h = data;
        for (int64_t k = 0; stored && k < p->numel; k++) ok &= h[k] == st_f32_to_bf16(p->data[k]);
    }
    return ok;
}

static void check_load(const char *what, const char *dir) {
    tuna_model *f = NULL, *b = NULL;
    CHECKF(tuna_model_load(&f, dir) == TUNA_OK, "%s: fp32 load: %s", what, tuna_last_error());
    CHECKF(tuna_model_load_quantized(&b, dir, TUNA_QUANT_BF16) == TUNA_OK, "%s: bf16 load: %s", what, tuna_last_error());
    if (!f || !b) { tuna_model_free(f); tuna_model_free(b); return; }
    size_t own, mapped, want;
    CHECKF(weights_rounded(b, f, &want), "%s: the 2-D weights are the bf16 rounding of the fp32 ones", what);
    probe_weight_bytes(b, &own, &mapped);
    CHECKF(own == want && mapped == 0, "%s: bf16 load owns %zu bytes (want %zu), maps %zu", what, own, want, mapped);
    CHECKF(tuna_model_linears_bf16(b) && !tuna_model_linears_bf16(f), "%s: tuna_model_linears_bf16", what);
    int on = tuna_model_set_bf16(b, 1);
    CHECKF(on == tuna_bf16_supported(), "%s: tuna_model_set_bf16 gave %d, the CPU's bf16 support is %d", what, on, tuna_bf16_supported());
    float *lf = eval_logits(f), *lb = eval_logits(b);
    long n = 24L * tuna_model_config(f)->V;
    double e = lf && lb ? rel_l2(lb, lf, n) : 1;
    CHECKF(e <= LOGIT_TOL, "%s: logits in bf16 %.3g relative L2 from fp32 (tolerance %g)", what, e, LOGIT_TOL);
    printf("%s: bf16 load owns %zu bytes; logits %.2e relative L2 from fp32 (bf16 compute %s)\n", what, own, e, on ? "on" : "off");
    free(lf);
    free(lb);
    tuna_model_free(f);
    tuna_model_free(b);
}

/* ---- the CLI ---- */

/* runs cmd (stdout to out, stderr to err, under tmp); its exit code */
static int run(const char *env, const char *args, const char *out, const char *err) {
    char cmd[4096];
    if (snprintf(cmd, sizeof cmd, "%s %s %s > %s/%s 2> %s/%s", env ? env : "", test_cli, args, tmp, out, tmp, err) >= (int)sizeof cmd)
        return -1;
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 20);
    size_t n = b ? fread(b, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return b;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

/* the generated ids of `generate --json` (one prompt) into ids; their count */
static int gen_ids(const char *model, const char *opts, const char *env, int *ids, int cap, char *err_name) {
    char args[2048];
    snprintf(args, sizeof args, "generate --model %s --prompt 'Once upon a time' --max-new-tokens 24 --json %s", model, opts);
    if (run(env, args, "gen.json", err_name) != 0) return -1;
    char *s = slurp("gen.json");
    json_t *o = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    json_t *a = json_object_get(o, "ids");
    int n = 0;
    for (size_t i = 0; i < json_array_size(a) && n < cap; i++) ids[n++] = (int)json_integer_value(json_array_get(a, i));
    json_decref(o);
    return n;
}

static int same_prefix(const int *a, int na, const int *b, int nb) {
    int k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

/* tmp/f32: models/tuna-stories saved in fp32 with its tokenizer files */
static int make_f32_copy(char *dir, size_t n) {
    snprintf(dir, n, "%s/f32", tmp);
    tuna_model *m = NULL;
    tuna_status st = tuna_model_load(&m, STORIES);
    if (st == TUNA_OK) st = tuna_model_save(m, dir, TUNA_DTYPE_F32);
    tuna_model_free(m);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && cp tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json %s/",
             STORIES, dir);
    return st == TUNA_OK && system(cmd) == 0;
}

/* tmp/lora: a LoRA adapter of tuna-stories with non-zero B (it changes the output) */
static int make_adapter(void) {
    tuna_model *m = NULL;
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    pc.r = 4;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/lora", tmp);
    tuna_status st = tuna_model_load_quantized(&m, STORIES, TUNA_QUANT_STORED);
    if (st == TUNA_OK) st = tuna_peft_attach(m, &pc, 3);
    for (int i = 0; st == TUNA_OK && i < probe_adapter_tensors(m); i++) {
        tuna_param *p = probe_adapter_tensor(m, i);
        for (int64_t k = 0; k < p->numel; k++) p->data[k] = 0.05f * (float)((k * 37 + i) % 11 - 5);
    }
    if (st == TUNA_OK) st = tuna_peft_save(m, dir);
    tuna_model_free(m);
    return st == TUNA_OK;
}

static void check_generate(const char *f32) {
    int a[64], b[64], c[64], d[64];
    char opt[700];
    int na = gen_ids(f32, "--dtype bf16", NULL, a, 64, "gen_bf16.err");
    int nb = gen_ids(STORIES, "", NULL, b, 64, "gen_auto.err");
    int nc = gen_ids(f32, "--dtype f32", NULL, c, 64, "gen_f32.err");
    CHECKF(na > 0 && na == nb && same_prefix(a, na, b, nb) == na, "generate --dtype bf16 of the fp32 copy = the bf16 original (%d, %d tokens)", na, nb);
    int k = same_prefix(a, na, c, nc);
    CHECKF(na > 0 && k >= (na < GREEDY_SAME ? na : GREEDY_SAME), "generate --dtype bf16 vs f32: first %d greedy tokens equal (want %d)", k, GREEDY_SAME);
    printf("generate: --dtype bf16 = the bf16 original (%d tokens); %d of %d first tokens as in --dtype f32\n", na, k, na);
    char *e = slurp("gen_bf16.err");
    CHECKF(e && (strstr(e, "no bf16") == NULL) == tuna_bf16_supported(), "the notice shows exactly when the CPU lacks bf16: '%s'", e ? e : "");
    free(e);
    /* an adapter in every mode: applied, and bf16 close to fp32 */
    CHECK(make_adapter());
    snprintf(opt, sizeof opt, "--adapter %s/lora --dtype f32", tmp);
    int nd = gen_ids(STORIES, opt, NULL, d, 64, "ad.err");
    CHECKF(nd > 0 && same_prefix(d, nd, c, nc) < nd, "the adapter changes the output (%d tokens)", nd);
    const char *modes[] = {"auto", "bf16"};
    for (int i = 0; i < 2; i++) {
        snprintf(opt, sizeof opt, "--adapter %s/lora --dtype %s", tmp, modes[i]);
        int nx = gen_ids(i ? f32 : STORIES, opt, NULL, a, 64, "ad.err");
        k = same_prefix(a, nx, d, nd);
        CHECKF(nx > 0 && k >= GREEDY_SAME, "--adapter with --dtype %s: first %d greedy tokens as in f32 (want %d)", modes[i], k, GREEDY_SAME);
    }
}

/* no bf16 GEMMs: one notice, weights still bf16, the fp32 path's tokens */
static void check_fallback(const char *f32) {
    int a[64], b[64];
    const char *env = "ONEDNN_MAX_CPU_ISA=AVX512_CORE";
    int na = gen_ids(f32, "--dtype bf16", env, a, 64, "fb.err");
    int nb = gen_ids(STORIES, "--dtype f32", NULL, b, 64, "fb_ref.err");
    char *e = slurp("fb.err");
    CHECKF(na > 0 && e && count_lines(e) == 1 && strstr(e, "no bf16 instructions"), "fallback: one notice line, got '%s'", e ? e : "");
    CHECKF(na > 0 && na == nb && same_prefix(a, na, b, nb) == na, "fallback: the tokens of fp32 compute on the bf16 weights");
    free(e);
    int nc = gen_ids(STORIES, "", env, a, 64, "fb_auto.err");
    e = slurp("fb_auto.err");
    CHECKF(nc > 0 && e && !*e, "fallback: no notice for auto: '%s'", e ? e : "");
    free(e);
}

static double eval_loss(const char *model, const char *dtype) {
    char args[2048];
    snprintf(args, sizeof args, "eval --model %s --data %s/stories.txt --seq-len 64 --json --quiet --dtype %s", model, tmp, dtype);
    if (run(NULL, args, "eval.json", "eval.err") != 0) return -1;
    char *s = slurp("eval.json");
    json_t *o = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    double l = json_real_value(json_object_get(o, "loss"));
    json_decref(o);
    return l;
}

static void check_eval(const char *f32) {
    char p[700];
    snprintf(p, sizeof p, "%s/stories.txt", tmp);
    FILE *f = fopen(p, "w");
    for (int i = 0; f && i < 6; i++)
        fprintf(f, "Once upon a time there was a little girl named Lily. She loved to play in the park with her dog. "
                   "One day the sun was hot and they sat under a big tree. Lily said, \"Thank you, tree!\" and smiled.\n");
    if (f) fclose(f);
    double lb = eval_loss(f32, "bf16"), lf = eval_loss(f32, "f32");
    double r = lf > 0 ? (lb - lf) / lf : 1;
    CHECKF(lb > 0 && lf > 0 && r <= LOSS_TOL && r >= -LOSS_TOL, "eval --dtype bf16 loss %.6f vs f32 %.6f: %.2e relative (tolerance %g)", lb,
           lf, r, LOSS_TOL);
    printf("eval: loss bf16 %.9f, f32 %.9f (%.2e relative)\n", lb, lf, r);
    /* the same weights and compute as the bf16 original under auto; its f32 differs when bf16 runs */
    double la = eval_loss(STORIES, "auto"), l32 = eval_loss(STORIES, "f32");
    CHECKF(la == lb, "eval: --dtype bf16 of the fp32 copy %.9f, auto of the bf16 original %.9f", lb, la);
    CHECKF(l32 == lf && (la != l32) == tuna_bf16_supported(), "eval: the bf16 original in f32 %.9f (the copy's %.9f), auto %.9f", l32, lf,
           la);
}

/* bad values and the refused combination: exit 2 and one line, every command */
static void check_refusals(void) {
    const char *cmds[] = {"generate --prompt x", "chat", "eval --data x.jsonl", "serve", "plan generate"};
    const char *bad[] = {"--dtype fp16", "--dtype BF16", "--dtype ''", "--quant nf4 --dtype bf16", "--dtype bf16 --quant nf4"};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            char args[600];
            snprintf(args, sizeof args, "%s --model %s %s < /dev/null", cmds[i], STORIES, bad[j]);
            int rc = run(NULL, args, "bad.out", "bad.err");
            char *e = slurp("bad.err");
            CHECKF(rc == 2 && e && count_lines(e) == 1 && strstr(e, j < 3 ? "--dtype must be auto, bf16 or f32" : "do not combine"),
                   "tuna %s: exit %d, '%s'", args, rc, e ? e : "");
            free(e);
        }
}

/* key (a.b: one level down) of the JSON object `tuna ARGS` prints; -1 when absent */
static double json_number_of(const char *args, const char *key, const char *sub) {
    double v = -1;
    if (run(NULL, args, "cmd.json", "cmd.err") != 0) return v;
    char *s = slurp("cmd.json");
    json_t *o = s ? json_loads(s, 0, NULL) : NULL, *x = json_object_get(o, key);
    if (sub) x = json_object_get(x, sub);
    if (x) v = json_number_value(x);
    json_decref(o);
    free(s);
    return v;
}

/* plan --dtype bf16: the bytes the bf16 load owns, half the fp32 copy's 2-D
 * weights; info's generate_bf16 row is that plan's peak */
static void check_plan(const char *f32) {
    char args[700];
    snprintf(args, sizeof args, "plan generate --model %s --dtype bf16 --json", f32);
    double frozen = json_number_of(args, "frozen_bytes", NULL), peak = json_number_of(args, "peak_rss_bytes", NULL);
    tuna_model *b = NULL;
    size_t own = 0, mapped = 0;
    if (tuna_model_load_quantized(&b, f32, TUNA_QUANT_BF16) == TUNA_OK) probe_weight_bytes(b, &own, &mapped);
    tuna_model_free(b);
    CHECKF(own > 0 && frozen == (double)own, "plan --dtype bf16 frozen %.0f bytes, the bf16 load owns %zu", frozen, own);
    snprintf(args, sizeof args, "info --model %s --json", f32);
    double info = json_number_of(args, "peak_rss_bytes", "generate_bf16");
    CHECKF(peak > 0 && (long long)info == (long long)peak, "info's generate_bf16 %.0f, plan's peak %.0f", info, peak);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    check_load("gpt2 (fp32, Conv1D)", "tests/fixtures/parity/gpt2");
    check_load("gpt2_noprefix (f16)", "tests/fixtures/parity/gpt2_noprefix");
    check_load("llama_gqa (fp32)", "tests/fixtures/parity/llama_gqa");
    char f32[600];
    if (test_need_cli("the bf16 CLI checks") && test_tmpdir(tmp, sizeof tmp, "infer_bf16") == 0) {
        CHECKF(make_f32_copy(f32, sizeof f32), "fp32 copy of %s: %s", STORIES, tuna_last_error());
        check_load("tuna-stories (fp32 copy)", f32);
        check_generate(f32);
        check_fallback(f32);
        check_eval(f32);
        check_refusals();
        check_plan(f32);
        test_rmdir(tmp);
    }
    return test_done();
}
