/* cmd_merge.c — `tuna merge`: a base model plus a PEFT adapter (LoRA or IA3)
 * becomes a plain model folder, W' = W + s·B·A (or W scaled by IA3's
 * vectors), computed in fp32 from the base's own weights: the base is kept
 * as stored and the merged weights are computed a block of rows at a time as
 * they are written (tuna_peft_merge_on_write), so memory stays bounded
 * whatever the model's size. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli_paths.h"
#include "commands.h"
#include "tuna_peft.h"

static const char *merge_help =
    "usage: tuna merge --model DIR --adapter DIR --out DIR [--save-dtype f32|bf16|f16] [--overwrite]\n"
    "\n"
    "Folds the adapter into the base weights and writes OUT as a plain model folder\n"
    "(model.safetensors, config.json, the base's tokenizer files) that any tool\n"
    "loads without PEFT. The delta is added to the base's original weights as\n"
    "stored in DIR (for an adapter trained with --method qlora: the full-precision\n"
    "weights, not the NF4 copy it was trained against). The base is read as stored\n"
    "and the merged weights are computed a block of rows at a time as they are\n"
    "written, so memory stays small whatever the model's size. Prompt-tuning\n"
    "adapters cannot be merged (they add virtual tokens, not weights).\n"
    "  --save-dtype D   dtype of the written weights (default f32)\n"
    "  --overwrite      replace an existing non-empty OUT (only once the new folder\n"
    "                   is complete; without it such an OUT is refused). OUT may not\n"
    "                   be or hold --model or --adapter.\n";

/* the method an adapter folder written by `tuna sft` was trained with, if known */
static int trained_with_qlora(const char *adapter) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/train_args.json", adapter);
    json_t *o = json_load_file(p, 0, NULL);
    const char *mth = o ? json_string_value(json_object_get(o, "method")) : NULL;
    int q = mth && !strcmp(mth, "qlora");
    json_decref(o);
    return q;
}

int cmd_merge(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(merge_help, stdout); return 0; }
    const char *model = NULL, *adapter = NULL, *out = NULL, *dt = "f32";
    int overwrite = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--adapter") && i + 1 < argc) adapter = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--save-dtype") && i + 1 < argc) dt = argv[++i];
        else if (!strcmp(argv[i], "--overwrite")) overwrite = 1;
        else return cli_usage_error("merge: unknown option '%s' (see tuna merge --help)", argv[i]);
    }
    if (!model || !adapter || !out) return cli_usage_error("merge: --model, --adapter and --out are required");
    tuna_dtype sdt = !strcmp(dt, "bf16") ? TUNA_DTYPE_BF16 : !strcmp(dt, "f16") ? TUNA_DTYPE_F16 : TUNA_DTYPE_F32;
    if (strcmp(dt, "f32") && strcmp(dt, "bf16") && strcmp(dt, "f16")) return cli_usage_error("--save-dtype must be f32, bf16 or f16");
    const cli_path in[] = {{"--model", model, CLI_DIR}, {"--adapter", adapter, CLI_DIR}}, outs[] = {{"--out", out, CLI_DIR}};
    cli_out_dir od;
    int rc = cli_check_paths("merge", in, 2, outs, 1);
    if (!rc) rc = cli_out_dir_begin(&od, "merge", out, overwrite);
    if (rc) return rc;
    tuna_model *m = NULL;
    /* the base as stored; the delta is folded in row block by row block as written */
    tuna_status st = tuna_model_load_quantized(&m, model, TUNA_QUANT_STORED);
    if (st == TUNA_OK) st = tuna_peft_load(m, adapter);
    const char *kind = "";
    if (st == TUNA_OK) {
        const tuna_peft_config *c = tuna_peft_get(m);
        kind = c->type == TUNA_PEFT_LORA ? "LoRA" : c->type == TUNA_PEFT_IA3 ? "IA3" : "prompt tuning";
        int n_ad = tuna_peft_num_adapted(m);
        st = tuna_peft_merge_on_write(m);
        if (st == TUNA_OK)
            fprintf(stderr, "merged %s adapter %s (%d linear layers) into %s (%s weights, computed in float32)\n", kind, adapter, n_ad,
                    model, tuna_dtype_name(tuna_model_config(m)->dtype));
    }
    if (st == TUNA_OK && trained_with_qlora(adapter))
        fprintf(stderr, "note: this adapter was trained with --method qlora against NF4-quantized base weights; the delta is "
                        "added to the original full-precision weights, as QLoRA merges do\n");
    if (st == TUNA_OK) st = tuna_model_save(m, od.tmp, sdt);
    if (st == TUNA_OK) {
        const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                               "tokenizer.model", "vocab.json", "merges.txt"};
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) cli_copy_file(model, od.tmp, names[k]);
        st = cli_out_dir_commit(&od);
    }
    cli_out_dir_abort(&od);
    if (st == TUNA_OK) fprintf(stderr, "wrote %s/model.safetensors\n", out);
    tuna_model_free(m);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
