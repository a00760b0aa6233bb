/* server.h — the HTTP side of `tuna serve`: OpenAI's /v1/models,
 * /v1/completions and /v1/chat/completions (with server-sent-event
 * streaming), /health and the chat page, on libmicrohttpd with one thread per
 * connection; generation goes through the engine (engine.h). */
#ifndef TUNA_SERVE_SERVER_H
#define TUNA_SERVE_SERVER_H
#include <stddef.h>

#include "serve/engine.h"
#include "tuna_template.h"
#include "tuna_tokenizer.h"

typedef struct {
    const char *host;             /* address to bind (IPv4 or IPv6 literal) */
    int port;                     /* 0: any free port (see srv_server_port) */
    const char *api_key;          /* NULL: no authentication */
    size_t max_body;              /* request bodies above this get 413 */
    int max_connections;          /* open at once; more wait to be accepted */
    int idle_timeout;             /* seconds a silent connection stays open */
    int request_timeout;          /* seconds a request (headers and body) may take to arrive whole */
    srv_engine *engine;
    tuna_tokenizer *tok;          /* used under the server's lock (encoding keeps state) */
    const tuna_template *tmpl;    /* chat template, or NULL: chat requests are refused */
    const char *const *model_names; /* [n_models]: index = engine model */
    int n_models;
    const int32_t *eos;           /* stop ids for every request */
    int n_eos;
    const char *page;             /* the chat page served at / */
    size_t page_len;
    int log;                      /* one line per request on stderr */
} srv_config;

typedef struct srv_server srv_server;
tuna_status srv_server_start(srv_server **out, const srv_config *c);
int srv_server_port(const srv_server *s);
/* Stops accepting connections; requests on open connections get 503. */
void srv_server_quiesce(srv_server *s);
/* Generation requests whose response is not yet fully sent. */
int srv_server_inflight(srv_server *s);
/* Closes every connection and frees the server (engine requests must be
 * able to finish: stop the engine first when draining is over). */
void srv_server_stop(srv_server *s);
#endif
