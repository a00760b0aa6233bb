/* cmd_export.c — `tuna export`: a model (with its adapter merged) in the
 * formats other tools run. --format hf: a Hugging Face folder (weights in the
 * chosen dtype, sharded above --shard-size with model.safetensors.index.json,
 * config.json, generation_config.json, tokenizer files with the chat
 * template). The stop tokens come from one source (the tokenizer's EOS and
 * the chat template's end-of-turn token) and are written to
 * generation_config.json; after writing, a sample conversation is encoded
 * through the exported files and must give the token ids training used. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_paths.h"
#include "commands.h"
#include "core/json_error.h"
#include "io/atomic_file.h"
#include "tuna_dataset.h"
#include "tuna_gguf.h"
#include "tuna_peft.h"
#include "core/error.h"

static const char *export_help =
    "usage: tuna export --model DIR [--adapter DIR] --format hf|gguf|gguf-lora --out PATH [--overwrite] [options]\n"
    "\n"
    "Writes the model, with a LoRA or IA3 adapter folded in (--adapter), for other\n"
    "tools.\n"
    "  --format hf            a Hugging Face model folder that transformers and vLLM load:\n"
    "                         model.safetensors (or model-0000K-of-0000N.safetensors and\n"
    "                         model.safetensors.index.json above --shard-size),\n"
    "                         config.json, generation_config.json, tokenizer.json,\n"
    "                         tokenizer_config.json (with the chat template),\n"
    "                         special_tokens_map.json\n"
    "  --format gguf          one llama.cpp file (GGUF v3): architecture keys (llama, qwen2,\n"
    "                         gpt2), the vocabulary (byte-level BPE with merges; or\n"
    "                         SentencePiece-style BPE with byte fallback, e.g. Llama 2,\n"
    "                         Mistral, Phi-3, with scores ranked as its merges), special\n"
    "                         ids, add_bos_token / add_eos_token and the chat template;\n"
    "                         tensor names and layouts as llama.cpp's converter writes\n"
    "                         them (Llama q/k rows permuted)\n"
    "  --format gguf-lora     the LoRA adapter alone, as llama.cpp's --lora loads it over\n"
    "                         the base's GGUF (general.type adapter, adapter.lora.alpha,\n"
    "                         <tensor>.lora_a / .lora_b); --type f32 or f16\n"
    "  --type f32|f16|q8_0|q4_0   GGUF tensor type (default f16); norms and biases stay\n"
    "                         F32, rows not a multiple of 32 fall back to F16\n"
    "  --dtype f32|f16|bf16   weights' dtype (default: the source model's)\n"
    "  --shard-size SIZE      largest weight file, e.g. 2GB, 500MB, 4GiB (default 5GB,\n"
    "                         as transformers; GB = 10^9 bytes, GiB = 2^30)\n"
    "  --template NAME|FILE   chat template to check and ship when the model has none\n"
    "  --overwrite            --format hf: replace an existing non-empty OUT folder (only\n"
    "                         once the new folder is complete; without it such an OUT is\n"
    "                         refused). OUT may not be or hold an input.\n"
    "The stop tokens (the tokenizer's EOS and the chat template's end-of-turn\n"
    "token, e.g. <|im_end|> or <|eot_id|>) go to generation_config.json\n"
    "eos_token_id. After writing, a sample conversation is rendered and tokenized\n"
    "through the exported files and compared with the source model's encoding\n"
    "(what training used); a difference is an error.\n";

/* "5GB" -> 5e9; "4GiB" -> 4 * 2^30; plain digits are bytes */
static int64_t parse_size(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return -1;
    static const struct { const char *u; double f; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    for (size_t k = 0; k < sizeof units / sizeof *units; k++)
        if (!strcmp(end, units[k].u)) return (int64_t)(v * units[k].f);
    return -1;
}

/* A sample conversation: the token ids of its rendering through the model in
 * dir (tokenizer files + template) as SFT encodes it, and the ids the
 * template writes after the assistant's content (end-of-turn candidates). */
static tuna_status sample_ids(const char *dir, const char *tmpl_arg, int32_t **ids, int32_t **labels, size_t *n) {
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    char *src = NULL;
    tuna_status st = tuna_tokenizer_load(&tok, dir);
    if (st == TUNA_OK) st = tuna_dataset_template(&tmpl, tok, tmpl_arg, &src);
    if (st == TUNA_OK && !tmpl) st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: no chat template", dir);
    tuna_record rec = {0};
    /* one exchange: templates that end a conversation differently from a turn
     * (Phi-3 appends EOS) cannot be split into turns beyond the last */
    const char *line = "{\"messages\":[{\"role\":\"user\",\"content\":\"Name three colours.\"},"
                       "{\"role\":\"assistant\",\"content\":\"Red, green and blue.\"}]}";
    tuna_bad_kind why;
    if (st == TUNA_OK) st = tuna_record_parse(&rec, line, strlen(line), NULL, &why);
    if (st == TUNA_OK) st = tuna_dataset_encode_record(&rec, tok, tmpl, 0, ids, labels, n, NULL);
    tuna_record_clear(&rec);
    tuna_template_free(tmpl);
    free(src);
    tuna_tokenizer_free(tok);
    return st;
}

/* generation_config.json with eos_token_id = the stop tokens (one, or a list) */
static tuna_status write_generation_config(const char *src_dir, const char *out_dir, const int32_t *stops, int n_stops, int bos) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/generation_config.json", src_dir);
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    if (!g && access(path, F_OK) == 0) return core_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, je.line, tuna_json_error_text(&je));
    if (g && !json_is_object(g)) { json_decref(g); return core_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", path); }
    if (!g) g = json_object();
    if (bos >= 0 && !json_object_get(g, "bos_token_id")) json_object_set_new(g, "bos_token_id", json_integer(bos));
    if (n_stops == 1) json_object_set_new(g, "eos_token_id", json_integer(stops[0]));
    else if (n_stops > 1) {
        json_t *a = json_array();
        for (int i = 0; i < n_stops; i++) json_array_append_new(a, json_integer(stops[i]));
        json_object_set_new(g, "eos_token_id", a);
    }
    snprintf(path, sizeof path, "%s/generation_config.json", out_dir);
    tuna_status st = atomic_file_write_json(path, g, JSON_INDENT(2));
    json_decref(g);
    return st;
}

int cmd_export(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(export_help, stdout); return 0; }
    const char *model = NULL, *adapter = NULL, *format = NULL, *out = NULL, *dt = NULL, *tmpl_arg = NULL, *gtype = "f16";
    int64_t shard = 5000000000LL;
    int overwrite = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--model") && v) model = argv[++i];
        else if (!strcmp(o, "--adapter") && v) adapter = argv[++i];
        else if (!strcmp(o, "--format") && v) format = argv[++i];
        else if (!strcmp(o, "--out") && v) out = argv[++i];
        else if (!strcmp(o, "--dtype") && v) dt = argv[++i];
        else if (!strcmp(o, "--template") && v) tmpl_arg = argv[++i];
        else if (!strcmp(o, "--type") && v) gtype = argv[++i];
        else if (!strcmp(o, "--overwrite")) overwrite = 1;
        else if (!strcmp(o, "--shard-size") && v) {
            shard = parse_size(argv[++i]);
            if (shard < 1) return cli_usage_error("--shard-size: '%s' is not a size (e.g. 2GB, 500MB, 4GiB)", argv[i]);
        } else return cli_usage_error("export: unknown option or missing value '%s' (see tuna export --help)", o);
    }
    if (!model || !format || !out) return cli_usage_error("export: --model, --format and --out are required");
    int gguf = !strcmp(format, "gguf"), lora = !strcmp(format, "gguf-lora");
    if (strcmp(format, "hf") && !gguf && !lora) return cli_usage_error("export: --format must be hf, gguf or gguf-lora (got '%s')", format);
    const cli_path in[] = {{"--model", model, CLI_DIR}, {"--adapter", adapter, CLI_DIR}, {"--template", tmpl_arg, CLI_FILE}};
    const cli_path outs[] = {{"--out", out, gguf || lora ? CLI_FILE : CLI_DIR}};
    int prc = cli_check_paths("export", in, 3, outs, 1);
    if (prc) return prc;
    if (lora) {
        if (!adapter) return cli_usage_error("--format gguf-lora needs --adapter DIR");
        if (strcmp(gtype, "f32") && strcmp(gtype, "f16")) return cli_usage_error("--format gguf-lora: --type must be f32 or f16 (got '%s')", gtype);
        char cp[4096];
        snprintf(cp, sizeof cp, "%s/config.json", model);
        tuna_config cfg;
        tuna_status ls = tuna_config_load(&cfg, cp);
        if (ls == TUNA_OK) ls = tuna_export_gguf_lora(&cfg, adapter, gtype, out);
        if (ls != TUNA_OK) return cli_status_error(ls);
        fprintf(stderr, "wrote %s (GGUF LoRA adapter, %s) for the base in %s\n", out, gtype, model);
        return 0;
    }
    if (gguf && strcmp(gtype, "f32") && strcmp(gtype, "f16") && strcmp(gtype, "q8_0") && strcmp(gtype, "q4_0"))
        return cli_usage_error("--type must be f32, f16, q8_0 or q4_0 (got '%s')", gtype);
    if (gguf && dt) return cli_usage_error("--dtype is for --format hf; GGUF takes --type");
    if (dt && strcmp(dt, "f32") && strcmp(dt, "f16") && strcmp(dt, "bf16"))
        return cli_usage_error("--dtype must be f32, f16 or bf16 for --format hf (got '%s')", dt);

    cli_out_dir od = {0};
    if (!gguf) {
        int rc = cli_out_dir_begin(&od, "export", out, overwrite);
        if (rc) return rc;
    }
    const char *dst = gguf ? out : od.tmp; /* where the files are written; published as out */
    tuna_model *m = NULL;
    int32_t *want = NULL, *want_lab = NULL, *got = NULL, *got_lab = NULL;
    size_t n_want = 0, n_got = 0;
    tuna_status st = tuna_model_load(&m, model);
    if (st == TUNA_OK && adapter) {
        st = tuna_peft_load(m, adapter);
        if (st == TUNA_OK && tuna_peft_get(m)->type == TUNA_PEFT_PROMPT)
            st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: a prompt-tuning adapter adds virtual tokens, not weights: it cannot be merged into an export", adapter);
        if (st == TUNA_OK) st = tuna_peft_merge(m);
    }
    tuna_dtype dtype = st == TUNA_OK ? tuna_model_config(m)->dtype : TUNA_DTYPE_F32;
    if (dt) dtype = !strcmp(dt, "bf16") ? TUNA_DTYPE_BF16 : !strcmp(dt, "f16") ? TUNA_DTYPE_F16 : TUNA_DTYPE_F32;
    if (st == TUNA_OK && !gguf) st = tuna_model_save_sharded(m, dst, dtype, shard);
    if (st != TUNA_OK) goto done;
    if (!gguf) {
        const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt"};
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) cli_copy_file(model, dst, names[k]);
    }

    /* stop tokens: EOS, and the special tokens the template writes at the end
     * of an assistant turn (counted tokens after its content) */
    int32_t stops[8];
    int n_stops = 0, bos = -1, pad = -1, add_bos = 0, add_eos = 0, have_tok = 0;
    char *tsrc = NULL;
    {
        tuna_tokenizer *tok = NULL;
        tuna_status ts = tuna_tokenizer_load(&tok, model);
        if (ts != TUNA_OK && ts != TUNA_ERR_IO) { st = ts; goto done; } /* a broken tokenizer, not a missing one */
        if (ts == TUNA_OK) {
            have_tok = 1;
            bos = tuna_tokenizer_bos_id(tok);
            pad = tuna_tokenizer_pad_id(tok);
            int32_t *pre = NULL;
            size_t npre = 0;
            if (tuna_tokenizer_encode(tok, "", 0, 1, &pre, &npre) == TUNA_OK) {
                int32_t eos = tuna_tokenizer_eos_id(tok);
                add_bos = npre > 0 && bos >= 0 && pre[0] == bos;
                add_eos = npre > (size_t)add_bos && eos >= 0 && pre[npre - 1] == eos;
            }
            free(pre);
            tuna_template *tm = NULL;
            if (tuna_dataset_template(&tm, tok, tmpl_arg, &tsrc) != TUNA_OK) { free(tsrc); tsrc = NULL; }
            tuna_template_free(tm);
            if (tuna_tokenizer_eos_id(tok) >= 0) stops[n_stops++] = tuna_tokenizer_eos_id(tok);
            if (sample_ids(model, tmpl_arg, &want, &want_lab, &n_want) == TUNA_OK) {
                for (size_t i = 1; i < n_want && n_stops < 8; i++) {
                    int32_t id = want_lab[i];
                    if (id < 0 || !tuna_tokenizer_is_special(tok, id)) continue;
                    int seen = 0;
                    for (int k = 0; k < n_stops; k++) seen |= stops[k] == id;
                    if (!seen) stops[n_stops++] = id;
                }
            } else {
                free(want);
                free(want_lab);
                want = want_lab = NULL;
            }
            tuna_tokenizer_free(tok);
        }
    }
    if (gguf) {
        /* EOS and the template's end-of-turn token: llama.cpp stops at either */
        tuna_gguf_meta meta = {have_tok ? model : NULL, tsrc, NULL, bos, n_stops ? stops[0] : -1, n_stops > 1 ? stops[1] : -1, pad, add_bos, add_eos};
        const char *slash = strrchr(model, '/');
        meta.name = slash && slash[1] ? slash + 1 : model;
        st = tuna_export_gguf(m, &meta, gtype, out);
        free(tsrc);
        if (st != TUNA_OK) goto done;
        /* the file alone (its vocabulary and template) must encode as training did */
        if (want) {
            st = sample_ids(out, tmpl_arg, &got, &got_lab, &n_got);
            if (st == TUNA_OK && (n_got != n_want || memcmp(got, want, n_want * sizeof *got) || memcmp(got_lab, want_lab, n_want * sizeof *got)))
                st = core_fail(TUNA_ERR_INTERNAL, "%s: a sample conversation encodes to other token ids through the GGUF vocabulary and template (%zu vs %zu tokens)",
                               out, n_got, n_want);
            if (st != TUNA_OK) { unlink(out); goto done; }
        }
        fprintf(stderr, "wrote %s (GGUF v3, %s%s%s); eos %d, eot %d; sample conversation: %s\n", out, gtype,
                adapter ? ", adapter merged from " : "", adapter ? adapter : "", meta.eos, meta.eot,
                want ? "same token ids as training" : "not checked (no tokenizer or chat template)");
        goto done;
    }
    free(tsrc);
    st = write_generation_config(model, dst, stops, n_stops, bos);
    if (st != TUNA_OK) goto done;
    if (n_stops || bos >= 0) {
        /* config.json names the same BOS and EOS as the tokenizer (its list of
         * stop tokens is generation_config.json's) */
        char cp[PATH_MAX + 16];
        snprintf(cp, sizeof cp, "%s/config.json", dst);
        tuna_config cfg;
        st = tuna_config_load(&cfg, cp);
        if (st == TUNA_OK) {
            if (bos >= 0) cfg.bos_token_id = bos;
            if (n_stops) cfg.eos_token_id = stops[0];
            st = tuna_config_save(&cfg, cp);
        }
        if (st != TUNA_OK) goto done;
    }

    /* the exported files must encode a conversation as training did */
    if (want) {
        st = sample_ids(dst, tmpl_arg, &got, &got_lab, &n_got);
        if (st == TUNA_OK && (n_got != n_want || memcmp(got, want, n_want * sizeof *got) || memcmp(got_lab, want_lab, n_want * sizeof *got)))
            st = core_fail(TUNA_ERR_INTERNAL, "%s: a sample conversation encodes to other token ids through the exported files (%zu vs %zu tokens)",
                           out, n_got, n_want);
        if (st != TUNA_OK) goto done;
    }
    st = cli_out_dir_commit(&od);
    if (st != TUNA_OK) goto done;
    {
        char line[256] = "";
        for (int k = 0; k < n_stops; k++) snprintf(line + strlen(line), sizeof line - strlen(line), "%s%d", k ? ", " : "", stops[k]);
        fprintf(stderr, "wrote %s (%s weights%s%s); stop tokens %s; sample conversation: %s\n", out, tuna_dtype_name(dtype),
                adapter ? ", adapter merged from " : "", adapter ? adapter : "", n_stops ? line : "none",
                want ? "same token ids as training" : "not checked (no tokenizer or chat template)");
    }
done:
    cli_out_dir_abort(&od);
    free(want);
    free(want_lab);
    free(got);
    free(got_lab);
    tuna_model_free(m);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
