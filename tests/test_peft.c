/* test_peft.c — LoRA, IA3, prompt tuning and QLoRA against references:
 *  - 5 training steps from a given adapter vs PEFT-semantics PyTorch
 *    (tests/fixtures/peft, tools/make_peft_fixtures.py): adapter tensors
 *    within 1e-4 relative L2, step losses within 1e-5 relative;
 *  - adapters round-trip through the PEFT file layout;
 *  - merging gives the unmerged logits within 1e-5 (library and `tuna merge`);
 *  - prompt tuning initialised from tokens X equals the base model run on X
 *    followed by the input; its gradient matches finite differences;
 *  - LoRA with dropout: gradients match finite differences under the same mask;
 *  - NF4: a quantized model's loss equals the fp32 model's with its linear
 *    weights replaced by their dequantized values, bit for bit;
 *  - bad adapters give one clear error and exit 2. */
#include <jansson.h>
#include <unistd.h>

#include "check.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "kernels/nf4.h"
#include "model_probe.h"
#include "tuna.h"
#include "tuna_peft.h"
#include "tuna_tokenizer.h"

static char tmpdir[256];

static int load(const char *dir, tuna_model **m) { return tuna_model_load(m, dir) == TUNA_OK; }

/* Writes a LlamaForCausalLM config.json of the given sizes. */
static void write_llama_config(const char *path, int V, int C, int FF, int L, int NH, int NKV, int max_pos, int tied) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":%d,\"hidden_size\":%d,"
               "\"intermediate_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
               "\"max_position_embeddings\":%d,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":%s}\n",
            V, C, FF, L, NH, NKV, max_pos, tied ? "true" : "false");
    fclose(f);
}

/* Mean step loss of the first `head` and the last `tail` steps in a run's metrics.jsonl. */
static void run_losses(const char *run_dir, int head, int tail, double *first, double *last) {
    char path[600], buf[1024];
    double loss[4096];
    int n = 0;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    while (f && n < 4096 && fgets(buf, sizeof buf, f)) {
        int step;
        if (sscanf(buf, "{\"step\":%d,\"epoch\":%*[^,],\"loss\":%lf", &step, &loss[n]) == 2) n++;
    }
    if (f) fclose(f);
    *first = *last = NAN;
    if (n < head || n < tail || head < 1 || tail < 1) return;
    double a = 0, b = 0;
    for (int i = 0; i < head; i++) a += loss[i];
    for (int i = n - tail; i < n; i++) b += loss[i];
    *first = a / head;
    *last = b / tail;
}

/* --- parity of 5 steps against the PyTorch fixtures --- */
static void test_train_parity(const char *name, int issue_command) {
    char dir[300], path[600], cmd[8192], out[400];
    snprintf(dir, sizeof dir, "tests/fixtures/peft/%s", name);
    snprintf(path, sizeof path, "%s/args.json", dir);
    if (!test_need(path, name)) return;
    json_error_t je;
    json_t *args = json_load_file(path, 0, &je);
    CHECKF(args != NULL, "%s: %s", path, je.text);
    if (!args) return;
    snprintf(out, sizeof out, "%s/%s%s", tmpdir, name, issue_command ? "_issue" : "");
    if (issue_command) {
        /* the exact command the issue names (r, alpha and dropout from the adapter's config) */
        snprintf(cmd, sizeof cmd,
                 "%s sft --model %s --data %s/data.jsonl --method lora --adapter %s/adapter0 --lora-targets q_proj,v_proj "
                 "--out %s --steps 5 --batch 2 --micro-batch 1 --seq-len 64 --lr 1e-3 --schedule constant --warmup 0 "
                 "--weight-decay 0 --grad-clip 0 --no-shuffle --seed 0 --quiet",
                 test_cli, dir, dir, dir, out);
    } else {
        int n = snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --out %s --quiet", test_cli, dir, dir, out);
        json_t *cli = json_object_get(args, "cli"), *v;
        size_t i;
        int next_is_adapter = 0;
        json_array_foreach(cli, i, v) {
            const char *s = json_string_value(v);
            n += snprintf(cmd + n, sizeof cmd - n, next_is_adapter ? " %s/%s" : " %s", next_is_adapter ? dir : s,
                          next_is_adapter ? s : "");
            next_is_adapter = !strcmp(s, "--adapter");
        }
    }
    json_decref(args);
    CHECKF(system(cmd) == 0, "%s", cmd);
    st_file got, want, steps;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
    int ok1 = st_open(&got, path) == TUNA_OK;
    snprintf(path, sizeof path, "%s/expected/adapter_model.safetensors", dir);
    int ok2 = st_open(&want, path) == TUNA_OK;
    snprintf(path, sizeof path, "%s/expected_steps.safetensors", dir);
    int ok3 = st_open(&steps, path) == TUNA_OK;
    CHECK(ok1 && ok2 && ok3);
    if (!(ok1 && ok2 && ok3)) return;
    CHECKF(got.n_tensors == want.n_tensors, "%s: %d tensors written, %d expected", name, got.n_tensors, want.n_tensors);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < want.n_tensors; i++) {
        const st_tensor *w = &want.tensors[i], *g = st_find(&got, w->name);
        CHECKF(g && g->numel == w->numel && g->ndim == 2 && g->shape[0] == w->shape[0], "%s: tensor %s", name, w->name);
        if (!g || g->numel != w->numel) continue;
        float *a = malloc(w->numel * sizeof(float)), *b = malloc(w->numel * sizeof(float));
        st_to_f32(g, a);
        st_to_f32(w, b);
        double e = rel_l2(a, b, w->numel);
        if (e > worst) { worst = e; worst_name = w->name; }
        CHECKF(e <= 1e-4, "%s: %s rel %.3g", name, w->name, e);
        free(a);
        free(b);
    }
    float want_loss[5] = {0}, want_norm[5] = {0};
    const st_tensor *tl = st_find(&steps, "step_loss"), *tn = st_find(&steps, "step_grad_norm");
    if (tl && tl->numel == 5) st_to_f32(tl, want_loss);
    if (tn && tn->numel == 5) st_to_f32(tn, want_norm);
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    FILE *f = fopen(path, "r");
    char buf[4096];
    double worst_loss = 0, worst_norm = 0;
    int n = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        int step;
        double loss, gn;
        if (sscanf(buf, "{\"step\":%d,\"epoch\":%*[^,],\"loss\":%lf,\"lr\":%*[^,],\"grad_norm\":%lf", &step, &loss, &gn) == 3 &&
            step >= 1 && step <= 5) {
            worst_loss = fmax(worst_loss, fabs(loss - want_loss[step - 1]) / fabs(want_loss[step - 1]));
            worst_norm = fmax(worst_norm, fabs(gn - want_norm[step - 1]) / fabs(want_norm[step - 1]));
            n++;
        }
    }
    if (f) fclose(f);
    CHECK(n == 5);
    CHECKF(worst_loss <= 1e-5, "%s: step loss rel %.3g", name, worst_loss);
    CHECKF(worst_norm <= 1e-4, "%s: grad norm rel %.3g", name, worst_norm);
    printf("%s%s: adapter worst rel %.2g (%.0f%% of 1e-4, %s); step loss worst rel %.2g; grad norm worst rel %.2g\n", name,
           issue_command ? " (issue's command)" : "", worst, worst / 1e-4 * 100, worst_name, worst_loss, worst_norm);
    st_close(&got);
    st_close(&want);
    st_close(&steps);
}

/* --- logits helpers --- */
static int logits_of(tuna_model *m, const int32_t *ids, int B, int T, float *out) {
    if (tuna_model_prepare(m, B, T, TUNA_MODE_EVAL) != TUNA_OK) return 0;
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids};
    if (tuna_model_forward(m, &bt, NULL) != TUNA_OK) return 0;
    const tuna_config *c = tuna_model_config(m);
    int P = probe_virtual_tokens(m);
    const float *lg = tuna_model_logits(m);
    /* drop the virtual-token rows of prompt tuning */
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * T * c->V, lg + ((size_t)b * (T + P) + P) * c->V, (size_t)T * c->V * sizeof(float));
    return 1;
}

static void make_ids(int32_t *ids, int n, int V, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        ids[i] = (int)((seed >> 8) % (unsigned)V);
    }
}

/* --- merge: library and CLI --- */
static void test_merge(const char *name) {
    char dir[300], ad[400], out[400], cmd[4096];
    snprintf(dir, sizeof dir, "tests/fixtures/peft/%s", name);
    snprintf(ad, sizeof ad, "%s/expected", dir);
    tuna_model *m = NULL, *mm = NULL;
    if (!load(dir, &m)) { CHECK(0); return; }
    const tuna_config *c = tuna_model_config(m);
    int B = 2, T = 12;
    int32_t ids[24];
    make_ids(ids, B * T, c->V, 7);
    size_t nl = (size_t)B * T * c->V;
    float *base = malloc(nl * sizeof(float)), *unmerged = malloc(nl * sizeof(float)), *merged = malloc(nl * sizeof(float)),
          *cli = malloc(nl * sizeof(float));
    CHECK(logits_of(m, ids, B, T, base));
    CHECKF(tuna_peft_load(m, ad) == TUNA_OK, "%s", tuna_last_error());
    CHECK(logits_of(m, ids, B, T, unmerged));
    CHECK(rel_l2(unmerged, base, (long)nl) > 1e-4); /* the adapter changes the output */
    CHECK(tuna_peft_merge(m) == TUNA_OK);
    CHECK(tuna_peft_get(m) == NULL);
    CHECK(logits_of(m, ids, B, T, merged));
    double e = rel_l2(merged, unmerged, (long)nl);
    CHECKF(e <= 1e-5, "%s: merged vs unmerged logits rel %.3g", name, e);
    snprintf(out, sizeof out, "%s/merged_%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "%s merge --model %s --adapter %s --out %s 2>/dev/null", test_cli, dir, ad, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    double e2 = 1;
    if (load(out, &mm)) {
        CHECK(logits_of(mm, ids, B, T, cli));
        e2 = rel_l2(cli, unmerged, (long)nl);
    }
    CHECKF(e2 <= 1e-5, "%s: tuna merge output vs unmerged logits rel %.3g", name, e2);
    printf("%s merge: library rel %.2g, CLI rel %.2g (budget 1e-5)\n", name, e, e2);
    tuna_model_free(mm);
    tuna_model_free(m);
    free(base); free(unmerged); free(merged); free(cli);
}

/* --- PEFT layout round trip --- */
static void test_roundtrip(void) {
    const char *dir = "tests/fixtures/peft/gpt2_lora";
    tuna_model *m = NULL, *m2 = NULL;
    if (!load(dir, &m) || !load(dir, &m2)) { CHECK(0); return; }
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_LORA);
    c.r = 3;
    c.alpha = 6;
    c.rslora = 1;
    snprintf(c.targets, sizeof c.targets, "all-linear");
    snprintf(c.base_model, sizeof c.base_model, "%s", dir);
    CHECK(tuna_peft_attach(m, &c, 5) == TUNA_OK);
    CHECK(tuna_peft_num_adapted(m) == 4 * tuna_model_config(m)->L);
    /* PEFT init: B zero, A uniform in +-1/sqrt(in) and not zero */
    int np = probe_adapter_tensors(m);
    CHECK(np > 0);
    int a_ok = 1, b_zero = 1, a_nonzero = 0;
    for (int i = 0; i < np; i++) {
        tuna_param *t = probe_adapter_tensor(m, i);
        int isA = strstr(t->name, "lora_A") != NULL;
        float bound = 1.0f / sqrtf((float)t->shape[1]);
        for (int64_t j = 0; j < t->numel; j++) {
            if (isA) { a_ok &= fabsf(t->data[j]) <= bound; a_nonzero |= t->data[j] != 0; }
            else b_zero &= t->data[j] == 0;
        }
        /* give B values so the round trip is not trivially zero */
        if (!isA) for (int64_t j = 0; j < t->numel; j++) t->data[j] = 0.01f * (float)((j * 7 + i) % 13 - 6);
    }
    CHECK(a_ok && b_zero && a_nonzero);
    /* base frozen: no base gradient, even after preparing for training */
    CHECK(tuna_model_prepare(m, 1, 8, TUNA_MODE_TRAIN) == TUNA_OK);
    int any_grad = 0;
    for (int i = 0; i < tuna_model_num_params(m); i++) any_grad |= tuna_model_param(m, i)->grad != NULL;
    CHECK(!any_grad);
    char out[400], path[500];
    snprintf(out, sizeof out, "%s/rt_adapter", tmpdir);
    CHECK(tuna_peft_save(m, out) == TUNA_OK);
    snprintf(path, sizeof path, "%s/adapter_config.json", out);
    json_t *o = json_load_file(path, 0, NULL);
    CHECK(o != NULL);
    if (o) {
        CHECK(!strcmp(json_string_value(json_object_get(o, "peft_type")), "LORA"));
        CHECK(json_integer_value(json_object_get(o, "r")) == 3);
        CHECK(json_number_value(json_object_get(o, "lora_alpha")) == 6);
        CHECK(json_is_true(json_object_get(o, "fan_in_fan_out")));
        CHECK(json_is_true(json_object_get(o, "use_rslora")));
        CHECK(!strcmp(json_string_value(json_object_get(o, "bias")), "none"));
        CHECK(!strcmp(json_string_value(json_object_get(o, "task_type")), "CAUSAL_LM"));
        CHECK(!strcmp(json_string_value(json_object_get(o, "base_model_name_or_path")), dir));
        CHECK(json_array_size(json_object_get(o, "target_modules")) == 3); /* all-linear saved as names */
        json_decref(o);
    }
    st_file f;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
    CHECK(st_open(&f, path) == TUNA_OK);
    const st_tensor *a = st_find(&f, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
    const st_tensor *b = st_find(&f, "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight");
    CHECK(a && a->shape[0] == 3 && a->shape[1] == tuna_model_config(m)->C);
    CHECK(b && b->shape[0] == tuna_model_config(m)->C && b->shape[1] == 3);
    st_close(&f);
    CHECKF(tuna_peft_load(m2, out) == TUNA_OK, "%s", tuna_last_error());
    const tuna_config *cf = tuna_model_config(m);
    int32_t ids[16];
    make_ids(ids, 16, cf->V, 3);
    float *l1 = malloc((size_t)16 * cf->V * sizeof(float)), *l2 = malloc((size_t)16 * cf->V * sizeof(float));
    CHECK(logits_of(m, ids, 2, 8, l1) && logits_of(m2, ids, 2, 8, l2));
    CHECK(memcmp(l1, l2, (size_t)16 * cf->V * sizeof(float)) == 0);
    free(l1);
    free(l2);
    tuna_model_free(m);
    tuna_model_free(m2);
}

/* --- finite differences over a few adapter scalars --- */
static double loss_of(tuna_model *m, const tuna_batch *bt, uint64_t forwards) {
    probe_set_forward_count(m, forwards); /* same dropout mask for every evaluation */
    tuna_loss l;
    if (tuna_model_forward(m, bt, &l) != TUNA_OK) return NAN;
    probe_forget_forward(m);
    return l.loss_sum / (double)l.tokens;
}

static void fd_check(tuna_model *m, const char *what) {
    const tuna_config *c = tuna_model_config(m);
    int B = 2, T = 10;
    int32_t ids[20], labels[20];
    make_ids(ids, B * T, c->V, 11);
    for (int i = 0; i < B * T; i++) labels[i] = i % T < 3 ? -100 : ids[i];
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = labels};
    CHECK(tuna_model_prepare(m, B, T, TUNA_MODE_TRAIN) == TUNA_OK);
    tuna_peft_set_training(m, 1);
    tuna_model_zero_grad(m);
    probe_set_forward_count(m, 41);
    tuna_loss l;
    CHECK(tuna_model_forward(m, &bt, &l) == TUNA_OK);
    CHECK(tuna_model_backward(m, &bt, (float)(1.0 / l.tokens)) == TUNA_OK);
    int np = probe_adapter_tensors(m);
    CHECK(np > 0);
    double worst = 0;
    int probes = 0;
    for (int i = 0; i < np; i++) {
        tuna_param *t = probe_adapter_tensor(m, i);
        int64_t jmax = 0; /* the largest gradient gives a meaningful relative check */
        for (int64_t j = 1; j < t->numel; j++)
            if (fabsf(t->grad[j]) > fabsf(t->grad[jmax])) jmax = j;
        for (int k = 0; k < 3; k++) {
            int64_t j = k == 0 ? jmax : (t->numel * (2 * k + 1)) / 6;
            float save = t->data[j];
            double h = 1e-2 * fmax(fabs(save), 0.1);
            t->data[j] = (float)(save + h);
            double lp = loss_of(m, &bt, 41);
            t->data[j] = (float)(save - h);
            double lm = loss_of(m, &bt, 41);
            t->data[j] = save;
            double fd = (lp - lm) / (2 * h), g = t->grad[j];
            /* fp32 central differences carry ~1e-4 absolute noise: small gradients are held to that */
            double e = fabs(fd - g) / fmax(fmax(fabs(fd), fabs(g)), 1e-2);
            if (e > worst && getenv("FD_DEBUG")) printf("  %s[%lld]: fd %.6g grad %.6g\n", t->name, (long long)j, fd, g);
            worst = fmax(worst, e);
            probes++;
        }
    }
    tuna_peft_set_training(m, 0);
    CHECKF(worst < 2e-2, "%s: finite differences worst rel %.3g", what, worst);
    printf("%s: %d finite-difference probes, worst rel %.2g\n", what, probes, worst);
}

static void test_lora_dropout_fd(void) {
    tuna_model *m = NULL;
    if (!load("tests/fixtures/peft/llama_lora", &m)) { CHECK(0); return; }
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_LORA);
    c.r = 2;
    c.alpha = 4;
    c.dropout = 0.3f;
    snprintf(c.targets, sizeof c.targets, "q_proj,o_proj,up_proj,down_proj");
    CHECK(tuna_peft_attach(m, &c, 3) == TUNA_OK);
    /* non-zero B so that A gets gradient */
    int np = probe_adapter_tensors(m);
    CHECK(np > 0);
    for (int i = 0; i < np; i++) {
        tuna_param *t = probe_adapter_tensor(m, i);
        if (strstr(t->name, "lora_B"))
            for (int64_t j = 0; j < t->numel; j++) t->data[j] = 0.05f * (float)((j * 5 + i) % 11 - 5);
    }
    fd_check(m, "LoRA with dropout 0.3");
    /* dropout is active only in training: two eval forwards agree, and differ from a training one */
    const tuna_config *cf = tuna_model_config(m);
    int32_t ids[8];
    make_ids(ids, 8, cf->V, 5);
    float *e1 = malloc((size_t)8 * cf->V * sizeof(float)), *e2 = malloc((size_t)8 * cf->V * sizeof(float));
    logits_of(m, ids, 1, 8, e1);
    tuna_peft_set_training(m, 1);
    logits_of(m, ids, 1, 8, e2);
    tuna_peft_set_training(m, 0);
    CHECK(memcmp(e1, e2, (size_t)8 * cf->V * sizeof(float)) != 0);
    logits_of(m, ids, 1, 8, e2);
    CHECK(memcmp(e1, e2, (size_t)8 * cf->V * sizeof(float)) == 0);
    free(e1);
    free(e2);
    tuna_model_free(m);
}

static void test_prompt_tuning(void) {
    const char *dir = "tests/fixtures/peft/llama_lora";
    tuna_model *m = NULL, *base = NULL;
    if (!load(dir, &m) || !load(dir, &base)) { CHECK(0); return; }
    const tuna_config *c = tuna_model_config(m);
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_PROMPT);
    pc.num_virtual_tokens = 5;
    CHECK(tuna_peft_attach(m, &pc, 1) == TUNA_OK);
    int32_t prefix[3] = {5, 9, 2}; /* repeated to 5: 5 9 2 5 9 */
    CHECK(tuna_peft_prompt_init_tokens(m, prefix, 3) == TUNA_OK);
    int T = 7;
    int32_t ids[7], full[12];
    make_ids(ids, T, c->V, 9);
    for (int i = 0; i < 5; i++) full[i] = prefix[i % 3];
    memcpy(full + 5, ids, sizeof ids);
    float *a = malloc((size_t)T * c->V * sizeof(float)), *b = malloc((size_t)12 * c->V * sizeof(float));
    CHECK(logits_of(m, ids, 1, T, a));
    CHECK(logits_of(base, full, 1, 12, b));
    double e = rel_l2(a, b + (size_t)5 * c->V, (long)T * c->V);
    CHECKF(e < 1e-6, "prompt tuning vs base on prefix+input: rel %.3g", e);
    /* the loss counts the first real token too (predicted from the last virtual one) */
    int32_t lab[7];
    memcpy(lab, ids, sizeof lab);
    tuna_batch bt = {.B = 1, .T = T, .input_ids = ids, .labels = lab};
    tuna_loss l;
    CHECK(tuna_model_forward(m, &bt, &l) == TUNA_OK);
    CHECK(l.tokens == T);
    probe_forget_forward(m);
    fd_check(m, "prompt tuning");
    char out[400];
    snprintf(out, sizeof out, "%s/prompt_adapter", tmpdir);
    CHECK(tuna_peft_save(m, out) == TUNA_OK);
    tuna_model *m2 = NULL;
    load(dir, &m2);
    CHECKF(m2 && tuna_peft_load(m2, out) == TUNA_OK, "%s", tuna_last_error());
    float *a2 = malloc((size_t)T * c->V * sizeof(float));
    CHECK(m2 && logits_of(m2, ids, 1, T, a2) && logits_of(m, ids, 1, T, a));
    CHECK(memcmp(a, a2, (size_t)T * c->V * sizeof(float)) == 0);
    CHECK(tuna_peft_merge(m) == TUNA_ERR_UNSUPPORTED);
    free(a); free(a2); free(b);
    tuna_model_free(m);
    tuna_model_free(m2);
    tuna_model_free(base);
}

/* GPT-2's learned positions bound T + virtual tokens: a clear error, no read past wpe */
static void test_prompt_positions(void) {
    tuna_model *m = NULL;
    if (!load("tests/fixtures/peft/gpt2_lora", &m)) { CHECK(0); return; }
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_PROMPT);
    c.num_virtual_tokens = 10;
    CHECK(tuna_peft_attach(m, &c, 1) == TUNA_OK);
    int32_t ids[60] = {0};
    CHECK(tuna_model_prepare(m, 1, 60, TUNA_MODE_EVAL) == TUNA_OK);
    tuna_batch bt = {.B = 1, .T = 60, .input_ids = ids};
    CHECK(tuna_model_forward(m, &bt, NULL) == TUNA_ERR_ARG && strstr(tuna_last_error(), "virtual tokens"));
    bt.T = 54;
    CHECK(tuna_model_forward(m, &bt, NULL) == TUNA_OK);
    tuna_model_free(m);
}

static void test_ia3_fd(void) {
    tuna_model *m = NULL;
    if (!load("tests/fixtures/peft/gpt2_lora", &m)) { CHECK(0); return; }
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_IA3); /* GPT-2 defaults: c_attn (output, with bias), mlp.c_proj (input) */
    CHECK(tuna_peft_attach(m, &c, 2) == TUNA_OK);
    CHECK(tuna_peft_num_adapted(m) == 2 * tuna_model_config(m)->L);
    int np = probe_adapter_tensors(m);
    CHECK(np > 0);
    for (int i = 0; i < np; i++) {
        tuna_param *t = probe_adapter_tensor(m, i);
        for (int64_t j = 0; j < t->numel; j++) t->data[j] = 1.0f + 0.1f * (float)((j * 3 + i) % 7 - 3);
    }
    fd_check(m, "IA3 on GPT-2 (c_attn, mlp.c_proj)");
    tuna_model_free(m);
}

/* --- NF4: quantized eval equals fp32 eval on the dequantized weights --- */
static void test_nf4_model(void) {
    const char *dir = "tests/fixtures/peft/llama_lora";
    tuna_model *q = NULL, *f = NULL;
    CHECK(tuna_model_load_quantized(&q, dir, TUNA_QUANT_NF4) == TUNA_OK);
    if (!q || !load(dir, &f)) { CHECK(0); return; }
    int64_t qn = 0, qb = 0;
    tuna_model_quant_stats(q, &qn, &qb);
    CHECK(qn > 0 && qn + tuna_model_param_count(q) == tuna_model_param_count(f));
    /* replace f's linear weights by nf4 round trips */
    tuna_linear *lq[64], *lf[64];
    int n = probe_linears(q, lq);
    probe_linears(f, lf);
    int all_quant = 1;
    int64_t want_n = 0, want_bytes = 0; /* each weight is its own NF4 tensor */
    for (int i = 0; i < n; i++) {
        all_quant &= lq[i]->stored != NULL && lq[i]->w == NULL;
        want_n += (int64_t)lq[i]->OC * lq[i]->IC;
        want_bytes += tuna_nf4_bytes((int64_t)lq[i]->OC * lq[i]->IC);
        if (!lq[i]->stored) continue;
        nf4_dequantize(lf[i]->w, &lq[i]->stored->nf4, 0, (int64_t)lf[i]->OC * lf[i]->IC);
    }
    CHECK(all_quant);
    CHECKF(qn == want_n && qb == want_bytes, "quant stats: %lld weights in %lld bytes, expected %lld in %lld", (long long)qn,
           (long long)qb, (long long)want_n, (long long)want_bytes);
    const tuna_config *c = tuna_model_config(f);
    int32_t ids[24];
    make_ids(ids, 24, c->V, 13);
    float *a = malloc((size_t)24 * c->V * sizeof(float)), *b = malloc((size_t)24 * c->V * sizeof(float));
    CHECK(logits_of(q, ids, 2, 12, a) && logits_of(f, ids, 2, 12, b));
    CHECK(memcmp(a, b, (size_t)24 * c->V * sizeof(float)) == 0);
    /* a quantized base cannot be saved or merged into */
    char out[400];
    snprintf(out, sizeof out, "%s/nf4_save", tmpdir);
    CHECK(tuna_model_save(q, out, TUNA_DTYPE_F32) == TUNA_ERR_UNSUPPORTED);
    free(a);
    free(b);
    tuna_model_free(q);
    tuna_model_free(f);
}

/* --- NF4 weights larger than one dequantization tile (LINEAR_TILE values):
 * forward and the input gradients through the tiles equal those of an fp32
 * model holding the dequantized weights --- */
static void test_nf4_tiles(void) {
    tuna_config cfg;
    char dir[400], path[500];
    snprintf(dir, sizeof dir, "%s/tiles", tmpdir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    /* gate/up 2560x512 and down 512x2560: 1.31 M values each, two tiles */
    write_llama_config(path, 64, 512, 2560, 1, 4, 4, 32, 1);
    tuna_model *src = NULL, *q = NULL, *fp = NULL;
    CHECK(tuna_config_load(&cfg, path) == TUNA_OK && tuna_model_create(&src, &cfg) == TUNA_OK);
    if (!src) return;
    tuna_model_init_random(src, 4);
    CHECK(tuna_model_save(src, dir, TUNA_DTYPE_F32) == TUNA_OK);
    tuna_model_free(src);
    CHECK(tuna_model_load_quantized(&q, dir, TUNA_QUANT_NF4) == TUNA_OK && load(dir, &fp));
    if (!q || !fp) { tuna_model_free(q); tuna_model_free(fp); return; }
    tuna_linear *lq[16], *lf[16];
    int n = probe_linears(q, lq);
    probe_linears(fp, lf);
    for (int i = 0; i < n; i++) nf4_dequantize(lf[i]->w, &lq[i]->stored->nf4, 0, (int64_t)lf[i]->OC * lf[i]->IC);
    CHECK((int64_t)lq[5]->OC * lq[5]->IC > LINEAR_TILE); /* up_proj spans tiles */
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_LORA);
    c.r = 4;
    snprintf(c.targets, sizeof c.targets, "all-linear");
    CHECK(tuna_peft_attach(q, &c, 9) == TUNA_OK && tuna_peft_attach(fp, &c, 9) == TUNA_OK);
    tuna_model *ms[2] = {q, fp};
    for (int k = 0; k < 2; k++) {
        int np = probe_adapter_tensors(ms[k]);
        CHECK(np > 0);
        for (int i = 0; i < np; i++) {
            tuna_param *t = probe_adapter_tensor(ms[k], i);
            if (strstr(t->name, "lora_B"))
                for (int64_t j = 0; j < t->numel; j++) t->data[j] = 0.02f * (float)((j * 7 + i) % 9 - 4);
        }
    }
    int32_t ids[32], lab[32];
    make_ids(ids, 32, 64, 21);
    memcpy(lab, ids, sizeof lab);
    tuna_batch bt = {.B = 2, .T = 16, .input_ids = ids, .labels = lab};
    double loss[2];
    for (int k = 0; k < 2; k++) {
        tuna_loss l;
        CHECK(tuna_model_prepare(ms[k], 2, 16, TUNA_MODE_TRAIN) == TUNA_OK);
        tuna_model_zero_grad(ms[k]);
        CHECK(tuna_model_forward(ms[k], &bt, &l) == TUNA_OK);
        loss[k] = l.loss_sum;
        CHECK(tuna_model_backward(ms[k], &bt, 1.0f / (float)l.tokens) == TUNA_OK);
    }
    int64_t ng[2] = {0, 0};
    const float *g0 = probe_adapter_grads(q, &ng[0]), *g1 = probe_adapter_grads(fp, &ng[1]);
    double e = g0 && g1 && ng[0] == ng[1] ? rel_l2(g0, g1, (long)ng[0]) : INFINITY;
    CHECKF(fabs(loss[0] - loss[1]) <= 1e-6 * fabs(loss[1]) && e < 1e-5, "NF4 tiles: loss %.9g vs %.9g, adapter grads rel %.3g",
           loss[0], loss[1], e);
    printf("NF4 tiled forward/backward vs fp32 on the dequantized weights: loss rel %.2g, adapter grads rel %.2g\n",
           fabs(loss[0] - loss[1]) / fabs(loss[1]), e);
    tuna_model_free(q);
    tuna_model_free(fp);
}

/* --- QLoRA training through the CLI: loss falls, adapter written --- */
static void test_qlora_cli(void) {
    char cmd[2048], out[400], path[500];
    const char *dir = "tests/fixtures/peft/llama_lora";
    snprintf(out, sizeof out, "%s/qlora", tmpdir);
    snprintf(cmd, sizeof cmd,
             "%s sft --model %s --data %s/data.jsonl --method qlora --lora-r 4 --lora-targets all-linear --out %s "
             "--steps 12 --batch 2 --lr 3e-3 --no-shuffle --quiet",
             test_cli, dir, dir, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    double first, last;
    run_losses(out, 2, 2, &first, &last);
    CHECKF(last < first, "QLoRA loss %.4f -> %.4f", first, last);
    FILE *f;
    char buf[1024];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECK(access(path, F_OK) != 0); /* the base is not written */
    /* eval with the adapter on the NF4 base runs; merge says QLoRA merges into the original weights */
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/data.jsonl --adapter %s --quant nf4 --json > %s/e.json", test_cli, dir,
             dir, out, tmpdir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s merge --model %s --adapter %s --out %s/qm 2> %s/merge.err", test_cli, dir, out, tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/merge.err", tmpdir);
    f = fopen(path, "r");
    size_t nr = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[nr] = 0;
    if (f) fclose(f);
    CHECKF(strstr(buf, "qlora") != NULL && strstr(buf, "original"), "merge note: %s", buf);
}

/* --- a LoRA rank above a target layer's smaller dimension is refused before training --- */
static void test_rank_limit(void) {
    const char *dir = "tests/fixtures/peft/llama_lora"; /* C 64, k_proj/v_proj 64 -> 16 */
    tuna_model *m = NULL;
    if (!load(dir, &m)) { CHECK(0); return; }
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_LORA);
    snprintf(c.targets, sizeof c.targets, "all-linear");
    c.r = 17;
    CHECK(tuna_peft_attach(m, &c, 1) == TUNA_ERR_ARG);
    const char *e = tuna_last_error();
    CHECKF(strstr(e, "r = 17") && strstr(e, "model.layers.0.self_attn.k_proj") && strstr(e, "in 64, out 16"), "%s", e);
    c.r = 16;
    CHECK(tuna_peft_attach(m, &c, 1) == TUNA_OK);
    tuna_model_free(m);
    /* the CLI: exit 2, one line naming the layer and both numbers, no output folder */
    char cmd[3000], out[400], err[500], buf[1024] = "";
    snprintf(out, sizeof out, "%s/rank", tmpdir);
    snprintf(err, sizeof err, "%s/rank.err", tmpdir);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --method lora --lora-r 40 --lora-targets q_proj,v_proj --out %s --steps 1 2> %s",
             test_cli, dir, dir, out, err);
    int rc = system(cmd);
    FILE *f = fopen(err, "r");
    size_t nr = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[nr] = 0;
    if (f) fclose(f);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "exit %d: %s", WEXITSTATUS(rc), buf);
    CHECKF(strstr(buf, "r = 40") && strstr(buf, "v_proj") && strstr(buf, "= 16"), "%s", buf);
    CHECK(access(out, F_OK) != 0);
}

/* --- exact resume of an adapter run with dropout --- */
static void test_resume(void) {
    char cmd[4096], a[400], b[400], p1[500], p2[500];
    const char *dir = "tests/fixtures/peft/gpt2_lora";
    const char *common = "--method lora --lora-r 4 --lora-dropout 0.2 --lora-targets c_attn,c_fc --batch 2 --micro-batch 1 "
                         "--lr 1e-2 --seed 3 --quiet";
    snprintf(a, sizeof a, "%s/resume_a", tmpdir);
    snprintf(b, sizeof b, "%s/resume_b", tmpdir);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --steps 4 %s --out %s", test_cli, dir, dir, common, a);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --steps 4 --save-every 2 %s --out %s", test_cli, dir, dir,
             common, b);
    CHECK(system(cmd) == 0);
    /* a second run that resumes from the step-2 checkpoint */
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --steps 4 %s --out %s_r --resume %s/checkpoint-2", test_cli,
             dir, dir, common, b, b);
    CHECK(system(cmd) == 0);
    snprintf(p1, sizeof p1, "%s/adapter_model.safetensors", a);
    snprintf(p2, sizeof p2, "%s_r/adapter_model.safetensors", b);
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", p1, p2);
    CHECKF(system(cmd) == 0, "adapter after resume differs from the uninterrupted run");
    snprintf(p2, sizeof p2, "%s/checkpoint-2/adapter_config.json", b);
    CHECK(access(p2, F_OK) == 0);
}

/* --- prompt tuning through the CLI, TEXT init from the model's tokenizer --- */
static void test_prompt_cli(void) {
    char d[300], cmd[4096], path[500];
    snprintf(d, sizeof d, "%s/ptm", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/model", d);
    CHECK(system(cmd) == 0);
    /* a tiny corpus, tokenizer and Llama model with that tokenizer */
    snprintf(path, sizeof path, "%s/text.txt", d);
    FILE *f = fopen(path, "w");
    const char *w[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "the", "park", "with", "ball"};
    for (int i = 0; i < 400; i++) fprintf(f, "%s %s %s %s.\n", w[i % 14], w[(i * 3 + 1) % 14], w[(i * 5 + 2) % 14], w[(i * 7 + 3) % 14]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s tokenizer train --data %s --vocab-size 300 --out %s/model >/dev/null 2>&1", test_cli, path, d);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/arch.json", d);
    write_llama_config(path, 300, 32, 64, 2, 4, 2, 128, 1);
    snprintf(cmd, sizeof cmd, "%s init --config %s --out %s/model --seed 2 >/dev/null", test_cli, path, d);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/data.jsonl", d);
    f = fopen(path, "w");
    for (int i = 0; i < 16; i++) fprintf(f, "{\"prompt\":\"%s %s\",\"completion\":\" %s %s\"}\n", w[i % 14], w[(i + 3) % 14], w[(i + 5) % 14], w[(i + 1) % 14]);
    fclose(f);
    /* lr 0: the saved prompt is exactly the TEXT init */
    snprintf(cmd, sizeof cmd, "%s sft --model %s/model --data %s --method prompt --num-virtual-tokens 7 --prompt-init 'the cat sat' "
                              "--lr 0 --steps 1 --batch 2 --no-cache --quiet --out %s/p0", test_cli, d, path, d);
    CHECKF(system(cmd) == 0, "%s", cmd);
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    char md[400];
    snprintf(md, sizeof md, "%s/model", d);
    CHECK(load(md, &m) && tuna_tokenizer_load(&tok, md) == TUNA_OK);
    snprintf(md, sizeof md, "%s/p0", d);
    if (m && tok) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(tuna_tokenizer_encode(tok, "the cat sat", 11, 1, &ids, &n) == TUNA_OK && n > 0);
        CHECKF(tuna_peft_load(m, md) == TUNA_OK, "%s", tuna_last_error());
        const tuna_peft_config *c = tuna_peft_get(m);
        CHECK(c && c->type == TUNA_PEFT_PROMPT && c->num_virtual_tokens == 7 && c->init_from_text &&
              !strcmp(c->init_text, "the cat sat"));
        int same = c != NULL && n > 0;
        int C = tuna_model_config(m)->C;
        for (int i = 0; same && i < 7; i++)
            same = !memcmp(probe_adapter_prompt(m) + (size_t)i * C, probe_embedding(m) + (size_t)ids[i % n] * C, (size_t)C * sizeof(float));
        CHECKF(same, "prompt rows are the embeddings of the init text's %zu tokens, repeated", n);
        free(ids);
    }
    tuna_tokenizer_free(tok);
    tuna_model_free(m);
    /* training moves the loss down */
    snprintf(cmd, sizeof cmd, "%s sft --model %s/model --data %s --method prompt --num-virtual-tokens 4 --steps 15 --batch 4 "
                              "--no-shuffle --no-cache --quiet --out %s/p1", test_cli, d, path, d);
    CHECK(system(cmd) == 0);
    snprintf(md, sizeof md, "%s/p1", d);
    double first, last;
    run_losses(md, 1, 1, &first, &last);
    CHECKF(last < first, "prompt tuning loss %.4f -> %.4f", first, last);
    /* TEXT init needs a tokenizer: a model folder without one is a usage error */
    snprintf(cmd, sizeof cmd, "%s sft --model tests/fixtures/peft/llama_lora --data tests/fixtures/peft/llama_lora/data.jsonl "
                              "--method prompt --prompt-init 'hello' --steps 1 --quiet --out %s/p2 2>/dev/null", test_cli, d);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

/* --- tuna info --quant nf4 reports the QLoRA storage --- */
static void test_info_quant(void) {
    char d[300], cmd[4096], path[400];
    snprintf(d, sizeof d, "%s/infoq", tmpdir);
    snprintf(path, sizeof path, "%s/arch.json", tmpdir);
    write_llama_config(path, 256, 256, 1024, 2, 4, 4, 64, 0);
    snprintf(cmd, sizeof cmd, "%s init --config %s --out %s >/dev/null && %s info --model %s --quant nf4 --json > %s/info.json", test_cli,
             path, d, test_cli, d, tmpdir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/info.json", tmpdir);
    json_t *o = json_load_file(path, 0, NULL);
    CHECK(o != NULL);
    double bits = json_number_value(json_object_get(o, "bits_per_quantized_parameter"));
    long long qn = json_integer_value(json_object_get(o, "quantized_parameters"));
    /* 2 layers x (4 x 256x256 + 3 x 256x1024) */
    CHECKF(qn == 2LL * (4 * 65536 + 3 * 262144), "quantized parameters %lld", qn);
    CHECKF(bits > 4.12 && bits < 4.14, "bits per quantized parameter %.4f", bits);
    CHECK(json_integer_value(json_object_get(o, "parameters")) == qn + 2 * 256 * 256 + 5 * 256);
    printf("info --quant nf4: %lld quantized weights at %.4f bits each\n", qn, bits);
    json_decref(o);
}

/* --- bad adapters: one line, exit 2 --- */
/* forward of bt; its logits ([B, P+T, V]) copied to out */
static void forward_logits(tuna_model *m, const tuna_batch *bt, float *out) {
    tuna_loss l;
    CHECK(tuna_model_forward(m, bt, &l) == TUNA_OK);
    int P = probe_virtual_tokens(m);
    memcpy(out, tuna_model_logits(m), (size_t)bt->B * (bt->T + P) * tuna_model_config(m)->V * sizeof(float));
}

static int adapted_linears(tuna_model *m) {
    tuna_linear *ls[8 * 1024];
    int n = probe_linears(m, ls), k = 0;
    for (int i = 0; i < n; i++) k += ls[i]->adapter != NULL;
    return k;
}

/* An allocation failure in adapter setup (the nth allocation of
 * tuna_peft_attach, then of the adapter buffers a larger tuna_model_prepare
 * needs; n = 1, 2, ... until it succeeds) leaves the model as it was: no
 * adapter half attached, the prepared batch still runs with the same logits
 * (bit for bit), and freeing is clean (ASan: no use after free, no leak). */
static void test_alloc_failure(tuna_peft_type type) {
    tuna_model *m = NULL;
    if (!load("tests/fixtures/parity/llama_gqa", &m)) { CHECK(0); return; }
    int B = 2, T = 16, P = 4, V = tuna_model_config(m)->V;
    int32_t ids[2 * 16];
    make_ids(ids, B * T, V, 3);
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = ids};
    size_t nl = (size_t)B * (T + P) * V;
    float *want = malloc(nl * sizeof(float)), *got = malloc(nl * sizeof(float));
    CHECK(tuna_model_prepare(m, B, T, TUNA_MODE_TRAIN) == TUNA_OK);
    forward_logits(m, &bt, want);
    tuna_peft_config c;
    tuna_peft_config_default(&c, type);
    c.num_virtual_tokens = P;
    tuna_status st = TUNA_ERR_NOMEM;
    int failed = 0;
    for (int n = 1; n < 64 && st != TUNA_OK; n++) {
        probe_fail_alloc_at(n);
        st = tuna_peft_attach(m, &c, 5);
        probe_fail_alloc_at(0);
        if (st == TUNA_OK) break;
        failed++;
        CHECKF(st == TUNA_ERR_NOMEM && !tuna_peft_get(m) && adapted_linears(m) == 0,
               "type %d, attach allocation %d fails: status %d, adapter %s, %d linears adapted", type, n, st,
               tuna_peft_get(m) ? "attached" : "none", adapted_linears(m));
        forward_logits(m, &bt, got);
        CHECK(!memcmp(got, want, (size_t)B * T * V * sizeof(float)));
    }
    CHECKF(st == TUNA_OK && failed >= 5, "type %d: attach succeeded after %d injected failures", type, failed);
    if (st != TUNA_OK) { tuna_model_free(m); free(want); free(got); return; }
    /* adapter weights away from their identity start, so they show in the logits */
    tuna_rng rng;
    rng_seed(&rng, 9, 9);
    int64_t nw = 0;
    float *aw = probe_adapter_weights(m, &nw);
    CHECK(aw != NULL);
    for (int64_t i = 0; aw && i < nw; i++) aw[i] += 0.1f * rng_normal(&rng);
    CHECK(tuna_model_prepare(m, B, T, TUNA_MODE_TRAIN) == TUNA_OK);
    forward_logits(m, &bt, want);
    failed = 0;
    st = TUNA_ERR_NOMEM;
    for (int n = 1; n < 64 && st != TUNA_OK; n++) {
        probe_fail_alloc_at(n);
        st = tuna_model_prepare(m, 2 * B, 2 * T, TUNA_MODE_TRAIN);
        probe_fail_alloc_at(0);
        if (st == TUNA_OK) break;
        failed++;
        CHECKF(st == TUNA_ERR_NOMEM && probe_adapter_prepared_rows(m) >= B * (T + probe_virtual_tokens(m)),
               "type %d, prepare allocation %d fails: status %d, adapter buffers for %d rows", type, n, st,
               probe_adapter_prepared_rows(m));
        forward_logits(m, &bt, got);
        CHECK(!memcmp(got, want, (size_t)B * (T + probe_virtual_tokens(m)) * V * sizeof(float)));
        CHECK(tuna_model_backward(m, &bt, 1.0f) == TUNA_OK);
    }
    CHECKF(st == TUNA_OK && failed >= 3, "type %d: prepare succeeded after %d injected failures", type, failed);
    tuna_model_free(m);
    free(want);
    free(got);
}

static void bad_adapter(const char *what, const char *config_edit, const char *expect) {
    char d[400], cmd[2048], err[500];
    snprintf(d, sizeof d, "%s/bad_%s", tmpdir, what);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp tests/fixtures/peft/llama_lora/adapter0/* %s/", d, d);
    CHECK(system(cmd) == 0);
    if (config_edit) {
        snprintf(cmd, sizeof cmd, "sed -i '%s' %s/adapter_config.json", config_edit, d);
        CHECK(system(cmd) == 0);
    } else {
        snprintf(cmd, sizeof cmd, "head -c 300 tests/fixtures/peft/llama_lora/adapter0/adapter_model.safetensors > %s/adapter_model.safetensors", d);
        CHECK(system(cmd) == 0);
    }
    snprintf(err, sizeof err, "%s/err_%s.txt", tmpdir, what);
    snprintf(cmd, sizeof cmd, "%s eval --model tests/fixtures/peft/llama_lora --data tests/fixtures/peft/llama_lora/data.jsonl "
                              "--adapter %s 2> %s >/dev/null", test_cli, d, err);
    int rc = system(cmd);
    FILE *f = fopen(err, "r");
    char buf[1024] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "%s: exit %d", what, WEXITSTATUS(rc));
    CHECKF(strstr(buf, "tuna: error:") && strstr(buf, expect) && strchr(buf, '\n') == buf + strlen(buf) - 1,
           "%s: message '%s' should name '%s' on one line", what, buf, expect);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tuna_peft_%d", (int)getpid());
    mkdir(tmpdir, 0755);
    test_train_parity("llama_lora", 0);
    test_train_parity("llama_lora", 1);
    test_train_parity("gpt2_lora", 0);
    test_train_parity("llama_ia3", 0);
    test_merge("llama_lora");
    test_merge("gpt2_lora");
    test_merge("llama_ia3");
    test_roundtrip();
    test_lora_dropout_fd();
    test_ia3_fd();
    test_prompt_tuning();
    test_prompt_positions();
    test_nf4_model();
    test_nf4_tiles();
    test_qlora_cli();
    test_rank_limit();
    test_resume();
    test_prompt_cli();
    test_info_quant();
    test_alloc_failure(TUNA_PEFT_LORA);
    test_alloc_failure(TUNA_PEFT_IA3);
    test_alloc_failure(TUNA_PEFT_PROMPT);
    bad_adapter("dora", "s/\"use_dora\": false/\"use_dora\": true/", "use_dora");
    bad_adapter("target", "s/\"q_proj\",/\"qq_proj\",/", "qq_proj");
    bad_adapter("rank", "s/\"r\": 4/\"r\": 5/", "lora_A");
    bad_adapter("truncated", NULL, "adapter_model.safetensors");
    bad_adapter("type", "s/\"LORA\"/\"ADALORA\"/", "ADALORA");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
