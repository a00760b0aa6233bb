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
    CLI_MODEL_FLAGS_HELP
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

/* ---- options ---- */
typedef struct {
    const char *model, *adapter, *prompt, *file, *system, *tmpl_arg;
    int chat, json, interactive;
    cli_gen_flags gf;
    cli_model_flags mf;
} gen_opts;

/* argv into *o and the checks that need no file; 0, or the exit code */
static int gen_parse(gen_opts *o, int argc, char **argv, int interactive) {
    *o = (gen_opts){.interactive = interactive};
    cli_gen_flags_init(&o->gf, 256);
    cli_model_flags_init(&o->mf);
    const char *cmd = interactive ? "chat" : "generate";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_gen_flag(&o->gf, argc, argv, &i);
        if (!g) g = cli_model_flag(&o->mf, cmd, argc, argv, &i);
        if (g < 0) return 2;
        if (g) continue;
        if (!strcmp(a, "--model") && v) o->model = argv[++i];
        else if (!strcmp(a, "--adapter") && v) o->adapter = argv[++i];
        else if (!strcmp(a, "--prompt") && v) o->prompt = argv[++i];
        else if (!strcmp(a, "--file") && v) o->file = argv[++i];
        else if (!strcmp(a, "--system") && v) o->system = argv[++i];
        else if (!strcmp(a, "--template") && v) o->tmpl_arg = argv[++i];
        else if (!strcmp(a, "--chat")) o->chat = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else return cli_usage_error("generate: unknown option or missing value '%s' (see tuna generate --help)", a);
    }
    if (interactive) {
        o->chat = 1;
        if (!o->model || o->prompt || o->file) return cli_usage_error("chat: --model is required; turns come from standard input");
    } else if (!o->model || (!o->prompt == !o->file)) return cli_usage_error("generate: --model and one of --prompt or --file are required");
    return 0;
}

/* ---- what a generation session holds ---- */
typedef struct {
    tuna_model *m;
    tuna_tokenizer *tok;
    tuna_template *tmpl;
    tuna_decoder *d; /* sized for the current prompt */
    char *tsrc, *filebuf;
    tuna_sample_args sa;
    int32_t eos[16];
    int n_eos;
    json_t *history;   /* the system turn, and in chat the earlier turns */
    char *line, *turn; /* the next line of --file; the current chat turn */
    int prompt_done;
} gen_state;

/* the model (adapter, NF4), the chat template and the sampling settings;
 * 0, or the exit code */
static int gen_load(gen_state *s, const gen_opts *o) {
    tuna_status st = cli_load_model(&(cli_model_spec){.dir = o->model, .flags = o->mf, .adapter = o->adapter}, &s->m, &s->tok);
    if (st == TUNA_OK && o->chat) {
        st = tuna_dataset_template(&s->tmpl, s->tok, o->tmpl_arg, &s->tsrc);
        if (st == TUNA_OK && !s->tmpl) st = core_fail(TUNA_ERR_ARG, "%s: the tokenizer has no chat template; give --template NAME|FILE", o->model);
    }
    if (st == TUNA_OK) st = cli_gen_setup(o->model, s->tok, &o->gf, 1, s->eos, &s->n_eos, &s->sa);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}

/* --file read whole into s->filebuf; 0, or the exit code */
static int gen_read_file(gen_state *s, const char *file) {
    FILE *f;
    tuna_status st = input_file_open(file, 0, &f);
    if (st != TUNA_OK) return cli_status_error(st);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    s->filebuf = malloc((size_t)sz + 1);
    if (!s->filebuf || fread(s->filebuf, 1, (size_t)sz, f) != (size_t)sz) { fclose(f); return cli_usage_error("%s: cannot read", file); }
    fclose(f);
    s->filebuf[sz] = 0;
    s->line = s->filebuf;
    return 0;
}

static void add_system_turn(gen_state *s, const gen_opts *o) {
    if (o->system) json_array_append_new(s->history, json_pack("{s:s,s:s}", "role", "system", "content", o->system));
}

/* the next chat turn from standard input (/reset starts over); NULL at
 * /quit or the end of input */
static const char *next_turn(gen_state *s, const gen_opts *o) {
    for (;;) {
        free(s->turn);
        if (isatty(0)) fputs("> ", stderr);
        s->turn = read_line();
        if (!s->turn || !strcmp(s->turn, "/quit")) return NULL;
        if (!strcmp(s->turn, "/reset")) {
            json_array_clear(s->history);
            add_system_turn(s, o);
            continue;
        }
        if (*s->turn) return s->turn;
    }
}

/* the next text to answer: --prompt once, the next non-empty line of
 * --file, or the next chat turn; NULL when there is none */
static const char *next_text(gen_state *s, const gen_opts *o) {
    if (o->interactive) return next_turn(s, o);
    if (o->prompt) {
        if (s->prompt_done) return NULL;
        s->prompt_done = 1;
        return o->prompt;
    }
    char *line = s->line, *next;
    while (line && *line == '\n') line++;
    if (!line || !*line) return NULL;
    next = strchr(line, '\n');
    if (next) *next = 0;
    s->line = next ? next + 1 : NULL;
    return line;
}

/* text as token ids: with --chat rendered after the earlier turns through
 * the template and encoded as SFT encodes training text */
static tuna_status gen_encode(gen_state *s, const gen_opts *o, const char *text, int32_t **ids, size_t *n) {
    char *rendered = NULL;
    const char *to_encode = text;
    tuna_status st;
    if (o->chat) {
        json_t *msgs = json_copy(s->history); /* earlier turns (chat), the system turn */
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", text));
        tuna_template_vars vars = {.bos_token = tuna_tokenizer_bos_token(s->tok), .eos_token = tuna_tokenizer_eos_token(s->tok),
                                   .add_generation_prompt = 1};
        st = tuna_template_render(s->tmpl, msgs, &vars, &rendered, NULL);
        json_decref(msgs);
        if (st != TUNA_OK) return st;
        to_encode = rendered;
    }
    st = o->chat ? tuna_dataset_encode_text(s->tok, to_encode, strlen(to_encode), ids, n)
                 : tuna_tokenizer_encode(s->tok, to_encode, strlen(to_encode), 1, ids, n);
    free(rendered);
    if (st == TUNA_OK && *n == 0) st = core_fail(TUNA_ERR_ARG, "the prompt encodes to no tokens");
    return st;
}

/* the answer to one text, streamed unless --json, in *res */
static tuna_status gen_one(gen_state *s, const gen_opts *o, const char *text, tuna_gen_result *res) {
    int32_t *ids = NULL;
    size_t n = 0;
    tuna_status st = gen_encode(s, o, text, &ids, &n);
    tuna_model *m = s->m;
    int P = tuna_peft_get(m) && tuna_peft_get(m)->type == TUNA_PEFT_PROMPT ? tuna_peft_get(m)->num_virtual_tokens : 0;
    int fit = o->gf.max_new;
    if (st == TUNA_OK) st = fit_context(tuna_model_config(m), (long)n + P, o->gf.max_new, &fit);
    tuna_decoder_free(s->d);
    s->d = NULL;
    if (st == TUNA_OK) st = tuna_decoder_create(&s->d, m, 1, (int)n + P + fit, (int)n + P > 1 ? (int)n + P : 1);
    tuna_gen_opts go = {.max_new_tokens = fit, .sample = s->sa, .eos_ids = s->eos, .n_eos = s->n_eos, .stop = o->gf.stops,
                        .n_stop = o->gf.n_stop, .on_text = o->json ? NULL : on_text};
    if (st == TUNA_OK) st = tuna_generate(s->d, s->tok, ids, (int)n, &go, res);
    free(ids);
    return st;
}

/* --json: the answer as one JSON object; else the end of the streamed
 * line, and the statistics on stderr */
static void print_result(const tuna_gen_result *res, int json) {
    if (json) {
        json_t *o = json_object(), *ja = json_array();
        for (int i = 0; i < res->n; i++) json_array_append_new(ja, json_integer(res->ids[i]));
        json_object_set_new(o, "text", json_stringn(res->text, res->text_len));
        json_object_set_new(o, "ids", ja);
        json_object_set_new(o, "prompt_tokens", json_integer(res->prompt_tokens));
        json_object_set_new(o, "completion_tokens", json_integer(res->n));
        json_object_set_new(o, "finish_reason", json_string(res->stopped ? "stop" : "length"));
        char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        putchar('\n');
        fflush(stdout); /* the text line ends before the statistics on stderr */
        fprintf(stderr, "[%d prompt tokens in %.2f s (%.0f tok/s); %d generated in %.2f s (%.1f tok/s); %s]\n", res->prompt_tokens,
                res->prompt_seconds, res->prompt_tokens / (res->prompt_seconds > 0 ? res->prompt_seconds : 1e-9), res->n,
                res->decode_seconds, res->n / (res->decode_seconds > 0 ? res->decode_seconds : 1e-9), res->stopped ? "stop" : "length");
    }
}

/* every text answered in turn (chat: kept in the conversation) */
static tuna_status gen_loop(gen_state *s, const gen_opts *o) {
    tuna_status st = TUNA_OK;
    const char *text;
    while ((text = next_text(s, o))) {
        tuna_gen_result res;
        st = gen_one(s, o, text, &res);
        if (st != TUNA_OK) break;
        if (o->interactive) {
            json_array_append_new(s->history, json_pack("{s:s,s:s}", "role", "user", "content", text));
            json_array_append_new(s->history, json_pack("{s:s,s:s%}", "role", "assistant", "content", res.text, res.text_len));
        }
        print_result(&res, o->json);
        tuna_gen_result_free(&res);
    }
    return st;
}

static int generate_main(int argc, char **argv, int interactive) {
    if (cli_wants_help(argc, argv)) { fputs(interactive ? chat_help : generate_help, stdout); return 0; }
    gen_opts o;
    int rc = gen_parse(&o, argc, argv, interactive);
    if (rc) return rc;
    gen_state s = {0};
    rc = gen_load(&s, &o);
    if (!rc && o.file) rc = gen_read_file(&s, o.file);
    if (!rc) {
        s.history = json_array();
        add_system_turn(&s, &o);
        tuna_status st = gen_loop(&s, &o);
        if (st != TUNA_OK) rc = cli_status_error(st);
    }
    free(s.turn);
    json_decref(s.history);
    tuna_decoder_free(s.d);
    tuna_template_free(s.tmpl);
    free(s.tsrc);
    free(s.filebuf);
    tuna_tokenizer_free(s.tok);
    tuna_model_free(s.m);
    return rc;
}
