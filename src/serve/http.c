/* http.c — routes, authentication, limits and response bodies of `tuna serve`
 * (see server.h).
 *
 * libmicrohttpd runs one thread per connection, so a handler may block: a
 * non-streamed request waits for its generation in the connection's thread,
 * and a streamed one returns a response whose content callback waits for the
 * next text and turns it into OpenAI's chunk objects ("data: {...}\n\n",
 * then "data: [DONE]"). While waiting, both look at the socket: a client
 * that hung up cancels its generation (the engine frees the row at the next
 * step). Prompts are rendered and encoded under one lock because the
 * tokenizer keeps a cache. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "serve/deadline.h"
#include "serve/request.h"
#include "serve/server.h"
#include "tuna_dataset.h"
#include "core/clock.h"
#include "core/error.h"

struct srv_server {
    srv_config c;
    struct MHD_Daemon *d;
    srv_deadline *dl;         /* whole-request deadline of every connection */
    int port;
    pthread_mutex_t tok_mu;
    atomic_int inflight;
    atomic_int quiesced;
    atomic_ullong ids;
    time_t started;
};

/* per connection-request: the body as it arrives */
typedef struct {
    char *body;
    size_t len, cap;
    int too_large;
    int generating;           /* counted in inflight until the response is sent */
} conn_state;

static void log_line(srv_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(srv_server *s, const char *fmt, ...) {
    if (!s->c.log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tuna serve: %s\n", line);
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, int status, const char *type, const char *body, size_t len,
                                  enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* takes ownership of the JSON object */
static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return MHD_NO;
    return send_bytes(c, status, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result send_error(srv_server *s, struct MHD_Connection *c, const char *method, const char *url, const srv_error *e) {
    char *body = srv_error_json(e);
    if (!body) return MHD_NO;
    log_line(s, "%s %s %d %s", method, url, e->status, e->message);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(body); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (e->status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (e->status == 405) MHD_add_response_header(r, "Allow", strstr(url, "completions") ? "POST" : "GET, HEAD");
    if (e->status == 429 || e->status == 503) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)e->status, r);
    MHD_destroy_response(r);
    return ret;
}

static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* compares without leaking where the first difference is */
static int key_ok(const char *given, const char *want) {
    size_t n = strlen(want), m = strlen(given);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(want[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

static int authorized(srv_server *s, struct MHD_Connection *c) {
    if (!s->c.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    while (*h == ' ') h++;
    return key_ok(h, s->c.api_key);
}

static int find_model(srv_server *s, const char *name) {
    if (!name) return 0;
    for (int i = 0; i < s->c.n_models; i++)
        if (!strcmp(name, s->c.model_names[i])) return i;
    return -1;
}

static json_t *model_object(srv_server *s, int i) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", s->c.model_names[i], "object", "model", "created", (json_int_t)s->started,
                     "owned_by", "tuna");
}

static void new_id(srv_server *s, char *out, size_t n, const char *prefix) {
    uint64_t x = atomic_fetch_add(&s->ids, 1) + 0x9E3779B97F4A7C15ull * (uint64_t)s->started;
    x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 27; x *= 0x94D049BB133111EBull; x ^= x >> 31;
    snprintf(out, n, "%s-%016llx", prefix, (unsigned long long)x);
}

/* ---- one generation ---- */
typedef struct {
    srv_server *s;
    struct MHD_Connection *c;
    srv_request *r;
    int chat, include_usage, model;
    char id[48];
    time_t created;
    char *text;               /* text taken from the engine, not yet sent */
    size_t tlen, tcap;
    char *out;                /* formatted bytes not yet handed to MHD */
    size_t olen, ooff, ocap;
    int sent_role, ended;
    double t0, last_out;      /* start; when bytes last went to MHD */
    char method_url[96];
} gen_stream;

static json_t *usage_object(int p, int n) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", p, "completion_tokens", n, "total_tokens", p + n);
}

/* one streamed chunk: text (may be NULL), finish_reason (may be NULL) */
static json_t *chunk(gen_stream *g, const char *text, size_t len, const char *finish, int role) {
    json_t *choice;
    if (g->chat) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string("assistant"));
        if (text) json_object_set_new(delta, "content", json_stringn(text, len));
        choice = json_pack("{s:i,s:o,s:n,s:o}", "index", 0, "delta", delta, "logprobs", "finish_reason",
                           finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:i,s:s%,s:n,s:o}", "index", 0, "text", text ? text : "", text ? len : 0, "logprobs", "finish_reason",
                           finish ? json_string(finish) : json_null());
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", g->id, "object", g->chat ? "chat.completion.chunk" : "text_completion",
                     "created", (json_int_t)g->created, "model", g->s->c.model_names[g->model], "choices", choice);
}

static int out_append(gen_stream *g, const char *s, size_t n) {
    if (g->olen + n > g->ocap) {
        size_t cap = g->ocap ? g->ocap : 1024;
        while (g->olen + n > cap) cap *= 2;
        char *p = realloc(g->out, cap);
        if (!p) return -1;
        g->out = p;
        g->ocap = cap;
    }
    memcpy(g->out + g->olen, s, n);
    g->olen += n;
    return 0;
}

/* "data: <json>\n\n"; takes ownership of o */
static int out_event(gen_stream *g, json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return -1;
    int bad = out_append(g, "data: ", 6) || out_append(g, s, strlen(s)) || out_append(g, "\n\n", 2);
    free(s);
    return bad ? -1 : 0;
}

static void gen_finish_log(gen_stream *g, int status) {
    int p, n;
    const char *fin, *err;
    srv_request_result(g->r, &p, &n, &fin, &err);
    log_line(g->s, "%s %d model=%s prompt=%d completion=%d %s %.2fs (queued %.2fs)", g->method_url, status, g->s->c.model_names[g->model], p,
             n, err ? err : fin, core_now_s() - g->t0, srv_request_queue_seconds(g->r));
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gen_stream *g = cls;
    for (;;) {
        if (g->ooff < g->olen) {
            size_t n = g->olen - g->ooff < max ? g->olen - g->ooff : max;
            memcpy(buf, g->out + g->ooff, n);
            g->ooff += n;
            g->last_out = core_now_s();
            return (ssize_t)n;
        }
        g->olen = g->ooff = 0;
        if (g->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (g->chat && !g->sent_role) {
            g->sent_role = 1;
            if (out_event(g, chunk(g, "", 0, NULL, 1))) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        int fin = srv_request_take(g->r, 250, &g->text, &g->tlen, &g->tcap);
        if (fin < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        /* waiting in the queue: an SSE comment well within --idle-timeout,
         * which would otherwise close the silent connection */
        if (!fin && !g->tlen && core_now_s() - g->last_out > g->s->c.idle_timeout / 3.0) {
            if (out_append(g, ": waiting\n\n", 11)) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        if (g->tlen) {
            if (out_event(g, chunk(g, g->text, g->tlen, NULL, 0))) return MHD_CONTENT_READER_END_WITH_ERROR;
            g->tlen = 0;
        }
        if (fin == 1) {
            int p, n;
            const char *reason, *err;
            srv_request_result(g->r, &p, &n, &reason, &err);
            int bad;
            if (err) { /* after the headers went out, an error can only be an event */
                srv_error e;
                srv_fail(&e, 500, "server_error", NULL, NULL, "%s", err);
                char *s = srv_error_json(&e);
                bad = !s || out_append(g, "data: ", 6) || out_append(g, s, strlen(s)) || out_append(g, "\n\n", 2);
                free(s);
            } else {
                bad = out_event(g, chunk(g, NULL, 0, reason, 0));
                if (!bad && g->include_usage) {
                    json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", g->id, "object", g->chat ? "chat.completion.chunk" : "text_completion",
                                          "created", (json_int_t)g->created, "model", g->s->c.model_names[g->model], "choices", "usage",
                                          usage_object(p, n));
                    bad = out_event(g, u);
                }
            }
            if (bad || out_append(g, "data: [DONE]\n\n", 14)) return MHD_CONTENT_READER_END_WITH_ERROR;
            g->ended = 1;
            gen_finish_log(g, 200);
            continue;
        }
        if (!g->olen && client_gone(g->c)) {
            srv_request_cancel(g->r);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    gen_stream *g = cls;
    if (!g->ended) {
        srv_request_cancel(g->r);
        log_line(g->s, "%s client went away; generation stopped", g->method_url);
    }
    srv_request_release(g->r);
    free(g->text);
    free(g->out);
    free(g);
}

/* The prompt's token ids (chat: through the template) or an error. */
static int prompt_ids(srv_server *s, srv_params *p, int32_t **ids, size_t *n, srv_error *e) {
    *ids = NULL;
    *n = 0;
    if (p->prompt_ids) {
        int V = tuna_tokenizer_vocab_size(s->c.tok);
        for (int i = 0; i < p->n_prompt_ids; i++)
            if (p->prompt_ids[i] >= V)
                return srv_fail(e, 400, "invalid_request_error", "prompt", "invalid_value", "Invalid 'prompt[%d]': token id %d is outside the vocabulary (0..%d).",
                                i, p->prompt_ids[i], V - 1);
        *ids = malloc((size_t)p->n_prompt_ids * sizeof(int32_t));
        if (!*ids) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(*ids, p->prompt_ids, (size_t)p->n_prompt_ids * sizeof(int32_t));
        *n = (size_t)p->n_prompt_ids;
        return 0;
    }
    if (p->chat && !s->c.tmpl)
        return srv_fail(e, 400, "invalid_request_error", "messages", "no_chat_template",
                        "This model has no chat template; use /v1/completions, or start the server with --template NAME|FILE.");
    pthread_mutex_lock(&s->tok_mu);
    tuna_status st = TUNA_OK;
    if (p->chat) {
        char *text = NULL;
        size_t len = 0;
        tuna_template_vars vars = {.bos_token = tuna_tokenizer_bos_token(s->c.tok), .eos_token = tuna_tokenizer_eos_token(s->c.tok),
                                   .add_generation_prompt = 1, .max_bytes = 64u << 20, .max_steps = 10000000};
        st = tuna_template_render(s->c.tmpl, p->messages, &vars, &text, &len);
        if (st == TUNA_OK) st = tuna_dataset_encode_text(s->c.tok, text, len, ids, n);
        free(text);
    } else st = tuna_tokenizer_encode(s->c.tok, p->prompt, strlen(p->prompt), 1, ids, n);
    char why[400];
    snprintf(why, sizeof why, "%s", st == TUNA_OK ? "" : tuna_last_error());
    pthread_mutex_unlock(&s->tok_mu);
    if (st != TUNA_OK)
        return srv_fail(e, 400, "invalid_request_error", p->chat ? "messages" : "prompt", NULL, "The %s could not be encoded: %s",
                        p->chat ? "conversation" : "prompt", why);
    if (*n == 0) return srv_fail(e, 400, "invalid_request_error", "prompt", "invalid_value", "The prompt encodes to no tokens.");
    return 0;
}

static enum MHD_Result handle_generate(srv_server *s, struct MHD_Connection *c, const char *method, const char *url, conn_state *cs,
                                       int chat) {
    double t0 = core_now_s();
    srv_params p;
    srv_error e;
    if (srv_parse_request(cs->body ? cs->body : "", cs->len, chat, &p, &e)) return send_error(s, c, method, url, &e);
    int model = find_model(s, p.model);
    int32_t *ids = NULL;
    size_t n = 0;
    if (model < 0)
        srv_fail(&e, 404, "invalid_request_error", "model", "model_not_found", "The model '%s' does not exist or you do not have access to it.", p.model);
    else prompt_ids(s, &p, &ids, &n, &e);
    int ctx = srv_engine_ctx(s->c.engine), P = model >= 0 ? srv_engine_virtual_tokens(s->c.engine, model) : 0;
    int max = p.max_tokens;
    if (!e.status) {
        long room = (long)ctx - (long)n - P;
        if (room < 1)
            srv_fail(&e, 400, "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded",
                     "This model's maximum context length is %d tokens. However, your %s resulted in %zu tokens%s. Please reduce the length of the %s.",
                     ctx, chat ? "messages" : "prompt", n, P ? " (plus the adapter's virtual tokens)" : "", chat ? "messages" : "prompt");
        else if (max < 0) max = chat ? (int)room : (room < 16 ? (int)room : 16);
        else if (max > room)
            srv_fail(&e, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                     "This model's maximum context length is %d tokens. However, you requested %ld tokens (%zu in the %s, %d for the completion). "
                     "Please reduce the length of the %s or the completion.",
                     ctx, (long)n + P + max, n + P, chat ? "messages" : "prompt", max, chat ? "messages" : "prompt");
    }
    if (e.status) {
        free(ids);
        srv_params_clear(&p);
        return send_error(s, c, method, url, &e);
    }
    tuna_gen_opts o = {.max_new_tokens = max, .eos_ids = s->c.eos, .n_eos = s->c.n_eos};
    tuna_sample_args_default(&o.sample);
    o.sample.temperature = (float)p.temperature;
    o.sample.top_p = (float)p.top_p;
    o.sample.top_k = 0; /* OpenAI's sampling has no top-k */
    o.sample.seed = p.has_seed ? p.seed : ((uint64_t)time(NULL) << 20) ^ atomic_fetch_add(&s->ids, 1) * 0x9E3779B97F4A7C15ull;
    o.stop = (const char *const *)p.stop;
    o.n_stop = p.n_stop;
    srv_request *r = NULL;
    int rc = srv_engine_submit(s->c.engine, model, ids, (int)n, &o, &r);
    free(ids);
    int stream = p.stream, include_usage = p.include_usage;
    srv_params_clear(&p);
    if (rc == SRV_QUEUE_FULL)
        return send_error(s, c, method, url,
                          (srv_fail(&e, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                                    "The server is busy: every decoding slot is taken and the queue is full. Retry shortly."), &e));
    if (rc == SRV_DRAINING)
        return send_error(s, c, method, url, (srv_fail(&e, 503, "server_error", NULL, "shutting_down", "The server is shutting down."), &e));
    if (rc != SRV_SUBMITTED) return send_error(s, c, method, url, (srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory"), &e));
    atomic_fetch_add(&s->inflight, 1);
    cs->generating = 1;
    gen_stream *g = calloc(1, sizeof *g);
    if (!g) {
        srv_request_cancel(r);
        srv_request_release(r);
        return MHD_NO;
    }
    *g = (gen_stream){.s = s, .c = c, .r = r, .chat = chat, .include_usage = include_usage, .model = model, .created = time(NULL), .t0 = t0, .last_out = core_now_s()};
    new_id(s, g->id, sizeof g->id, chat ? "chatcmpl" : "cmpl");
    snprintf(g->method_url, sizeof g->method_url, "%s %s", method, url);
    if (stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, g, stream_free);
        if (!resp) { stream_free(g); return MHD_NO; }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    /* not streamed: wait here, watching the socket */
    for (;;) {
        int fin = srv_request_take(r, 250, &g->text, &g->tlen, &g->tcap);
        if (fin < 0) { g->ended = 0; stream_free(g); return MHD_NO; }
        if (fin == 1) break;
        if (client_gone(c)) { stream_free(g); return MHD_NO; }
    }
    g->ended = 1;
    int pt, ct;
    const char *reason, *err;
    srv_request_result(r, &pt, &ct, &reason, &err);
    if (err) {
        int shutting = !strcmp(err, "server shutting down");
        srv_fail(&e, shutting ? 503 : 500, "server_error", NULL, shutting ? "shutting_down" : NULL, "%s", err);
        enum MHD_Result ret = send_error(s, c, method, url, &e);
        stream_free(g);
        return ret;
    }
    json_t *choice = chat ? json_pack("{s:i,s:{s:s,s:s%},s:n,s:s}", "index", 0, "message", "role", "assistant", "content", g->text ? g->text : "",
                                      g->tlen, "logprobs", "finish_reason", reason)
                          : json_pack("{s:i,s:s%,s:n,s:s}", "index", 0, "text", g->text ? g->text : "", g->tlen, "logprobs", "finish_reason", reason);
    json_t *o2 = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", g->id, "object", chat ? "chat.completion" : "text_completion", "created",
                           (json_int_t)g->created, "model", s->c.model_names[model], "choices", choice, "usage", usage_object(pt, ct));
    gen_finish_log(g, 200);
    stream_free(g);
    return send_json(c, 200, o2);
}

static enum MHD_Result handle_health(srv_server *s, struct MHD_Connection *c) {
    srv_engine_stats st;
    srv_engine_get_stats(s->c.engine, &st);
    int draining = st.draining || atomic_load(&s->quiesced);
    json_t *o = json_pack("{s:s,s:i,s:i,s:I,s:I,s:I,s:I}", "status", draining ? "draining" : "ok", "active", st.active, "queued", st.queued,
                          "completed", (json_int_t)st.completed, "cancelled", (json_int_t)st.cancelled, "failed", (json_int_t)st.failed,
                          "generated_tokens", (json_int_t)st.generated_tokens);
    return send_json(c, draining ? 503 : 200, o);
}

static enum MHD_Result route(srv_server *s, struct MHD_Connection *c, const char *url, const char *method, conn_state *cs) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    srv_error e = {0};
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        if (!get) return send_error(s, c, method, url, (srv_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "Use GET for %s.", url), &e));
        return send_bytes(c, 200, "text/html; charset=utf-8", s->c.page, s->c.page_len, MHD_RESPMEM_PERSISTENT);
    }
    if (!strcmp(url, "/health")) {
        if (!get) return send_error(s, c, method, url, (srv_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "Use GET for %s.", url), &e));
        return handle_health(s, c);
    }
    int is_models = !strcmp(url, "/v1/models"), is_model = !strncmp(url, "/v1/models/", 11);
    int is_chat = !strcmp(url, "/v1/chat/completions"), is_compl = !strcmp(url, "/v1/completions");
    if (!is_models && !is_model && !is_chat && !is_compl)
        return send_error(s, c, method, url, (srv_fail(&e, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL: %s %s.", method, url), &e));
    if (!authorized(s, c))
        return send_error(s, c, method, url,
                          (srv_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                                    "Incorrect API key provided. Send it as 'Authorization: Bearer KEY'."), &e));
    if ((is_models || is_model) && !get)
        return send_error(s, c, method, url, (srv_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "Use GET for %s.", url), &e));
    if ((is_chat || is_compl) && !post)
        return send_error(s, c, method, url, (srv_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "Use POST for %s.", url), &e));
    if (is_models) {
        json_t *data = json_array();
        for (int i = 0; i < s->c.n_models; i++) json_array_append_new(data, model_object(s, i));
        return send_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
    }
    if (is_model) {
        int i = find_model(s, url + 11);
        if (i < 0)
            return send_error(s, c, method, url, (srv_fail(&e, 404, "invalid_request_error", "model", "model_not_found", "The model '%s' does not exist.", url + 11), &e));
        return send_json(c, 200, model_object(s, i));
    }
    if (atomic_load(&s->quiesced))
        return send_error(s, c, method, url, (srv_fail(&e, 503, "server_error", NULL, "shutting_down", "The server is shutting down."), &e));
    if (cs->too_large)
        return send_error(s, c, method, url,
                          (srv_fail(&e, 413, "invalid_request_error", NULL, "request_too_large", "The request body exceeds the server's limit of %zu bytes.",
                                    s->c.max_body), &e));
    return handle_generate(s, c, method, url, cs, is_chat);
}

/* the deadline watch of a connection (set when it opened) */
static srv_watch *watch_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode toe) {
    srv_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? srv_deadline_open(s->dl, ci->connect_fd) : NULL;
    } else {
        srv_deadline_close(s->dl, *socket_context);
        *socket_context = NULL;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv_server *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->c.max_body) { /* answer before reading it */
            cs->too_large = 1;
            srv_deadline_received(s->dl, watch_of(c));
            srv_error e;
            return send_error(s, c, method, url,
                              (srv_fail(&e, 413, "invalid_request_error", NULL, "request_too_large",
                                        "The request body exceeds the server's limit of %zu bytes.", s->c.max_body), &e));
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_large && cs->len + *upload_size > s->c.max_body) cs->too_large = 1;
        if (!cs->too_large) {
            if (cs->len + *upload_size + 1 > cs->cap) {
                size_t cap = cs->cap ? cs->cap : 4096;
                while (cs->len + *upload_size + 1 > cap) cap *= 2;
                char *b = realloc(cs->body, cap);
                if (!b) return MHD_NO;
                cs->body = b;
                cs->cap = cap;
            }
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
            cs->body[cs->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    srv_deadline_received(s->dl, watch_of(c));
    return route(s, c, url, method, cs);
}

/* after the response was sent (or the connection failed) */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)why;
    srv_server *s = cls;
    srv_deadline_restart(s->dl, watch_of(c)); /* the next request's clock */
    conn_state *cs = *con_cls;
    if (!cs) return;
    if (cs->generating) atomic_fetch_sub(&s->inflight, 1);
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = 0;
    /* a stream ended on purpose (client gone, cancelled): already logged as such */
    if (strstr(line, "application error generating response")) return;
    fprintf(stderr, "tuna serve: http: %s\n", line);
}

tuna_status srv_server_start(srv_server **out, const srv_config *c) {
    *out = NULL;
    srv_server *s = calloc(1, sizeof *s);
    if (!s) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    s->c = *c;
    s->started = time(NULL);
    pthread_mutex_init(&s->tok_mu, NULL);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->quiesced, 0);
    atomic_init(&s->ids, 1);
    tuna_status st = srv_deadline_start(&s->dl, c->request_timeout);
    if (st != TUNA_OK) {
        pthread_mutex_destroy(&s->tok_mu);
        free(s);
        return st;
    }
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    const struct sockaddr *addr;
    /* poll(), not select(): select() cannot watch descriptors from 1024 on,
     * so MHD refused every connection past about a thousand open ones */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    const char *host = !strcmp(c->host, "localhost") ? "127.0.0.1" : c->host;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)c->port);
        addr = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)c->port);
        addr = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        srv_deadline_stop(s->dl);
        pthread_mutex_destroy(&s->tok_mu);
        free(s);
        return core_fail(TUNA_ERR_ARG, "--host %s: not an IPv4 or IPv6 address", c->host);
    }
    s->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->idle_timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!s->d) {
        srv_deadline_stop(s->dl);
        pthread_mutex_destroy(&s->tok_mu);
        free(s);
        return core_fail(TUNA_ERR_IO, "cannot listen on %s port %d (in use, or not an address of this machine)", c->host, c->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    *out = s;
    return TUNA_OK;
}

int srv_server_port(const srv_server *s) { return s->port; }

void srv_server_quiesce(srv_server *s) {
    if (atomic_exchange(&s->quiesced, 1)) return;
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

int srv_server_inflight(srv_server *s) { return atomic_load(&s->inflight); }

void srv_server_stop(srv_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    srv_deadline_stop(s->dl);
    pthread_mutex_destroy(&s->tok_mu);
    free(s);
}
