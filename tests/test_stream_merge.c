/* test_stream_merge.c — merge and export folding the adapter in as the
 * weights are written (tuna_peft_merge_on_write over a base kept as stored)
 * write the same bytes as the fp32 path (the base loaded in fp32, merged in
 * place by tuna_peft_merge, saved): safetensors in f32, bf16 and f16 and GGUF
 * in f32, f16, q8_0 and q4_0, for LoRA and IA3, on GPT-2 (Conv1D weights
 * transposed; IA3 scaling biases), Llama with tied and untied heads (q/k rows
 * permuted in GGUF), bases stored f32, bf16 and f16; with the default tile
 * (one tile per tensor in these models) and with tiles of a few rows (so the
 * row blocks, the permutation across tiles and the column blocks of the
 * transposed weights are exercised). `tuna merge` and `tuna export` give the
 * files of the fp32 path too; an NF4 base is refused. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "model/param_rows.h"
#include "model_probe.h"
#include "tuna.h"
#include "tuna_gguf.h"
#include "tuna_peft.h"

static char tmp[512];

/* dst = a copy of src with weights in dt */
static int copy_as(const char *src, const char *dst, tuna_dtype dt) {
    tuna_model *m = NULL;
    tuna_status st = tuna_model_load(&m, src);
    if (st == TUNA_OK) st = tuna_model_save(m, dst, dt);
    tuna_model_free(m);
    CHECKF(st == TUNA_OK, "copy %s as %s: %s", src, dst, tuna_last_error());
    return st == TUNA_OK;
}

/* an adapter of type t on m with weights that are not the identity: every
 * value a fixed function of its index (the same on every load) */
static int attach(tuna_model *m, tuna_peft_type t) {
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, t);
    if (t == TUNA_PEFT_LORA) {
        pc.r = 4;
        snprintf(pc.targets, sizeof pc.targets, "all-linear");
    }
    if (tuna_peft_attach(m, &pc, 11) != TUNA_OK) return 0;
    int64_t n = 0;
    float *w = probe_adapter_weights(m, &n);
    for (int64_t i = 0; i < n; i++) w[i] = (t == TUNA_PEFT_IA3 ? 1.0f : 0.0f) + 0.37f * (float)((i * 7919) % 61 - 30) / 30.0f;
    return 1;
}

static const char *const save_names[] = {"f32", "bf16", "f16"};
static const tuna_dtype save_dts[] = {TUNA_DTYPE_F32, TUNA_DTYPE_BF16, TUNA_DTYPE_F16};
static const char *const gguf_types[] = {"f32", "f16", "q8_0", "q4_0"};

/* every file of one way into out/<tag>_*: safetensors per dtype, GGUF per type */
static int write_all(tuna_model *m, const char *out, const char *tag) {
    char p[900];
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/%s_%s", out, tag, save_names[k]);
        if (tuna_model_save(m, p, save_dts[k]) != TUNA_OK) return 0;
    }
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s_%s.gguf", out, tag, gguf_types[k]);
        if (tuna_export_gguf(m, NULL, gguf_types[k], p) != TUNA_OK) return 0;
    }
    return 1;
}

static int same_file(const char *a, const char *b) {
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

/* the streamed files of out/s<tile> against out/f32's */
static void compare_all(const char *what, const char *out, const char *tag) {
    char a[900], b[900];
    for (int k = 0; k < 3; k++) {
        snprintf(a, sizeof a, "%s/fp32_%s/model.safetensors", out, save_names[k]);
        snprintf(b, sizeof b, "%s/%s_%s/model.safetensors", out, tag, save_names[k]);
        CHECKF(same_file(a, b), "%s (%s): model.safetensors saved %s differs from the fp32 merge's", what, tag, save_names[k]);
        snprintf(a, sizeof a, "%s/fp32_%s/config.json", out, save_names[k]);
        snprintf(b, sizeof b, "%s/%s_%s/config.json", out, tag, save_names[k]);
        CHECKF(same_file(a, b), "%s (%s): config.json saved %s differs", what, tag, save_names[k]);
    }
    for (int k = 0; k < 4; k++) {
        snprintf(a, sizeof a, "%s/fp32_%s.gguf", out, gguf_types[k]);
        snprintf(b, sizeof b, "%s/%s_%s.gguf", out, tag, gguf_types[k]);
        CHECKF(same_file(a, b), "%s (%s): GGUF %s differs from the fp32 merge's", what, tag, gguf_types[k]);
    }
}

/* one base folder and adapter type: fp32 path, then the stream with the
 * default tile and with tiles of `small` values */
static void check_case(const char *what, const char *dir, tuna_peft_type t, int64_t small) {
    char out[700];
    static int n_case;
    snprintf(out, sizeof out, "%s/case%d", tmp, n_case++);
    CHECK(mkdir(out, 0755) == 0);
    tuna_model *f = NULL;
    CHECKF(tuna_model_load(&f, dir) == TUNA_OK && attach(f, t) && tuna_peft_merge(f) == TUNA_OK && write_all(f, out, "fp32"),
           "%s: fp32 path: %s", what, tuna_last_error());
    tuna_model_free(f);
    int64_t tiles[2] = {0, small};
    const char *tags[2] = {"stream", "tiled"};
    for (int k = 0; k < 2; k++) {
        param_rows_tile_at(tiles[k]);
        tuna_model *s = NULL;
        CHECKF(tuna_model_load_quantized(&s, dir, TUNA_QUANT_STORED) == TUNA_OK && attach(s, t) &&
                   tuna_peft_merge_on_write(s) == TUNA_OK && write_all(s, out, tags[k]),
               "%s: streamed path: %s", what, tuna_last_error());
        tuna_model_free(s);
        compare_all(what, out, tags[k]);
    }
    param_rows_tile_at(0);
}

/* `tuna merge` and `tuna export --format hf` on the shipped model (bf16,
 * tied) with a LoRA adapter: the files of the fp32 path */
static void check_cli(const char *model) {
    char ad[700], ref[700], out[700], cmd[3000], a[900], b[900];
    snprintf(ad, sizeof ad, "%s/cli_adapter", tmp);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, model) == TUNA_OK && attach(m, TUNA_PEFT_LORA) && tuna_peft_save(m, ad) == TUNA_OK);
    CHECKF(tuna_peft_merge(m) == TUNA_OK, "fp32 merge: %s", tuna_last_error());
    const char *dts[] = {"f32", "bf16", "f16"};
    for (int k = 0; k < 3; k++) {
        snprintf(ref, sizeof ref, "%s/cli_ref_%s", tmp, dts[k]);
        CHECK(tuna_model_save(m, ref, save_dts[k]) == TUNA_OK);
        snprintf(out, sizeof out, "%s/cli_merge_%s", tmp, dts[k]);
        snprintf(cmd, sizeof cmd, "'%s' merge --model '%s' --adapter '%s' --out '%s' --save-dtype %s 2>/dev/null", test_cli, model, ad,
                 out, dts[k]);
        CHECKF(system(cmd) == 0, "tuna merge --save-dtype %s failed", dts[k]);
        snprintf(a, sizeof a, "%s/model.safetensors", ref);
        snprintf(b, sizeof b, "%s/model.safetensors", out);
        CHECKF(same_file(a, b), "tuna merge --save-dtype %s: not the fp32 path's model.safetensors", dts[k]);
        snprintf(out, sizeof out, "%s/cli_export_%s", tmp, dts[k]);
        snprintf(cmd, sizeof cmd, "'%s' export --model '%s' --adapter '%s' --format hf --dtype %s --out '%s' 2>/dev/null", test_cli,
                 model, ad, dts[k], out);
        CHECKF(system(cmd) == 0, "tuna export --format hf --dtype %s failed", dts[k]);
        snprintf(b, sizeof b, "%s/model.safetensors", out);
        CHECKF(same_file(a, b), "tuna export --dtype %s: not the fp32 path's model.safetensors", dts[k]);
    }
    /* sharded as before: the same shards and index */
    snprintf(ref, sizeof ref, "%s/cli_ref_shards", tmp);
    CHECK(tuna_model_save_sharded(m, ref, TUNA_DTYPE_BF16, 2000000) == TUNA_OK);
    snprintf(out, sizeof out, "%s/cli_export_shards", tmp);
    snprintf(cmd, sizeof cmd, "'%s' export --model '%s' --adapter '%s' --format hf --dtype bf16 --shard-size 2MB --out '%s' 2>/dev/null",
             test_cli, model, ad, out);
    CHECKF(system(cmd) == 0, "tuna export --shard-size 2MB failed");
    snprintf(cmd, sizeof cmd, "cd '%s' && ls model*.safetensors* | wc -l | grep -qx '[3-9]' && for f in model*.safetensors*; do cmp -s \"$f\" '%s'/\"$f\" || exit 1; done",
             ref, out);
    CHECKF(system(cmd) == 0, "tuna export --shard-size 2MB: not the fp32 path's shards and index");
    tuna_model_free(m);
}

/* an NF4 base cannot have an adapter folded in (the original weights must be loaded) */
static void check_nf4(const char *dir) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load_quantized(&m, dir, TUNA_QUANT_NF4) == TUNA_OK && attach(m, TUNA_PEFT_LORA));
    CHECKF(m && tuna_peft_merge_on_write(m) == TUNA_ERR_UNSUPPORTED, "an NF4 base folded on write: %s", tuna_last_error());
    tuna_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (test_tmpdir(tmp, sizeof tmp, "stream_merge") != 0) return 1;
    char d[700];
    struct { const char *src; tuna_dtype dt; const char *name; tuna_peft_type t; } cases[] = {
        {"tests/fixtures/parity/gpt2", TUNA_DTYPE_F32, "gpt2 f32 LoRA", TUNA_PEFT_LORA},
        {"tests/fixtures/parity/gpt2", TUNA_DTYPE_F32, "gpt2 f32 IA3", TUNA_PEFT_IA3},
        {"tests/fixtures/parity/gpt2", TUNA_DTYPE_BF16, "gpt2 bf16 LoRA", TUNA_PEFT_LORA},
        {"tests/fixtures/parity/gpt2", TUNA_DTYPE_F16, "gpt2 f16 IA3", TUNA_PEFT_IA3},
        {"tests/fixtures/parity/llama_gqa", TUNA_DTYPE_F32, "llama_gqa f32 LoRA", TUNA_PEFT_LORA},
        {"tests/fixtures/parity/llama_gqa", TUNA_DTYPE_BF16, "llama_gqa bf16 LoRA", TUNA_PEFT_LORA},
        {"tests/fixtures/parity/llama_gqa", TUNA_DTYPE_BF16, "llama_gqa bf16 IA3", TUNA_PEFT_IA3},
        {"tests/fixtures/parity/llama_gqa", TUNA_DTYPE_F16, "llama_gqa f16 LoRA", TUNA_PEFT_LORA},
        {"tests/fixtures/parity/llama_tied", TUNA_DTYPE_BF16, "llama_tied bf16 LoRA", TUNA_PEFT_LORA},
        {"tests/fixtures/parity/llama_tied", TUNA_DTYPE_BF16, "llama_tied bf16 IA3", TUNA_PEFT_IA3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(d, sizeof d, "%s/base%zu", tmp, i);
        if (copy_as(cases[i].src, d, cases[i].dt)) check_case(cases[i].name, d, cases[i].t, 100);
    }
    snprintf(d, sizeof d, "%s/base1", tmp);
    check_nf4(d);
    if (test_need("models/tuna-stories/model.safetensors", "shipped model")) {
        check_case("tuna-stories bf16 LoRA", "models/tuna-stories", TUNA_PEFT_LORA, 4096);
        if (test_need_cli("tuna merge and export")) check_cli("models/tuna-stories");
    }
    test_rmdir(tmp);
    return test_done();
}
