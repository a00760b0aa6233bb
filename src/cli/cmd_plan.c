/* cmd_plan.c — `tuna plan`: the memory a training run will need, predicted
 * from the config with the same size functions the allocator uses
 * (tuna_model_activation_bytes), so prediction and allocation cannot drift.
 * Peak RSS is the larger of the load phase (fp32 weights + the mapped
 * checkpoint) and the training phase (weights, gradients, AdamW moments,
 * activations, token data), plus the process baseline (code, libraries and
 * BLAS buffers) measured on the development machine. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"

/* RSS of a tuna process before any model memory (measured: `tuna info` on a
 * tiny model peaks at ~10.1 MiB, a training run of a tiny model at ~10.4 MiB
 * beyond its buffers, of which ~3.6 MiB are the libraries libmicrohttpd
 * brings for tuna serve (GnuTLS and its dependencies) and ~1.2 MiB Open
 * MPI's; OpenBLAS work buffers: see bench/README.md once GEMMs run) */
#define PLAN_BASELINE_BYTES (10.4 * 1048576.0)
#define PLAN_BLAS_PER_THREAD_MAX (8.0 * 1048576.0)

static const char *plan_help =
    "usage: tuna plan --model DIR|CONFIG.json [--method full] [--batch N] [--micro-batch N]\n"
    "                 [--seq-len N] [--grad-checkpoint] [--data F.jsonl] [--json]\n"
    "\n"
    "Prints the memory a `tuna sft` run with these settings will need: fp32\n"
    "weights, gradients, AdamW moments, activations for one micro-batch, the\n"
    "token data (8 bytes per token, from --data), and the predicted peak RSS.\n";

int cmd_plan(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(plan_help, stdout); return 0; }
    const char *model = NULL, *method = "full", *data = NULL;
    int batch = 8, micro = 0, seq_len = 512, ckpt = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--model") && v) model = argv[++i];
        else if (!strcmp(o, "--method") && v) method = argv[++i];
        else if (!strcmp(o, "--data") && v) data = argv[++i];
        else if (!strcmp(o, "--batch")) { if (cli_parse_int(o, v, 1, 1 << 20, &batch)) return 2; i++; }
        else if (!strcmp(o, "--micro-batch")) { if (cli_parse_int(o, v, 1, 1 << 20, &micro)) return 2; i++; }
        else if (!strcmp(o, "--seq-len")) { if (cli_parse_int(o, v, 2, 1 << 20, &seq_len)) return 2; i++; }
        else if (!strcmp(o, "--grad-checkpoint")) ckpt = 1;
        else if (!strcmp(o, "--json")) json = 1;
        else return cli_usage_error("plan: unknown option '%s' (see tuna plan --help)", o);
    }
    if (!model) return cli_usage_error("plan: --model is required");
    if (strcmp(method, "full")) return cli_usage_error("plan: --method '%s' is not available (available: full)", method);
    if (!micro) micro = batch;
    char cfg_path[PATH_MAX];
    struct stat sb;
    int is_dir = stat(model, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (is_dir) snprintf(cfg_path, sizeof cfg_path, "%s/config.json", model);
    else snprintf(cfg_path, sizeof cfg_path, "%s", model);
    tuna_config c;
    tuna_status st = tuna_config_load(&c, cfg_path);
    if (st != TUNA_OK) return cli_status_error(st);
    double tokens = 0;
    int max_len = 0;
    if (data) {
        tuna_pretok *p;
        st = tuna_pretok_load(&p, data, c.V);
        if (st != TUNA_OK) return cli_status_error(st);
        for (int64_t i = 0; i < tuna_pretok_count(p); i++) tokens += (double)tuna_pretok_seq(p, i, NULL, NULL, NULL);
        max_len = tuna_pretok_max_len(p);
        tuna_pretok_free(p);
        if (max_len < seq_len) seq_len = max_len < 2 ? 2 : max_len; /* the trainer sizes T by the data */
    }
    int nthr = 1;
#ifdef _OPENMP
    extern int omp_get_max_threads(void);
    nthr = omp_get_max_threads();
#endif
    double weights = (double)tuna_model_weight_bytes(&c);
    double grads = weights, moments = 2 * weights;
    double acts = (double)tuna_model_activation_bytes(&c, micro, seq_len, ckpt ? TUNA_MODE_TRAIN_CHECKPOINT : TUNA_MODE_TRAIN);
    double data_bytes = tokens * 8;
    /* OpenBLAS packing buffers: each thread touches up to a few MiB, bounded by
     * the largest operand it packs (measured; small models touch little) */
    double largest = (double)c.V * c.C * 4, ff = (double)c.FF * c.C * 4;
    if (ff > largest) largest = ff;
    double blas = largest < PLAN_BLAS_PER_THREAD_MAX ? largest : PLAN_BLAS_PER_THREAD_MAX;
    double base = PLAN_BASELINE_BYTES + blas * nthr;
    double train_phase = base + weights + grads + moments + acts + data_bytes;
    double load_phase = base + weights + (is_dir ? (double)cli_safetensors_bytes(model) : weights);
    double peak = train_phase > load_phase ? train_phase : load_phase;
    double mib = 1048576.0;
    if (json) {
        printf("{\"weights_bytes\":%.0f,\"gradients_bytes\":%.0f,\"optimizer_bytes\":%.0f,\"activation_bytes\":%.0f,"
               "\"data_bytes\":%.0f,\"baseline_bytes\":%.0f,\"peak_rss_bytes\":%.0f,\"micro_batch\":%d,\"seq_len\":%d}\n",
               weights, grads, moments, acts, data_bytes, base, peak, micro, seq_len);
    } else {
        printf("plan for %s, full fine-tuning, micro-batch %d x %d tokens%s\n", c.architecture, micro, seq_len,
               ckpt ? ", gradient checkpointing" : "");
        printf("  weights (fp32)        %10.2f MiB\n", weights / mib);
        printf("  gradients             %10.2f MiB\n", grads / mib);
        printf("  AdamW moments         %10.2f MiB\n", moments / mib);
        printf("  activations           %10.2f MiB\n", acts / mib);
        printf("  token data            %10.2f MiB\n", data_bytes / mib);
        printf("  process baseline      %10.2f MiB\n", base / mib);
        printf("  predicted peak RSS    %10.2f MiB\n", peak / mib);
    }
    return 0;
}
