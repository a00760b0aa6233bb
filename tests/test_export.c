/* test_export.c — `tuna export --format hf`:
 *  - a LoRA adapter merged into a sharded f32 export: the folder loads back
 *    (index + shards) with the unmerged model's logits within 1e-5;
 *  - the shipped bf16 model exported in its own dtype reloads bit-identical;
 *  - a later export into the same folder leaves one consistent set of files
 *    (no stale shards or index);
 *  - stop tokens: the tokenizer's EOS and the chat template's end-of-turn
 *    token go to generation_config.json (Phi-3's <|end|> beside its EOS);
 *  - bad options and prompt-tuning adapters exit 2 with one line. */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "check_model.h"
#include "tuna.h"
#include "tuna_peft.h"

static char tmpdir[] = "/tmp/tuna_test_export_XXXXXX";


static int exists(const char *dir, const char *name) {
    char p[600];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

static void test_merged_sharded(void) {
    const char *base = "tests/fixtures/peft/llama_lora", *ad = "tests/fixtures/peft/llama_lora/expected";
    char out[400], cmd[2048];
    snprintf(out, sizeof out, "%s/lora_hf", tmpdir);
    snprintf(cmd, sizeof cmd, "%s export --model %s --adapter %s --format hf --out %s --dtype f32 --shard-size 60KB 2>/dev/null", test_cli,
             base, ad, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    CHECK(exists(out, "model.safetensors.index.json") && exists(out, "model-00001-of-00006.safetensors") &&
          exists(out, "model-00006-of-00006.safetensors") && !exists(out, "model.safetensors"));
    tuna_model *ref = NULL, *got = NULL;
    CHECK(tuna_model_load(&ref, base) == TUNA_OK && tuna_peft_load(ref, ad) == TUNA_OK);
    CHECKF(tuna_model_load(&got, out) == TUNA_OK, "%s", tuna_last_error());
    if (ref && got) {
        int V = tuna_model_config(ref)->V, T = 11;
        int32_t ids[11];
        for (int i = 0; i < T; i++) ids[i] = (i * 37 + 5) % V;
        float *a = malloc((size_t)T * V * 4), *b = malloc((size_t)T * V * 4);
        CHECK(test_logits(ref, ids, T, a) && test_logits(got, ids, T, b));
        double e = rel_l2(b, a, (long)T * V);
        printf("export hf: merged LoRA, 6 shards, logits rel %.3g vs the unmerged adapter\n", e);
        CHECKF(e <= 1e-5, "merged export logits rel %.3g", e);
        free(a);
        free(b);
    }
    tuna_model_free(ref);
    tuna_model_free(got);
    json_t *idx = NULL;
    {
        char p[600];
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", out);
        idx = json_load_file(p, 0, NULL);
    }
    CHECK(json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size")) > 0 &&
          json_object_size(json_object_get(idx, "weight_map")) > 0);
    json_decref(idx);
    /* again, unsharded, into the same folder (--overwrite): the old shards and index go */
    snprintf(cmd, sizeof cmd, "%s export --model %s --format hf --out %s --overwrite 2>/dev/null", test_cli, base, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    CHECK(exists(out, "model.safetensors") && !exists(out, "model.safetensors.index.json") &&
          !exists(out, "model-00001-of-00006.safetensors") && !exists(out, "model-00006-of-00006.safetensors"));
}

static void test_shipped_model(void) {
    const char *src = "models/tuna-stories";
    char out[400], cmd[2048], log[500];
    if (!test_need(src, "export shipped model")) return;
    snprintf(out, sizeof out, "%s/stories_hf", tmpdir);
    snprintf(log, sizeof log, "%s/stories.log", tmpdir);
    snprintf(cmd, sizeof cmd, "%s export --model %s --format hf --out %s 2>%s", test_cli, src, out, log);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "grep -q 'bfloat16 weights.*sample conversation: same token ids as training' %s", log);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "cmp -s %s/model.safetensors %s/model.safetensors", src, out);
    int same_bytes = system(cmd) == 0;
    tuna_model *a = NULL, *b = NULL;
    CHECK(tuna_model_load(&a, src) == TUNA_OK && tuna_model_load(&b, out) == TUNA_OK);
    if (a && b) {
        int V = tuna_model_config(a)->V, T = 9;
        int32_t ids[9] = {0, 17, 300, 42, 7, 1000, 2048, 5, 99};
        float *x = malloc((size_t)T * V * 4), *y = malloc((size_t)T * V * 4);
        CHECK(test_logits(a, ids, T, x) && test_logits(b, ids, T, y));
        CHECKF(!memcmp(x, y, (size_t)T * V * 4), "bf16 export changed the logits (file bytes %s)", same_bytes ? "same" : "differ");
        CHECK(tuna_model_config(b)->dtype == TUNA_DTYPE_BF16);
        free(x);
        free(y);
    }
    tuna_model_free(a);
    tuna_model_free(b);
    CHECK(exists(out, "tokenizer.json") && exists(out, "tokenizer_config.json") && exists(out, "generation_config.json"));
}

/* Phi-3's tokenizer: EOS <|endoftext|> 32000, the template ends a turn with <|end|> 32007 */
static void test_stop_tokens(void) {
    const char *tokdir = test_shared_path("tokenizers/phi-3-mini", "export stop tokens");
    if (!tokdir) return;
    char src[400], out[400], cmd[4096], p[600];
    snprintf(src, sizeof src, "%s/phi3_tiny", tmpdir);
    snprintf(out, sizeof out, "%s/phi3_hf", tmpdir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && printf '%%s' '{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":32064,"
             "\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":2,"
             "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}' > %s/arch.json && "
             "%s init --config %s/arch.json --out %s >/dev/null && cp %s/tokenizer.json %s/tokenizer_config.json %s/",
             src, tmpdir, test_cli, tmpdir, src, tokdir, tokdir, src);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s export --model %s --format hf --out %s 2>/dev/null", test_cli, src, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(p, sizeof p, "%s/generation_config.json", out);
    json_t *g = json_load_file(p, 0, NULL);
    json_t *eos = json_object_get(g, "eos_token_id");
    int has_eos = 0, has_end = 0;
    for (size_t i = 0; json_is_array(eos) && i < json_array_size(eos); i++) {
        json_int_t v = json_integer_value(json_array_get(eos, i));
        has_eos |= v == 32000;
        has_end |= v == 32007;
    }
    CHECKF(has_eos && has_end && json_array_size(eos) == 2, "generation_config eos_token_id should be [32000, 32007]");
    json_decref(g);
    /* config.json: the tokenizer's BOS and EOS */
    snprintf(p, sizeof p, "%s/config.json", out);
    g = json_load_file(p, 0, NULL);
    CHECK(json_integer_value(json_object_get(g, "eos_token_id")) == 32000 && json_integer_value(json_object_get(g, "bos_token_id")) == 1);
    json_decref(g);
}

static void test_errors(void) {
    char cmd[2048];
    const char *bad[] = {"--format gguf2", "--format hf --dtype q4", "--format hf --shard-size 12XB", "--format hf --shard-size 0",
                         "--format gguf --type q5_k", "--format gguf --dtype f16"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        snprintf(cmd, sizeof cmd, "%s export --model tests/fixtures/peft/llama_lora --out %s/e %s 2>/dev/null", test_cli, tmpdir, bad[k]);
        int rc = system(cmd);
        CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "'%s' exits %d, expected 2", bad[k], WEXITSTATUS(rc));
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!mkdtemp(tmpdir)) return 1;
    test_merged_sharded();
    test_shipped_model();
    test_stop_tokens();
    test_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    return test_done();
}
