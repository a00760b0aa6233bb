/* generate.c — prompts to text through the KV cache: each row is prefilled,
 * then all unfinished rows advance one token per step together (one forward
 * pass for the batch), sampled by their own tuna_sampler, decoded by the
 * streaming detokenizer so only whole characters are emitted, stopping at
 * EOS ids, stop strings (held back while they could still be forming) or the
 * token limit. tuna_generate is the one-row case. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tuna_infer.h"
#include "core/error.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void tuna_gen_result_free(tuna_gen_result *r) {
    free(r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* first occurrence of any stop string in text[from..len), or -1 */
static long find_stop(const char *text, size_t len, size_t from, const char *const *stop, int n_stop) {
    long best = -1;
    for (int k = 0; k < n_stop; k++) {
        size_t sl = strlen(stop[k]);
        if (!sl || sl > len) continue;
        for (size_t i = from; i + sl <= len; i++)
            if (!memcmp(text + i, stop[k], sl)) {
                if (best < 0 || (long)i < best) best = (long)i;
                break;
            }
    }
    return best;
}

/* one prompt being generated */
struct tuna_gen_seq {
    tuna_gen_opts o;          /* on_text NULL: not streamed */
    tuna_sampler *smp;
    tuna_detok_stream *ds;
    int32_t *ctx;             /* prompt + generated ids */
    int n_prompt, n_ctx;
    int V, MV;                /* tokenizer and model vocabulary sizes */
    size_t maxstop;
    char *text;
    size_t tcap, tlen, emitted;
    int done, stopped;
    double t_start, t_prompt_end, t_end;
};

void tuna_gen_seq_free(tuna_gen_seq *r) {
    if (!r) return;
    tuna_sampler_free(r->smp);
    tuna_detok_stream_free(r->ds);
    free(r->ctx);
    free(r->text);
    free(r);
}

tuna_status tuna_gen_seq_create(tuna_gen_seq **out, const tuna_tokenizer *tok, int model_vocab, const int32_t *prompt,
                                int n_prompt, const tuna_gen_opts *o) {
    *out = NULL;
    if (n_prompt <= 0) return core_fail(TUNA_ERR_ARG, "the prompt is empty (no tokens)");
    if (o->max_new_tokens < 0) return core_fail(TUNA_ERR_ARG, "max_new_tokens must be >= 0");
    int V = tuna_tokenizer_vocab_size(tok);
    if (V > model_vocab) return core_fail(TUNA_ERR_ARG, "the tokenizer has %d ids but the model only %d", V, model_vocab);
    tuna_gen_seq *g = calloc(1, sizeof *g);
    if (!g) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    g->o = *o;
    g->V = V;
    g->MV = model_vocab;
    for (int k = 0; k < o->n_stop; k++)
        if (strlen(o->stop[k]) > g->maxstop) g->maxstop = strlen(o->stop[k]);
    g->n_prompt = g->n_ctx = n_prompt;
    g->ctx = malloc((size_t)(n_prompt + o->max_new_tokens + 1) * sizeof(int32_t));
    g->tcap = 256;
    g->text = malloc(g->tcap);
    tuna_status st = g->ctx && g->text ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st == TUNA_OK) {
        memcpy(g->ctx, prompt, (size_t)n_prompt * sizeof(int32_t));
        st = tuna_sampler_create(&g->smp, model_vocab, &o->sample);
    }
    if (st == TUNA_OK) st = tuna_detok_stream_new(&g->ds, tok, 1);
    if (st != TUNA_OK) { tuna_gen_seq_free(g); return st; }
    g->t_start = now_s();
    if (o->max_new_tokens == 0) g->done = 1;
    *out = g;
    return TUNA_OK;
}

int tuna_gen_seq_done(const tuna_gen_seq *g) { return g->done; }
int tuna_gen_seq_generated(const tuna_gen_seq *g) { return g->n_ctx - g->n_prompt; }
int32_t tuna_gen_seq_last(const tuna_gen_seq *g) { return g->ctx[g->n_ctx - 1]; }

/* Takes the sampled id; the row is done at EOS, a stop string or the limit. */
static tuna_status row_accept(tuna_gen_seq *r, int32_t id) {
    const tuna_gen_opts *o = &r->o;
    size_t maxstop = r->maxstop;
    for (int k = 0; k < o->n_eos; k++)
        if (id == o->eos_ids[k]) { r->stopped = r->done = 1; return TUNA_OK; }
    r->ctx[r->n_ctx++] = id;
    const char *piece;
    size_t plen;
    tuna_status st = tuna_detok_stream_push(r->ds, id, &piece, &plen);
    if (st != TUNA_OK) return st;
    if (r->tlen + plen + 1 > r->tcap) {
        size_t cap = r->tcap;
        while (r->tlen + plen + 1 > cap) cap *= 2;
        char *nt = realloc(r->text, cap);
        if (!nt) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        r->text = nt;
        r->tcap = cap;
    }
    memcpy(r->text + r->tlen, piece, plen);
    r->tlen += plen;
    size_t from = r->emitted > maxstop ? r->emitted - maxstop : 0;
    long at = o->n_stop ? find_stop(r->text, r->tlen, from, o->stop, o->n_stop) : -1;
    if (at >= 0) { r->tlen = (size_t)at; r->stopped = r->done = 1; }
    if (r->n_ctx - r->n_prompt >= o->max_new_tokens) r->done = 1;
    /* emit what can no longer be part of a stop string */
    size_t safe = r->done || !maxstop ? r->tlen : r->tlen > maxstop - 1 ? r->tlen - (maxstop - 1) : 0;
    while (safe > r->emitted && safe < r->tlen && ((unsigned char)r->text[safe] & 0xC0) == 0x80) safe--; /* whole characters only */
    if (o->on_text && safe > r->emitted) o->on_text(o->ctx, r->text + r->emitted, safe - r->emitted);
    if (safe > r->emitted) r->emitted = safe;
    return TUNA_OK;
}

/* A NaN or infinite logit (an overflow in the model) is an error naming the
 * step, never a sample drawn from it: argmax and the softmax would quietly
 * return token 0 or an arbitrary one. -inf is allowed (a masked token). */
static tuna_status check_logits(const tuna_gen_seq *g, const float *logits) {
    for (int v = 0; v < g->MV; v++)
        if (isnan(logits[v]) || logits[v] == INFINITY)
            return core_fail(TUNA_ERR_NUMERIC, "generation step %d (predicting position %d): the logit of token %d is %s (the model's output is not finite)",
                             g->n_ctx - g->n_prompt + 1, g->n_ctx, v, isnan(logits[v]) ? "NaN" : "+inf");
    return TUNA_OK;
}

tuna_status tuna_gen_seq_push_logits(tuna_gen_seq *g, float *logits) {
    if (g->done) return TUNA_OK;
    if (g->n_ctx == g->n_prompt && !g->t_prompt_end) g->t_prompt_end = now_s();
    tuna_status cs = check_logits(g, logits);
    if (cs != TUNA_OK) return cs;
    for (int v = g->V; v < g->MV; v++) logits[v] = -INFINITY; /* ids the tokenizer cannot decode (padded vocabularies) */
    tuna_status st = row_accept(g, tuna_sampler_next(g->smp, logits, g->ctx, g->n_ctx));
    if (g->done) g->t_end = now_s();
    return st;
}

tuna_status tuna_gen_seq_result(tuna_gen_seq *g, tuna_gen_result *x) {
    memset(x, 0, sizeof *x);
    double t = now_s();
    if (!g->t_prompt_end) g->t_prompt_end = t;
    if (!g->t_end) g->t_end = t;
    if (g->o.on_text && g->tlen > g->emitted) g->o.on_text(g->o.ctx, g->text + g->emitted, g->tlen - g->emitted);
    g->emitted = g->tlen;
    x->n = g->n_ctx - g->n_prompt;
    x->ids = malloc((size_t)(x->n ? x->n : 1) * sizeof(int32_t));
    x->text = malloc(g->tlen + 1);
    if (!x->ids || !x->text) { tuna_gen_result_free(x); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    memcpy(x->ids, g->ctx + g->n_prompt, (size_t)x->n * sizeof(int32_t));
    memcpy(x->text, g->text, g->tlen);
    x->text[g->tlen] = 0;
    x->text_len = g->tlen;
    x->prompt_tokens = g->n_prompt;
    x->stopped = g->stopped;
    x->prompt_seconds = g->t_prompt_end - g->t_start;
    x->decode_seconds = g->t_end - g->t_prompt_end;
    return TUNA_OK;
}

tuna_status tuna_generate_batch(tuna_decoder *d, const tuna_tokenizer *tok, const int32_t *const *prompts,
                                const int *n_prompts, int nrows, const uint64_t *seeds, const tuna_gen_opts *o,
                                tuna_gen_result *res) {
    if (nrows <= 0) return core_fail(TUNA_ERR_ARG, "no prompts to generate from");
    for (int r = 0; r < nrows; r++) memset(&res[r], 0, sizeof res[r]);
    for (int r = 0; r < nrows; r++)
        if (n_prompts[r] <= 0) return core_fail(TUNA_ERR_ARG, "prompt %d is empty (no tokens)", r);
    int MV = tuna_decoder_vocab(d);
    tuna_gen_seq **rows = calloc((size_t)nrows, sizeof *rows);
    float *logits = malloc((size_t)nrows * MV * sizeof(float));
    int *active = malloc((size_t)nrows * sizeof *active);
    int32_t *next = malloc((size_t)nrows * sizeof *next);
    tuna_status st = rows && logits && active && next ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int r = 0; st == TUNA_OK && r < nrows; r++) {
        tuna_gen_opts ro = *o;
        if (seeds) ro.sample.seed = seeds[r];
        if (nrows > 1) ro.on_text = NULL; /* streaming is for one row */
        st = tuna_gen_seq_create(&rows[r], tok, MV, prompts[r], n_prompts[r], &ro);
    }
    /* prefill each row (lengths differ), sample its first token */
    for (int r = 0; st == TUNA_OK && r < nrows; r++) {
        tuna_decoder_reset(d, r);
        rows[r]->t_start = now_s();
        st = tuna_decoder_step(d, &r, 1, prompts[r], n_prompts[r], logits + (size_t)r * MV);
        if (st == TUNA_OK) st = tuna_gen_seq_push_logits(rows[r], logits + (size_t)r * MV);
    }
    /* decode: all unfinished rows, one token each per forward pass */
    while (st == TUNA_OK) {
        int na = 0;
        for (int r = 0; r < nrows; r++)
            if (!rows[r]->done) { active[na] = r; next[na] = tuna_gen_seq_last(rows[r]); na++; }
        if (!na) break;
        st = tuna_decoder_step(d, active, na, next, 1, logits);
        for (int a = 0; st == TUNA_OK && a < na; a++) st = tuna_gen_seq_push_logits(rows[active[a]], logits + (size_t)a * MV);
    }
    for (int r = 0; st == TUNA_OK && r < nrows; r++) st = tuna_gen_seq_result(rows[r], &res[r]);
    if (st != TUNA_OK)
        for (int r = 0; r < nrows; r++) tuna_gen_result_free(&res[r]);
    for (int r = 0; rows && r < nrows; r++) tuna_gen_seq_free(rows[r]);
    free(rows);
    free(logits);
    free(active);
    free(next);
    return st;
}

tuna_status tuna_generate(tuna_decoder *d, const tuna_tokenizer *tok, const int32_t *prompt, int n_prompt,
                          const tuna_gen_opts *o, tuna_gen_result *res) {
    return tuna_generate_batch(d, tok, &prompt, &n_prompt, 1, NULL, o, res);
}
