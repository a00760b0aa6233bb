/* cmd_info.c — `tuna info`: what a model folder holds (architecture, sizes,
 * parameter count, storage dtype, memory), from config.json and the weights. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

long long cli_safetensors_bytes(const char *dir) {
    struct stat fs;
    if (stat(dir, &fs) == 0 && S_ISREG(fs.st_mode)) return (long long)fs.st_size; /* a GGUF file */
    DIR *d = opendir(dir);
    if (!d) return 0;
    long long total = 0;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0) total += sb.st_size;
    }
    closedir(d);
    return total;
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
        printf("{\"architecture\":\"%s\",\"model_type\":\"%s\",\"layers\":%d,\"hidden_size\":%d,\"heads\":%d,"
               "\"kv_heads\":%d,\"head_dim\":%d,\"intermediate_size\":%d,\"vocab_size\":%d,\"max_positions\":%d,"
               "\"tie_embeddings\":%s,\"parameters\":%lld,\"dtype\":\"%s\",\"disk_bytes\":%lld,"
               "\"fp32_weight_bytes\":%lld,\"full_finetune_state_bytes\":%lld",
               c->architecture, c->model_type, c->L, c->C, c->NH, c->NKV, c->HD, c->FF, c->V, c->max_positions,
               c->tie_embeddings ? "true" : "false", params, tuna_dtype_name(c->dtype), disk, params * 4, params * 16);
        if (quant)
            printf(",\"quant\":\"nf4\",\"quantized_parameters\":%lld,\"quant_bytes\":%lld,\"bits_per_quantized_parameter\":%.6f,"
                   "\"fp32_parameters\":%lld,\"weight_bytes\":%lld",
                   (long long)qn, (long long)qb, qn ? 8.0 * qb / qn : 0.0, rest, (long long)qb + rest * 4);
        printf("}\n");
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
