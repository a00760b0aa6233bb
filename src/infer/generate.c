/* generate.c — one prompt to text through the KV cache: prefill, then one
 * token per step, sampled by tuna_sampler, decoded by the streaming
 * detokenizer so only whole characters are emitted, stopping at EOS ids,
 * stop strings (held back while they could still be forming) or the token
 * limit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tuna_infer.h"

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

tuna_status tuna_generate(tuna_decoder *d, int row, const tuna_tokenizer *tok, const int32_t *prompt, int n_prompt,
                          const tuna_gen_opts *o, tuna_gen_result *res) {
    memset(res, 0, sizeof *res);
    if (n_prompt <= 0) return tuna_fail(TUNA_ERR_ARG, "empty prompt (no tokens)");
    if (o->max_new_tokens < 0) return tuna_fail(TUNA_ERR_ARG, "max_new_tokens must be >= 0");
    int V = tuna_tokenizer_vocab_size(tok);
    tuna_sampler *smp = NULL;
    tuna_detok_stream *ds = NULL;
    int cap = n_prompt + o->max_new_tokens + 1;
    int32_t *ctx = malloc((size_t)cap * sizeof *ctx);
    float *logits = NULL;
    size_t tcap = 256, tlen = 0, emitted = 0, maxstop = 0;
    char *text = malloc(tcap);
    tuna_status st = ctx && text ? TUNA_OK : tuna_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int k = 0; k < o->n_stop; k++)
        if (strlen(o->stop[k]) > maxstop) maxstop = strlen(o->stop[k]);
    int MV = tuna_decoder_vocab(d);
    if (st == TUNA_OK && V > MV) st = tuna_fail(TUNA_ERR_ARG, "the tokenizer has %d ids but the model only %d", V, MV);
    if (st == TUNA_OK) logits = malloc((size_t)MV * sizeof(float));
    if (st == TUNA_OK && !logits) st = tuna_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st == TUNA_OK) st = tuna_sampler_create(&smp, MV, &o->sample);
    if (st == TUNA_OK) st = tuna_detok_stream_new(&ds, tok, 1);
    if (st != TUNA_OK) goto done;
    memcpy(ctx, prompt, (size_t)n_prompt * sizeof *ctx);
    int n_ctx = n_prompt;
    tuna_decoder_reset(d, row);
    double t0 = now_s();
    st = tuna_decoder_step(d, &row, 1, prompt, n_prompt, logits);
    res->prompt_seconds = now_s() - t0;
    res->prompt_tokens = n_prompt;
    t0 = now_s();
    int done = 0;
    for (int i = 0; st == TUNA_OK && i < o->max_new_tokens && !done; i++) {
        for (int v = V; v < MV; v++) logits[v] = -INFINITY; /* ids the tokenizer cannot decode (padded vocabularies) */
        int32_t id = tuna_sampler_next(smp, logits, ctx, n_ctx);
        int is_eos = 0;
        for (int k = 0; k < o->n_eos; k++) is_eos |= id == o->eos_ids[k];
        if (is_eos) { res->stopped = 1; break; }
        ctx[n_ctx++] = id;
        const char *piece;
        size_t plen;
        st = tuna_detok_stream_push(ds, id, &piece, &plen);
        if (st != TUNA_OK) break;
        if (tlen + plen + 1 > tcap) {
            while (tlen + plen + 1 > tcap) tcap *= 2;
            char *nt = realloc(text, tcap);
            if (!nt) { st = tuna_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
            text = nt;
        }
        memcpy(text + tlen, piece, plen);
        tlen += plen;
        size_t from = emitted > maxstop ? emitted - maxstop : 0;
        long at = o->n_stop ? find_stop(text, tlen, from, o->stop, o->n_stop) : -1;
        if (at >= 0) { tlen = (size_t)at; res->stopped = 1; done = 1; }
        /* emit what can no longer be part of a stop string */
        size_t safe = done || !maxstop ? tlen : tlen > maxstop - 1 ? tlen - (maxstop - 1) : 0;
        if (o->on_text && safe > emitted) o->on_text(o->ctx, text + emitted, safe - emitted);
        if (safe > emitted) emitted = safe;
        if (!done && i + 1 < o->max_new_tokens) st = tuna_decoder_step(d, &row, 1, &id, 1, logits);
    }
    res->decode_seconds = now_s() - t0;
    if (st == TUNA_OK && o->on_text && tlen > emitted) o->on_text(o->ctx, text + emitted, tlen - emitted);
    if (st == TUNA_OK) {
        text[tlen] = 0;
        res->text = text;
        res->text_len = tlen;
        res->n = n_ctx - n_prompt;
        res->ids = malloc((size_t)(res->n ? res->n : 1) * sizeof(int32_t));
        if (res->ids) memcpy(res->ids, ctx + n_prompt, (size_t)res->n * sizeof(int32_t));
        text = NULL;
    }
done:
    free(text);
    free(ctx);
    free(logits);
    tuna_sampler_free(smp);
    tuna_detok_stream_free(ds);
    return st;
}
