/* cmd_info.c — `tuna info`: what a model holds (architecture, sizes,
 * parameter count, stored dtypes per group, size on disk) and the memory each
 * method would need, from config.json and the weight files' headers only
 * (ckpt_scan): no weight is read, so a 7B model is described in a few MiB.
 * The memory figures are mem_plan's, the estimator `tuna plan` uses. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/ckpt_scan.h"
#include "cli/mem_plan.h"
#include "commands.h"
#include "tuna_gguf.h"
#include "tuna_peft.h"

static const char *info_help =
    "usage: tuna info --model DIR|FILE.gguf|LLAMA2C.bin [--quant nf4] [--json]\n"
    "\n"
    "Describes a model from config.json and the weight files' headers (no weight is\n"
    "read): architecture, sizes, parameter count, the stored dtype of each group of\n"
    "tensors (embeddings, block linears, norms and biases, lm_head), size on disk,\n"
    "and the peak memory each command would need, predicted as `tuna plan` does:\n"
    "sft with each method (full, lora, qlora, ia3, prompt) at sft's defaults, and\n"
    "generation with the weights as stored, with --quant nf4 and with --dtype bf16.\n"
    "  --model DIR   HF-layout model folder (or a GGUF file, or a llama2.c checkpoint)\n"
    "  --quant nf4   also report the NF4 storage of the block linears as QLoRA\n"
    "                keeps them (bits per quantized parameter), computed from shapes\n"
    "  --json        one JSON object on stdout\n";

/* What info reports, summed from the headers. */
typedef struct {
    int64_t params, group_params[CKPT_NGROUPS], group_bytes[CKPT_NGROUPS];
    char group_dtypes[CKPT_NGROUPS][40]; /* e.g. "BF16", "F32+BF16" */
    struct { char name[16]; int tensors; int64_t params; } dt[16];
    int n_dt;
    int64_t q_params, q_bytes;           /* the block linears in NF4 */
    double peak[8];                      /* full lora qlora ia3 prompt, generate as stored, nf4, bf16 */
} info_sum;

static const char *const info_methods[] = {"full", "lora", "qlora", "ia3", "prompt"};

static void add_dtype(info_sum *s, const ckpt_tensor *t) {
    char *g = s->group_dtypes[t->group];
    size_t gl = strlen(g), tl = strlen(t->dtype);
    int in_group = 0;
    for (const char *p = g; (p = strstr(p, t->dtype)); p += tl) in_group |= (p == g || p[-1] == '+') && (p[tl] == 0 || p[tl] == '+');
    if (!in_group && gl + tl + 2 < sizeof s->group_dtypes[0]) snprintf(g + gl, sizeof s->group_dtypes[0] - gl, "%s%s", gl ? "+" : "", t->dtype);
    int k = 0;
    while (k < s->n_dt && strcmp(s->dt[k].name, t->dtype)) k++;
    if (k == s->n_dt && s->n_dt < 16) snprintf(s->dt[s->n_dt++].name, sizeof s->dt[0].name, "%s", t->dtype);
    if (k < s->n_dt) { s->dt[k].tensors++; s->dt[k].params += t->numel; }
}

static tuna_status summarize(const ckpt_info *ci, info_sum *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < ci->n; i++) {
        const ckpt_tensor *t = &ci->t[i];
        s->params += t->numel;
        s->group_params[t->group] += t->numel;
        s->group_bytes[t->group] += t->bytes;
        add_dtype(s, t);
        if (t->group == CKPT_LINEAR) { s->q_params += t->numel; s->q_bytes += tuna_nf4_bytes(t->numel); }
    }
    for (int k = 0; k < 8; k++) {
        mem_opts o;
        mem_opts_init(&o, k < 5 ? MEM_SFT : MEM_GENERATE);
        if (k < 5) o.method = info_methods[k];
        o.nf4 = k == 6;
        o.bf16 = k == 7;
        mem_est e;
        tuna_status st = mem_estimate(ci, &o, &e);
        if (st != TUNA_OK) return st;
        s->peak[k] = e.peak;
    }
    return TUNA_OK;
}

/* --json: one object on stdout, built with jansson (architecture and
 * model_type are config.json's text). */
static void print_json(const ckpt_info *ci, const info_sum *s, int quant) {
    static const char *const group_keys[CKPT_NGROUPS] = {"embeddings", "block_linears", "norms", "lm_head", "other"};
    const tuna_config *c = &ci->cfg;
    json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:I,s:s,s:I,s:I,s:I,s:i,s:b}", "architecture",
                          c->architecture, "model_type", c->model_type, "layers", c->L, "hidden_size", c->C, "heads", c->NH,
                          "kv_heads", c->NKV, "head_dim", c->HD, "intermediate_size", c->FF, "vocab_size", c->V,
                          "max_positions", c->max_positions, "tie_embeddings", c->tie_embeddings, "parameters",
                          (json_int_t)s->params, "dtype", tuna_dtype_name(c->dtype), "disk_bytes", (json_int_t)ci->disk_bytes,
                          "fp32_weight_bytes", (json_int_t)s->params * 4, "full_finetune_state_bytes", (json_int_t)s->params * 16,
                          "weight_files", ci->n_files, "gguf", ci->gguf);
    json_t *groups = json_object(), *dts = json_object(), *mem = json_object();
    for (int g = 0; g < CKPT_NGROUPS; g++)
        if (s->group_params[g])
            json_object_set_new(groups, group_keys[g], json_pack("{s:I,s:s,s:I}", "parameters", (json_int_t)s->group_params[g],
                                                                      "dtype", s->group_dtypes[g], "bytes", (json_int_t)s->group_bytes[g]));
    for (int k = 0; k < s->n_dt; k++)
        json_object_set_new(dts, s->dt[k].name, json_pack("{s:i,s:I}", "tensors", s->dt[k].tensors, "parameters", (json_int_t)s->dt[k].params));
    const char *keys[] = {"sft_full", "sft_lora", "sft_qlora", "sft_ia3", "sft_prompt", "generate", "generate_nf4", "generate_bf16"};
    for (int k = 0; k < 8; k++) json_object_set_new(mem, keys[k], json_integer((json_int_t)s->peak[k]));
    json_object_set_new(o, "groups", groups);
    json_object_set_new(o, "stored_dtypes", dts);
    json_object_set_new(o, "peak_rss_bytes", mem);
    if (o && quant) {
        int64_t rest = s->params - s->q_params, rest_bytes = 0;
        for (int g = 0; g < CKPT_NGROUPS; g++) rest_bytes += g == CKPT_LINEAR ? 0 : s->group_bytes[g];
        json_object_update_new(o, json_pack("{s:s,s:I,s:I,s:f,s:I,s:I}", "quant", "nf4", "quantized_parameters", (json_int_t)s->q_params,
                                            "quant_bytes", (json_int_t)s->q_bytes, "bits_per_quantized_parameter",
                                            s->q_params ? 8.0 * s->q_bytes / s->q_params : 0.0, "fp32_parameters", (json_int_t)rest,
                                            "weight_bytes", (json_int_t)(s->q_bytes + rest_bytes)));
    }
    if (o) json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    printf("\n");
    json_decref(o);
}

static void print_arch(const tuna_config *c) {
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
    printf("vocab          %d%s\n", c->V, c->num_labels ? "" : c->tie_embeddings ? " (embeddings tied to lm_head)" : "");
    if (c->num_labels) printf("head           sequence classification, %d label%s (score.weight: a reward model)\n", c->num_labels,
                              c->num_labels == 1 ? "" : "s");
}

static void print_text(const ckpt_info *ci, const info_sum *s, int quant) {
    const double mib = 1048576.0;
    print_arch(&ci->cfg);
    printf("parameters     %lld (%.2f M)\n", (long long)s->params, s->params / 1e6);
    if (ci->gguf) printf("file           GGUF (%.2f MiB)\n", ci->disk_bytes / mib);
    else printf("dtype          %s on disk (%.2f MiB in %d file%s)\n", tuna_dtype_name(ci->cfg.dtype), ci->disk_bytes / mib, ci->n_files,
                ci->n_files == 1 ? "" : "s");
    for (int g = 0; g < CKPT_NGROUPS; g++)
        if (s->group_params[g])
            printf("  %-18s %s, %lld parameters, %.2f MiB\n", ckpt_group_name(g), s->group_dtypes[g], (long long)s->group_params[g],
                   s->group_bytes[g] / mib);
    printf("stored dtypes ");
    for (int k = 0; k < s->n_dt; k++) printf("%s%s %d tensors (%lld parameters)", k ? "; " : " ", s->dt[k].name, s->dt[k].tensors,
                                             (long long)s->dt[k].params);
    printf("\n");
    printf("memory         %.2f MiB fp32 weights; %.2f MiB for full fine-tuning state (weights, grads, AdamW moments)\n",
           s->params * 4 / mib, s->params * 16 / mib);
    printf("peak RSS       as `tuna plan` predicts (sft: batch 8 x 512 tokens, LoRA r 16 on its default targets):\n");
    for (int k = 0; k < 5; k++) printf("  sft --method %-6s %10.2f MiB\n", info_methods[k], s->peak[k] / mib);
    printf("  generate (stored)  %10.2f MiB\n  generate --quant nf4 %8.2f MiB\n  generate --dtype bf16 %7.2f MiB\n", s->peak[5] / mib,
           s->peak[6] / mib, s->peak[7] / mib);
    if (quant) {
        int64_t rest = s->params - s->q_params;
        double rest_bytes = 0;
        for (int g = 0; g < CKPT_NGROUPS; g++) rest_bytes += g == CKPT_LINEAR ? 0 : s->group_bytes[g];
        printf("nf4            %lld block-linear weights in %.2f MiB = %.4f bits each (4-bit codes, blocks of 64,\n"
               "               8-bit absmax in blocks of 256); %lld others as stored; weights %.2f MiB in all\n",
               (long long)s->q_params, s->q_bytes / mib, s->q_params ? 8.0 * s->q_bytes / s->q_params : 0.0, (long long)rest,
               (s->q_bytes + rest_bytes) / mib);
    }
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
    ckpt_info ci;
    info_sum s;
    tuna_status st = ckpt_scan(&ci, model);
    if (st == TUNA_OK && (st = summarize(&ci, &s)) == TUNA_OK) {
        if (json) print_json(&ci, &s, quant != NULL);
        else print_text(&ci, &s, quant != NULL);
    }
    ckpt_free(&ci);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
