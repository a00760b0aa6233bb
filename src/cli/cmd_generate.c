/* cmd_generate.c — `tuna generate`: text from a prompt (or one per line of a
 * file) with the KV cache, optionally through the chat template and with an
 * adapter applied unmerged; streamed to the terminal, or one JSON object per
 * prompt with --json. */
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_model.h"
#include "commands.h"
#include "core/json_keys.h"
#include "io/gguf.h"
#include "io/input_file.h"
#include "tuna_gguf.h"
#include "tuna_dataset.h"
#include "tuna_infer.h"
#include "tuna_peft.h"
#include "core/error.h"

static const char *generate_help =
    "usage: tuna generate --model DIR (--prompt TEXT | --file F) [options]\n"
    "\n"
    "Continues each prompt (--file: one prompt per non-empty line) with the model,\n"
    "using a KV cache. A plain prompt is encoded with the special tokens the\n"
    "tokenizer adds (BOS for Llama-family models, as HF and llama2.c do); --chat\n"
    "renders it as a user turn with the chat template and the generation prompt.\n"
    "Sampling defaults come from the model's generation_config.json (greedy when\n"
    "it does not ask for sampling); options override them.\n"
    "  --adapter DIR          a PEFT adapter (LoRA, IA3, prompt tuning), unmerged\n"
    "  --quant nf4            the block linears in NF4 (as QLoRA stores them)\n"
    "  --chat --system TEXT   chat template (and a system turn)\n"
    "  --template NAME|FILE   chat template for models that ship none\n"
    "  --max-new-tokens N     (default 256)\n"
    "  --temperature T        0 = greedy; > 0 samples\n"
    "  --top-k K --top-p P --min-p P --repetition-penalty R --seed N\n"
    "  --stop TEXT            stop string (repeatable); the text ends before it\n"
    "  --json                 {\"text\",\"ids\",\"prompt_tokens\",\"completion_tokens\",\"finish_reason\"} per prompt\n"
    "With --chat the rendered prompt is encoded as SFT encodes training text: no\n"
    "special tokens added, BOS put in front unless the template writes it.\n";

static void on_text(void *ctx, const char *text, size_t len) {
    (void)ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

/* A GGUF file's EOS and end-of-turn ids. A value of another type, negative
 * or over INT_MAX is an error naming the key (as llama.cpp refuses a key of
 * the wrong type); an id outside the vocabulary is ignored with a warning, as
 * llama.cpp does ("bad special token ... using default id"). */
static tuna_status read_gguf_eos(const char *path, int vocab, int32_t *eos, int *n_eos) {
    gguf_file g;
    tuna_status st = gguf_open(&g, path);
    if (st != TUNA_OK) return st;
    const char *keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"};
    for (int k = 0; k < 2 && st == TUNA_OK; k++) {
        int id = gguf_meta_int(&g, keys[k], 0, -1, &st);
        if (id >= vocab)
            fprintf(stderr, "tuna: warning: %s: %s %d is not a token id (the vocabulary has %d): ignored, as llama.cpp does\n", path,
                    keys[k], id, vocab);
        else if (id >= 0 && *n_eos < 16) eos[(*n_eos)++] = id;
    }
    gguf_close(&g);
    return st;
}

/* generation_config.json: eos ids and sampling defaults (absent file: none).
 * Read strictly (core/json_keys.h): a value of the wrong type or out of range
 * is an error naming the file and key, as in config.json. */
static tuna_status read_generation_config(const char *dir, int vocab, int32_t *eos, int *n_eos, tuna_sample_args *sa, int sampling) {
    char p[PATH_MAX];
    if (tuna_is_gguf(dir)) return read_gguf_eos(dir, vocab, eos, n_eos);
    snprintf(p, sizeof p, "%s/generation_config.json", dir);
    json_error_t jerr;
    json_t *o = json_load_file(p, 0, &jerr);
    if (!o) {
        if (access(p, F_OK) != 0) return TUNA_OK;
        return core_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", p, jerr.line, jerr.text);
    }
    jkeys r = {o, p, "", json_is_object(o) ? TUNA_OK : core_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", p)};
    int n = jkeys_token_ids(&r, "eos_token_id", eos, 16);
    *n_eos = n < 16 ? n : 16;
    int do_sample = jkeys_bool(&r, "do_sample", 0);
    float t = jkeys_num(&r, "temperature", 0, 0, FLT_MAX, 1.0);
    int k = (int)jkeys_int(&r, "top_k", 0, INT_MAX, sa->top_k);
    float tp = jkeys_num(&r, "top_p", 0, 1, 1, sa->top_p);
    float rp = jkeys_num(&r, "repetition_penalty", 0, 1, FLT_MAX, sa->repetition_penalty);
    if (sampling && do_sample) {
        sa->temperature = t;
        sa->top_k = k;
        sa->top_p = tp;
    }
    if (sampling) sa->repetition_penalty = rp;
    json_decref(o);
    return r.st;
}

/* a missing value reads as '' (not a number), as this parser always said */
static int parse_f(const char *opt, const char *s, double lo, double hi, float *out) {
    double v;
    if (cli_parse_double(opt, s ? s : "", lo, hi, &v)) return -1;
    *out = (float)v;
    return 0;
}

void cli_gen_flags_init(cli_gen_flags *f, int max_new) {
    memset(f, 0, sizeof *f);
    f->max_new = max_new;
    f->temperature = f->top_p = f->min_p = f->rep = -1;
    f->top_k = -1;
}

int cli_gen_flag(cli_gen_flags *f, int argc, char **argv, int *i) {
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int bad = 0;
    if (!strcmp(o, "--stop") && v) {
        if (f->n_stop == 16) { cli_usage_error("at most 16 --stop strings"); return -1; }
        f->stops[f->n_stop++] = v;
    }
    else if (!strcmp(o, "--max-new-tokens")) bad = cli_parse_int(o, v, 0, 1 << 20, &f->max_new);
    else if (!strcmp(o, "--seed")) bad = cli_parse_int(o, v, 0, 2147483647, &f->seed);
    else if (!strcmp(o, "--top-k")) bad = cli_parse_int(o, v, 0, 1 << 30, &f->top_k);
    else if (!strcmp(o, "--temperature")) bad = parse_f(o, v, 0, 100, &f->temperature);
    else if (!strcmp(o, "--top-p")) bad = parse_f(o, v, 1e-6, 1, &f->top_p);
    else if (!strcmp(o, "--min-p")) bad = parse_f(o, v, 0, 1, &f->min_p);
    else if (!strcmp(o, "--repetition-penalty")) bad = parse_f(o, v, 1e-3, 100, &f->rep);
    else return 0;
    if (bad) return -1;
    (*i)++;
    return 1;
}

tuna_status cli_gen_setup(const char *model_dir, const tuna_tokenizer *tok, const cli_gen_flags *f, int config_sampling,
                          int32_t eos[16], int *n_eos, tuna_sample_args *sa) {
    tuna_sample_args_default(sa);
    sa->temperature = 0; /* HF generate: greedy unless asked to sample */
    *n_eos = 0;
    tuna_status st = read_generation_config(model_dir, tuna_tokenizer_vocab_size(tok), eos, n_eos, sa, config_sampling);
    if (st != TUNA_OK) return st;
    if (!*n_eos && tuna_tokenizer_eos_id(tok) >= 0) eos[(*n_eos)++] = tuna_tokenizer_eos_id(tok);
    if (f->temperature >= 0) sa->temperature = f->temperature;
    if (f->top_k >= 0) sa->top_k = f->top_k;
    if (f->top_p >= 0) sa->top_p = f->top_p;
    if (f->min_p >= 0) sa->min_p = f->min_p;
    if (f->rep >= 0) sa->repetition_penalty = f->rep;
    sa->seed = (uint64_t)f->seed;
    return TUNA_OK;
}

static const char *chat_help =
    "usage: tuna chat --model DIR [--adapter DIR] [--system TEXT] [options of tuna generate]\n"
    "\n"
    "An interactive conversation: each line on standard input is a user turn;\n"
    "the model's reply (through its chat template, or --template) is streamed\n"
    "and kept in the conversation. /reset starts over; /quit or end of input ends.\n"
    "With --json each reply is one JSON object (see tuna generate --help).\n";

static int generate_main(int argc, char **argv, int interactive);
/* The new tokens that fit after a prompt of `used` positions (prompt-tuning
 * virtual tokens included), in *fit. RoPE models: all max_new, with one
 * warning when the prompt, or the prompt and max_new together, run past
 * max_position_embeddings (sft and eval warn alike; serve refuses). Learned
 * positions (GPT-2) have none past the last: generation stops there, with a
 * warning saying when, and a prompt that leaves no room is an error. */
static tuna_status fit_context(const tuna_config *cfg, long used, int max_new, int *fit) {
    int limit = cfg->max_positions;
    *fit = max_new;
    if (limit <= 0 || used + max_new <= limit) return TUNA_OK;
    if (!cfg->learned_positions) {
        if (used > limit) cli_warn_context(NULL, 1, 1, "prompts are", used, limit);
        else
            fprintf(stderr, "tuna: warning: the prompt's %ld tokens and --max-new-tokens %d run past the model's context of %d "
                            "positions (max_position_embeddings): generation goes on past it\n", used, max_new, limit);
        return TUNA_OK;
    }
    if (used >= limit)
        return core_fail(TUNA_ERR_ARG, "the prompt's %ld tokens leave no room for a new token in the model's %d learned positions",
                         used, limit);
    *fit = (int)(limit - used);
    fprintf(stderr, "tuna: warning: the prompt's %ld tokens and --max-new-tokens %d run past the model's %d learned positions: "
                    "generation stops after %d new tokens\n", used, max_new, limit, *fit);
    return TUNA_OK;
}

int cmd_generate(int argc, char **argv) { return generate_main(argc, argv, 0); }
int cmd_chat(int argc, char **argv) { return generate_main(argc, argv, 1); }

/* next line of standard input without its newline (malloc'd), NULL at the end */
static char *read_line(void) {
    size_t cap = 256, n = 0;
    char *b = malloc(cap);
    int c;
    while (b && (c = getchar()) != EOF && c != '\n') {
        if (n + 2 > cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); return NULL; }
            b = nb;
        }
        b[n++] = (char)c;
    }
    if (!b || (c == EOF && n == 0)) { free(b); return NULL; }
    b[n] = 0;
    return b;
}

static int generate_main(int argc, char **argv, int interactive) {
    if (cli_wants_help(argc, argv)) { fputs(interactive ? chat_help : generate_help, stdout); return 0; }
    const char *model = NULL, *adapter = NULL, *quant = NULL, *prompt = NULL, *file = NULL, *system = NULL, *tmpl_arg = NULL;
    int chat = 0, json = 0;
    cli_gen_flags gf;
    cli_gen_flags_init(&gf, 256);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_gen_flag(&gf, argc, argv, &i);
        if (g < 0) return 2;
        if (g) continue;
        if (!strcmp(o, "--model") && v) model = argv[++i];
        else if (!strcmp(o, "--adapter") && v) adapter = argv[++i];
        else if (!strcmp(o, "--quant") && v) quant = argv[++i];
        else if (!strcmp(o, "--prompt") && v) prompt = argv[++i];
        else if (!strcmp(o, "--file") && v) file = argv[++i];
        else if (!strcmp(o, "--system") && v) system = argv[++i];
        else if (!strcmp(o, "--template") && v) tmpl_arg = argv[++i];
        else if (!strcmp(o, "--chat")) chat = 1;
        else if (!strcmp(o, "--json")) json = 1;
        else return cli_usage_error("generate: unknown option or missing value '%s' (see tuna generate --help)", o);
    }
    int max_new = gf.max_new, n_stop = gf.n_stop;
    const char *const *stops = gf.stops;
    if (interactive) {
        chat = 1;
        if (!model || prompt || file) return cli_usage_error("chat: --model is required; turns come from standard input");
    } else if (!model || (!prompt == !file)) return cli_usage_error("generate: --model and one of --prompt or --file are required");
    if (quant && strcmp(quant, "nf4")) return cli_usage_error("generate: --quant must be nf4");
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    tuna_decoder *d = NULL;
    char *tsrc = NULL, *filebuf = NULL;
    int rc = 0;
    tuna_status st = cli_load_model(&(cli_model_spec){.dir = model, .quant = quant, .adapter = adapter}, &m, &tok);
    if (st == TUNA_OK && chat) {
        st = tuna_dataset_template(&tmpl, tok, tmpl_arg, &tsrc);
        if (st == TUNA_OK && !tmpl) st = core_fail(TUNA_ERR_ARG, "%s: the tokenizer has no chat template; give --template NAME|FILE", model);
    }
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    tuna_sample_args sa;
    int32_t eos[16];
    int n_eos = 0;
    st = cli_gen_setup(model, tok, &gf, 1, eos, &n_eos, &sa);
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    if (file) {
        FILE *f;
        st = input_file_open(file, 0, &f);
        if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        filebuf = malloc((size_t)sz + 1);
        if (!filebuf || fread(filebuf, 1, (size_t)sz, f) != (size_t)sz) { fclose(f); rc = cli_usage_error("%s: cannot read", file); goto done; }
        fclose(f);
        filebuf[sz] = 0;
    }
    const tuna_config *cfg = tuna_model_config(m);
    char *line = filebuf, *next = NULL, *turn = NULL;
    json_t *history = json_array();
    if (system) json_array_append_new(history, json_pack("{s:s,s:s}", "role", "system", "content", system));
    for (const char *text = prompt ? prompt : NULL;; text = NULL) {
        if (interactive) {
            free(turn);
            if (isatty(0)) fputs("> ", stderr);
            turn = read_line();
            if (!turn || !strcmp(turn, "/quit")) break;
            if (!strcmp(turn, "/reset")) {
                json_array_clear(history);
                if (system) json_array_append_new(history, json_pack("{s:s,s:s}", "role", "system", "content", system));
                continue;
            }
            if (!*turn) continue;
            text = turn;
        } else if (!prompt) { /* next non-empty line of the file */
            while (line && *line == '\n') line++;
            if (!line || !*line) break;
            next = strchr(line, '\n');
            if (next) *next = 0;
            text = line;
            line = next ? next + 1 : NULL;
        }
        char *rendered = NULL;
        const char *to_encode = text;
        if (chat) {
            json_t *msgs = json_copy(history); /* earlier turns (chat), the system turn */
            json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", text));
            tuna_template_vars vars = {.bos_token = tuna_tokenizer_bos_token(tok), .eos_token = tuna_tokenizer_eos_token(tok),
                                       .add_generation_prompt = 1};
            st = tuna_template_render(tmpl, msgs, &vars, &rendered, NULL);
            json_decref(msgs);
            if (st != TUNA_OK) break;
            to_encode = rendered;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        st = chat ? tuna_dataset_encode_text(tok, to_encode, strlen(to_encode), &ids, &n)
                  : tuna_tokenizer_encode(tok, to_encode, strlen(to_encode), 1, &ids, &n);
        free(rendered);
        if (st == TUNA_OK && n == 0) st = core_fail(TUNA_ERR_ARG, "the prompt encodes to no tokens");
        int P = tuna_peft_get(m) && tuna_peft_get(m)->type == TUNA_PEFT_PROMPT ? tuna_peft_get(m)->num_virtual_tokens : 0;
        int fit = max_new;
        if (st == TUNA_OK) st = fit_context(cfg, (long)n + P, max_new, &fit);
        tuna_decoder_free(d);
        d = NULL;
        if (st == TUNA_OK) st = tuna_decoder_create(&d, m, 1, (int)n + P + fit, (int)n + P > 1 ? (int)n + P : 1);
        tuna_gen_opts go = {.max_new_tokens = fit, .sample = sa, .eos_ids = eos, .n_eos = n_eos, .stop = stops,
                            .n_stop = n_stop, .on_text = json ? NULL : on_text};
        tuna_gen_result res;
        if (st == TUNA_OK) st = tuna_generate(d, tok, ids, (int)n, &go, &res);
        free(ids);
        if (st != TUNA_OK) break;
        if (interactive) {
            json_array_append_new(history, json_pack("{s:s,s:s}", "role", "user", "content", text));
            json_array_append_new(history, json_pack("{s:s,s:s%}", "role", "assistant", "content", res.text, res.text_len));
        }
        if (json) {
            json_t *o = json_object(), *ja = json_array();
            for (int i = 0; i < res.n; i++) json_array_append_new(ja, json_integer(res.ids[i]));
            json_object_set_new(o, "text", json_stringn(res.text, res.text_len));
            json_object_set_new(o, "ids", ja);
            json_object_set_new(o, "prompt_tokens", json_integer(res.prompt_tokens));
            json_object_set_new(o, "completion_tokens", json_integer(res.n));
            json_object_set_new(o, "finish_reason", json_string(res.stopped ? "stop" : "length"));
            char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
            if (s) puts(s);
            free(s);
            json_decref(o);
        } else {
            putchar('\n');
            fflush(stdout); /* the text line ends before the statistics on stderr */
            fprintf(stderr, "[%d prompt tokens in %.2f s (%.0f tok/s); %d generated in %.2f s (%.1f tok/s); %s]\n", res.prompt_tokens,
                    res.prompt_seconds, res.prompt_tokens / (res.prompt_seconds > 0 ? res.prompt_seconds : 1e-9), res.n,
                    res.decode_seconds, res.n / (res.decode_seconds > 0 ? res.decode_seconds : 1e-9), res.stopped ? "stop" : "length");
        }
        tuna_gen_result_free(&res);
        if (prompt) break;
    }
    free(turn);
    json_decref(history);
    if (st != TUNA_OK) rc = cli_status_error(st);
done:
    tuna_decoder_free(d);
    tuna_template_free(tmpl);
    free(tsrc);
    free(filebuf);
    tuna_tokenizer_free(tok);
    tuna_model_free(m);
    return rc;
}
