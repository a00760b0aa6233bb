/* engine.h — the serving engine: requests from any thread go into a bounded
 * queue; one engine thread admits them into the decoder's rows (--parallel)
 * and decodes every active row together, one batched forward per model per
 * step (the base and each adapter are models over the same weights), so a
 * request that arrives mid-generation joins at the next step instead of
 * waiting for the others to finish. Text reaches the requester as it is
 * produced; a requester that goes away cancels its row. Not public: the CLI
 * and the HTTP layer (http.c) use it. */
#ifndef TUNA_SERVE_ENGINE_H
#define TUNA_SERVE_ENGINE_H
#include <stddef.h>

#include "tuna_infer.h"
#include "tuna_peft.h"

typedef struct srv_engine srv_engine;
typedef struct srv_request srv_request;

typedef struct {
    int parallel;  /* rows decoded together */
    int queue;     /* requests that may wait for a row; more get SRV_QUEUE_FULL */
    int ctx;       /* positions per row (prompt + virtual tokens + generated) */
    int threads;   /* OpenMP/BLAS threads of the engine's forward passes; 0 = the default */
} srv_engine_opts;

/* models[0] is the base; models share its weights (tuna_model_share) and
 * must outlive the engine. Starts the engine thread. */
tuna_status srv_engine_create(srv_engine **out, tuna_model *const *models, int n_models, const tuna_tokenizer *tok,
                              const srv_engine_opts *o);
/* Stops the thread: requests still queued or running finish as failed
 * ("server shutting down") and their waiters wake up. Idempotent. */
void srv_engine_stop(srv_engine *e);
/* Stops (if needed) and frees; every request must have been released. */
void srv_engine_free(srv_engine *e);
int srv_engine_ctx(const srv_engine *e);
/* Virtual tokens a model puts in front of each prompt (prompt tuning), else 0. */
int srv_engine_virtual_tokens(const srv_engine *e, int model);

enum { SRV_SUBMITTED = 0, SRV_QUEUE_FULL = 1, SRV_DRAINING = 2, SRV_NOMEM = 3 };
/* Queues a generation: ids (copied) through models[model] with o (eos ids and
 * stop strings copied; o->on_text ignored). The caller owns one reference to
 * *out and must srv_request_release it. */
int srv_engine_submit(srv_engine *e, int model, const int32_t *ids, int n, const tuna_gen_opts *o, srv_request **out);
/* New requests are refused (SRV_DRAINING); the running and queued ones go on. */
void srv_engine_drain(srv_engine *e);

typedef struct {
    int active, queued;
    long completed, cancelled, failed;
    long generated_tokens;
    int draining;
} srv_engine_stats;
void srv_engine_get_stats(srv_engine *e, srv_engine_stats *s);

/* Waits up to timeout_ms for new text or the end; appends the text produced
 * since the last call to *buf (grown with realloc; *len its length) and
 * returns 1 once the request has finished (all its text taken), else 0;
 * -1 when out of memory. */
int srv_request_take(srv_request *r, int timeout_ms, char **buf, size_t *len, size_t *cap);
/* After the end: token counts and why it ended ("stop", "length"), or the
 * error message of a failed request (NULL when it did not fail). */
void srv_request_result(srv_request *r, int *prompt_tokens, int *completion_tokens, const char **finish_reason,
                        const char **error);
/* Seconds the request waited for a row (so far, while it waits). */
double srv_request_queue_seconds(srv_request *r);
/* The requester is gone: the row is freed at the next step. */
void srv_request_cancel(srv_request *r);
void srv_request_release(srv_request *r);
#endif
