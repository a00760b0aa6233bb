/* make_checkpoint.c — writes a random-weight checkpoint of a real model's
 * shape as the Hub ships it, for bench/bench_scale.sh:
 *   build/bench/make_checkpoint SHAPE OUT_DIR [--shard-size BYTES] [--seed N]
 * SHAPE: tinyllama-1.1b, llama-3.2-1b, llama-2-7b, llama-3-8b (their exact
 * Hugging Face config.json), or a config.json file. Writes OUT_DIR/config.json
 * and bf16 weights (uniform with std 0.02; norm weights 1), one
 * model.safetensors or, above --shard-size (default 4 GiB, as the Hub's
 * 4-5 GB shards), model-0000K-of-0000N.safetensors with
 * model.safetensors.index.json, tensors in the model's order, a new shard
 * when the next tensor would pass the limit (as save_pretrained does).
 * Weights are streamed in 4 MiB chunks: memory stays a few MiB whatever the
 * model size. The tokenizer is the caller's to copy (bench_scale.sh). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/rng.h"
#include "io/safetensors.h"
#include "model/model_internal.h"
#include "tuna.h"

static const struct { const char *name, *json; } shapes[] = {
    {"tinyllama-1.1b",
     "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"bos_token_id\":1,\"eos_token_id\":2,\"hidden_act\":\"silu\","
     "\"hidden_size\":2048,\"initializer_range\":0.02,\"intermediate_size\":5632,\"max_position_embeddings\":2048,\"model_type\":\"llama\","
     "\"num_attention_heads\":32,\"num_hidden_layers\":22,\"num_key_value_heads\":4,\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,"
     "\"rope_scaling\":null,\"rope_theta\":10000.0,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"use_cache\":true,"
     "\"vocab_size\":32000}"},
    {"llama-3.2-1b",
     "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,\"bos_token_id\":128000,"
     "\"eos_token_id\":128001,\"head_dim\":64,\"hidden_act\":\"silu\",\"hidden_size\":2048,\"initializer_range\":0.02,"
     "\"intermediate_size\":8192,\"max_position_embeddings\":131072,\"mlp_bias\":false,\"model_type\":\"llama\",\"num_attention_heads\":32,"
     "\"num_hidden_layers\":16,\"num_key_value_heads\":8,\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,\"rope_scaling\":{\"factor\":32.0,"
     "\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
     "\"rope_theta\":500000.0,\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\",\"use_cache\":true,\"vocab_size\":128256}"},
    {"llama-2-7b",
     "{\"architectures\":[\"LlamaForCausalLM\"],\"bos_token_id\":1,\"eos_token_id\":2,\"hidden_act\":\"silu\",\"hidden_size\":4096,"
     "\"initializer_range\":0.02,\"intermediate_size\":11008,\"max_position_embeddings\":4096,\"model_type\":\"llama\","
     "\"num_attention_heads\":32,\"num_hidden_layers\":32,\"num_key_value_heads\":32,\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,"
     "\"rope_scaling\":null,\"tie_word_embeddings\":false,\"torch_dtype\":\"float16\",\"use_cache\":true,\"vocab_size\":32000}"},
    {"llama-3-8b",
     "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,\"bos_token_id\":128000,"
     "\"eos_token_id\":128001,\"hidden_act\":\"silu\",\"hidden_size\":4096,\"initializer_range\":0.02,\"intermediate_size\":14336,"
     "\"max_position_embeddings\":8192,\"model_type\":\"llama\",\"num_attention_heads\":32,\"num_hidden_layers\":32,"
     "\"num_key_value_heads\":8,\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,\"rope_scaling\":null,\"rope_theta\":500000.0,"
     "\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"use_cache\":true,\"vocab_size\":128256}"},
};

#define CHUNK (2L << 20) /* bf16 values per write: 4 MiB */

static int fail(const char *what, const char *path) {
    fprintf(stderr, "make_checkpoint: %s %s: %s\n", what, path, errno ? strerror(errno) : "failed");
    return 1;
}

/* The config.json text for shape (a known name or a file). */
static int write_config(const char *shape, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes && !j; i++)
        if (!strcmp(shape, shapes[i].name)) j = json_loads(shapes[i].json, 0, NULL);
    if (!j) j = json_load_file(shape, 0, NULL);
    if (!j) { fprintf(stderr, "make_checkpoint: '%s' is neither a known shape nor a config.json\n", shape); return 1; }
    json_object_set_new(j, "torch_dtype", json_string("bfloat16")); /* the weights written are bf16 */
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    return rc ? fail("cannot write", path) : 0;
}

/* Streams one tensor's values as bf16: norms 1, everything else uniform
 * with standard deviation 0.02. */
static int write_tensor(FILE *f, const tuna_param *p, tuna_rng *r, uint16_t *buf) {
    const float a = 0.02f * 1.7320508f;
    int norm = p->ndim == 1;
    for (int64_t done = 0; done < p->numel;) {
        int64_t n = p->numel - done < CHUNK ? p->numel - done : CHUNK;
        for (int64_t i = 0; i < n; i++) buf[i] = st_f32_to_bf16(norm ? 1.0f : a * (2.0f * rng_uniform(r) - 1.0f));
        if (fwrite(buf, 2, (size_t)n, f) != (size_t)n) return 1;
        done += n;
    }
    return 0;
}

/* One shard: header (tensors lo..hi-1, offsets in order), then the data. */
static int write_shard(const char *path, const tuna_model *m, int lo, int hi, tuna_rng *r, uint16_t *buf) {
    json_t *h = json_object();
    int64_t off = 0;
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    for (int i = lo; i < hi; i++) {
        const tuna_param *p = &m->params[i].pub;
        json_t *shape = p->ndim == 1 ? json_pack("[I]", (json_int_t)p->shape[0])
                                     : json_pack("[I,I]", (json_int_t)p->shape[0], (json_int_t)p->shape[1]);
        json_object_set_new(h, p->name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", "BF16", "shape", shape, "data_offsets",
                                                  (json_int_t)off, (json_int_t)(off + 2 * p->numel)));
        off += 2 * p->numel;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    size_t n = strlen(text), padded = (n + 7) & ~(size_t)7; /* data aligned to 8 bytes, as safetensors writes it */
    uint64_t len = padded;
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(&len, 8, 1, f) != 1 || fwrite(text, 1, n, f) != n || fwrite("        ", 1, padded - n, f) != padded - n;
    free(text);
    for (int i = lo; !bad && i < hi; i++) bad = write_tensor(f, &m->params[i].pub, r, buf);
    if (f && fclose(f) != 0) bad = 1;
    return bad ? fail("cannot write", path) : 0;
}

static int write_weights(const tuna_model *m, const char *dir, int64_t shard_bytes, uint64_t seed) {
    int starts[1024], n_shards = 0;
    int64_t in_shard = 0, total = 0;
    for (int i = 0; i < m->n_params; i++) { /* a new shard when the next tensor would pass the limit */
        int64_t b = 2 * m->params[i].pub.numel;
        if (i == 0 || (in_shard > 0 && in_shard + b > shard_bytes)) {
            if (n_shards == 1024) { fprintf(stderr, "make_checkpoint: more than 1024 shards\n"); return 1; }
            starts[n_shards++] = i;
            in_shard = 0;
        }
        in_shard += b;
        total += b;
    }
    starts[n_shards] = m->n_params;
    uint16_t *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) return fail("out of memory", "");
    tuna_rng r;
    rng_seed(&r, seed, 1);
    json_t *map = json_object();
    int rc = 0;
    for (int s = 0; !rc && s < n_shards; s++) {
        char name[64], path[4096];
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = write_shard(path, m, starts[s], starts[s + 1], &r, buf);
        for (int i = starts[s]; i < starts[s + 1]; i++) json_object_set_new(map, m->params[i].name, json_string(name));
        fprintf(stderr, "%s: %d tensors\n", name, starts[s + 1] - starts[s]);
    }
    free(buf);
    if (!rc && n_shards > 1) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        json_t *idx = json_pack("{s:{s:I},s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
        rc = json_dump_file(idx, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ? fail("cannot write", path) : 0;
        json_decref(idx);
    }
    json_decref(map);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: make_checkpoint tinyllama-1.1b|llama-3.2-1b|llama-2-7b|llama-3-8b|CONFIG.json OUT_DIR "
                        "[--shard-size BYTES] [--seed N]\n");
        return 2;
    }
    const char *shape = argv[1], *dir = argv[2];
    int64_t shard = 4LL << 30;
    uint64_t seed = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shard-size")) shard = strtoll(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else { fprintf(stderr, "make_checkpoint: unknown option %s\n", argv[i]); return 2; }
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return fail("cannot create", dir);
    if (write_config(shape, dir)) return 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    tuna_config c;
    tuna_model *m = NULL;
    if (tuna_config_load(&c, path) != TUNA_OK || model_skeleton(&m, &c) != TUNA_OK) {
        fprintf(stderr, "make_checkpoint: %s\n", tuna_last_error());
        return 1;
    }
    int rc = write_weights(m, dir, shard, seed);
    tuna_model_free(m);
    return rc;
}
