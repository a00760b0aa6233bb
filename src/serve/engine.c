/* engine.c — continuous batching for the server (see engine.h).
 *
 * One mutex guards the queue, the row table, the counters and every
 * request's output; the decoder and the sequences belong to the engine thread
 * alone, which drops the mutex while it runs the model. Each loop: admit
 * queued requests into free rows (prefill one by one: prompt lengths differ),
 * then one decode step per model over that model's active rows, then retire
 * the rows that ended or were cancelled. A request holds two references, the
 * requester's and the engine's; the last release frees it. */
#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/engine.h"
#include "core/clock.h"
#include "core/error.h"

#define MAX_EOS 16
#define MAX_STOP 4

struct srv_request {
    srv_engine *e;
    int refs;
    int model;
    int32_t *ids;
    int n;
    tuna_gen_opts o;
    int32_t eos[MAX_EOS];
    char *stops[MAX_STOP];
    const char *stop_ptrs[MAX_STOP];
    /* output, under e->mu */
    char *pending;
    size_t plen, pcap;
    int finished, oom;
    const char *finish_reason;
    char error[256];
    int prompt_tokens, completion_tokens;
    double t_submit, t_admit;  /* monotonic seconds */
    pthread_cond_t cond;
    atomic_int cancelled;
    srv_request *next;      /* queue link */
    /* engine thread only */
    tuna_gen_seq *seq;
    int failed;
};

struct srv_engine {
    const tuna_tokenizer *tok;
    tuna_model *const *models;
    int n_models;
    tuna_decoder *d;
    int parallel, queue_cap, ctx, V;
    float *logits;
    int *rows;
    int32_t *next;
    srv_request **slot;     /* [parallel] request in each row, NULL: free */
    int *fresh;             /* rows admitted this loop */
    pthread_mutex_t mu;
    pthread_cond_t work;
    srv_request *qhead, *qtail;
    int nq, nactive;
    long completed, cancelled, failed, generated;
    int draining, stopping, started, threads;
    pthread_t thread;
};

static void request_free(srv_request *r) {
    free(r->ids);
    for (int i = 0; i < MAX_STOP; i++) free(r->stops[i]);
    free(r->pending);
    tuna_gen_seq_free(r->seq);
    pthread_cond_destroy(&r->cond);
    free(r);
}

/* under e->mu */
static void unref(srv_request *r) {
    if (--r->refs == 0) request_free(r);
}

void srv_request_release(srv_request *r) {
    if (!r) return;
    srv_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    unref(r);
    pthread_mutex_unlock(&e->mu);
}

void srv_request_cancel(srv_request *r) { atomic_store(&r->cancelled, 1); }

/* on_text of a sequence: runs on the engine thread without the mutex */
static void emit(void *ctx, const char *text, size_t len) {
    srv_request *r = ctx;
    srv_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    if (r->plen + len + 1 > r->pcap) {
        size_t cap = r->pcap ? r->pcap : 256;
        while (r->plen + len + 1 > cap) cap *= 2;
        char *p = realloc(r->pending, cap);
        if (!p) r->oom = 1;
        else { r->pending = p; r->pcap = cap; }
    }
    if (!r->oom) {
        memcpy(r->pending + r->plen, text, len);
        r->plen += len;
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&e->mu);
}

int srv_request_take(srv_request *r, int timeout_ms, char **buf, size_t *len, size_t *cap) {
    srv_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    if (!r->plen && !r->finished && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&r->cond, &e->mu, &ts);
    }
    int rc = r->oom ? -1 : 0;
    if (r->plen && rc == 0) {
        if (*len + r->plen + 1 > *cap) {
            size_t c = *cap ? *cap : 256;
            while (*len + r->plen + 1 > c) c *= 2;
            char *p = realloc(*buf, c);
            if (!p) rc = -1;
            else { *buf = p; *cap = c; }
        }
        if (rc == 0) {
            memcpy(*buf + *len, r->pending, r->plen);
            *len += r->plen;
            (*buf)[*len] = 0;
            r->plen = 0;
        }
    }
    if (rc == 0 && r->finished && !r->plen) rc = 1;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

double srv_request_queue_seconds(srv_request *r) {
    srv_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    double q = r->t_admit > 0 ? r->t_admit - r->t_submit : core_now_s() - r->t_submit;
    pthread_mutex_unlock(&e->mu);
    return q;
}

void srv_request_result(srv_request *r, int *prompt_tokens, int *completion_tokens, const char **finish_reason,
                        const char **error) {
    srv_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    *prompt_tokens = r->prompt_tokens;
    *completion_tokens = r->completion_tokens;
    *finish_reason = r->finish_reason ? r->finish_reason : "stop";
    *error = r->error[0] ? r->error : NULL;
    pthread_mutex_unlock(&e->mu);
}

int srv_engine_submit(srv_engine *e, int model, const int32_t *ids, int n, const tuna_gen_opts *o, srv_request **out) {
    *out = NULL;
    srv_request *r = calloc(1, sizeof *r);
    if (!r) return SRV_NOMEM;
    r->e = e;
    r->refs = 2;
    r->model = model;
    r->n = n;
    r->ids = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    r->o = *o;
    r->o.on_text = emit;
    r->o.ctx = r;
    r->o.n_eos = o->n_eos < MAX_EOS ? o->n_eos : MAX_EOS;
    r->o.n_stop = o->n_stop < MAX_STOP ? o->n_stop : MAX_STOP;
    int bad = !r->ids;
    for (int i = 0; i < r->o.n_eos; i++) r->eos[i] = o->eos_ids[i];
    for (int i = 0; i < r->o.n_stop; i++) {
        r->stops[i] = strdup(o->stop[i]);
        r->stop_ptrs[i] = r->stops[i];
        bad |= !r->stops[i];
    }
    r->o.eos_ids = r->eos;
    r->o.stop = r->stop_ptrs;
    pthread_cond_init(&r->cond, NULL);
    atomic_init(&r->cancelled, 0);
    if (bad) { request_free(r); return SRV_NOMEM; }
    memcpy(r->ids, ids, (size_t)n * sizeof(int32_t));
    r->prompt_tokens = n;
    r->t_submit = core_now_s();
    pthread_mutex_lock(&e->mu);
    /* queued requests whose requester left hold no place */
    for (srv_request **pp = &e->qhead, *prev = NULL; *pp;) {
        srv_request *q = *pp;
        if (!atomic_load(&q->cancelled)) { prev = q; pp = &q->next; continue; }
        *pp = q->next;
        if (e->qtail == q) e->qtail = prev;
        e->nq--;
        e->cancelled++;
        snprintf(q->error, sizeof q->error, "cancelled");
        q->finished = 1;
        pthread_cond_broadcast(&q->cond);
        unref(q);
    }
    int rc = SRV_SUBMITTED;
    if (e->draining || e->stopping) rc = SRV_DRAINING;
    else if (e->nactive + e->nq >= e->parallel + e->queue_cap) rc = SRV_QUEUE_FULL;
    if (rc == SRV_SUBMITTED) {
        if (e->qtail) e->qtail->next = r;
        else e->qhead = r;
        e->qtail = r;
        e->nq++;
        pthread_cond_signal(&e->work);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc != SRV_SUBMITTED) { request_free(r); return rc; }
    *out = r;
    return rc;
}

void srv_engine_drain(srv_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->draining = 1;
    pthread_mutex_unlock(&e->mu);
}

void srv_engine_get_stats(srv_engine *e, srv_engine_stats *s) {
    pthread_mutex_lock(&e->mu);
    s->active = e->nactive;
    s->queued = e->nq;
    s->completed = e->completed;
    s->cancelled = e->cancelled;
    s->failed = e->failed;
    s->generated_tokens = e->generated;
    s->draining = e->draining;
    pthread_mutex_unlock(&e->mu);
}

int srv_engine_ctx(const srv_engine *e) { return e->ctx; }

int srv_engine_virtual_tokens(const srv_engine *e, int model) {
    const tuna_peft_config *p = tuna_peft_get(e->models[model]);
    return p && p->type == TUNA_PEFT_PROMPT ? p->num_virtual_tokens : 0;
}

/* the request ends with the error just reported (tuna_last_error) */
static void fail(srv_request *r) {
    r->failed = 1;
    snprintf(r->error, sizeof r->error, "%s", tuna_last_error());
}

/* The row's request ended (done, cancelled or failed): results out, row freed.
 * Called without the mutex; takes it to publish. */
static void retire(srv_engine *e, int row) {
    srv_request *r = e->slot[row];
    int cancelled = atomic_load(&r->cancelled);
    tuna_gen_result res = {0};
    if (!r->failed && !cancelled && r->seq) {
        tuna_status st = tuna_gen_seq_result(r->seq, &res); /* flushes held-back text through emit */
        if (st != TUNA_OK) fail(r);
    }
    pthread_mutex_lock(&e->mu);
    if (!r->failed && !cancelled) {
        r->completion_tokens = res.n;
        r->finish_reason = res.stopped ? "stop" : "length";
        e->completed++;
        e->generated += res.n;
    } else if (r->failed) e->failed++;
    else e->cancelled++;
    if (cancelled && !r->error[0]) snprintf(r->error, sizeof r->error, "cancelled");
    r->finished = 1;
    pthread_cond_broadcast(&r->cond);
    e->slot[row] = NULL;
    e->nactive--;
    tuna_gen_seq_free(r->seq);
    r->seq = NULL;
    unref(r);
    pthread_mutex_unlock(&e->mu);
    tuna_gen_result_free(&res);
}

static int row_over(srv_request *r) {
    return r->failed || atomic_load(&r->cancelled) || (r->seq && tuna_gen_seq_done(r->seq));
}

static void *engine_loop(void *arg) {
    srv_engine *e = arg;
    if (e->threads > 0) omp_set_num_threads(e->threads); /* this thread's teams, OpenBLAS's included */
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->nactive && !e->qhead) pthread_cond_wait(&e->work, &e->mu);
        if (e->stopping) { pthread_mutex_unlock(&e->mu); break; }
        int nfresh = 0;
        for (int row = 0; row < e->parallel && e->qhead; row++) {
            if (e->slot[row]) continue;
            srv_request *r = e->qhead;
            e->qhead = r->next;
            if (!e->qhead) e->qtail = NULL;
            r->next = NULL;
            e->nq--;
            e->slot[row] = r;
            r->t_admit = core_now_s();
            e->nactive++;
            e->fresh[nfresh++] = row;
        }
        pthread_mutex_unlock(&e->mu);
        /* prefill the newcomers, each on its own (lengths differ) */
        for (int i = 0; i < nfresh; i++) {
            int row = e->fresh[i];
            srv_request *r = e->slot[row];
            if (atomic_load(&r->cancelled)) continue;
            tuna_status st = tuna_gen_seq_create(&r->seq, e->tok, e->V, r->ids, r->n, &r->o);
            if (st == TUNA_OK) st = tuna_decoder_set_model(e->d, e->models[r->model]);
            if (st == TUNA_OK) {
                tuna_decoder_reset(e->d, row);
                st = tuna_decoder_step(e->d, &row, 1, r->ids, r->n, e->logits);
            }
            if (st == TUNA_OK) st = tuna_gen_seq_push_logits(r->seq, e->logits);
            if (st != TUNA_OK) fail(r);
        }
        /* one token for every running row, one forward per model */
        for (int m = 0; m < e->n_models; m++) {
            int na = 0;
            for (int row = 0; row < e->parallel; row++) {
                srv_request *r = e->slot[row];
                if (!r || r->model != m || row_over(r)) continue;
                int fresh = 0;
                for (int i = 0; i < nfresh; i++) fresh |= e->fresh[i] == row;
                if (fresh) continue; /* its first token came from the prefill */
                e->rows[na] = row;
                e->next[na++] = tuna_gen_seq_last(r->seq);
            }
            if (!na) continue;
            tuna_status st = tuna_decoder_set_model(e->d, e->models[m]);
            if (st == TUNA_OK) st = tuna_decoder_step(e->d, e->rows, na, e->next, 1, e->logits);
            for (int a = 0; a < na; a++) {
                srv_request *r = e->slot[e->rows[a]];
                if (st == TUNA_OK) {
                    tuna_status s2 = tuna_gen_seq_push_logits(r->seq, e->logits + (size_t)a * e->V);
                    if (s2 != TUNA_OK) fail(r);
                } else fail(r);
            }
        }
        for (int row = 0; row < e->parallel; row++)
            if (e->slot[row] && row_over(e->slot[row])) retire(e, row);
    }
    return NULL;
}

tuna_status srv_engine_create(srv_engine **out, tuna_model *const *models, int n_models, const tuna_tokenizer *tok,
                              const srv_engine_opts *o) {
    *out = NULL;
    if (n_models <= 0 || o->parallel <= 0 || o->queue < 0 || o->ctx <= 0)
        return core_fail(TUNA_ERR_ARG, "engine: need models, parallel > 0, queue >= 0 and ctx > 0");
    srv_engine *e = calloc(1, sizeof *e);
    if (!e) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    e->tok = tok;
    e->models = models;
    e->n_models = n_models;
    e->parallel = o->parallel;
    e->queue_cap = o->queue;
    e->threads = o->threads;
    const tuna_config *c = tuna_model_config(models[0]);
    e->ctx = o->ctx;
    if (c->learned_positions && e->ctx > c->max_positions) e->ctx = c->max_positions;
    /* a model with a sliding window attends no further back than it: rows stop there */
    if (c->sliding_window > 0 && e->ctx > c->sliding_window) e->ctx = c->sliding_window;
    /* one prefill of a whole context, or one token for every row; the
     * decoder's per-thread scratch is sized for this thread's team (and holds
     * larger teams to it), so create it with the engine thread's */
    int saved_threads = omp_get_max_threads();
    if (o->threads > 0) omp_set_num_threads(o->threads);
    tuna_status st = tuna_decoder_create(&e->d, models[0], e->parallel, e->ctx, e->ctx > e->parallel ? e->ctx : e->parallel);
    omp_set_num_threads(saved_threads);
    if (st != TUNA_OK) { free(e); return st; }
    e->V = tuna_decoder_vocab(e->d);
    for (int m = 1; st == TUNA_OK && m < n_models; m++) st = tuna_decoder_set_model(e->d, models[m]); /* adapter buffers now */
    if (st == TUNA_OK) st = tuna_decoder_set_model(e->d, models[0]);
    e->logits = malloc((size_t)e->parallel * e->V * sizeof(float));
    e->rows = malloc((size_t)e->parallel * sizeof *e->rows);
    e->next = malloc((size_t)e->parallel * sizeof *e->next);
    e->slot = calloc((size_t)e->parallel, sizeof *e->slot);
    e->fresh = malloc((size_t)e->parallel * sizeof *e->fresh);
    if (st == TUNA_OK && (!e->logits || !e->rows || !e->next || !e->slot || !e->fresh)) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    if (st == TUNA_OK && pthread_create(&e->thread, NULL, engine_loop, e) != 0) st = core_fail(TUNA_ERR_IO, "cannot start the engine thread");
    if (st != TUNA_OK) { srv_engine_free(e); return st; }
    e->started = 1;
    *out = e;
    return TUNA_OK;
}

/* under e->mu: a request that will never run ends as failed */
static void abandon(srv_engine *e, srv_request *r) {
    snprintf(r->error, sizeof r->error, "server shutting down");
    r->finished = 1;
    e->failed++;
    pthread_cond_broadcast(&r->cond);
    unref(r);
}

void srv_engine_stop(srv_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    int was = e->stopping;
    e->stopping = 1;
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->mu);
    if (was || !e->started) return;
    pthread_join(e->thread, NULL);
    pthread_mutex_lock(&e->mu);
    while (e->qhead) {
        srv_request *r = e->qhead;
        e->qhead = r->next;
        e->nq--;
        abandon(e, r);
    }
    e->qtail = NULL;
    for (int row = 0; row < e->parallel; row++)
        if (e->slot[row]) {
            srv_request *r = e->slot[row];
            tuna_gen_seq_free(r->seq);
            r->seq = NULL;
            e->slot[row] = NULL;
            e->nactive--;
            abandon(e, r);
        }
    pthread_mutex_unlock(&e->mu);
}

void srv_engine_free(srv_engine *e) {
    if (!e) return;
    srv_engine_stop(e);
    tuna_decoder_free(e->d);
    free(e->logits);
    free(e->rows);
    free(e->next);
    free(e->slot);
    free(e->fresh);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    free(e);
}
