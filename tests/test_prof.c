/* test_prof.c — the profiler of training steps (src/core/prof.h, `tuna sft
 * --profile`): one step of the tiny Llama fixture counts exactly the GEMM
 * FLOPs its linears must do (full fine-tuning, LoRA on all linears, and the
 * same LoRA over an NF4 base, whose tiles are counted as dequantization);
 * the kinds' seconds are non-negative and within the step's wall time;
 * nothing is counted when profiling is off or outside a step (evaluation);
 * and the CLI prints the block (and writes metrics.jsonl's "profile" line)
 * with --profile or TUNA_PROFILE=1, and nothing without; --profile may be
 * added on resume. Runs from the
 * repository root; a second or two. */
#include <jansson.h>
#include <sys/wait.h>

#include "check.h"
#include "core/prof.h"
#include "tuna_peft.h"
#include "tuna_train.h"

static const char *FIX = "tests/fixtures/parity/llama_gqa"; /* C 64, 8 heads of 8, 2 KV heads, FF 96, V 100, 2 layers */
enum { B = 2, L = 12, R = 4 };

/* B sequences of L ids, every token counted */
static tuna_pretok *make_data(void) {
    tuna_pretok *d = NULL;
    if (tuna_pretok_new(&d) != TUNA_OK) return NULL;
    int32_t ids[L];
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < L; k++) ids[k] = 5 + (i * 31 + k * 7) % 90;
        if (tuna_pretok_append(d, ids, ids, L) != TUNA_OK) { tuna_pretok_free(d); return NULL; }
    }
    return d;
}

/* the (in, out) of each linear of one block, in the order model.c runs them */
static void block_linears(const tuna_config *c, double io[7][2]) {
    double C = c->C, q = (double)c->NH * c->HD, kv = (double)c->NKV * c->HD, F = c->FF;
    double v[7][2] = {{C, q}, {C, kv}, {C, kv}, {q, C}, {C, F}, {C, F}, {F, C}};
    memcpy(io, v, sizeof v);
}

/* Full fine-tuning: each linear 2·N·IC·OC forward, 4·N·IC·OC backward (input
 * and weight gradients; the embedding is trained, so the first block's input
 * gradient too); the head likewise (one chunk: no logits recomputed). */
static double full_flops(const tuna_config *c, double N) {
    double io[7][2], f = 6 * N * c->C * c->V;
    block_linears(c, io);
    for (int k = 0; k < 7; k++) f += c->L * 6 * N * io[k][0] * io[k][1];
    return f;
}

/* LoRA of rank r on every block linear over a frozen base: forward base
 * 2·N·IC·OC + h = A·x 2·r·N·IC + B·h 2·N·OC·r; backward dB 2·r·OC·N, dh
 * 2·r·N·OC, dA 2·r·IC·N, and where the input gradient is needed (all but the
 * first block's q, k, v: the embedding is frozen) the base's 2·N·IC·OC and
 * dh·A 2·N·IC·r. The frozen head: its logits and its input gradient, both in
 * the forward, 4·N·C·V. */
static double lora_flops(const tuna_config *c, double N, double r) {
    double io[7][2], f = 4 * N * c->C * c->V;
    block_linears(c, io);
    for (int l = 0; l < c->L; l++)
        for (int k = 0; k < 7; k++) {
            double I = io[k][0], O = io[k][1];
            f += 2 * N * I * O + 2 * r * N * I + 2 * N * O * r + 2 * r * O * N + 2 * r * N * O + 2 * r * I * N;
            if (l > 0 || k > 2) f += 2 * N * I * O + 2 * N * I * r;
        }
    return f;
}

/* One step of a trainer on m over d with profiling set to on; the totals. */
static prof_totals one_step(tuna_model *m, const tuna_pretok *d, int on) {
    tuna_train_args a;
    tuna_train_args_default(&a);
    a.batch = a.micro_batch = B;
    a.seq_len = L;
    a.eval_max_len = L;
    prof_totals p;
    memset(&p, 0xff, sizeof p);
    tuna_trainer *t = NULL;
    CHECKF(tuna_trainer_create(&t, m, d, &a) == TUNA_OK, "%s", tuna_last_error());
    if (!t) return p;
    prof_enable(on);
    prof_reset();
    CHECKF(tuna_trainer_step(t, NULL) == TUNA_OK, "%s", tuna_last_error());
    prof_get(&p);
    /* evaluation is not a step: it adds nothing */
    double loss;
    int64_t tokens;
    CHECK(tuna_trainer_eval(t, d, &loss, &tokens) == TUNA_OK);
    prof_totals after;
    prof_get(&after);
    CHECKF(after.gemm_flops == p.gemm_flops, "evaluation counted: %.0f -> %.0f FLOPs", p.gemm_flops, after.gemm_flops);
    prof_enable(0);
    tuna_trainer_free(t);
    return p;
}

/* the accounting of one profiled step: FLOPs as expected, times consistent */
static void check_step(const char *what, const prof_totals *p, double want_flops, int dequant) {
    CHECKF(p->gemm_flops == want_flops, "%s: %.0f GEMM FLOPs counted, %.0f expected", what, p->gemm_flops, want_flops);
    CHECKF(p->steps == 1 && p->tokens == B * L, "%s: %lld steps, %lld tokens", what, (long long)p->steps, (long long)p->tokens);
    double sum = 0;
    for (int k = 0; k < PROF_KINDS; k++) {
        CHECKF(p->seconds[k] >= 0, "%s: %s %g s", what, prof_kind_name(k), p->seconds[k]);
        sum += p->seconds[k];
    }
    CHECKF(sum <= p->step_seconds, "%s: kinds %g s > step %g s", what, sum, p->step_seconds);
    CHECKF(p->seconds[PROF_GEMM] > 0 && p->seconds[PROF_ATTENTION] > 0, "%s: GEMM or attention not timed", what);
    CHECKF((p->seconds[PROF_DEQUANT] > 0) == dequant, "%s: dequantization %g s (tiles: %d)", what, p->seconds[PROF_DEQUANT], dequant);
    CHECK(fabs(prof_rest_seconds(p) - (p->step_seconds - sum)) < 1e-12);
}

static void test_flops(void) {
    tuna_pretok *d = make_data();
    tuna_model *m = NULL;
    CHECK(d != NULL);
    CHECKF(tuna_model_load(&m, FIX) == TUNA_OK, "%s", tuna_last_error());
    if (!d || !m) { tuna_pretok_free(d); tuna_model_free(m); return; }
    tuna_config cfg = *tuna_model_config(m); /* outlives the model, which is reloaded in NF4 below */
    const tuna_config *c = &cfg;
    double N = B * L;
    prof_totals off = one_step(m, d, 0);
    CHECKF(off.gemm_flops == 0 && off.steps == 0 && off.step_seconds == 0, "profiling off counted %.0f FLOPs", off.gemm_flops);
    prof_totals p = one_step(m, d, 1);
    check_step("full", &p, full_flops(c, N), 0);

    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    pc.r = R;
    snprintf(pc.targets, sizeof pc.targets, "all-linear");
    CHECKF(tuna_peft_attach(m, &pc, 1) == TUNA_OK, "%s", tuna_last_error());
    p = one_step(m, d, 1);
    check_step("lora", &p, lora_flops(c, N, R), 0);
    tuna_model_free(m);

    m = NULL;
    CHECKF(tuna_model_load_quantized(&m, FIX, TUNA_QUANT_NF4) == TUNA_OK, "%s", tuna_last_error());
    if (m && tuna_peft_attach(m, &pc, 1) == TUNA_OK) {
        p = one_step(m, d, 1);
        check_step("qlora", &p, lora_flops(c, N, R), 1);
    }
    tuna_model_free(m);
    tuna_pretok_free(d);
}

/* Runs cmd with stderr captured into err (n bytes); the exit status. */
static int run_capture(const char *cmd, char *err, size_t n) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *f = popen(full, "r");
    if (!f) return -1;
    size_t got = fread(err, 1, n - 1, f);
    err[got] = 0;
    int rc = pclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* the last line of dir/metrics.jsonl holds "profile" (with the kinds) */
static int metrics_profile(const char *dir) {
    char path[600], line[4096], last[4096] = "";
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) memcpy(last, line, sizeof last);
    fclose(f);
    json_t *o = json_loads(last, JSON_REJECT_DUPLICATES, NULL), *p = json_object_get(o, "profile");
    int ok = json_is_object(p);
    const char *keys[] = {"gemm_s", "dequant_s", "attention_s", "rest_s", "gemm_gflop_per_s", "tokens_per_s"};
    for (size_t k = 0; ok && k < sizeof keys / sizeof *keys; k++) ok = json_is_number(json_object_get(p, keys[k]));
    json_decref(o);
    return ok;
}

/* tuna sft with env and flags; 1 when the profile block and line appeared */
static int cli_profiled(const char *tmp, const char *env, const char *flags, const char *name) {
    char out[512], cmd[2048], err[16384];
    snprintf(out, sizeof out, "%s/%s", tmp, name);
    snprintf(cmd, sizeof cmd, "%s %s sft --model %s --data %s/data.jsonl --out %s --steps 2 --batch 2 --quiet %s", env,
             test_cli, FIX, FIX, out, flags);
    int rc = run_capture(cmd, err, sizeof err);
    CHECKF(rc == 0, "%s: exit %d: %s", cmd, rc, err);
    int block = strstr(err, "profile: 2 steps") && strstr(err, "  gemm ") && strstr(err, "GFLOP/s") &&
                strstr(err, "  dequant ") && strstr(err, "  attention ") && strstr(err, "  rest ");
    int line = metrics_profile(out);
    CHECKF(block == line, "%s: block printed %d, metrics line %d: %s", cmd, block, line, err);
    CHECKF(block || !strstr(err, "profile"), "%s printed a partial profile: %s", cmd, err);
    return block && line;
}

static void test_cli_flag(void) {
    if (!test_need_cli("the tuna CLI")) return;
    char tmp[256];
    if (test_tmpdir(tmp, sizeof tmp, "prof")) { check_failed++; return; }
    CHECKF(cli_profiled(tmp, "", "--profile", "on"), "--profile printed no profile");
    CHECKF(!cli_profiled(tmp, "TUNA_PROFILE=0", "", "off"), "a profile without --profile");
    CHECKF(cli_profiled(tmp, "TUNA_PROFILE=1", "", "env"), "TUNA_PROFILE=1 printed no profile");
    /* --profile is not a setting of the run: a checkpoint written without it
     * resumes with it, nothing listed as changed */
    char cmd[2048], err[16384];
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --out %s/ck --steps 2 --batch 2 --save-every 1 --quiet",
             test_cli, FIX, FIX, tmp);
    CHECKF(run_capture(cmd, err, sizeof err) == 0, "%s: %s", cmd, err);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --out %s/ck --steps 2 --batch 2 --save-every 1 "
             "--quiet --profile --resume %s/ck/checkpoint-1", test_cli, FIX, FIX, tmp, tmp);
    CHECKF(run_capture(cmd, err, sizeof err) == 0 && strstr(err, "profile: 1 steps") && !strstr(err, "note:"),
           "%s: %s", cmd, err);
    test_rmdir(tmp);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    test_flops();
    test_cli_flag();
    return test_done();
}
