/* cmd_eval.c — `tuna eval`: a model (with an adapter, NF4 base) on a data set
 * of any record format: the response-only loss and perplexity (one
 * token-weighted mean over all counted tokens of the file, never a mean of
 * batch means) and, with --generate, the model's answers to each prompt scored
 * against the reference response. Per-example results go to a JSONL file. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_model.h"
#include "cli_paths.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "tuna_dataset.h"
#include "tuna_eval.h"
#include "tuna_score.h"
#include "tuna_text.h"
#include "core/error.h"

static const char *eval_help =
    "usage: tuna eval --model DIR --data FILE [options]\n"
    "\n"
    "Evaluates the model on FILE (JSONL or a JSON array; any record format of\n"
    "tuna data: chat, ShareGPT, Alpaca, prompt/completion, text, pre-tokenized,\n"
    "preference pairs).\n"
    "Loss: records are rendered through the chat template and tokenized as SFT\n"
    "does; only the response tokens count (all tokens of text records; the\n"
    "labels of pre-tokenized ones). Prints the mean loss over all counted tokens,\n"
    "their number and perplexity = exp(loss).\n"
    "Preference pairs (encoded as tuna dpo encodes them) also give the preference\n"
    "accuracy: the share of pairs whose chosen response the model gives a higher\n"
    "log-probability than the rejected one (sums over the response tokens), and\n"
    "the mean log-probabilities; the loss is that of the chosen responses, and\n"
    "--generate answers each prompt with the chosen response as the reference.\n"
    "With --generate the model also answers each prompt (greedy unless sampling\n"
    "options say otherwise; EOS ids from generation_config.json) and the answer\n"
    "is scored against the reference response: exact_match and contains (after\n"
    "whitespace normalisation), rouge_l (F1), json_valid and json_fields (per key\n"
    "and overall; for references that are JSON), regex (with --regex).\n"
    "  --adapter DIR          a PEFT adapter (LoRA, IA3, prompt tuning), unmerged\n"
    CLI_MODEL_FLAGS_HELP
    "  --template NAME|FILE   chat template for models that ship none\n"
    "  --text                 FILE is plain text as tuna pretrain reads it (JSONL {\"text\"}\n"
    "                         or, implied for *.txt, one document): cut into --seq-len\n"
    "                         rows, every token counted\n"
    "  --generate             generate and score (records with a reference response)\n"
    "  --regex PATTERN        also score whether the answer matches PATTERN (PCRE2)\n"
    "  --max-new-tokens N     (default 128) and the sampling options of tuna generate\n"
    "  --limit N              the first N records only\n"
    "  --batch N              sequences per forward pass / prompts generated together (default 8)\n"
    "  --seq-len N            truncate longer sequences to N tokens, keeping the start\n"
    "                         (default: the model's positions; reported on stderr)\n"
    "  --out FILE.jsonl       one result per example: index, line, loss, tokens and,\n"
    "                         generated, prompt, prediction, reference, the scores,\n"
    "                         prompt/completion tokens, finish_reason, latency_s\n"
    "  --max-bad X            skip bad records up to this fraction (default 0: the\n"
    "                         first bad record stops the evaluation)\n"
    "  --show N               print the first N generated answers beside their prompts\n"
    "  --quiet                no progress line\n"
    "  --json                 the summary as one JSON object {\"loss\",\"tokens\",\"ppl\",...}\n";

/* ---- progress: a live bar on a terminal, else a line per tenth ---- */
typedef struct { const char *what; int tty, quiet, last; double t0; } progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the length of item i of src: a data set's sequence, or a prompt */
static long seq_len_of(const void *seqs, long i) { return (long)tuna_pretok_seq(seqs, i, NULL, NULL, NULL); }
static long prompt_len_of(const void *n_prompts, long i) { return (long)((const size_t *)n_prompts)[i]; }

/* items (of length len_of(src, i)) longer than the model's context: one
 * warning (a model with learned positions refuses them at the forward instead) */
static void warn_context(const char *path, long (*len_of)(const void *src, long i), const void *src, long n, const char *what,
                         int limit) {
    long over = 0, longest = 0;
    for (long i = 0; i < n; i++) {
        long len = len_of(src, i);
        if (len > limit) over++;
        if (len > limit && len > longest) longest = len;
    }
    cli_warn_context(path, over, n, what, longest, limit);
}

static void on_progress(void *ctx, int64_t done, int64_t total) {
    progress *p = ctx;
    if (p->quiet || total <= 0) return;
    double el = now_s() - p->t0, eta = done > 0 ? el * (double)(total - done) / (double)done : 0;
    int tenth = (int)(10 * done / total);
    if (p->tty) {
        char bar[31];
        int fill = (int)(30 * done / total);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %lld/%lld %.1f/s eta %02d:%02d ", p->what, bar, (long long)done, (long long)total,
                el > 0 ? done / el : 0, (int)eta / 60, (int)eta % 60);
        if (done == total) fputc('\n', stderr);
    } else if (tenth > p->last || done == total) {
        fprintf(stderr, "%s %lld/%lld (%.1f s)\n", p->what, (long long)done, (long long)total, el);
    }
    p->last = tenth;
}

/* prefixes the library's message with FILE:LINE */
static tuna_status fail_at(tuna_status st, const char *file, long line) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", tuna_last_error());
    return core_fail(st, "%s:%ld: %s", file, line, msg);
}

static void progress_start(progress *p, const char *what) {
    p->what = what;
    p->last = 0;
    p->t0 = now_s();
}

/* ---- options ---- */
typedef struct {
    const char *model, *data, *adapter, *tmpl_arg, *regex, *out_path;
    int json, batch, seq_len, generate, limit, quiet, show, text_mode;
    double max_bad;
    cli_gen_flags gf;
    cli_model_flags mf;
} eval_opts;

/* argv into *o, then the checks that need no file opened; 0, or the exit code */
static int eval_parse(eval_opts *o, int argc, char **argv) {
    *o = (eval_opts){.batch = 8};
    cli_gen_flags_init(&o->gf, 128);
    cli_model_flags_init(&o->mf);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_gen_flag(&o->gf, argc, argv, &i);
        if (!g) g = cli_model_flag(&o->mf, "eval", argc, argv, &i);
        if (g < 0) return 2;
        if (g) continue;
        if (!strcmp(a, "--model") && v) o->model = argv[++i];
        else if (!strcmp(a, "--data") && v) o->data = argv[++i];
        else if (!strcmp(a, "--batch")) { if (cli_parse_int(a, v, 1, 65536, &o->batch)) return 2; i++; }
        else if (!strcmp(a, "--seq-len")) { if (cli_parse_int(a, v, 2, 1 << 20, &o->seq_len)) return 2; i++; }
        else if (!strcmp(a, "--limit")) { if (cli_parse_int(a, v, 1, 2147483647, &o->limit)) return 2; i++; }
        else if (!strcmp(a, "--show")) { if (cli_parse_int(a, v, 0, 1000000, &o->show)) return 2; i++; }
        else if (!strcmp(a, "--max-bad") && v) {
            char *end;
            o->max_bad = strtod(argv[++i], &end);
            if (*end || !(o->max_bad >= 0 && o->max_bad <= 1)) return cli_usage_error("--max-bad: '%s' is not a fraction in [0, 1]", argv[i]);
        }
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (!strcmp(a, "--generate")) o->generate = 1;
        else if (!strcmp(a, "--text")) o->text_mode = 1;
        else if (!strcmp(a, "--adapter") && v) o->adapter = argv[++i];
        else if (!strcmp(a, "--template") && v) o->tmpl_arg = argv[++i];
        else if (!strcmp(a, "--regex") && v) o->regex = argv[++i];
        else if (!strcmp(a, "--out") && v) o->out_path = argv[++i];
        else return cli_usage_error("eval: unknown option or missing value '%s' (see tuna eval --help)", a);
    }
    if (!o->model || !o->data) return cli_usage_error("eval: --model DIR and --data FILE are required");
    if (o->regex && !o->generate) return cli_usage_error("eval: --regex scores generated answers; add --generate");
    if (o->regex && tuna_score_regex("", o->regex) < 0) return cli_usage_error("--regex: the pattern does not compile: %s", o->regex);
    const cli_path ins[] = {{"--data", o->data, CLI_FILE}, {"--model", o->model, CLI_DIR}, {"--adapter", o->adapter, CLI_DIR},
                            {"--template", o->tmpl_arg, CLI_FILE}};
    const cli_path outs[] = {{"--out", o->out_path, CLI_FILE}};
    return cli_check_paths("eval", ins, 4, outs, 1);
}

/* ---- what one evaluation holds, from loading to the summary ---- */
typedef struct {
    tuna_model *m;
    tuna_tokenizer *tok;
    tuna_template *tmpl;
    char *tsrc;
    char no_tok[600]; /* why there is no tokenizer, if there is none */
    const tuna_config *c;
    int T;            /* the longest sequence kept */
    tuna_pretok *seqs, *text; /* text: plain text's rows, seqs a view of the first --limit */
    long cap_seq, n_ex, n_gen, truncated, no_ref;
    long *rec_line, *rec_index;
    long *seq_of, *rej_of, n_seq, n_pairs; /* example -> its sequence, its rejected sequence or -1 */
    int *gen_of; /* example -> generation slot or -1 */
    tuna_eval_example *exs;
    double *loss_sum;
    int64_t *tokens;
    tuna_eval_tally *tally;
    double pref_correct, pref_lc, pref_lr; /* pairs: chosen preferred, sums of log-probabilities */
    int32_t **prompts;
    char **ptexts;
    size_t *n_prompts;
    tuna_gen_result *res;
    tuna_sample_args sa;
    progress pr;
} eval_run;

/* the model, its tokenizer and chat template; pre-tokenized data needs no
 * tokenizer: its absence only matters for records that must be rendered and
 * encoded, and for generation */
static tuna_status eval_load_model(eval_run *r, const eval_opts *o) {
    cli_model_spec ms = {.dir = o->model, .flags = o->mf, .adapter = o->adapter, .tok_err = r->no_tok,
                         .tok_err_len = sizeof r->no_tok, .tok_needed = o->generate || o->tmpl_arg};
    tuna_status st = cli_load_model(&ms, &r->m, &r->tok);
    if (st == TUNA_OK && r->tok) st = tuna_dataset_template(&r->tmpl, r->tok, o->tmpl_arg, &r->tsrc);
    if (st != TUNA_OK) return st;
    r->c = tuna_model_config(r->m);
    r->T = o->seq_len ? o->seq_len : r->c->max_positions;
    return TUNA_OK;
}

/* plain text as pre-training reads it: one stream cut into T-token rows */
static tuna_status eval_load_text(eval_run *r, const eval_opts *o) {
    if (o->generate) return core_fail(TUNA_ERR_ARG, "--generate needs records with responses, not plain text");
    if (!r->tok) return core_fail(TUNA_ERR_ARG, "%s", r->no_tok);
    tuna_status st = tuna_text_chunks(r->tok, o->data, r->T, &r->text);
    if (st != TUNA_OK) return st;
    long n_ex = (long)tuna_pretok_count(r->text);
    if (o->limit && n_ex > o->limit) n_ex = o->limit;
    st = tuna_pretok_view(r->text, 0, n_ex, &r->seqs);
    if (st != TUNA_OK) return st;
    r->n_ex = n_ex;
    r->rec_line = calloc((size_t)n_ex + 1, sizeof *r->rec_line);
    r->rec_index = calloc((size_t)n_ex + 1, sizeof *r->rec_index);
    r->gen_of = malloc(((size_t)n_ex + 1) * sizeof *r->gen_of);
    r->exs = calloc((size_t)n_ex + 1, sizeof *r->exs);
    if (!r->rec_line || !r->rec_index || !r->gen_of || !r->exs) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    r->seq_of = calloc((size_t)n_ex + 1, sizeof *r->seq_of);
    r->rej_of = calloc((size_t)n_ex + 1, sizeof *r->rej_of);
    if (!r->seq_of || !r->rej_of) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (long i = 0; i < n_ex; i++) { r->gen_of[i] = -1; r->rec_index[i] = i; r->seq_of[i] = i; r->rej_of[i] = -1; }
    r->n_seq = n_ex;
    return TUNA_OK;
}

/* one record's sequences: one, or two for a pair (prompt + chosen, prompt + rejected) */
typedef struct {
    int32_t *sid[2], *slab[2];
    size_t sn[2];
    int nseq, pair;
} rec_seqs;

static void rec_seqs_free(rec_seqs *q) {
    for (int k = 0; k < 2; k++) { free(q->sid[k]); free(q->slab[k]); }
}

/* a preference pair as two sequences whose labels are the response tokens */
static tuna_status encode_pair(const eval_run *r, const tuna_record *rec, rec_seqs *q) {
    tuna_pref_tokens pt;
    tuna_status st = tuna_dataset_encode_preference(rec, r->tok, r->tmpl, &pt);
    if (st == TUNA_OK && pt.n_prompt >= (size_t)r->T)
        st = core_fail(TUNA_ERR_ARG, "the prompt has %zu tokens, --seq-len %d leaves no room for a response", pt.n_prompt, r->T);
    for (int k = 0; k < 2 && st == TUNA_OK; k++) {
        const int32_t *rs = k ? pt.rejected : pt.chosen;
        size_t nr = k ? pt.n_rejected : pt.n_chosen;
        q->sn[k] = pt.n_prompt + nr;
        q->sid[k] = malloc(q->sn[k] * 4);
        q->slab[k] = malloc(q->sn[k] * 4);
        if (!q->sid[k] || !q->slab[k]) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
        memcpy(q->sid[k], pt.prompt, pt.n_prompt * 4);
        memcpy(q->sid[k] + pt.n_prompt, rs, nr * 4);
        for (size_t j = 0; j < q->sn[k]; j++) q->slab[k][j] = j < pt.n_prompt ? -100 : q->sid[k][j];
    }
    tuna_pref_tokens_free(&pt);
    return st;
}

/* a record's token ids and labels, checked against the vocabulary and cut to T */
static tuna_status encode_record(eval_run *r, const char *data, const tuna_record *rec, rec_seqs *q) {
    tuna_status st;
    q->pair = rec->kind == TUNA_RECORD_PREFERENCE || rec->kind == TUNA_RECORD_PREFERENCE_TOKENS;
    q->nseq = q->pair ? 2 : 1;
    if (!r->tok && rec->kind != TUNA_RECORD_PRETOKENIZED && rec->kind != TUNA_RECORD_PREFERENCE_TOKENS)
        return core_fail(TUNA_ERR_ARG, "%s:%ld: a %s record needs the model's tokenizer: %s", data, rec->line,
                         tuna_record_kind_name(rec->kind), r->no_tok);
    if (q->pair) st = encode_pair(r, rec, q);
    else st = tuna_dataset_encode_record(rec, r->tok, r->tmpl, 0, &q->sid[0], &q->slab[0], &q->sn[0], NULL);
    if (st != TUNA_OK) return fail_at(st, data, rec->line);
    int V = r->c->V;
    for (int k = 0; k < q->nseq; k++) {
        for (size_t j = 0; j < q->sn[k] && st == TUNA_OK; j++)
            if (q->sid[k][j] < 0 || q->sid[k][j] >= V) st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: token id %d is outside the model's vocabulary of %d", data, rec->line, q->sid[k][j], V);
            else if (q->slab[k][j] != -100 && (q->slab[k][j] < 0 || q->slab[k][j] >= V))
                st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: label %d is neither -100 nor in the model's vocabulary of %d", data, rec->line, q->slab[k][j], V);
        if (q->sn[k] > (size_t)r->T) { q->sn[k] = (size_t)r->T; r->truncated++; }
    }
    return st;
}

/* room for two more examples (the data set grows by itself) */
static tuna_status eval_grow(eval_run *r) {
    if (r->n_ex + 2 > r->cap_seq) {
        long cap_seq = r->cap_seq = r->cap_seq ? 2 * r->cap_seq : 256;
        long *l1 = realloc(r->rec_line, (size_t)cap_seq * sizeof *l1);
        if (l1) r->rec_line = l1;
        long *l2 = l1 ? realloc(r->rec_index, (size_t)cap_seq * sizeof *l2) : NULL;
        if (l2) r->rec_index = l2;
        int *g = l2 ? realloc(r->gen_of, (size_t)cap_seq * sizeof *g) : NULL;
        if (g) r->gen_of = g;
        tuna_eval_example *e = g ? realloc(r->exs, (size_t)cap_seq * sizeof *e) : NULL;
        if (e) r->exs = e;
        long *s1 = e ? realloc(r->seq_of, (size_t)cap_seq * sizeof *s1) : NULL;
        if (s1) r->seq_of = s1;
        long *s2 = s1 ? realloc(r->rej_of, (size_t)cap_seq * sizeof *s2) : NULL;
        if (s2) r->rej_of = s2;
        if (!s2) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    }
    return TUNA_OK;
}

/* q's sequences and the record's example appended (room made by eval_grow) */
static tuna_status eval_append(eval_run *r, const eval_opts *o, const tuna_record *rec, const rec_seqs *q) {
    long n_ex = r->n_ex, n_seq = r->n_seq;
    for (int k = 0; k < q->nseq; k++) {
        tuna_status st = tuna_pretok_append(r->seqs, q->sid[k], q->slab[k], (int64_t)q->sn[k]);
        if (st != TUNA_OK) return st;
    }
    r->seq_of[n_ex] = n_seq;
    r->rej_of[n_ex] = q->pair ? n_seq + 1 : -1;
    r->n_pairs += q->pair;
    n_seq += q->nseq;
    r->rec_line[n_ex] = rec->line;
    r->rec_index[n_ex] = rec->index;
    r->gen_of[n_ex] = -1;
    memset(&r->exs[n_ex], 0, sizeof r->exs[n_ex]);
    if (o->generate) {
        if (tuna_eval_example_from_record(rec, &r->exs[n_ex]) == TUNA_OK) r->gen_of[n_ex] = (int)r->n_gen++;
        else r->no_ref++;
    }
    r->n_ex = n_ex + 1;
    r->n_seq = n_seq;
    return TUNA_OK;
}

/* read and tokenize every record (up to --limit) */
static tuna_status eval_load_records(eval_run *r, const eval_opts *o, const tuna_data_options *dopt) {
    tuna_data_reader *rd = NULL;
    tuna_record rec = {0};
    tuna_status st = tuna_data_reader_open(&rd, o->data, dopt);
    if (st == TUNA_OK) st = tuna_pretok_new(&r->seqs);
    for (int got = 1; st == TUNA_OK && (!o->limit || r->n_ex < o->limit);) {
        st = tuna_data_reader_next(rd, &rec, &got);
        if (st != TUNA_OK || !got) break;
        rec_seqs q = {0};
        st = encode_record(r, o->data, &rec, &q);
        if (st == TUNA_OK) st = eval_grow(r);
        if (st == TUNA_OK) st = eval_append(r, o, &rec, &q);
        rec_seqs_free(&q);
    }
    tuna_record_clear(&rec);
    tuna_data_reader_free(rd);
    return st;
}

/* the data set as sequences, with the warnings on what was cut or is missing */
static tuna_status eval_load_data(eval_run *r, const eval_opts *o) {
    tuna_data_options dopt;
    tuna_data_options_init(&dopt);
    dopt.strict = o->max_bad == 0;
    dopt.max_bad = o->max_bad;
    cli_read_progress(&dopt, o->quiet);
    size_t dl = strlen(o->data);
    int text_mode = o->text_mode || (dl > 4 && !strcmp(o->data + dl - 4, ".txt"));
    tuna_status st = text_mode ? eval_load_text(r, o) : eval_load_records(r, o, &dopt);
    if (st != TUNA_OK) return st;
    if (r->n_ex == 0) return core_fail(TUNA_ERR_FORMAT, "%s: no records", o->data);
    if (r->truncated) fprintf(stderr, "tuna: %ld of %ld sequences truncated to %d tokens\n", r->truncated, r->n_seq, r->T);
    if (!r->c->learned_positions) warn_context(o->data, seq_len_of, r->seqs, r->n_seq, "sequences are", r->c->max_positions);
    if (o->generate && r->no_ref)
        fprintf(stderr, "tuna: %ld of %ld records have no reference response (text, pre-tokenized): loss only\n", r->no_ref, r->n_ex);
    return TUNA_OK;
}

/* every sequence's loss; the loss of a pair is that of its chosen response */
static tuna_status eval_losses(eval_run *r, const eval_opts *o) {
    r->loss_sum = calloc((size_t)r->n_seq, sizeof *r->loss_sum);
    r->tokens = calloc((size_t)r->n_seq, sizeof *r->tokens);
    r->tally = tuna_eval_tally_new();
    if (!r->loss_sum || !r->tokens || !r->tally) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    progress_start(&r->pr, "loss");
    tuna_status st = tuna_eval_losses(r->m, r->seqs, o->batch, r->loss_sum, r->tokens, on_progress, &r->pr);
    if (st != TUNA_OK) return st;
    for (long i = 0; i < r->n_ex; i++) {
        tuna_eval_tally_loss(r->tally, r->loss_sum[r->seq_of[i]], r->tokens[r->seq_of[i]]);
        if (r->rej_of[i] >= 0) {
            double lc = -r->loss_sum[r->seq_of[i]], lr = -r->loss_sum[r->rej_of[i]];
            r->pref_correct += lc > lr;
            r->pref_lc += lc;
            r->pref_lr += lr;
        }
    }
    return TUNA_OK;
}

/* the prompt of every example that has a reference, with one warning for
 * those longer than the model's context */
static tuna_status eval_prompts(eval_run *r, const eval_opts *o) {
    long n_gen = r->n_gen;
    r->prompts = calloc((size_t)n_gen, sizeof *r->prompts);
    r->n_prompts = calloc((size_t)n_gen, sizeof *r->n_prompts);
    r->res = calloc((size_t)n_gen, sizeof *r->res);
    r->ptexts = calloc((size_t)n_gen, sizeof *r->ptexts);
    if (!r->prompts || !r->n_prompts || !r->res || !r->ptexts) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    tuna_status st = TUNA_OK;
    for (long i = 0; i < r->n_ex && st == TUNA_OK; i++) {
        int g = r->gen_of[i];
        if (g < 0) continue;
        st = tuna_eval_prompt(r->tok, r->tmpl, &r->exs[i], NULL, 0, TUNA_SHOTS_TURNS, &r->prompts[g], &r->n_prompts[g], &r->ptexts[g]);
        if (st != TUNA_OK) st = fail_at(st, o->data, r->rec_line[i]);
    }
    if (st != TUNA_OK || r->c->learned_positions) return st;
    warn_context(o->data, prompt_len_of, r->n_prompts, n_gen, "prompts are", r->c->max_positions);
    return TUNA_OK;
}

/* the sampling settings, and with --generate every answer */
static tuna_status eval_generate(eval_run *r, const eval_opts *o) {
    int32_t eos[16];
    int n_eos = 0;
    tuna_status st = cli_gen_setup(o->model, r->tok, &o->gf, 0, eos, &n_eos, &r->sa);
    if (st != TUNA_OK || !r->n_gen) return st;
    st = eval_prompts(r, o);
    if (st != TUNA_OK) return st;
    tuna_gen_opts go = {.max_new_tokens = o->gf.max_new, .sample = r->sa, .eos_ids = eos, .n_eos = n_eos,
                        .stop = o->gf.stops, .n_stop = o->gf.n_stop};
    progress_start(&r->pr, "generate");
    return tuna_eval_generate(r->m, r->tok, r->prompts, r->n_prompts, (int)r->n_gen, o->batch, &go, r->res, on_progress, &r->pr);
}

/* example i's loss (and a pair's log-probabilities) as its result line */
static json_t *loss_json(const eval_run *r, long i) {
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(r->rec_index[i]));
    json_object_set_new(o, "line", json_integer(r->rec_line[i]));
    long q = r->seq_of[i], rj = r->rej_of[i];
    json_object_set_new(o, "tokens", json_integer(r->tokens[q]));
    json_object_set_new(o, "loss", r->tokens[q] ? json_real(r->loss_sum[q] / (double)r->tokens[q]) : json_null());
    if (rj >= 0) {
        json_object_set_new(o, "logp_chosen", json_real(-r->loss_sum[q]));
        json_object_set_new(o, "logp_rejected", json_real(-r->loss_sum[rj]));
        json_object_set_new(o, "rejected_tokens", json_integer(r->tokens[rj]));
        json_object_set_new(o, "prefers_chosen", json_boolean(r->loss_sum[q] < r->loss_sum[rj]));
    }
    return o;
}

/* a generated answer, its scores and cost added to its result line */
static void answer_json(json_t *o, const eval_run *r, long i, const tuna_eval_scores *sc, double secs) {
    const tuna_gen_result *res = &r->res[r->gen_of[i]];
    json_object_set_new(o, "prompt", json_string(r->ptexts[r->gen_of[i]]));
    json_object_set_new(o, "prediction", json_stringn(res->text, res->text_len));
    json_object_set_new(o, "reference", json_string(r->exs[i].reference));
    json_object_set_new(o, "exact", json_boolean(sc->exact));
    json_object_set_new(o, "contains", json_boolean(sc->contains));
    json_object_set_new(o, "rouge_l", json_real(sc->rouge_l));
    if (sc->json_valid >= 0) json_object_set_new(o, "json_valid", json_boolean(sc->json_valid));
    if (sc->json_total) json_object_set_new(o, "json_fields", json_pack("[ii]", sc->json_correct, sc->json_total));
    if (sc->regex >= 0) json_object_set_new(o, "regex", json_boolean(sc->regex));
    json_object_set_new(o, "prompt_tokens", json_integer(res->prompt_tokens));
    json_object_set_new(o, "completion_tokens", json_integer(res->n));
    json_object_set_new(o, "finish_reason", json_string(res->stopped ? "stop" : "length"));
    json_object_set_new(o, "latency_s", json_real(secs));
}

/* scores into the tally and, with --out, one line per example */
static tuna_status eval_score_examples(eval_run *r, const eval_opts *o) {
    atomic_file out_file = {0};
    FILE *out = NULL;
    tuna_status st = TUNA_OK;
    if (o->out_path) {
        st = atomic_file_open(&out_file, o->out_path);
        if (st != TUNA_OK) return st;
        out = out_file.f;
    }
    for (long i = 0; i < r->n_ex && st == TUNA_OK; i++) {
        json_t *line = out ? loss_json(r, i) : NULL;
        int g = r->gen_of[i];
        if (g >= 0) {
            tuna_eval_scores sc;
            st = tuna_eval_score(r->res[g].text, r->exs[i].reference, o->regex, &sc);
            if (st != TUNA_OK) { json_decref(line); break; }
            double secs = r->res[g].prompt_seconds + r->res[g].decode_seconds;
            tuna_eval_tally_generation(r->tally, r->res[g].text, r->exs[i].reference, &sc, r->res[g].prompt_tokens, r->res[g].n, secs);
            if (line) answer_json(line, r, i, &sc, secs);
        }
        if (line) {
            char *s = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
            if (!s) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
            else if (fputs(s, out) == EOF || fputc('\n', out) == EOF) st = atomic_write_failed(o->out_path, errno ? errno : EIO);
            free(s);
            json_decref(line);
        }
    }
    if (st == TUNA_OK && out) st = atomic_file_commit(&out_file);
    atomic_file_abort(&out_file);
    return st;
}

/* --json: loss, tokens, ppl first (the summary's stable prefix), then the rest */
static void print_summary_json(json_t *sum) {
    json_t *o = json_pack("{s:O,s:O,s:O}", "loss", json_object_get(sum, "loss"), "tokens", json_object_get(sum, "tokens"), "ppl",
                          json_object_get(sum, "ppl"));
    json_object_update_missing(o, sum);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (s) puts(s);
    free(s);
    json_decref(o);
}

/* the generation scores of the summary, one per line */
static void print_generation(const eval_run *r, const eval_opts *o, json_t *sum) {
    printf("generated %ld (greedy: %s, max %d new tokens)\n", r->n_gen, r->sa.temperature == 0 ? "yes" : "no", o->gf.max_new);
    static const char *const keys[] = {"exact_match", "contains", "rouge_l", "regex", "json_valid"};
    for (int k = 0; k < 5; k++) {
        json_t *v = json_object_get(sum, keys[k]);
        if (v) printf("  %-12s %.4f\n", keys[k], json_real_value(v));
    }
    json_t *jf = json_object_get(sum, "json_fields");
    if (jf) {
        printf("  %-12s %.4f overall", "json_fields", json_real_value(json_object_get(jf, "overall")));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(jf, "per_key"), k, v) printf("; %s %.4f", k, json_real_value(v));
        putchar('\n');
    }
    printf("  mean prompt tokens %.1f, completion tokens %.1f, latency %.3f s, %.1f tokens/s\n",
           json_real_value(json_object_get(sum, "mean_prompt_tokens")), json_real_value(json_object_get(sum, "mean_completion_tokens")),
           json_real_value(json_object_get(sum, "mean_latency_s")), json_real_value(json_object_get(sum, "tokens_per_s")));
}

/* the summary as text, and the first --show answers beside their prompts */
static void print_summary_text(const eval_run *r, const eval_opts *o, json_t *sum) {
    long n_pairs = r->n_pairs;
    printf("loss    %.17g\ntokens  %lld\nppl     %.17g\n", json_real_value(json_object_get(sum, "loss")),
           (long long)json_integer_value(json_object_get(sum, "tokens")), json_real_value(json_object_get(sum, "ppl")));
    printf("examples %ld\n", r->n_ex);
    if (n_pairs)
        printf("preference accuracy %.4f (%ld pairs; mean log-probability chosen %.3f, rejected %.3f, margin %.3f)\n",
               r->pref_correct / n_pairs, n_pairs, r->pref_lc / n_pairs, r->pref_lr / n_pairs, (r->pref_lc - r->pref_lr) / n_pairs);
    if (r->n_gen) print_generation(r, o, sum);
    for (long i = 0, shown = 0; i < r->n_ex && shown < o->show; i++) {
        int g = r->gen_of[i];
        if (g < 0) continue;
        const tuna_eval_example *e = &r->exs[i];
        printf("\n--- %s:%ld\n[prompt]\n%s\n[reference]\n%s\n[answer]\n%.*s\n", o->data, r->rec_line[i],
               e->prompt_text ? e->prompt_text : e->n_msgs ? e->msgs[e->n_msgs - 1].content : "", e->reference,
               (int)r->res[g].text_len, r->res[g].text);
        shown++;
    }
    if (o->out_path) printf("per-example results: %s\n", o->out_path);
}

/* the tally's summary (with the preference numbers) on stdout */
static tuna_status eval_report(const eval_run *r, const eval_opts *o) {
    long n_pairs = r->n_pairs;
    json_t *sum = tuna_eval_tally_json(r->tally);
    if (n_pairs)
        json_object_set_new(sum, "preference", json_pack("{s:I,s:f,s:f,s:f,s:f}", "pairs", (json_int_t)n_pairs, "accuracy",
                                                         r->pref_correct / n_pairs, "mean_logp_chosen", r->pref_lc / n_pairs,
                                                         "mean_logp_rejected", r->pref_lr / n_pairs, "mean_margin",
                                                         (r->pref_lc - r->pref_lr) / n_pairs));
    if (!json_object_get(sum, "loss")) { json_decref(sum); return core_fail(TUNA_ERR_FORMAT, "%s: no counted tokens (every label is -100)", o->data); }
    if (o->json) print_summary_json(sum);
    else print_summary_text(r, o, sum);
    json_decref(sum);
    return TUNA_OK;
}

static void eval_run_free(eval_run *r) {
    for (long i = 0; r->exs && i < r->n_ex; i++) tuna_eval_example_clear(&r->exs[i]);
    free(r->exs);
    for (long i = 0; r->prompts && i < r->n_gen; i++) free(r->prompts[i]);
    for (long i = 0; r->res && i < r->n_gen; i++) tuna_gen_result_free(&r->res[i]);
    for (long i = 0; r->ptexts && i < r->n_gen; i++) free(r->ptexts[i]);
    free(r->ptexts);
    free(r->prompts);
    free(r->n_prompts);
    free(r->res);
    free(r->loss_sum);
    free(r->tokens);
    free(r->rec_line);
    free(r->rec_index);
    free(r->seq_of);
    free(r->rej_of);
    free(r->gen_of);
    tuna_pretok_free(r->seqs);
    tuna_pretok_free(r->text);
    tuna_eval_tally_free(r->tally);
    tuna_template_free(r->tmpl);
    free(r->tsrc);
    tuna_tokenizer_free(r->tok);
    tuna_model_free(r->m);
}

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(eval_help, stdout); return 0; }
    eval_opts o;
    int rc = eval_parse(&o, argc, argv);
    if (rc) return rc;
    eval_run r = {.pr = {.tty = isatty(2), .quiet = o.quiet}};
    tuna_status st = eval_load_model(&r, &o);
    if (st == TUNA_OK) st = eval_load_data(&r, &o);
    if (st == TUNA_OK) st = eval_losses(&r, &o);
    if (st == TUNA_OK) st = eval_generate(&r, &o);
    if (st == TUNA_OK) st = eval_score_examples(&r, &o);
    if (st == TUNA_OK) st = eval_report(&r, &o);
    eval_run_free(&r);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
