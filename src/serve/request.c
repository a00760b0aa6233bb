/* request.c — parsing and checking of OpenAI completion and chat request
 * bodies (see request.h). The wording of the errors follows OpenAI's
 * ("Invalid type for 'max_tokens': expected an integer, but got a string
 * instead.") so clients show what they would show against the real API.
 * Fields tuna does not implement are refused when they would change the
 * answer (n > 1, logprobs, echo, penalties other than 0, non-text content)
 * and ignored when they cannot (user, metadata, ...). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/request.h"
#include "core/json_error.h"

int srv_fail(srv_error *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status;
}

char *srv_error_json(const srv_error *e) {
    json_t *o = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->message, "type", e->type ? e->type : "invalid_request_error",
                          "param", e->param[0] ? json_string(e->param) : json_null(), "code", e->code ? json_string(e->code) : json_null());
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void srv_params_clear(srv_params *p) {
    free(p->model);
    json_decref(p->messages);
    free(p->prompt);
    free(p->prompt_ids);
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    memset(p, 0, sizeof *p);
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a decimal";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int bad_type(srv_error *e, const char *param, const char *want, const json_t *v) {
    return srv_fail(e, 400, "invalid_request_error", param, "invalid_type",
                    "Invalid type for '%s': expected %s, but got %s instead.", param, want, type_name(v));
}

/* a number field in [lo, hi]; absent or null keeps *out */
static int get_number(json_t *o, const char *key, double lo, double hi, double *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad_type(e, key, "a number", v);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return srv_fail(e, 400, "invalid_request_error", key, "invalid_value", "Invalid '%s': expected a value in [%g, %g], but got %g instead.",
                        key, lo, hi, x);
    *out = x;
    return 0;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, int *given, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return bad_type(e, key, "an integer", v);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return srv_fail(e, 400, "invalid_request_error", key, "invalid_value", "Invalid '%s': expected a value in [%lld, %lld], but got %lld instead.",
                        key, lo, hi, x);
    *out = x;
    if (given) *given = 1;
    return 0;
}

static int get_bool(json_t *o, const char *key, int *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad_type(e, key, "a boolean", v);
    *out = json_is_true(v);
    return 0;
}

/* chat message content: a string, null (an assistant turn with tool calls),
 * or a list of {"type":"text","text":...} parts joined together */
static int message_text(json_t *c, int i, char **out, srv_error *e) {
    char param[48];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (!c || json_is_null(c)) { *out = strdup(""); return 0; }
    if (json_is_string(c)) { *out = strndup(json_string_value(c), json_string_length(c)); return 0; }
    if (!json_is_array(c)) return bad_type(e, param, "a string or an array of content parts", c);
    size_t total = 0, k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *t = json_object_get(part, "type"), *x = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(t))
            return srv_fail(e, 400, "invalid_request_error", param, "invalid_value", "Invalid '%s[%zu]': expected an object with a 'type'.", param, k);
        if (strcmp(json_string_value(t), "text"))
            return srv_fail(e, 400, "invalid_request_error", param, "unsupported_content",
                            "Invalid '%s[%zu]': content of type '%s' is not supported; this model reads text only.", param, k, json_string_value(t));
        if (!json_is_string(x)) return bad_type(e, param, "a string in 'text'", x ? x : json_null());
        total += json_string_length(x);
    }
    char *s = malloc(total + 1);
    if (!s) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t at = 0;
    json_array_foreach(c, k, part) {
        json_t *x = json_object_get(part, "text");
        memcpy(s + at, json_string_value(x), json_string_length(x));
        at += json_string_length(x);
    }
    s[at] = 0;
    *out = s;
    return 0;
}

static int parse_messages(json_t *root, srv_params *p, srv_error *e) {
    json_t *ms = json_object_get(root, "messages");
    if (!ms) return srv_fail(e, 400, "invalid_request_error", "messages", "missing_required_parameter", "Missing required parameter: 'messages'.");
    if (!json_is_array(ms)) return bad_type(e, "messages", "an array", ms);
    if (json_array_size(ms) == 0)
        return srv_fail(e, 400, "invalid_request_error", "messages", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1.");
    p->messages = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(ms, i, m) {
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) return bad_type(e, "messages", "an array of objects", m);
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role))
            return srv_fail(e, 400, "invalid_request_error", "messages", "invalid_value", "Invalid '%s.role': expected a string.", param);
        const char *r = json_string_value(role);
        if (!strcmp(r, "developer")) r = "system"; /* OpenAI's newer name for the system turn */
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool"))
            return srv_fail(e, 400, "invalid_request_error", "messages", "invalid_value",
                            "Invalid value for '%s.role': '%s'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.", param, r);
        char *text = NULL;
        if (message_text(json_object_get(m, "content"), (int)i, &text, e)) return e->status;
        if (!text) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        json_array_append_new(p->messages, json_pack("{s:s,s:s}", "role", r, "content", text));
        free(text);
    }
    return 0;
}

/* completions "prompt": a string, a list of token ids, or a list holding one
 * of those (OpenAI's batch form with one prompt) */
static int parse_prompt(json_t *root, srv_params *p, srv_error *e) {
    json_t *v = json_object_get(root, "prompt");
    if (!v) return srv_fail(e, 400, "invalid_request_error", "prompt", "missing_required_parameter", "Missing required parameter: 'prompt'.");
    if (json_is_array(v) && json_array_size(v) == 1 && (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0))))
        v = json_array_get(v, 0);
    if (json_is_string(v)) {
        p->prompt = strndup(json_string_value(v), json_string_length(v));
        return p->prompt ? 0 : srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!json_is_array(v)) return bad_type(e, "prompt", "a string or an array of token ids", v);
    size_t n = json_array_size(v), i;
    json_t *x;
    if (n == 0) return srv_fail(e, 400, "invalid_request_error", "prompt", "invalid_value", "Invalid 'prompt': empty array.");
    json_array_foreach(v, i, x) {
        if (json_is_string(x) || json_is_array(x))
            return srv_fail(e, 400, "invalid_request_error", "prompt", "invalid_value",
                            "Invalid 'prompt': %zu prompts in one request; send one prompt per request.", n);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX)
            return srv_fail(e, 400, "invalid_request_error", "prompt", "invalid_value", "Invalid 'prompt[%zu]': expected a token id.", i);
    }
    p->prompt_ids = malloc(n * sizeof(int32_t));
    if (!p->prompt_ids) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    json_array_foreach(v, i, x) p->prompt_ids[i] = (int32_t)json_integer_value(x);
    p->n_prompt_ids = (int)n;
    return 0;
}

static int parse_stop(json_t *root, srv_params *p, srv_error *e) {
    json_t *v = json_object_get(root, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0) return 0;
        if (!(p->stop[p->n_stop++] = strndup(json_string_value(v), json_string_length(v))))
            return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    if (!json_is_array(v)) return bad_type(e, "stop", "a string or an array of strings", v);
    if (json_array_size(v) > SRV_MAX_STOP)
        return srv_fail(e, 400, "invalid_request_error", "stop", "array_above_max_length",
                        "Invalid 'stop': array too long. Expected an array with maximum length %d, but got an array with length %zu instead.",
                        SRV_MAX_STOP, json_array_size(v));
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x)) return bad_type(e, "stop", "an array of strings", x);
        if (json_string_length(x) == 0) continue;
        if (memchr(json_string_value(x), 0, json_string_length(x)))
            return srv_fail(e, 400, "invalid_request_error", "stop", "invalid_value", "Invalid 'stop[%zu]': contains a NUL character.", i);
        if (!(p->stop[p->n_stop++] = strndup(json_string_value(x), json_string_length(x))))
            return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return 0;
}

static int parse_fields(json_t *root, int chat, srv_params *p, srv_error *e) {
    json_t *v = json_object_get(root, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) return bad_type(e, "model", "a string", v);
        if (!(p->model = strndup(json_string_value(v), json_string_length(v)))) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (chat ? parse_messages(root, p, e) : parse_prompt(root, p, e)) return e->status;
    long long x = -1;
    int given = 0;
    /* max_completion_tokens is the newer name; either may be sent */
    if (get_int(root, "max_tokens", 1, 1 << 30, &x, &given, e)) return e->status;
    if (chat && get_int(root, "max_completion_tokens", 1, 1 << 30, &x, &given, e)) return e->status;
    p->max_tokens = given ? (int)x : -1;
    if (get_number(root, "temperature", 0, 2, &p->temperature, e)) return e->status;
    if (get_number(root, "top_p", 0, 1, &p->top_p, e)) return e->status;
    if (p->top_p <= 0) return srv_fail(e, 400, "invalid_request_error", "top_p", "invalid_value", "Invalid 'top_p': must be greater than 0.");
    long long seed = 0;
    if (get_int(root, "seed", INT64_MIN, INT64_MAX, &seed, &p->has_seed, e)) return e->status;
    p->seed = (uint64_t)seed;
    long long n = 1;
    if (get_int(root, "n", 1, 128, &n, NULL, e)) return e->status;
    if (n != 1) return srv_fail(e, 400, "invalid_request_error", "n", "unsupported_value", "Invalid 'n': only n = 1 is supported.");
    if (get_bool(root, "stream", &p->stream, e)) return e->status;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return bad_type(e, "stream_options", "an object", so);
        if (get_bool(so, "include_usage", &p->include_usage, e)) return e->status;
    }
    if (parse_stop(root, p, e)) return e->status;
    /* answer-changing options tuna does not implement: refused, not ignored */
    const char *zero_only[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        double z = 0;
        if (get_number(root, zero_only[i], -2, 2, &z, e)) return e->status;
        if (z != 0) return srv_fail(e, 400, "invalid_request_error", zero_only[i], "unsupported_parameter", "'%s' other than 0 is not supported.", zero_only[i]);
    }
    const char *false_only[] = {"logprobs", "echo"};
    for (int i = 0; i < 2; i++) {
        json_t *b = json_object_get(root, false_only[i]);
        if (b && !json_is_null(b) && !json_is_false(b) && !(json_is_integer(b) && json_integer_value(b) == 0))
            return srv_fail(e, 400, "invalid_request_error", false_only[i], "unsupported_parameter", "'%s' is not supported.", false_only[i]);
    }
    json_t *rf = json_object_get(root, "response_format");
    json_t *rft = json_object_get(rf, "type");
    if (rf && !json_is_null(rf) && !(json_is_string(rft) && !strcmp(json_string_value(rft), "text")))
        return srv_fail(e, 400, "invalid_request_error", "response_format", "unsupported_parameter", "'response_format' other than text is not supported.");
    json_t *tools = json_object_get(root, "tools");
    if (tools && !json_is_null(tools) && !(json_is_array(tools) && json_array_size(tools) == 0))
        return srv_fail(e, 400, "invalid_request_error", "tools", "unsupported_parameter", "'tools' are not supported.");
    return 0;
}

int srv_parse_request(const char *body, size_t len, int chat, srv_params *p, srv_error *e) {
    memset(p, 0, sizeof *p);
    memset(e, 0, sizeof *e);
    p->chat = chat;
    p->temperature = 1;
    p->top_p = 1;
    p->max_tokens = -1;
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return srv_fail(e, 400, "invalid_request_error", NULL, "invalid_json",
                        "We could not parse the JSON body of your request: %s (line %d, column %d).", tuna_json_error_text(&je), je.line, je.column);
    int rc = json_is_object(root) ? parse_fields(root, chat, p, e) : bad_type(e, "body", "an object", root);
    json_decref(root);
    if (rc) srv_params_clear(p);
    return rc;
}
