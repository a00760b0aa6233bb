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
#include "io/gguf_mix.h"
#include "tuna_dataset.h"
#include "tuna_gguf.h"
#include "tuna_peft.h"
#include "core/error.h"

static const char *export_help =
    "usage: tuna export --model DIR [--adapter DIR] --format hf|gguf|gguf-lora --out PATH [--overwrite] [options]\n"
    "\n"
    "Writes the model, with a LoRA or IA3 adapter folded in (--adapter), for other\n"
    "tools. The base is read as stored and the merged weights are computed a block\n"
    "of rows at a time as they are written (memory stays small whatever the size).\n"
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
    "  --type q2_k|q3_k_s|q3_k_m|q3_k_l|q4_k_s|q4_k_m|q5_k_s|q5_k_m|q6_k\n"
    "                         llama.cpp's k-quant mixtures, as llama-quantize writes them\n"
    "                         without an importance matrix: its type per tensor (output\n"
    "                         Q6_K, more bits for attn_v / ffn_down in _m), blocks bit\n"
    "                         for bit its reference quantizers'; rows not a multiple of\n"
    "                         256 fall back as it does (Q4_K->Q5_0, Q5_K->Q5_1,\n"
    "                         Q6_K->Q8_0, Q2_K/Q3_K->Q4_0)\n"
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

/* ---- options ---- */
typedef struct {
    const char *model, *adapter, *format, *out, *dt, *tmpl_arg, *gtype;
    int64_t shard;
    int overwrite, gguf, lora; /* gguf, lora: --format gguf, gguf-lora */
} export_opts;

/* argv into *o, the format and the paths checked; 0, or the exit code */
static int export_parse(export_opts *o, int argc, char **argv) {
    *o = (export_opts){.gtype = "f16", .shard = 5000000000LL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) o->model = argv[++i];
        else if (!strcmp(a, "--adapter") && v) o->adapter = argv[++i];
        else if (!strcmp(a, "--format") && v) o->format = argv[++i];
        else if (!strcmp(a, "--out") && v) o->out = argv[++i];
        else if (!strcmp(a, "--dtype") && v) o->dt = argv[++i];
        else if (!strcmp(a, "--template") && v) o->tmpl_arg = argv[++i];
        else if (!strcmp(a, "--type") && v) o->gtype = argv[++i];
        else if (!strcmp(a, "--overwrite")) o->overwrite = 1;
        else if (!strcmp(a, "--shard-size") && v) {
            o->shard = parse_size(argv[++i]);
            if (o->shard < 1) return cli_usage_error("--shard-size: '%s' is not a size (e.g. 2GB, 500MB, 4GiB)", argv[i]);
        } else return cli_usage_error("export: unknown option or missing value '%s' (see tuna export --help)", a);
    }
    if (!o->model || !o->format || !o->out) return cli_usage_error("export: --model, --format and --out are required");
    o->gguf = !strcmp(o->format, "gguf");
    o->lora = !strcmp(o->format, "gguf-lora");
    if (strcmp(o->format, "hf") && !o->gguf && !o->lora)
        return cli_usage_error("export: --format must be hf, gguf or gguf-lora (got '%s')", o->format);
    const cli_path in[] = {{"--model", o->model, CLI_DIR}, {"--adapter", o->adapter, CLI_DIR}, {"--template", o->tmpl_arg, CLI_FILE}};
    const cli_path outs[] = {{"--out", o->out, o->gguf || o->lora ? CLI_FILE : CLI_DIR}};
    return cli_check_paths("export", in, 3, outs, 1);
}

/* --type and --dtype for --format hf and gguf; 0, or the exit code */
static int check_types(const export_opts *o) {
    const char *gtype = o->gtype, *dt = o->dt;
    if (o->gguf && strcmp(gtype, "f32") && strcmp(gtype, "f16") && strcmp(gtype, "q8_0") && strcmp(gtype, "q4_0") &&
        !gguf_mix_find(gtype))
        return cli_usage_error("--type must be f32, f16, q8_0, q4_0 or one of %s (got '%s')", gguf_mix_names(), gtype);
    if (o->gguf && dt) return cli_usage_error("--dtype is for --format hf; GGUF takes --type");
    if (dt && strcmp(dt, "f32") && strcmp(dt, "f16") && strcmp(dt, "bf16"))
        return cli_usage_error("--dtype must be f32, f16 or bf16 for --format hf (got '%s')", dt);
    return 0;
}

/* --format gguf-lora: the adapter alone, for the base's config; the exit code */
static int export_lora(const export_opts *o) {
    if (!o->adapter) return cli_usage_error("--format gguf-lora needs --adapter DIR");
    if (strcmp(o->gtype, "f32") && strcmp(o->gtype, "f16"))
        return cli_usage_error("--format gguf-lora: --type must be f32 or f16 (got '%s')", o->gtype);
    char cp[4096];
    snprintf(cp, sizeof cp, "%s/config.json", o->model);
    tuna_config cfg;
    tuna_status ls = tuna_config_load(&cfg, cp);
    if (ls == TUNA_OK) ls = tuna_export_gguf_lora(&cfg, o->adapter, o->gtype, o->out);
    if (ls != TUNA_OK) return cli_status_error(ls);
    fprintf(stderr, "wrote %s (GGUF LoRA adapter, %s) for the base in %s\n", o->out, o->gtype, o->model);
    return 0;
}

/* the model as stored with its adapter folded in as written, in *m; its
 * export dtype in *dtype */
static tuna_status load_merged(const export_opts *o, tuna_model **m, tuna_dtype *dtype) {
    tuna_status st = tuna_model_load_quantized(m, o->model, TUNA_QUANT_STORED);
    if (st == TUNA_OK && o->adapter) {
        st = tuna_peft_load(*m, o->adapter);
        if (st == TUNA_OK && tuna_peft_get(*m)->type == TUNA_PEFT_PROMPT)
            st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: a prompt-tuning adapter adds virtual tokens, not weights: it cannot be merged into an export", o->adapter);
        if (st == TUNA_OK) st = tuna_peft_merge_on_write(*m);
    }
    const char *dt = o->dt;
    *dtype = st == TUNA_OK ? tuna_model_config(*m)->dtype : TUNA_DTYPE_F32;
    if (dt) *dtype = !strcmp(dt, "bf16") ? TUNA_DTYPE_BF16 : !strcmp(dt, "f16") ? TUNA_DTYPE_F16 : TUNA_DTYPE_F32;
    return st;
}

/* what the source tokenizer says about special tokens, and the sample
 * conversation's ids as training encoded it (want: NULL when it cannot be) */
typedef struct {
    int32_t stops[8];
    int n_stops, bos, pad, add_bos, add_eos, have_tok;
    char *tsrc; /* the chat template's source */
    int32_t *want, *want_lab;
    size_t n_want;
} tok_info;

/* add_bos / add_eos: whether encoding "" gives BOS / EOS */
static void read_add_flags(tuna_tokenizer *tok, tok_info *t) {
    int32_t *pre = NULL;
    size_t npre = 0;
    if (tuna_tokenizer_encode(tok, "", 0, 1, &pre, &npre) == TUNA_OK) {
        int32_t eos = tuna_tokenizer_eos_id(tok);
        t->add_bos = npre > 0 && t->bos >= 0 && pre[0] == t->bos;
        t->add_eos = npre > (size_t)t->add_bos && eos >= 0 && pre[npre - 1] == eos;
    }
    free(pre);
}

/* stop tokens: EOS, and the special tokens the template writes at the end
 * of an assistant turn (counted tokens after its content) */
static void read_stops(tuna_tokenizer *tok, const export_opts *o, tok_info *t) {
    if (tuna_tokenizer_eos_id(tok) >= 0) t->stops[t->n_stops++] = tuna_tokenizer_eos_id(tok);
    if (sample_ids(o->model, o->tmpl_arg, &t->want, &t->want_lab, &t->n_want) == TUNA_OK) {
        for (size_t i = 1; i < t->n_want && t->n_stops < 8; i++) {
            int32_t id = t->want_lab[i];
            if (id < 0 || !tuna_tokenizer_is_special(tok, id)) continue;
            int seen = 0;
            for (int k = 0; k < t->n_stops; k++) seen |= t->stops[k] == id;
            if (!seen) t->stops[t->n_stops++] = id;
        }
    } else {
        free(t->want);
        free(t->want_lab);
        t->want = t->want_lab = NULL;
    }
}

/* the source's tokenizer, if it has one (a broken one is an error) */
static tuna_status read_tok_info(const export_opts *o, tok_info *t) {
    *t = (tok_info){.bos = -1, .pad = -1};
    tuna_tokenizer *tok = NULL;
    tuna_status ts = tuna_tokenizer_load(&tok, o->model);
    if (ts != TUNA_OK && ts != TUNA_ERR_IO) return ts; /* a broken tokenizer, not a missing one */
    if (ts != TUNA_OK) return TUNA_OK;
    t->have_tok = 1;
    t->bos = tuna_tokenizer_bos_id(tok);
    t->pad = tuna_tokenizer_pad_id(tok);
    read_add_flags(tok, t);
    tuna_template *tm = NULL;
    if (tuna_dataset_template(&tm, tok, o->tmpl_arg, &t->tsrc) != TUNA_OK) { free(t->tsrc); t->tsrc = NULL; }
    tuna_template_free(tm);
    read_stops(tok, o, t);
    tuna_tokenizer_free(tok);
    return TUNA_OK;
}

/* the sample conversation through the files in dir must encode as training
 * did (t->want); through_what names those files in the error */
static tuna_status check_sample(const char *dir, const export_opts *o, const tok_info *t, const char *through_what) {
    int32_t *got = NULL, *got_lab = NULL;
    size_t n_got = 0, n_want = t->n_want;
    tuna_status st = sample_ids(dir, o->tmpl_arg, &got, &got_lab, &n_got);
    if (st == TUNA_OK && (n_got != n_want || memcmp(got, t->want, n_want * sizeof *got) || memcmp(got_lab, t->want_lab, n_want * sizeof *got)))
        st = core_fail(TUNA_ERR_INTERNAL, "%s: a sample conversation encodes to other token ids through %s (%zu vs %zu tokens)",
                       o->out, through_what, n_got, n_want);
    free(got);
    free(got_lab);
    return st;
}

/* --format gguf: one file; the file alone (its vocabulary and template)
 * must encode as training did */
static tuna_status write_gguf(const tuna_model *m, const export_opts *o, const tok_info *t) {
    /* EOS and the template's end-of-turn token: llama.cpp stops at either */
    tuna_gguf_meta meta = {t->have_tok ? o->model : NULL, t->tsrc, NULL, t->bos, t->n_stops ? t->stops[0] : -1,
                           t->n_stops > 1 ? t->stops[1] : -1, t->pad, t->add_bos, t->add_eos};
    const char *slash = strrchr(o->model, '/');
    meta.name = slash && slash[1] ? slash + 1 : o->model;
    tuna_status st = tuna_export_gguf(m, &meta, o->gtype, o->out);
    if (st != TUNA_OK) return st;
    if (t->want) {
        st = check_sample(o->out, o, t, "the GGUF vocabulary and template");
        if (st != TUNA_OK) { unlink(o->out); return st; }
    }
    fprintf(stderr, "wrote %s (GGUF v3, %s%s%s); eos %d, eot %d; sample conversation: %s\n", o->out, o->gtype,
            o->adapter ? ", adapter merged from " : "", o->adapter ? o->adapter : "", meta.eos, meta.eot,
            t->want ? "same token ids as training" : "not checked (no tokenizer or chat template)");
    return TUNA_OK;
}

/* config.json names the same BOS and EOS as the tokenizer (its list of
 * stop tokens is generation_config.json's) */
static tuna_status set_config_tokens(const char *dst, const tok_info *t) {
    char cp[PATH_MAX + 16];
    snprintf(cp, sizeof cp, "%s/config.json", dst);
    tuna_config cfg;
    tuna_status st = tuna_config_load(&cfg, cp);
    if (st == TUNA_OK) {
        if (t->bos >= 0) cfg.bos_token_id = t->bos;
        if (t->n_stops) cfg.eos_token_id = t->stops[0];
        st = tuna_config_save(&cfg, cp);
    }
    return st;
}

/* --format hf, after the weights: generation_config.json and config.json's
 * tokens in dst, the sample checked through them, the folder published */
static tuna_status finish_hf(cli_out_dir *od, const char *dst, const export_opts *o, const tok_info *t, tuna_dtype dtype) {
    tuna_status st = write_generation_config(o->model, dst, t->stops, t->n_stops, t->bos);
    if (st == TUNA_OK && (t->n_stops || t->bos >= 0)) st = set_config_tokens(dst, t);
    /* the exported files must encode a conversation as training did */
    if (st == TUNA_OK && t->want) st = check_sample(dst, o, t, "the exported files");
    if (st == TUNA_OK) st = cli_out_dir_commit(od);
    if (st != TUNA_OK) return st;
    char line[256] = "";
    for (int k = 0; k < t->n_stops; k++) snprintf(line + strlen(line), sizeof line - strlen(line), "%s%d", k ? ", " : "", t->stops[k]);
    fprintf(stderr, "wrote %s (%s weights%s%s); stop tokens %s; sample conversation: %s\n", o->out, tuna_dtype_name(dtype),
            o->adapter ? ", adapter merged from " : "", o->adapter ? o->adapter : "", t->n_stops ? line : "none",
            t->want ? "same token ids as training" : "not checked (no tokenizer or chat template)");
    return TUNA_OK;
}

/* --format hf and gguf: the merged model, then its files */
static tuna_status export_model(const export_opts *o, cli_out_dir *od) {
    const char *dst = o->gguf ? o->out : od->tmp; /* where the files are written; published as out */
    tuna_model *m = NULL;
    tuna_dtype dtype;
    tok_info t = {0};
    tuna_status st = load_merged(o, &m, &dtype);
    if (st == TUNA_OK && !o->gguf) st = tuna_model_save_sharded(m, dst, dtype, o->shard);
    if (st == TUNA_OK && !o->gguf) {
        const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt"};
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) cli_copy_file(o->model, dst, names[k]);
    }
    if (st == TUNA_OK) st = read_tok_info(o, &t);
    if (st == TUNA_OK) st = o->gguf ? write_gguf(m, o, &t) : finish_hf(od, dst, o, &t, dtype);
    free(t.tsrc);
    free(t.want);
    free(t.want_lab);
    tuna_model_free(m);
    return st;
}

int cmd_export(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(export_help, stdout); return 0; }
    export_opts o;
    int rc = export_parse(&o, argc, argv);
    if (rc) return rc;
    if (o.lora) return export_lora(&o);
    if ((rc = check_types(&o))) return rc;
    cli_out_dir od = {0};
    if (!o.gguf && (rc = cli_out_dir_begin(&od, "export", o.out, o.overwrite))) return rc;
    tuna_status st = export_model(&o, &od);
    cli_out_dir_abort(&od);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
