/* cmd_info.c — `tuna info`: what a model folder holds (architecture, sizes,
 * parameter count, storage dtype, memory), from config.json and the weights. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "tuna_gguf.h"
#include "tuna_peft.h"

static const char *info_help =
    "usage: tuna info --model DIR [--quant nf4] [--json]\n"
    "\n"
    "Loads the model folder (config.json + safetensors weights, checked tensor by\n"
    "tensor) and prints its architecture, sizes, parameter count, storage dtype\n"
    "and memory: on disk, as fp32 in memory, and for full fine-tuning with AdamW\n"
    "(weights + gradients + two moments).\n"
    "  --model DIR   HF-layout model folder\n"
    "  --quant nf4   also quantize the block linears as QLoRA stores them and\n"
    "                report the NF4 storage (bits per quantized parameter)\n"
    "  --json        one JSON object on stdout\n";

/* --json: one object on stdout, built with jansson (architecture and
 * model_type are config.json's text). q: NF4 quantized parameters, their
 * bytes and the fp32 parameters left, or NULL. */
static void print_json(const tuna_config *c, long long params, long long disk, const int64_t *q) {
    json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:I,s:s,s:I,s:I,s:I}", "architecture",
                          c->architecture, "model_type", c->model_type, "layers", c->L, "hidden_size", c->C, "heads", c->NH,
                          "kv_heads", c->NKV, "head_dim", c->HD, "intermediate_size", c->FF, "vocab_size", c->V,
                          "max_positions", c->max_positions, "tie_embeddings", c->tie_embeddings, "parameters",
                          (json_int_t)params, "dtype", tuna_dtype_name(c->dtype), "disk_bytes", (json_int_t)disk,
                          "fp32_weight_bytes", (json_int_t)params * 4, "full_finetune_state_bytes", (json_int_t)params * 16);
    if (o && q)
        json_object_update_new(o, json_pack("{s:s,s:I,s:I,s:f,s:I,s:I}", "quant", "nf4", "quantized_parameters", (json_int_t)q[0],
                                        "quant_bytes", (json_int_t)q[1], "bits_per_quantized_parameter",
                                        q[0] ? 8.0 * q[1] / q[0] : 0.0, "fp32_parameters", (json_int_t)q[2], "weight_bytes",
                                        (json_int_t)(q[1] + q[2] * 4)));
    if (o) json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    printf("\n");
    json_decref(o);
}

int cmd_info(int argc, char **argv) {
    const char *model = NULL, *quant = NULL;
    int json = 0;
    if (cli_wants_help(argc, argv)) { fputs(info_help, stdout); return 0; }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--quant") && i + 1 < argc) quant = argv[++i];
        else return cli_usage_error("info: unknown option '%s' (see tuna info --help)", argv[i]);
    }
    if (!model) return cli_usage_error("info: --model DIR is required");
    if (quant && strcmp(quant, "nf4")) return cli_usage_error("info: --quant must be nf4 (got '%s')", quant);
    tuna_model *m;
    tuna_status st = quant ? tuna_model_load_quantized(&m, model, TUNA_QUANT_NF4) : tuna_model_load(&m, model);
    if (st != TUNA_OK) return cli_status_error(st);
    const tuna_config *c = tuna_model_config(m);
    int64_t qn = 0, qb = 0;
    tuna_model_quant_stats(m, &qn, &qb);
    long long rest = (long long)tuna_model_param_count(m); /* parameters kept in fp32 */
    long long params = rest + qn;
    long long disk = cli_safetensors_bytes(model);
    double mib = 1048576.0;
    if (json) {
        print_json(c, params, disk, quant ? (int64_t[3]){qn, qb, rest} : NULL);
    } else {
        printf("architecture   %s (%s)\n", c->architecture, c->model_type);
        printf("layers         %d\n", c->L);
        printf("hidden size    %d\n", c->C);
        printf("heads          %d query, %d key/value, head dim %d\n", c->NH, c->NKV, c->HD);
        printf("mlp            %s, intermediate %d\n", c->mlp == TUNA_MLP_SWIGLU ? "SwiGLU" : "GELU (tanh)", c->FF);
        printf("norm           %s, eps %g\n", c->norm == TUNA_NORM_RMSNORM ? "RMSNorm" : "LayerNorm", c->norm_eps);
        if (c->family == TUNA_FAMILY_LLAMA)
            printf("positions      RoPE theta %g%s, max %d\n", c->rope_theta,
                   c->rope_scaling == TUNA_ROPE_LINEAR ? " (linear scaling)" : c->rope_scaling == TUNA_ROPE_LLAMA3 ? " (llama3 scaling)" : "",
                   c->max_positions);
        else printf("positions      learned, max %d\n", c->max_positions);
        printf("vocab          %d%s\n", c->V, c->tie_embeddings ? " (embeddings tied to lm_head)" : "");
        printf("parameters     %lld (%.2f M)\n", params, params / 1e6);
        if (tuna_is_gguf(model)) printf("file           GGUF (%.2f MiB); dequantized to float32\n", disk / mib);
        else printf("dtype          %s on disk (%.2f MiB); computed in float32\n", tuna_dtype_name(c->dtype), disk / mib);
        printf("memory         %.2f MiB fp32 weights; %.2f MiB for full fine-tuning state (weights, grads, AdamW moments)\n",
               params * 4 / mib, params * 16 / mib);
        if (quant)
            printf("nf4            %lld block-linear weights in %.2f MiB = %.4f bits each (4-bit codes, blocks of 64,\n"
                   "               8-bit absmax in blocks of 256); %lld others fp32; weights %.2f MiB in all\n",
                   (long long)qn, qb / mib, qn ? 8.0 * qb / qn : 0.0, rest, (qb + rest * 4.0) / mib);
    }
    tuna_model_free(m);
    return 0;
}
