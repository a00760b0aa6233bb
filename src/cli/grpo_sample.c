/* grpo_sample.c — GRPO's rollouts (see grpo_sample.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/grpo_sample.h"
#include "cli/train_data.h"
#include "core/error.h"
#include "core/mix.h"
#include "io/input_file.h"
#include "train/rewards.h"
#include "tuna_dataset.h"
#include "tuna_eval.h"
#include "tuna_infer.h"

struct grpo_sampler {
    tuna_tokenizer *tok;          /* not owned */
    const tuna_pretok *prompts_of; /* the prompts (the trainer's data; not owned) */
    grpo_rewards *rw;
    char **ptext, **refs;         /* [n] prompt texts, references (or NULL) */
    int64_t n, cap;
    int G, decode_prompts, max_new, max_prompt, ctx; /* decode_prompts: the step's batch, decoded at once */
    uint64_t seed;
    tuna_sample_args sa;
    int32_t eos[2];
    int n_eos;
    tuna_decoder *dec;            /* made at the first rollout (the trainer has prepared the model) */
    const int32_t **prompts;      /* [micro rows] */
    int *n_prompts;
    uint64_t *seeds;
    tuna_gen_result *res;
    const char **pt, **ct, **rt;  /* [batch rows] texts for the rewards */
    double *total, *per_func;
};

void grpo_sampler_free(grpo_sampler *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) { free(s->ptext[i]); free(s->refs[i]); }
    free(s->ptext); free(s->refs);
    grpo_rewards_free(s->rw);
    tuna_decoder_free(s->dec);
    free(s->prompts); free(s->n_prompts); free(s->seeds); free(s->res);
    free(s->pt); free(s->ct); free(s->rt); free(s->total); free(s->per_func);
    free(s);
}

/* one record's prompt appended (records without a prompt and answer are skipped, counted) */
static tuna_status add_record(grpo_sampler *s, const tuna_record *rec, tuna_template *tmpl, tuna_pretok *p, int *longest,
                              long *skipped, long *truncated) {
    tuna_eval_example ex;
    memset(&ex, 0, sizeof ex);
    if (tuna_eval_example_from_record(rec, &ex) != TUNA_OK) { (*skipped)++; return TUNA_OK; }
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL;
    tuna_status st = tuna_eval_prompt(s->tok, tmpl, &ex, NULL, 0, TUNA_SHOTS_TURNS, &ids, &n, &text);
    if (st == TUNA_OK && s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        char **a = realloc(s->ptext, (size_t)cap * sizeof *a), **b = a ? realloc(s->refs, (size_t)cap * sizeof *b) : NULL;
        if (a) s->ptext = a;
        if (b) s->refs = b, s->cap = cap;
        if (!b) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    }
    size_t cut = n > (size_t)s->max_prompt ? n - (size_t)s->max_prompt : 0; /* TRL keeps a prompt's last tokens */
    if (cut) (*truncated)++;
    n -= cut;
    if (st == TUNA_OK && n > 0) st = tuna_pretok_append(p, ids + cut, ids + cut, (int64_t)n);
    if (st == TUNA_OK && n > 0) {
        s->ptext[s->n] = text, s->refs[s->n] = ex.reference ? strdup(ex.reference) : NULL;
        s->n++, text = NULL;
        if ((int)n > *longest) *longest = (int)n;
    } else if (st == TUNA_OK) (*skipped)++;
    free(ids);
    free(text);
    tuna_eval_example_clear(&ex);
    return st;
}

/* A prompt-only record (TRL's standard GRPO data: {"prompt": ...}) gets a
 * placeholder completion, so the record formats read it (they refuse an
 * empty one); the prompt alone is used and the reference is none. */
static int complete_prompt_only(json_t *obj) {
    json_t *pr = json_object_get(obj, "prompt");
    if (!pr || json_object_get(obj, "completion") || json_object_get(obj, "chosen")) return 0;
    json_object_set_new(obj, "completion", json_is_string(pr) ? json_string(".")
                                                              : json_pack("[{s:s,s:s}]", "role", "assistant", "content", "."));
    return 1;
}

/* one JSONL line into a record (rec), prompt-only lines completed */
static tuna_status line_record(const train_opts *o, const char *line, long ln, tuna_record *rec, int *no_ref) {
    json_error_t je;
    json_t *obj = json_loads(line, 0, &je);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return core_fail(TUNA_ERR_FORMAT, "%s:%ld: not a JSON object%s%s", o->data_path, ln, obj ? "" : ": ", obj ? "" : je.text);
    }
    *no_ref = complete_prompt_only(obj);
    tuna_bad_kind why;
    tuna_status st = tuna_record_from_json(rec, obj, &o->dso.data, &why);
    json_decref(obj);
    if (st != TUNA_OK) {
        char why_text[512];
        snprintf(why_text, sizeof why_text, "%s", tuna_last_error()); /* core_fail rewrites the detail it reads */
        return core_fail(TUNA_ERR_FORMAT, "%s:%ld: %s", o->data_path, ln, why_text);
    }
    return TUNA_OK;
}

/* the prompts of the --data file (JSONL), each line a record */
static tuna_status read_lines(grpo_sampler *s, const train_opts *o, tuna_template *tmpl, tuna_pretok *p, int *longest, long *skipped,
                              long *truncated) {
    FILE *f = NULL;
    tuna_status st = input_file_open(o->data_path, 0, &f);
    char *line = NULL;
    size_t cap = 0;
    long ln = 0;
    tuna_record rec;
    memset(&rec, 0, sizeof rec);
    while (st == TUNA_OK && getline(&line, &cap, f) >= 0) {
        ln++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        int no_ref = 0;
        st = line_record(o, line, ln, &rec, &no_ref);
        int64_t before = s->n;
        if (st == TUNA_OK) st = add_record(s, &rec, tmpl, p, longest, skipped, truncated);
        if (st == TUNA_OK && no_ref && s->n > before) { free(s->refs[before]); s->refs[before] = NULL; }
        tuna_record_clear(&rec);
    }
    free(line);
    if (f) fclose(f);
    return st;
}

static tuna_status read_prompts(grpo_sampler *s, const train_opts *o, tuna_pretok *p, int *longest) {
    tuna_template *tmpl = NULL;
    char *tsrc = NULL;
    long skipped = 0, truncated = 0;
    tuna_status st = tuna_dataset_template(&tmpl, s->tok, o->template_arg, &tsrc);
    if (st == TUNA_OK) st = read_lines(s, o, tmpl, p, longest, &skipped, &truncated);
    tuna_template_free(tmpl);
    free(tsrc);
    if (st == TUNA_OK && s->n == 0) st = core_fail(TUNA_ERR_FORMAT, "%s: no record with a prompt", o->data_path);
    if (st == TUNA_OK && !o->quiet) {
        fprintf(stderr, "%s: %lld prompts (longest %d tokens)", o->data_path, (long long)s->n, *longest);
        if (skipped) fprintf(stderr, "; %ld records without a prompt skipped", skipped);
        if (truncated) fprintf(stderr, "; %ld cut to their last %d tokens (--max-prompt-len)", truncated, s->max_prompt);
        fputc('\n', stderr);
    }
    return st;
}

static tuna_status make_rewards(grpo_sampler *s, const train_opts *o, const char **names, int *K) {
    tuna_status st = grpo_rewards_new(&s->rw);
    for (int k = 0; st == TUNA_OK && k < o->grpo.n_rewards; k++) st = grpo_rewards_add(s->rw, o->grpo.rewards[k]);
    if (st != TUNA_OK) return st;
    grpo_rewards_set_timeout(s->rw, o->grpo.reward_timeout);
    *K = grpo_rewards_count(s->rw);
    for (int k = 0; k < *K && k < TRAIN_MAX_DATA; k++) names[k] = grpo_rewards_name(s->rw, k);
    return TUNA_OK;
}

static tuna_status alloc_rows(grpo_sampler *s, int batch, int K) {
    size_t mr = (size_t)s->decode_prompts * s->G, br = (size_t)batch * s->G;
    s->prompts = calloc(mr, sizeof *s->prompts);
    s->n_prompts = calloc(mr, sizeof *s->n_prompts);
    s->seeds = calloc(mr, sizeof *s->seeds);
    s->res = calloc(mr, sizeof *s->res);
    s->pt = calloc(br, sizeof *s->pt);
    s->ct = calloc(br, sizeof *s->ct);
    s->rt = calloc(br, sizeof *s->rt);
    s->total = calloc(br, sizeof *s->total);
    s->per_func = calloc(br * (size_t)(K > 0 ? K : 1), sizeof *s->per_func);
    if (!s->prompts || !s->n_prompts || !s->seeds || !s->res || !s->pt || !s->ct || !s->rt || !s->total || !s->per_func)
        return core_fail(TUNA_ERR_NOMEM, "out of memory");
    return TUNA_OK;
}

tuna_status grpo_sampler_load(grpo_sampler **out, train_opts *o, train_data *d, const char **names, int *K) {
    *out = NULL;
    if (!d->tok) return core_fail(TUNA_ERR_ARG, "%s: sampling needs the model's tokenizer (or give --completions)", o->model_dir);
    grpo_sampler *s = calloc(1, sizeof *s);
    if (!s) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    *out = s;
    s->tok = d->tok;
    s->G = o->grpo.G, s->decode_prompts = o->a.batch, s->max_new = o->grpo.max_new, s->seed = o->a.seed;
    s->max_prompt = o->max_prompt_len;
    tuna_sample_args_default(&s->sa);
    s->sa.temperature = (float)o->grpo.temperature, s->sa.top_p = (float)o->grpo.top_p;
    s->sa.top_k = o->grpo.top_k, s->sa.min_p = (float)o->grpo.min_p; /* TRL: both off unless given */
    int32_t e1 = tuna_tokenizer_eos_id(d->tok), e2 = tuna_model_config(d->m)->eos_token_id;
    if (e1 >= 0) s->eos[s->n_eos++] = e1;
    if (e2 >= 0 && e2 != e1) s->eos[s->n_eos++] = e2;
    int longest = 0;
    tuna_status st = tuna_pretok_new(&d->parts[0]);
    if (st == TUNA_OK) st = read_prompts(s, o, d->parts[0], &longest);
    s->prompts_of = d->parts[0]; /* the same object becomes d->data (one part, kept whole) */
    if (st == TUNA_OK) st = make_rewards(s, o, names, K);
    if (st == TUNA_OK) st = alloc_rows(s, o->a.batch, *K);
    s->ctx = longest + s->max_new;
    o->a.seq_len = s->ctx;
    return st;
}

/* rows [r0, r0 + nr) of the batch sampled: the G rows of prompt
 * items[r / G] decoded together, each with its seed (seed, batch, row) */
static tuna_status sample_micro(grpo_sampler *s, const tuna_pretok *p, int64_t gen, const int64_t *items, int r0, int nr,
                                grpo_rows *rows) {
    for (int j = 0; j < nr; j++) {
        int r = r0 + j;
        s->n_prompts[j] = (int)tuna_pretok_seq(p, items[r / s->G], &s->prompts[j], NULL, NULL);
        s->seeds[j] = core_splitmix64(s->seed * 0x9E3779B97F4A7C15ULL ^ core_splitmix64(((uint64_t)gen << 24) ^ (uint64_t)r));
    }
    tuna_gen_opts go = {.max_new_tokens = s->max_new, .sample = s->sa, .eos_ids = s->eos, .n_eos = s->n_eos};
    tuna_status st = tuna_generate_batch(s->dec, s->tok, s->prompts, s->n_prompts, nr, s->seeds, &go, s->res);
    if (st != TUNA_OK) return st;
    for (int j = 0; j < nr; j++) {
        int r = r0 + j, pl = s->n_prompts[j], n = s->res[j].n, eos = s->res[j].stopped && s->n_eos > 0;
        int32_t *dst = rows->tok + (size_t)r * rows->T;
        memcpy(dst, s->prompts[j], (size_t)pl * sizeof(int32_t));
        memcpy(dst + pl, s->res[j].ids, (size_t)n * sizeof(int32_t));
        if (eos) dst[pl + n] = s->eos[0]; /* the completion mask counts the EOS that ended it */
        rows->plen[r] = pl, rows->clen[r] = n + eos, rows->eos_end[r] = eos;
        s->ct[r] = s->res[j].text;
        s->res[j].text = NULL;
        tuna_gen_result_free(&s->res[j]);
    }
    return TUNA_OK;
}

/* the rewards of the batch's rows */
static tuna_status score(grpo_sampler *s, const int64_t *items, int rows_n, grpo_rows *rows) {
    for (int r = 0; r < rows_n; r++) s->pt[r] = s->ptext[items[r / s->G]], s->rt[r] = s->refs[items[r / s->G]];
    tuna_status st = grpo_rewards_score(s->rw, rows_n, s->pt, s->ct, s->rt, s->per_func, s->total);
    int K = rows->K;
    for (int r = 0; st == TUNA_OK && r < rows_n; r++) {
        rows->reward[r] = s->total[r];
        for (int k = 0; k < K; k++) rows->per_func[(size_t)r * K + k] = s->per_func[(size_t)r * K + k];
    }
    return st;
}

tuna_status grpo_sampler_fill(void *ctx, tuna_model *m, int64_t gen, const int64_t *items, int n, grpo_rows *rows) {
    grpo_sampler *s = ctx;
    tuna_status st = TUNA_OK;
    if (!s->dec) st = tuna_decoder_create(&s->dec, m, s->decode_prompts * s->G, s->ctx, s->decode_prompts * s->G * s->ctx);
    int rows_n = n * s->G, mr = s->decode_prompts * s->G;
    for (int r = 0; r < rows_n; r++) s->ct[r] = NULL;
    for (int r0 = 0; st == TUNA_OK && r0 < rows_n; r0 += mr)
        st = sample_micro(s, s->prompts_of, gen, items, r0, rows_n - r0 < mr ? rows_n - r0 : mr, rows);
    if (st == TUNA_OK) st = score(s, items, rows_n, rows);
    for (int r = 0; r < rows_n; r++) { free((char *)s->ct[r]); s->ct[r] = NULL; }
    return st;
}
