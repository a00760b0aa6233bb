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

#include "cli_paths.h"
#include "commands.h"
#include "tuna_llama2c.h"

static const char *convert_help =
    "usage: tuna convert llama2c --checkpoint F.bin [--tokenizer T.bin] --out DIR [--overwrite]\n"
    "       tuna convert dtype --model DIR --dtype f32|f16|bf16 --out DIR [--overwrite]\n"
    "\n"
    "dtype: the model's weights stored in another dtype (computation stays fp32;\n"
    "bf16 keeps fp32's range, rounding each weight to nearest even); tokenizer\n"
    "files and generation_config.json are copied.\n"
    "Both write OUT under a temporary name and publish it whole. An existing\n"
    "non-empty OUT is refused unless --overwrite is given; it is then replaced\n"
    "only once the new folder is complete. OUT may not be an input.\n"
    "\n"
    "llama2c:\n"
    "Writes an HF-layout folder (config.json, model.safetensors in F32) whose\n"
    "logits equal llama2.c's: the q/k rows are permuted from llama2.c's\n"
    "interleaved RoPE pairs to Hugging Face's rotate_half layout.\n"
    "  --checkpoint F.bin   llama2.c model file (legacy version-0 format)\n"
    "  --tokenizer T.bin    llama2.c tokenizer, converted to tokenizer.json\n"
    "  --out DIR            output folder (created)\n"
    "  --overwrite          replace an existing non-empty OUT\n";

static int parse_dtype(const char *dt, tuna_dtype *out) {
    if (!strcmp(dt, "f32")) *out = TUNA_DTYPE_F32;
    else if (!strcmp(dt, "f16")) *out = TUNA_DTYPE_F16;
    else if (!strcmp(dt, "bf16")) *out = TUNA_DTYPE_BF16;
    else return 0;
    return 1;
}

static int convert_dtype(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *dt = NULL;
    int overwrite = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--overwrite")) overwrite = 1;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else return cli_usage_error("convert dtype: unknown option '%s' (see tuna convert --help)", argv[i]);
    }
    tuna_dtype dtype;
    if (!model || !out || !dt) return cli_usage_error("convert dtype: --model, --dtype and --out are required");
    if (!parse_dtype(dt, &dtype)) return cli_usage_error("convert dtype: --dtype must be f32, f16 or bf16");
    const cli_path in[] = {{"--model", model, CLI_DIR}}, outs[] = {{"--out", out, CLI_DIR}};
    cli_out_dir od;
    int rc = cli_check_paths("convert dtype", in, 1, outs, 1);
    if (!rc) rc = cli_out_dir_begin(&od, "convert dtype", out, overwrite);
    if (rc) return rc;
    tuna_model *m = NULL;
    tuna_status st = tuna_model_load(&m, model);
    if (st == TUNA_OK) st = tuna_model_save(m, od.tmp, dtype);
    tuna_model_free(m);
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                                        "merges.txt", "tokenizer.bin", "generation_config.json"};
    for (size_t i = 0; st == TUNA_OK && i < sizeof files / sizeof *files; i++) cli_copy_file(model, od.tmp, files[i]);
    if (st == TUNA_OK) st = cli_out_dir_commit(&od);
    cli_out_dir_abort(&od);
    if (st != TUNA_OK) return cli_status_error(st);
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
    int overwrite = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--checkpoint") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--overwrite")) overwrite = 1;
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else return cli_usage_error("convert: unknown option '%s' (see tuna convert --help)", argv[i]);
    }
    if (!ckpt || !out) return cli_usage_error("convert: --checkpoint and --out are required");
    const cli_path in[] = {{"--checkpoint", ckpt, CLI_FILE}, {"--tokenizer", tok, CLI_FILE}}, outs[] = {{"--out", out, CLI_DIR}};
    cli_out_dir od;
    int rc = cli_check_paths("convert llama2c", in, 2, outs, 1);
    if (!rc) rc = cli_out_dir_begin(&od, "convert llama2c", out, overwrite);
    if (rc) return rc;
    tuna_status st = tuna_llama2c_convert(ckpt, od.tmp);
    if (st == TUNA_OK && tok) st = cli_convert_llama2c_tokenizer(tok, od.tmp);
    if (st == TUNA_OK) st = cli_out_dir_commit(&od);
    cli_out_dir_abort(&od);
    if (st != TUNA_OK) return cli_status_error(st);
    printf("wrote %s (config.json, model.safetensors%s)\n", out, tok ? ", tokenizer files" : "");
    return 0;
}

static const char *init_help =
    "usage: tuna init --config ARCH.json --out DIR [--seed N] [--dtype f32|f16|bf16] [--overwrite]\n"
    "\n"
    "Creates a model folder with randomly initialised weights (HF conventions:\n"
    "normal(0, initializer_range), unit norms, zero biases, GPT-2 residual\n"
    "projections scaled by 1/sqrt(2L)) from an HF config.json.\n"
    "DIR may already hold other files (e.g. a tokenizer); its config.json and\n"
    "model.safetensors are refused unless --overwrite is given.\n"
    "  --overwrite   replace DIR's config.json and model.safetensors\n";

int cmd_init(int argc, char **argv) {
    const char *cfgp = NULL, *out = NULL, *dt = "f32";
    int seed = 0, overwrite = 0;
    if (cli_wants_help(argc, argv)) { fputs(init_help, stdout); return 0; }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cfgp = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = argv[++i];
        else if (!strcmp(argv[i], "--overwrite")) overwrite = 1;
        else if (!strcmp(argv[i], "--seed")) { if (cli_parse_int("--seed", i + 1 < argc ? argv[++i] : NULL, 0, 2147483647, &seed)) return 2; }
        else return cli_usage_error("init: unknown option '%s' (see tuna init --help)", argv[i]);
    }
    if (!cfgp || !out) return cli_usage_error("init: --config and --out are required");
    tuna_dtype dtype;
    if (!strcmp(dt, "f32")) dtype = TUNA_DTYPE_F32;
    else if (!strcmp(dt, "f16")) dtype = TUNA_DTYPE_F16;
    else if (!strcmp(dt, "bf16")) dtype = TUNA_DTYPE_BF16;
    else return cli_usage_error("init: --dtype must be f32, f16 or bf16");
    const cli_path in[] = {{"--config", cfgp, CLI_FILE}}, outs[] = {{"--out", out, CLI_DIR}};
    int prc = cli_check_paths("init", in, 1, outs, 1);
    if (prc) return prc;
    static const char *const writes[] = {"config.json", "model.safetensors", "model.safetensors.index.json"};
    if (cli_out_names_free("init", out, writes, 3, overwrite)) return 2;
    tuna_config c;
    tuna_status st = tuna_config_load(&c, cfgp);
    if (st != TUNA_OK) return cli_status_error(st);
    tuna_model *m = NULL;
    st = tuna_model_create(&m, &c);
    if (st == TUNA_OK) st = tuna_model_init_random(m, (uint64_t)seed);
    if (st == TUNA_OK) st = tuna_model_save(m, out, dtype);
    tuna_model_free(m);
    if (st != TUNA_OK) return cli_status_error(st);
    printf("wrote %s\n", out);
    return 0;
}
