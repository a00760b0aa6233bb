/* request.h — the OpenAI request bodies the server accepts, checked field by
 * field (types, ranges, what tuna does not support), and the error objects it
 * answers with. Pure functions of the bytes: no model needed, so the fuzz
 * target (fuzz/fuzz_serve_request.c) runs them directly. */
#ifndef TUNA_SERVE_REQUEST_H
#define TUNA_SERVE_REQUEST_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_MAX_STOP 4

/* An HTTP status with OpenAI's error object {"error":{"message","type","param","code"}}. */
typedef struct {
    int status;              /* 0: no error */
    char message[512];
    const char *type;        /* "invalid_request_error", "authentication_error", ... */
    char param[64];          /* offending field, "" when none */
    const char *code;        /* "model_not_found", "context_length_exceeded", ... or NULL */
} srv_error;

/* Sets e and returns its status. */
int srv_fail(srv_error *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The error object as a JSON string (malloc'd). */
char *srv_error_json(const srv_error *e);

typedef struct {
    int chat;                /* /v1/chat/completions (else /v1/completions) */
    char *model;             /* NULL: the default model */
    json_t *messages;        /* chat: [{"role","content"}] with string contents */
    char *prompt;            /* completions: the prompt text, or NULL when given as ids */
    int32_t *prompt_ids;     /* completions: a prompt of token ids */
    int n_prompt_ids;
    int max_tokens;          /* -1: not given */
    double temperature;      /* default 1 */
    double top_p;            /* default 1 */
    int has_seed;
    uint64_t seed;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    int stream, include_usage;
} srv_params;

/* Parses a request body. Returns 0, or the HTTP status (400) with e set. */
int srv_parse_request(const char *body, size_t len, int chat, srv_params *p, srv_error *e);
void srv_params_clear(srv_params *p);
#endif
