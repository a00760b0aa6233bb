/* cmd_convert.c — `tuna convert llama2c`: a llama2.c checkpoint (and its
 * tokenizer.bin) into an HF-layout model folder; `tuna convert dtype`: a
 * model folder re-saved in another storage dtype (bf16 to ship a model at
 * half the size); and `tuna init`: a randomly
 * initialised model from a config.json (used by the quick start and benches). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "tuna_llama2c.h"

static const char *convert_help =
    "usage: tuna convert llama2c --checkpoint F.bin [--tokenizer T.bin] --out DIR\n"
    "       tuna convert dtype --model DIR --dtype f32|f16|bf16 --out DIR\n"
    "\n"
    "dtype: the model's weights stored in another dtype (computation stays fp32;\n"
    "bf16 keeps fp32's range, rounding each weight to nearest even); tokenizer\n"
    "files and generation_config.json are copied.\n"
    "\n"
    "llama2c:\n"
    "Writes an HF-layout folder (config.json, model.safetensors in F32) whose\n"
    "logits equal llama2.c's: the q/k rows are permuted from llama2.c's\n"
    "interleaved RoPE pairs to Hugging Face's rotate_half layout.\n"
    "  --checkpoint F.bin   llama2.c model file (legacy version-0 format)\n"
    "  --tokenizer T.bin    llama2.c tokenizer, converted to tokenizer.json\n"
    "  --out DIR            output folder (created)\n";

static int parse_dtype(const char *dt, tuna_dtype *out) {
    if (!strcmp(dt, "f32")) *out = TUNA_DTYPE_F32;
    else if (!strcmp(dt, "f16")) *out = TUNA_DTYPE_F16;
    else if (!strcmp(dt, "bf16")) *out = TUNA_DTYPE_BF16;
    else return 0;
    return 1;
}

static int convert_dtype(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *dt = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else return cli_usage_error("convert dtype: unknown option '%s' (see tuna convert --help)", argv[i]);
    }
    tuna_dtype dtype;
    if (!model || !out || !dt) return cli_usage_error("convert dtype: --model, --dtype and --out are required");
    if (!parse_dtype(dt, &dtype)) return cli_usage_error("convert dtype: --dtype must be f32, f16 or bf16");
    if (!strcmp(model, out)) return cli_usage_error("convert dtype: --out must differ from --model");
    if (cli_output_refused(out, 1)) return 2;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) return cli_usage_error("%s: cannot create: %s", out, strerror(errno));
    tuna_model *m;
    tuna_status st = tuna_model_load(&m, model);
    if (st != TUNA_OK) return cli_status_error(st);
    st = tuna_model_save(m, out, dtype);
    tuna_model_free(m);
    if (st != TUNA_OK) return cli_status_error(st);
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                                        "merges.txt", "tokenizer.bin", "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) cli_copy_file(model, out, files[i]);
    printf("wrote %s (%s weights, %.2f MiB)\n", out, dt, cli_safetensors_bytes(out) / 1048576.0);
    return 0;
}

int cmd_convert(int argc, char **argv) {
    if (cli_wants_help(argc, argv) || argc < 2) {
        fputs(convert_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "dtype")) return convert_dtype(argc, argv);
    if (strcmp(argv[1], "llama2c")) return cli_usage_error("convert: unknown source format '%s' (supported: llama2c, dtype)", argv[1]);
    const char *ckpt = NULL, *tok = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--checkpoint") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else return cli_usage_error("convert: unknown option '%s' (see tuna convert --help)", argv[i]);
    }
    if (!ckpt || !out) return cli_usage_error("convert: --checkpoint and --out are required");
    if (cli_output_refused(out, 1)) return 2;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) return cli_usage_error("%s: cannot create: %s", out, strerror(errno));
    tuna_status st = tuna_llama2c_convert(ckpt, out);
    if (st != TUNA_OK) return cli_status_error(st);
    if (tok) {
        st = cli_convert_llama2c_tokenizer(tok, out);
        if (st != TUNA_OK) return cli_status_error(st);
    }
    printf("wrote %s (config.json, model.safetensors%s)\n", out, tok ? ", tokenizer files" : "");
    return 0;
}

static const char *init_help =
    "usage: tuna init --config ARCH.json --out DIR [--seed N] [--dtype f32|f16|bf16]\n"
    "\n"
    "Creates a model folder with randomly initialised weights (HF conventions:\n"
    "normal(0, initializer_range), unit norms, zero biases, GPT-2 residual\n"
    "projections scaled by 1/sqrt(2L)) from an HF config.json.\n";

int cmd_init(int argc, char **argv) {
    const char *cfgp = NULL, *out = NULL, *dt = "f32";
    int seed = 0;
    if (cli_wants_help(argc, argv)) { fputs(init_help, stdout); return 0; }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cfgp = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = argv[++i];
        else if (!strcmp(argv[i], "--seed")) { if (cli_parse_int("--seed", i + 1 < argc ? argv[++i] : NULL, 0, 2147483647, &seed)) return 2; }
        else return cli_usage_error("init: unknown option '%s' (see tuna init --help)", argv[i]);
    }
    if (!cfgp || !out) return cli_usage_error("init: --config and --out are required");
    if (cli_output_refused(out, 1)) return 2;
    tuna_dtype dtype;
    if (!strcmp(dt, "f32")) dtype = TUNA_DTYPE_F32;
    else if (!strcmp(dt, "f16")) dtype = TUNA_DTYPE_F16;
    else if (!strcmp(dt, "bf16")) dtype = TUNA_DTYPE_BF16;
    else return cli_usage_error("init: --dtype must be f32, f16 or bf16");
    tuna_config c;
    tuna_status st = tuna_config_load(&c, cfgp);
    if (st != TUNA_OK) return cli_status_error(st);
    tuna_model *m;
    st = tuna_model_create(&m, &c);
    if (st == TUNA_OK) st = tuna_model_init_random(m, (uint64_t)seed);
    if (st == TUNA_OK) st = tuna_model_save(m, out, dtype);
    tuna_model_free(m);
    if (st != TUNA_OK) return cli_status_error(st);
    printf("wrote %s\n", out);
    return 0;
}
