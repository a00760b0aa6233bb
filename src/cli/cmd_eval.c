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
    "  --quant nf4            the block linears in NF4 (as QLoRA stores them)\n"
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

/* sequences (offsets off[0..n]) longer than the model's context: one warning
 * (a model with learned positions refuses them at the forward instead) */
/* the length of item i of src: a data set's sequence, or a prompt */
static long seq_len_of(const void *seqs, long i) { return (long)tuna_pretok_seq(seqs, i, NULL, NULL, NULL); }
static long prompt_len_of(const void *n_prompts, long i) { return (long)((const size_t *)n_prompts)[i]; }

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

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *adapter = NULL, *quant = NULL, *tmpl_arg = NULL, *regex = NULL, *out_path = NULL;
    int json = 0, batch = 8, seq_len = 0, generate = 0, limit = 0, quiet = 0, show = 0, text_mode = 0;
    double max_bad = 0;
    cli_gen_flags gf;
    cli_gen_flags_init(&gf, 128);
    if (cli_wants_help(argc, argv)) { fputs(eval_help, stdout); return 0; }
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_gen_flag(&gf, argc, argv, &i);
        if (g < 0) return 2;
        if (g) continue;
        if (!strcmp(o, "--model") && v) model = argv[++i];
        else if (!strcmp(o, "--data") && v) data = argv[++i];
        else if (!strcmp(o, "--batch")) { if (cli_parse_int(o, v, 1, 65536, &batch)) return 2; i++; }
        else if (!strcmp(o, "--seq-len")) { if (cli_parse_int(o, v, 2, 1 << 20, &seq_len)) return 2; i++; }
        else if (!strcmp(o, "--limit")) { if (cli_parse_int(o, v, 1, 2147483647, &limit)) return 2; i++; }
        else if (!strcmp(o, "--show")) { if (cli_parse_int(o, v, 0, 1000000, &show)) return 2; i++; }
        else if (!strcmp(o, "--max-bad") && v) {
            char *end;
            max_bad = strtod(argv[++i], &end);
            if (*end || !(max_bad >= 0 && max_bad <= 1)) return cli_usage_error("--max-bad: '%s' is not a fraction in [0, 1]", argv[i]);
        }
        else if (!strcmp(o, "--json")) json = 1;
        else if (!strcmp(o, "--quiet")) quiet = 1;
        else if (!strcmp(o, "--generate")) generate = 1;
        else if (!strcmp(o, "--text")) text_mode = 1;
        else if (!strcmp(o, "--adapter") && v) adapter = argv[++i];
        else if (!strcmp(o, "--quant") && v) quant = argv[++i];
        else if (!strcmp(o, "--template") && v) tmpl_arg = argv[++i];
        else if (!strcmp(o, "--regex") && v) regex = argv[++i];
        else if (!strcmp(o, "--out") && v) out_path = argv[++i];
        else return cli_usage_error("eval: unknown option or missing value '%s' (see tuna eval --help)", o);
    }
    if (!model || !data) return cli_usage_error("eval: --model DIR and --data FILE are required");
    if (quant && strcmp(quant, "nf4")) return cli_usage_error("eval: --quant must be nf4 (got '%s')", quant);
    if (regex && !generate) return cli_usage_error("eval: --regex scores generated answers; add --generate");
    if (regex && tuna_score_regex("", regex) < 0) return cli_usage_error("--regex: the pattern does not compile: %s", regex);
    const cli_path ins[] = {{"--data", data, CLI_FILE}, {"--model", model, CLI_DIR}, {"--adapter", adapter, CLI_DIR}, {"--template", tmpl_arg, CLI_FILE}};
    const cli_path outs[] = {{"--out", out_path, CLI_FILE}};
    int prc = cli_check_paths("eval", ins, 4, outs, 1);
    if (prc) return prc;

    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    tuna_data_reader *rd = NULL;
    tuna_eval_tally *tally = NULL;
    char *tsrc = NULL;
    atomic_file out_file = {0};
    FILE *out = NULL;
    tuna_pretok *seqs = NULL, *text = NULL; /* text: plain text's rows, seqs a view of the first --limit */
    long cap_seq = 0, n_ex = 0, n_gen = 0, truncated = 0, no_ref = 0;
    long *rec_line = NULL, *rec_index = NULL;
    long *seq_of = NULL, *rej_of = NULL, n_seq = 0, n_pairs = 0; /* example -> its sequence, its rejected sequence or -1 */
    int *gen_of = NULL; /* example -> generation slot or -1 */
    tuna_eval_example *exs = NULL;
    int32_t **prompts = NULL;
    char **ptexts = NULL;
    size_t *n_prompts = NULL;
    double *loss_sum = NULL;
    int64_t *tokens = NULL;
    tuna_gen_result *res = NULL;
    progress pr = {.tty = isatty(2), .quiet = quiet};
    tuna_record rec = {0};

    /* pre-tokenized data needs no tokenizer: its absence only matters for
     * records that must be rendered and encoded, and for generation */
    char no_tok[600] = "";
    cli_model_spec ms = {.dir = model, .quant = quant, .adapter = adapter, .tok_err = no_tok,
                         .tok_err_len = sizeof no_tok, .tok_needed = generate || tmpl_arg};
    tuna_status st = cli_load_model(&ms, &m, &tok);
    if (st == TUNA_OK && tok) st = tuna_dataset_template(&tmpl, tok, tmpl_arg, &tsrc);
    if (st != TUNA_OK) goto done;
    const tuna_config *c = tuna_model_config(m);
    int T = seq_len ? seq_len : c->max_positions;
    tuna_data_options dopt;
    tuna_data_options_init(&dopt);
    dopt.strict = max_bad == 0;
    dopt.max_bad = max_bad;
    cli_read_progress(&dopt, quiet);
    size_t dl = strlen(data);
    if (!text_mode && dl > 4 && !strcmp(data + dl - 4, ".txt")) text_mode = 1;
    if (text_mode) {
        /* plain text as pre-training reads it: one stream cut into T-token rows */
        if (generate) { st = core_fail(TUNA_ERR_ARG, "--generate needs records with responses, not plain text"); goto done; }
        if (!tok) { st = core_fail(TUNA_ERR_ARG, "%s", no_tok); goto done; }
        st = tuna_text_chunks(tok, data, T, &text);
        if (st != TUNA_OK) goto done;
        n_ex = (long)tuna_pretok_count(text);
        if (limit && n_ex > limit) n_ex = limit;
        st = tuna_pretok_view(text, 0, n_ex, &seqs);
        if (st != TUNA_OK) goto done;
        rec_line = calloc((size_t)n_ex + 1, sizeof *rec_line);
        rec_index = calloc((size_t)n_ex + 1, sizeof *rec_index);
        gen_of = malloc(((size_t)n_ex + 1) * sizeof *gen_of);
        exs = calloc((size_t)n_ex + 1, sizeof *exs);
        if (!rec_line || !rec_index || !gen_of || !exs) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); goto done; }
        seq_of = calloc((size_t)n_ex + 1, sizeof *seq_of);
        rej_of = calloc((size_t)n_ex + 1, sizeof *rej_of);
        if (!seq_of || !rej_of) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); goto done; }
        for (long i = 0; i < n_ex; i++) { gen_of[i] = -1; rec_index[i] = i; seq_of[i] = i; rej_of[i] = -1; }
        n_seq = n_ex;
        goto loaded;
    }
    st = tuna_data_reader_open(&rd, data, &dopt);
    if (st == TUNA_OK) st = tuna_pretok_new(&seqs);
    if (st != TUNA_OK) goto done;

    /* read and tokenize every record (up to --limit) */
    for (int got = 1; st == TUNA_OK && (!limit || n_ex < limit);) {
        st = tuna_data_reader_next(rd, &rec, &got);
        if (st != TUNA_OK || !got) break;
        int pair = rec.kind == TUNA_RECORD_PREFERENCE || rec.kind == TUNA_RECORD_PREFERENCE_TOKENS;
        if (!tok && rec.kind != TUNA_RECORD_PRETOKENIZED && rec.kind != TUNA_RECORD_PREFERENCE_TOKENS) {
            st = core_fail(TUNA_ERR_ARG, "%s:%ld: a %s record needs the model's tokenizer: %s", data, rec.line,
                           tuna_record_kind_name(rec.kind), no_tok);
            break;
        }
        /* one sequence, or two for a pair (prompt + chosen, prompt + rejected) */
        int32_t *sid[2] = {NULL, NULL}, *slab[2] = {NULL, NULL};
        size_t sn[2] = {0, 0};
        int nseq = pair ? 2 : 1;
        if (pair) {
            tuna_pref_tokens pt;
            st = tuna_dataset_encode_preference(&rec, tok, tmpl, &pt);
            if (st == TUNA_OK && pt.n_prompt >= (size_t)T)
                st = core_fail(TUNA_ERR_ARG, "the prompt has %zu tokens, --seq-len %d leaves no room for a response", pt.n_prompt, T);
            for (int k = 0; k < 2 && st == TUNA_OK; k++) {
                const int32_t *r = k ? pt.rejected : pt.chosen;
                size_t nr = k ? pt.n_rejected : pt.n_chosen;
                sn[k] = pt.n_prompt + nr;
                sid[k] = malloc(sn[k] * 4);
                slab[k] = malloc(sn[k] * 4);
                if (!sid[k] || !slab[k]) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
                memcpy(sid[k], pt.prompt, pt.n_prompt * 4);
                memcpy(sid[k] + pt.n_prompt, r, nr * 4);
                for (size_t j = 0; j < sn[k]; j++) slab[k][j] = j < pt.n_prompt ? -100 : sid[k][j];
            }
            tuna_pref_tokens_free(&pt);
        } else st = tuna_dataset_encode_record(&rec, tok, tmpl, 0, &sid[0], &slab[0], &sn[0], NULL);
        if (st != TUNA_OK) { st = fail_at(st, data, rec.line); free(sid[0]); free(sid[1]); free(slab[0]); free(slab[1]); break; }
        for (int k = 0; k < nseq; k++) {
            for (size_t j = 0; j < sn[k] && st == TUNA_OK; j++)
                if (sid[k][j] < 0 || sid[k][j] >= c->V) st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: token id %d is outside the model's vocabulary of %d", data, rec.line, sid[k][j], c->V);
                else if (slab[k][j] != -100 && (slab[k][j] < 0 || slab[k][j] >= c->V))
                    st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: label %d is neither -100 nor in the model's vocabulary of %d", data, rec.line, slab[k][j], c->V);
            if (sn[k] > (size_t)T) { sn[k] = (size_t)T; truncated++; }
        }
        if (st == TUNA_OK && n_ex + 2 > cap_seq) {
            cap_seq = cap_seq ? 2 * cap_seq : 256;
            long *l1 = realloc(rec_line, (size_t)cap_seq * sizeof *l1);
            if (l1) rec_line = l1;
            long *l2 = l1 ? realloc(rec_index, (size_t)cap_seq * sizeof *l2) : NULL;
            if (l2) rec_index = l2;
            int *g = l2 ? realloc(gen_of, (size_t)cap_seq * sizeof *g) : NULL;
            if (g) gen_of = g;
            tuna_eval_example *e = g ? realloc(exs, (size_t)cap_seq * sizeof *e) : NULL;
            if (e) exs = e;
            long *s1 = e ? realloc(seq_of, (size_t)cap_seq * sizeof *s1) : NULL;
            if (s1) seq_of = s1;
            long *s2 = s1 ? realloc(rej_of, (size_t)cap_seq * sizeof *s2) : NULL;
            if (s2) rej_of = s2;
            if (!s2) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
        }
        if (st == TUNA_OK) {
            seq_of[n_ex] = n_seq;
            rej_of[n_ex] = pair ? n_seq + 1 : -1;
            n_pairs += pair;
            for (int k = 0; k < nseq && st == TUNA_OK; k++) {
                st = tuna_pretok_append(seqs, sid[k], slab[k], (int64_t)sn[k]);
                n_seq++;
            }
            rec_line[n_ex] = rec.line;
            rec_index[n_ex] = rec.index;
            gen_of[n_ex] = -1;
            memset(&exs[n_ex], 0, sizeof exs[n_ex]);
            if (generate) {
                if (tuna_eval_example_from_record(&rec, &exs[n_ex]) == TUNA_OK) gen_of[n_ex] = (int)n_gen++;
                else no_ref++;
            }
            n_ex++;
        }
        for (int k = 0; k < 2; k++) { free(sid[k]); free(slab[k]); }
    }
    tuna_record_clear(&rec);
loaded:
    if (st != TUNA_OK) goto done;
    if (n_ex == 0) { st = core_fail(TUNA_ERR_FORMAT, "%s: no records", data); goto done; }
    if (truncated) fprintf(stderr, "tuna: %ld of %ld sequences truncated to %d tokens\n", truncated, n_seq, T);
    if (!c->learned_positions) warn_context(data, seq_len_of, seqs, n_seq, "sequences are", c->max_positions);
    if (generate && no_ref) fprintf(stderr, "tuna: %ld of %ld records have no reference response (text, pre-tokenized): loss only\n", no_ref, n_ex);

    /* losses */
    loss_sum = calloc((size_t)n_seq, sizeof *loss_sum);
    tokens = calloc((size_t)n_seq, sizeof *tokens);
    tally = tuna_eval_tally_new();
    if (!loss_sum || !tokens || !tally) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); goto done; }
    progress_start(&pr, "loss");
    st = tuna_eval_losses(m, seqs, batch, loss_sum, tokens, on_progress, &pr);
    if (st != TUNA_OK) goto done;
    /* the loss of a pair is that of its chosen response */
    double pref_correct = 0, pref_lc = 0, pref_lr = 0;
    for (long i = 0; i < n_ex; i++) {
        tuna_eval_tally_loss(tally, loss_sum[seq_of[i]], tokens[seq_of[i]]);
        if (rej_of[i] >= 0) {
            double lc = -loss_sum[seq_of[i]], lr = -loss_sum[rej_of[i]];
            pref_correct += lc > lr;
            pref_lc += lc;
            pref_lr += lr;
        }
    }

    /* generation */
    int32_t eos[16];
    int n_eos = 0;
    tuna_sample_args sa;
    st = cli_gen_setup(model, tok, &gf, 0, eos, &n_eos, &sa);
    if (st != TUNA_OK) goto done;
    if (n_gen) {
        prompts = calloc((size_t)n_gen, sizeof *prompts);
        n_prompts = calloc((size_t)n_gen, sizeof *n_prompts);
        res = calloc((size_t)n_gen, sizeof *res);
        ptexts = calloc((size_t)n_gen, sizeof *ptexts);
        if (!prompts || !n_prompts || !res || !ptexts) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); goto done; }
        for (long i = 0; i < n_ex && st == TUNA_OK; i++)
            if (gen_of[i] >= 0) {
                st = tuna_eval_prompt(tok, tmpl, &exs[i], NULL, 0, TUNA_SHOTS_TURNS, &prompts[gen_of[i]], &n_prompts[gen_of[i]],
                                      &ptexts[gen_of[i]]);
                if (st != TUNA_OK) st = fail_at(st, data, rec_line[i]);
            }
        if (st != TUNA_OK) goto done;
        if (!c->learned_positions) warn_context(data, prompt_len_of, n_prompts, n_gen, "prompts are", c->max_positions);
        tuna_gen_opts go = {.max_new_tokens = gf.max_new, .sample = sa, .eos_ids = eos, .n_eos = n_eos,
                            .stop = gf.stops, .n_stop = gf.n_stop};
        progress_start(&pr, "generate");
        st = tuna_eval_generate(m, tok, prompts, n_prompts, (int)n_gen, batch, &go, res, on_progress, &pr);
        if (st != TUNA_OK) goto done;
    }

    /* scores, per-example lines */
    if (out_path) {
        st = atomic_file_open(&out_file, out_path);
        if (st != TUNA_OK) goto done;
        out = out_file.f;
    }
    for (long i = 0; i < n_ex && st == TUNA_OK; i++) {
        json_t *o = out ? json_object() : NULL;
        if (o) {
            json_object_set_new(o, "index", json_integer(rec_index[i]));
            json_object_set_new(o, "line", json_integer(rec_line[i]));
            long q = seq_of[i];
            json_object_set_new(o, "tokens", json_integer(tokens[q]));
            json_object_set_new(o, "loss", tokens[q] ? json_real(loss_sum[q] / (double)tokens[q]) : json_null());
            if (rej_of[i] >= 0) {
                json_object_set_new(o, "logp_chosen", json_real(-loss_sum[q]));
                json_object_set_new(o, "logp_rejected", json_real(-loss_sum[rej_of[i]]));
                json_object_set_new(o, "rejected_tokens", json_integer(tokens[rej_of[i]]));
                json_object_set_new(o, "prefers_chosen", json_boolean(loss_sum[q] < loss_sum[rej_of[i]]));
            }
        }
        int g = gen_of[i];
        if (g >= 0) {
            tuna_eval_scores sc;
            st = tuna_eval_score(res[g].text, exs[i].reference, regex, &sc);
            if (st != TUNA_OK) { json_decref(o); break; }
            double secs = res[g].prompt_seconds + res[g].decode_seconds;
            tuna_eval_tally_generation(tally, res[g].text, exs[i].reference, &sc, res[g].prompt_tokens, res[g].n, secs);
            if (o) {
                json_object_set_new(o, "prompt", json_string(ptexts[g]));
                json_object_set_new(o, "prediction", json_stringn(res[g].text, res[g].text_len));
                json_object_set_new(o, "reference", json_string(exs[i].reference));
                json_object_set_new(o, "exact", json_boolean(sc.exact));
                json_object_set_new(o, "contains", json_boolean(sc.contains));
                json_object_set_new(o, "rouge_l", json_real(sc.rouge_l));
                if (sc.json_valid >= 0) json_object_set_new(o, "json_valid", json_boolean(sc.json_valid));
                if (sc.json_total) json_object_set_new(o, "json_fields", json_pack("[ii]", sc.json_correct, sc.json_total));
                if (sc.regex >= 0) json_object_set_new(o, "regex", json_boolean(sc.regex));
                json_object_set_new(o, "prompt_tokens", json_integer(res[g].prompt_tokens));
                json_object_set_new(o, "completion_tokens", json_integer(res[g].n));
                json_object_set_new(o, "finish_reason", json_string(res[g].stopped ? "stop" : "length"));
                json_object_set_new(o, "latency_s", json_real(secs));
            }
        }
        if (o) {
            char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
            if (!s) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
            else if (fputs(s, out) == EOF || fputc('\n', out) == EOF) st = atomic_write_failed(out_path, errno ? errno : EIO);
            free(s);
            json_decref(o);
        }
    }
    if (st != TUNA_OK) goto done;
    if (out) {
        out = NULL;
        st = atomic_file_commit(&out_file);
        if (st != TUNA_OK) goto done;
    }

    json_t *sum = tuna_eval_tally_json(tally);
    if (n_pairs)
        json_object_set_new(sum, "preference", json_pack("{s:I,s:f,s:f,s:f,s:f}", "pairs", (json_int_t)n_pairs, "accuracy",
                                                         pref_correct / n_pairs, "mean_logp_chosen", pref_lc / n_pairs,
                                                         "mean_logp_rejected", pref_lr / n_pairs, "mean_margin",
                                                         (pref_lc - pref_lr) / n_pairs));
    if (!json_object_get(sum, "loss")) { json_decref(sum); st = core_fail(TUNA_ERR_FORMAT, "%s: no counted tokens (every label is -100)", data); goto done; }
    if (json) {
        /* loss, tokens, ppl first: the summary's stable prefix */
        json_t *o = json_pack("{s:O,s:O,s:O}", "loss", json_object_get(sum, "loss"), "tokens", json_object_get(sum, "tokens"), "ppl",
                              json_object_get(sum, "ppl"));
        json_object_update_missing(o, sum);
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("loss    %.17g\ntokens  %lld\nppl     %.17g\n", json_real_value(json_object_get(sum, "loss")),
               (long long)json_integer_value(json_object_get(sum, "tokens")), json_real_value(json_object_get(sum, "ppl")));
        printf("examples %ld\n", n_ex);
        if (n_pairs)
            printf("preference accuracy %.4f (%ld pairs; mean log-probability chosen %.3f, rejected %.3f, margin %.3f)\n",
                   pref_correct / n_pairs, n_pairs, pref_lc / n_pairs, pref_lr / n_pairs, (pref_lc - pref_lr) / n_pairs);
        if (n_gen) {
            printf("generated %ld (greedy: %s, max %d new tokens)\n", n_gen, sa.temperature == 0 ? "yes" : "no", gf.max_new);
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
        for (long i = 0, shown = 0; i < n_ex && shown < show; i++) {
            int g = gen_of[i];
            if (g < 0) continue;
            const tuna_eval_example *e = &exs[i];
            printf("\n--- %s:%ld\n[prompt]\n%s\n[reference]\n%s\n[answer]\n%.*s\n", data, rec_line[i],
                   e->prompt_text ? e->prompt_text : e->n_msgs ? e->msgs[e->n_msgs - 1].content : "", e->reference,
                   (int)res[g].text_len, res[g].text);
            shown++;
        }
        if (out_path) printf("per-example results: %s\n", out_path);
    }
    json_decref(sum);
done:
    atomic_file_abort(&out_file);
    for (long i = 0; exs && i < n_ex; i++) tuna_eval_example_clear(&exs[i]);
    free(exs);
    for (long i = 0; prompts && i < n_gen; i++) free(prompts[i]);
    for (long i = 0; res && i < n_gen; i++) tuna_gen_result_free(&res[i]);
    for (long i = 0; ptexts && i < n_gen; i++) free(ptexts[i]);
    free(ptexts);
    free(prompts);
    free(n_prompts);
    free(res);
    free(loss_sum);
    free(tokens);
    free(rec_line);
    free(rec_index);
    free(seq_of);
    free(rej_of);
    free(gen_of);
    tuna_pretok_free(seqs);
    tuna_pretok_free(text);
    tuna_eval_tally_free(tally);
    tuna_data_reader_free(rd);
    tuna_template_free(tmpl);
    free(tsrc);
    tuna_tokenizer_free(tok);
    tuna_model_free(m);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
