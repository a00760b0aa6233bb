/* format.c — one training record: detection of its layout by its keys,
 * normalisation into tuna_record, and validation (see tuna_data.h for the
 * formats and the choices). No I/O here: the reader (reader.c) feeds lines or
 * array elements and adds FILE:LINE to the reasons recorded with core_fail.
 * Rule: every rejection names the key or message index and what is wrong, and
 * sets the tuna_bad_kind the summaries count. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tuna.h"
#include "core/json_error.h"
#include "core/error.h"

/* ---- names ---- */
static const char *const BAD_KEYS[] = {
#define TUNA_X_BAD(name, key, msg) key,
    TUNA_BAD_LIST(TUNA_X_BAD)
#undef TUNA_X_BAD
};
static const char *const BAD_MSGS[] = {
#define TUNA_X_BAD(name, key, msg) msg,
    TUNA_BAD_LIST(TUNA_X_BAD)
#undef TUNA_X_BAD
};
const char *tuna_bad_key(tuna_bad_kind k) { return (unsigned)k < TUNA_BAD_COUNT ? BAD_KEYS[k] : "?"; }
const char *tuna_bad_summary(tuna_bad_kind k) { return (unsigned)k < TUNA_BAD_COUNT ? BAD_MSGS[k] : "?"; }

const char *tuna_role_name(tuna_role r) {
    return r == TUNA_ROLE_SYSTEM ? "system" : r == TUNA_ROLE_USER ? "user" : "assistant";
}
const char *tuna_record_kind_name(tuna_record_kind k) {
    static const char *n[] = {"none", "chat", "prompt_completion", "text", "preference", "pretokenized",
                              "preference_tokens"};
    return (unsigned)k <= TUNA_RECORD_PREFERENCE_TOKENS ? n[k] : "?";
}
const char *tuna_record_format_name(tuna_record_format f) {
    static const char *n[] = {"messages", "sharegpt", "alpaca", "prompt_completion", "text",
                              "preference", "preference_implicit_prompt", "pretokenized",
                              "preference_pretokenized"};
    return (unsigned)f < TUNA_FORMAT_COUNT ? n[f] : "?";
}

void tuna_data_options_init(tuna_data_options *o) {
    memset(o, 0, sizeof *o);
    o->max_bad = 0.01;
    o->instruction_sep = "\n";
}

/* ---- strict UTF-8 ---- */
size_t tuna_utf8_check(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) { need = 2; lo = 0xA0; }            /* no overlongs */
        else if (c == 0xED) { need = 2; hi = 0x9F; }            /* no surrogates */
        else if (c >= 0xE1 && c <= 0xEF) need = 2;
        else if (c == 0xF0) { need = 3; lo = 0x90; }            /* no overlongs */
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) { need = 3; hi = 0x8F; }            /* <= U+10FFFF */
        else return i;                                          /* C0, C1, F5..FF, stray continuation */
        if (i + need >= n) return i; /* truncated */
        if (p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return n;
}

/* ---- record memory ---- */
static void msgs_free(tuna_message *m, int n) {
    for (int i = 0; i < n; i++) free(m[i].content);
    free(m);
}
static void part_clear(tuna_part *p) {
    free(p->text);
    msgs_free(p->msgs, p->n);
    memset(p, 0, sizeof *p);
}
void tuna_record_clear(tuna_record *r) {
    if (!r) return;
    msgs_free(r->messages, r->n_messages);
    part_clear(&r->prompt);
    part_clear(&r->completion);
    part_clear(&r->chosen);
    part_clear(&r->rejected);
    free(r->text);
    free(r->input_ids);
    free(r->labels);
    free(r->chosen_ids);
    free(r->rejected_ids);
    free(r->raw);
    memset(r, 0, sizeof *r);
    r->label = -1;
}

/* ---- failure helper: records the reason and its kind ---- */
typedef struct {
    tuna_bad_kind *why;
    const tuna_data_options *o;
} ctx;

static tuna_status bad(ctx *c, tuna_bad_kind k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tuna_status bad(ctx *c, tuna_bad_kind k, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (c->why) *c->why = k;
    return core_fail(TUNA_ERR_FORMAT, "%s", buf);
}
static tuna_status nomem(void) { return core_fail(TUNA_ERR_NOMEM, "out of memory"); }

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v')) return 0;
    return 1;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Content: a string, or a list of text parts joined with no separator. where
 * names the value in messages ("messages[2]"). */
static tuna_status get_content(ctx *c, const json_t *v, const char *where, char **out, size_t *len) {
    if (json_is_string(v)) {
        *len = json_string_length(v);
        *out = dup_bytes(json_string_value(v), *len);
        return *out ? TUNA_OK : nomem();
    }
    if (!json_is_array(v))
        return bad(c, TUNA_BAD_TYPE, "%s: \"content\" is %s, expected a string or a list of text parts", where,
                   v ? json_type_name(v) : "missing");
    size_t total = 0, i;
    json_t *p;
    json_array_foreach(v, i, p) {
        json_t *ty = json_object_get(p, "type");
        if (!json_is_object(p) || !json_is_string(ty))
            return bad(c, TUNA_BAD_TYPE, "%s: content[%zu] is not a {\"type\": ...} part", where, i);
        if (strcmp(json_string_value(ty), "text") != 0)
            return bad(c, TUNA_BAD_VALUE, "%s: content[%zu] has type \"%.40s\" (only text parts are supported)", where, i,
                       json_string_value(ty));
        json_t *t = json_object_get(p, "text");
        if (!t) t = json_object_get(p, "value");
        if (!json_is_string(t))
            return bad(c, TUNA_BAD_TYPE, "%s: content[%zu] has no \"text\" (or \"value\") string", where, i);
        total += json_string_length(t);
    }
    char *s = malloc(total + 1);
    if (!s) return nomem();
    size_t off = 0;
    json_array_foreach(v, i, p) {
        json_t *t = json_object_get(p, "text");
        if (!t) t = json_object_get(p, "value");
        memcpy(s + off, json_string_value(t), json_string_length(t));
        off += json_string_length(t);
    }
    s[off] = 0;
    *out = s;
    *len = off;
    return TUNA_OK;
}

static int map_role(const char *s, tuna_role *r) {
    if (!strcmp(s, "system")) *r = TUNA_ROLE_SYSTEM;
    else if (!strcmp(s, "user") || !strcmp(s, "human")) *r = TUNA_ROLE_USER;
    else if (!strcmp(s, "assistant") || !strcmp(s, "gpt")) *r = TUNA_ROLE_ASSISTANT;
    else return 0;
    return 1;
}

/* One message object ({role, content} or {from, value}) into m. */
static tuna_status parse_msg(ctx *c, const json_t *o, const char *where, tuna_message *m) {
    if (!json_is_object(o)) return bad(c, TUNA_BAD_TYPE, "%s is %s, expected a message object", where, json_type_name(o));
    json_t *role = json_object_get(o, "role");
    if (!role) role = json_object_get(o, "from");
    json_t *content = json_object_get(o, "content");
    if (!content) content = json_object_get(o, "value");
    if (!role) return bad(c, TUNA_BAD_KEYS, "%s: missing \"role\"", where);
    if (!json_is_string(role)) return bad(c, TUNA_BAD_TYPE, "%s: \"role\" is %s, expected a string", where, json_type_name(role));
    if (!map_role(json_string_value(role), &m->role))
        return bad(c, TUNA_BAD_VALUE, "%s: unknown role \"%.40s\" (expected system, user or assistant)", where,
                   json_string_value(role));
    if (!content) return bad(c, TUNA_BAD_KEYS, "%s: missing \"content\"", where);
    m->loss_weight = -1;
    json_t *lw = json_object_get(o, "loss_weight");
    if (lw && !json_is_null(lw)) {
        if (!json_is_number(lw)) return bad(c, TUNA_BAD_TYPE, "%s: \"loss_weight\" is %s, expected a number", where, json_type_name(lw));
        double w = json_number_value(lw);
        if (!(w >= 0 && w <= 1e6)) return bad(c, TUNA_BAD_VALUE, "%s: \"loss_weight\" %g is negative or too large", where, w);
        m->loss_weight = (float)w;
    }
    return get_content(c, content, where, &m->content, &m->len);
}

/* A message list, or (single = 1 allowed) one message object as a list of one
 * (LLaMA-Factory's "chosen": {"from","value"}). */
static tuna_status parse_msgs(ctx *c, const json_t *v, const char *name, int single_ok, tuna_message **out, int *n) {
    *out = NULL;
    *n = 0;
    if (single_ok && json_is_object(v)) {
        tuna_message *m = calloc(1, sizeof *m);
        if (!m) return nomem();
        char where[64];
        snprintf(where, sizeof where, "\"%s\"", name);
        tuna_status s = parse_msg(c, v, where, m);
        if (s) { msgs_free(m, 1); return s; }
        *out = m;
        *n = 1;
        return TUNA_OK;
    }
    if (!json_is_array(v)) return bad(c, TUNA_BAD_TYPE, "\"%s\" is %s, expected a list of messages", name, json_type_name(v));
    size_t cnt = json_array_size(v);
    if (cnt == 0) return bad(c, TUNA_BAD_VALUE, "\"%s\" is empty", name);
    if (cnt > 1000000) return bad(c, TUNA_BAD_VALUE, "\"%s\" has too many messages (%zu)", name, cnt);
    tuna_message *m = calloc(cnt, sizeof *m);
    if (!m) return nomem();
    for (size_t i = 0; i < cnt; i++) {
        char where[64];
        snprintf(where, sizeof where, "%s[%zu]", name, i);
        tuna_status s = parse_msg(c, json_array_get(v, i), where, &m[i]);
        if (s) { msgs_free(m, (int)cnt); return s; }
    }
    *out = m;
    *n = (int)cnt;
    return TUNA_OK;
}

/* Validates a conversation given as a[0..na) followed by b[0..nb) (b: a
 * response list after a prompt, or none). The rules a chat template and an SFT
 * mask need: optional system first, then user/assistant alternating from
 * user, ending with assistant, responses not blank. */
static tuna_status validate_turns(ctx *c, const tuna_message *a, int na, const char *aname,
                                  const tuna_message *b, int nb, const char *bname) {
    int n = na + nb;
#define MSG(i) ((i) < na ? &a[i] : &b[(i) - na])
#define NAME(i) ((i) < na ? aname : bname)
#define IDX(i) ((i) < na ? (i) : (i) - na)
    if (n == 0) return bad(c, TUNA_BAD_VALUE, "\"%s\" is empty", aname);
    int prev = -1; /* role of the previous non-system turn */
    for (int i = 0; i < n; i++) {
        tuna_role r = MSG(i)->role;
        if (r == TUNA_ROLE_SYSTEM) {
            if (i > 0)
                return bad(c, TUNA_BAD_ROLE, "role order: %s[%d] is a system message (only the first message may be system)",
                           NAME(i), IDX(i));
            continue;
        }
        if (prev < 0 && r != TUNA_ROLE_USER)
            return bad(c, TUNA_BAD_ROLE, "role order: %s[%d] is \"assistant\" but the conversation must start with a user turn",
                       NAME(i), IDX(i));
        if (prev == (int)r)
            return bad(c, TUNA_BAD_ROLE, "role order: %s[%d] is \"%s\" after \"%s\" (user and assistant must alternate)",
                       NAME(i), IDX(i), tuna_role_name(r), tuna_role_name(r));
        prev = (int)r;
    }
    if (prev < 0) return bad(c, TUNA_BAD_ROLE, "role order: no user or assistant turn (only a system message)");
    if (prev != TUNA_ROLE_ASSISTANT)
        return bad(c, TUNA_BAD_ROLE, "role order: the last message (%s[%d]) is \"user\"; a training conversation must end with an assistant turn",
                   NAME(n - 1), IDX(n - 1));
    for (int i = 0; i < n; i++)
        if (MSG(i)->role == TUNA_ROLE_ASSISTANT && blank(MSG(i)->content, MSG(i)->len))
            return bad(c, TUNA_BAD_EMPTY, "empty response (%s[%d])", NAME(i), IDX(i));
#undef MSG
#undef NAME
#undef IDX
    return TUNA_OK;
}

static tuna_status get_string(ctx *c, const json_t *v, const char *key, char **out, size_t *len) {
    if (!json_is_string(v)) return bad(c, TUNA_BAD_TYPE, "\"%s\" is %s, expected a string", key, json_type_name(v));
    *len = json_string_length(v);
    *out = dup_bytes(json_string_value(v), *len);
    return *out ? TUNA_OK : nomem();
}

/* A string or a message list into a tuna_part. */
static tuna_status get_part(ctx *c, const json_t *v, const char *key, int single_ok, tuna_part *p) {
    if (json_is_string(v)) {
        p->is_messages = 0;
        return get_string(c, v, key, &p->text, &p->len);
    }
    if (json_is_array(v) || (single_ok && json_is_object(v))) {
        p->is_messages = 1;
        return parse_msgs(c, v, key, single_ok, &p->msgs, &p->n);
    }
    return bad(c, TUNA_BAD_TYPE, "\"%s\" is %s, expected a string or a list of messages", key, json_type_name(v));
}

static tuna_status get_label(ctx *c, const json_t *o, tuna_record *r) {
    json_t *l = json_object_get(o, "label");
    r->label = -1;
    if (!l || json_is_null(l)) return TUNA_OK;
    if (!json_is_boolean(l)) return bad(c, TUNA_BAD_TYPE, "\"label\" is %s, expected true or false", json_type_name(l));
    r->label = json_is_true(l) ? 1 : 0;
    return TUNA_OK;
}

/* ---- the formats ---- */
static tuna_status parse_chat(ctx *c, const json_t *o, const char *key, tuna_record *r) {
    r->kind = TUNA_RECORD_CHAT;
    tuna_status s = parse_msgs(c, json_object_get(o, key), key, 0, &r->messages, &r->n_messages);
    if (!s) s = get_label(c, o, r);
    if (!s) s = validate_turns(c, r->messages, r->n_messages, key, NULL, 0, NULL);
    return s;
}

static tuna_status parse_alpaca(ctx *c, const json_t *o, tuna_record *r) {
    r->kind = TUNA_RECORD_CHAT;
    r->format = TUNA_FORMAT_ALPACA;
    json_t *ins = json_object_get(o, "instruction"), *inp = json_object_get(o, "input"),
           *out = json_object_get(o, "output"), *sys = json_object_get(o, "system"), *hist = json_object_get(o, "history");
    if (!ins) return bad(c, TUNA_BAD_KEYS, "missing key \"instruction\" (an Alpaca record needs instruction and output)");
    if (!out) return bad(c, TUNA_BAD_KEYS, "missing key \"output\" (an Alpaca record needs instruction and output)");
    if (!json_is_string(ins)) return bad(c, TUNA_BAD_TYPE, "\"instruction\" is %s, expected a string", json_type_name(ins));
    if (!json_is_string(out)) return bad(c, TUNA_BAD_TYPE, "\"output\" is %s, expected a string", json_type_name(out));
    if (inp && !json_is_null(inp) && !json_is_string(inp))
        return bad(c, TUNA_BAD_TYPE, "\"input\" is %s, expected a string", json_type_name(inp));
    if (sys && !json_is_null(sys) && !json_is_string(sys))
        return bad(c, TUNA_BAD_TYPE, "\"system\" is %s, expected a string", json_type_name(sys));
    if (hist && !json_is_null(hist) && !json_is_array(hist))
        return bad(c, TUNA_BAD_TYPE, "\"history\" is %s, expected a list of [user, assistant] pairs", json_type_name(hist));
    size_t nh = json_is_array(hist) ? json_array_size(hist) : 0;
    for (size_t i = 0; i < nh; i++) {
        json_t *p = json_array_get(hist, i);
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_string(json_array_get(p, 0)) ||
            !json_is_string(json_array_get(p, 1)))
            return bad(c, TUNA_BAD_TYPE, "\"history\"[%zu] is not a [user, assistant] pair of strings", i);
        if (blank(json_string_value(json_array_get(p, 1)), json_string_length(json_array_get(p, 1))))
            return bad(c, TUNA_BAD_EMPTY, "empty response (\"history\"[%zu])", i);
    }
    const char *is = json_string_value(ins), *in = json_is_string(inp) ? json_string_value(inp) : "";
    size_t il = json_string_length(ins), inl = json_is_string(inp) ? json_string_length(inp) : 0;
    if (blank(is, il) && blank(in, inl)) return bad(c, TUNA_BAD_VALUE, "empty prompt (\"instruction\" and \"input\" are empty)");
    if (blank(json_string_value(out), json_string_length(out))) return bad(c, TUNA_BAD_EMPTY, "empty response (\"output\")");

    int has_sys = json_is_string(sys) && json_string_length(sys) > 0;
    int n = has_sys + 2 * (int)nh + 2;
    tuna_message *m = calloc((size_t)n, sizeof *m);
    if (!m) return nomem();
    r->messages = m;
    r->n_messages = n;
    int k = 0;
    for (int i = 0; i < n; i++) m[i].loss_weight = -1;
    if (has_sys) {
        m[k].role = TUNA_ROLE_SYSTEM;
        m[k].len = json_string_length(sys);
        if (!(m[k++].content = dup_bytes(json_string_value(sys), json_string_length(sys)))) return nomem();
    }
    for (size_t i = 0; i < nh; i++)
        for (int j = 0; j < 2; j++) {
            json_t *v = json_array_get(json_array_get(hist, i), (size_t)j);
            m[k].role = j ? TUNA_ROLE_ASSISTANT : TUNA_ROLE_USER;
            m[k].len = json_string_length(v);
            if (!(m[k++].content = dup_bytes(json_string_value(v), json_string_length(v)))) return nomem();
        }
    /* user turn: instruction, then sep + input when input is non-empty */
    const char *sep = c->o && c->o->instruction_sep ? c->o->instruction_sep : "\n";
    size_t sl = strlen(sep), ul = il + (inl ? sl + inl : 0);
    char *u = malloc(ul + 1);
    if (!u) return nomem();
    memcpy(u, is, il);
    if (inl) { memcpy(u + il, sep, sl); memcpy(u + il + sl, in, inl); }
    u[ul] = 0;
    m[k].role = TUNA_ROLE_USER;
    m[k].content = u;
    m[k++].len = ul;
    m[k].role = TUNA_ROLE_ASSISTANT;
    m[k].len = json_string_length(out);
    if (!(m[k].content = dup_bytes(json_string_value(out), json_string_length(out)))) return nomem();
    return get_label(c, o, r);
}

static tuna_status parse_prompt_completion(ctx *c, const json_t *o, tuna_record *r) {
    r->kind = TUNA_RECORD_PROMPT_COMPLETION;
    r->format = TUNA_FORMAT_PROMPT_COMPLETION;
    json_t *p = json_object_get(o, "prompt"), *q = json_object_get(o, "completion");
    if (!p) return bad(c, TUNA_BAD_KEYS, "missing key \"prompt\" (a prompt-completion record needs both)");
    tuna_status s = get_part(c, p, "prompt", 0, &r->prompt);
    if (!s) s = get_part(c, q, "completion", 0, &r->completion);
    if (!s) s = get_label(c, o, r);
    if (s) return s;
    if (r->prompt.is_messages != r->completion.is_messages)
        return bad(c, TUNA_BAD_TYPE, "\"prompt\" is %s but \"completion\" is %s (both strings or both message lists)",
                   r->prompt.is_messages ? "a message list" : "a string", r->completion.is_messages ? "a message list" : "a string");
    if (r->prompt.is_messages)
        return validate_turns(c, r->prompt.msgs, r->prompt.n, "prompt", r->completion.msgs, r->completion.n, "completion");
    if (blank(r->completion.text, r->completion.len)) return bad(c, TUNA_BAD_EMPTY, "empty response (\"completion\")");
    return TUNA_OK;
}

static int msg_eq(const tuna_message *a, const tuna_message *b) {
    return a->role == b->role && a->len == b->len && !memcmp(a->content, b->content, a->len);
}

/* TRL's implicit prompt: the longest common prefix of chosen and rejected
 * moves into prompt. */
static tuna_status extract_prompt(tuna_record *r) {
    tuna_part *ch = &r->chosen, *rj = &r->rejected, *pr = &r->prompt;
    if (!ch->is_messages) {
        size_t k = 0, m = ch->len < rj->len ? ch->len : rj->len;
        while (k < m && ch->text[k] == rj->text[k]) k++;
        /* never split a character; leave a space before the responses with them */
        while (k > 0 && ((unsigned char)ch->text[k] & 0xC0) == 0x80) k--;
        if (k > 0 && ch->text[k - 1] == ' ') k--;
        pr->is_messages = 0;
        if (!(pr->text = dup_bytes(ch->text, k))) return nomem();
        pr->len = k;
        memmove(ch->text, ch->text + k, ch->len - k + 1);
        memmove(rj->text, rj->text + k, rj->len - k + 1);
        ch->len -= k;
        rj->len -= k;
        return TUNA_OK;
    }
    int k = 0;
    while (k < ch->n && k < rj->n && msg_eq(&ch->msgs[k], &rj->msgs[k])) k++;
    pr->is_messages = 1;
    pr->n = k;
    if (k) {
        if (!(pr->msgs = malloc((size_t)k * sizeof *pr->msgs))) return nomem();
        memcpy(pr->msgs, ch->msgs, (size_t)k * sizeof *pr->msgs);
        for (int i = 0; i < k; i++) free(rj->msgs[i].content);
        memmove(ch->msgs, ch->msgs + k, (size_t)(ch->n - k) * sizeof *ch->msgs);
        memmove(rj->msgs, rj->msgs + k, (size_t)(rj->n - k) * sizeof *rj->msgs);
        ch->n -= k;
        rj->n -= k;
    }
    return TUNA_OK;
}

static tuna_status parse_preference(ctx *c, const json_t *o, tuna_record *r) {
    r->kind = TUNA_RECORD_PREFERENCE;
    r->format = TUNA_FORMAT_PREFERENCE;
    const char *ck = "chosen", *rk = "rejected";
    json_t *ch = json_object_get(o, "chosen"), *rj = json_object_get(o, "rejected");
    json_t *chm = json_object_get(o, "chosen_messages"), *rjm = json_object_get(o, "rejected_messages");
    if ((ch || rj) && (chm || rjm))
        return bad(c, TUNA_BAD_KEYS, "ambiguous record: both \"%s\" and \"%s\"", ch ? "chosen" : "rejected",
                   chm ? "chosen_messages" : "rejected_messages");
    if (chm || rjm) { ch = chm; rj = rjm; ck = "chosen_messages"; rk = "rejected_messages"; }
    if (!ch) return bad(c, TUNA_BAD_KEYS, "missing key \"%s\" (a preference record needs chosen and rejected)", ck);
    if (!rj) return bad(c, TUNA_BAD_KEYS, "missing key \"%s\" (a preference record needs chosen and rejected)", rk);
    json_t *p = json_object_get(o, "prompt"), *conv = json_object_get(o, "conversations");
    if (p && conv) return bad(c, TUNA_BAD_KEYS, "ambiguous record: both \"prompt\" and \"conversations\"");
    const char *pk = p ? "prompt" : "conversations";
    if (!p) p = conv;
    if (p && json_is_null(p)) p = NULL;
    tuna_status s = get_part(c, ch, ck, 1, &r->chosen);
    if (!s) s = get_part(c, rj, rk, 1, &r->rejected);
    if (!s) s = get_label(c, o, r);
    if (s) return s;
    if (r->chosen.is_messages != r->rejected.is_messages)
        return bad(c, TUNA_BAD_TYPE, "\"%s\" is %s but \"%s\" is %s (both strings or both message lists)", ck,
                   r->chosen.is_messages ? "a message list" : "a string", rk, r->rejected.is_messages ? "a message list" : "a string");
    /* TRL: a prompt whose form differs from the responses' is ignored and the
     * implicit prompt extracted instead (e.g. UltraFeedback's string prompt
     * with full conversations in chosen/rejected). */
    if (p && json_is_string(p) == !r->chosen.is_messages) {
        s = get_part(c, p, pk, 0, &r->prompt);
        if (s) return s;
    } else {
        if (p && !json_is_string(p) && !json_is_array(p))
            return bad(c, TUNA_BAD_TYPE, "\"%s\" is %s, expected a string or a list of messages", pk, json_type_name(p));
        r->format = TUNA_FORMAT_PREFERENCE_IMPLICIT;
        if ((s = extract_prompt(r))) return s;
    }
    if (r->chosen.is_messages) {
        if (r->chosen.n == 0 && r->rejected.n == 0) return bad(c, TUNA_BAD_VALUE, "\"%s\" and \"%s\" are identical", ck, rk);
        if (r->chosen.n == r->rejected.n) {
            int same = 1;
            for (int i = 0; i < r->chosen.n && same; i++) same = msg_eq(&r->chosen.msgs[i], &r->rejected.msgs[i]);
            if (same) return bad(c, TUNA_BAD_VALUE, "\"%s\" and \"%s\" are identical", ck, rk);
        }
        if (r->chosen.n == 0) return bad(c, TUNA_BAD_EMPTY, "empty response (\"%s\" is the prompt itself)", ck);
        if (r->rejected.n == 0) return bad(c, TUNA_BAD_EMPTY, "empty response (\"%s\" is the prompt itself)", rk);
        s = validate_turns(c, r->prompt.msgs, r->prompt.n, "prompt", r->chosen.msgs, r->chosen.n, ck);
        if (!s) s = validate_turns(c, r->prompt.msgs, r->prompt.n, "prompt", r->rejected.msgs, r->rejected.n, rk);
        return s;
    }
    if (r->chosen.len == r->rejected.len && !memcmp(r->chosen.text, r->rejected.text, r->chosen.len))
        return bad(c, TUNA_BAD_VALUE, "\"%s\" and \"%s\" are identical", ck, rk);
    if (blank(r->chosen.text, r->chosen.len)) return bad(c, TUNA_BAD_EMPTY, "empty response (\"%s\")", ck);
    if (blank(r->rejected.text, r->rejected.len)) return bad(c, TUNA_BAD_EMPTY, "empty response (\"%s\")", rk);
    return TUNA_OK;
}

static tuna_status parse_ids(ctx *c, const json_t *v, const char *key, int allow_ignore, int32_t **out) {
    size_t n = json_array_size(v);
    int32_t *a = malloc((n ? n : 1) * sizeof *a);
    if (!a) return nomem();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e)) { free(a); return bad(c, TUNA_BAD_TYPE, "\"%s\"[%zu] is %s, expected an integer", key, i, json_type_name(e)); }
        json_int_t x = json_integer_value(e);
        if (!(x >= 0 && x <= INT32_MAX) && !(allow_ignore && x == -100)) {
            free(a);
            return bad(c, TUNA_BAD_VALUE, "\"%s\"[%zu] = %lld is not a token id%s", key, i, (long long)x, allow_ignore ? " or -100" : "");
        }
        a[i] = (int32_t)x;
    }
    *out = a;
    return TUNA_OK;
}

static tuna_status parse_pretok(ctx *c, const json_t *o, tuna_record *r) {
    r->kind = TUNA_RECORD_PRETOKENIZED;
    r->format = TUNA_FORMAT_PRETOKENIZED;
    json_t *ids = json_object_get(o, "input_ids"), *lab = json_object_get(o, "labels");
    if (!ids) return bad(c, TUNA_BAD_KEYS, "missing key \"input_ids\" (\"labels\" alone is not a record)");
    if (!json_is_array(ids)) return bad(c, TUNA_BAD_TYPE, "\"input_ids\" is %s, expected a list of integers", json_type_name(ids));
    if (json_array_size(ids) == 0) return bad(c, TUNA_BAD_EMPTY, "empty sequence (\"input_ids\" is empty)");
    if (json_array_size(ids) > (1u << 24)) return bad(c, TUNA_BAD_VALUE, "\"input_ids\" is too long (%zu)", json_array_size(ids));
    if (lab && json_is_null(lab)) lab = NULL;
    if (lab && !json_is_array(lab)) return bad(c, TUNA_BAD_TYPE, "\"labels\" is %s, expected a list of integers", json_type_name(lab));
    if (lab && json_array_size(lab) != json_array_size(ids))
        return bad(c, TUNA_BAD_VALUE, "\"labels\" has %zu entries but \"input_ids\" has %zu", json_array_size(lab),
                   json_array_size(ids));
    r->n_ids = (int64_t)json_array_size(ids);
    tuna_status s = parse_ids(c, ids, "input_ids", 0, &r->input_ids);
    if (!s && lab) s = parse_ids(c, lab, "labels", 1, &r->labels);
    return s;
}

/* {"prompt_ids","chosen_ids","rejected_ids"}: the responses' tokens only,
 * taken as they are (no template, no EOS added) */
static tuna_status parse_pref_ids(ctx *c, const json_t *o, tuna_record *r) {
    r->kind = TUNA_RECORD_PREFERENCE_TOKENS;
    r->format = TUNA_FORMAT_PREFERENCE_PRETOKENIZED;
    static const char *const keys[3] = {"prompt_ids", "chosen_ids", "rejected_ids"};
    int32_t **dst[3] = {&r->input_ids, &r->chosen_ids, &r->rejected_ids};
    int64_t *cnt[3] = {&r->n_ids, &r->n_chosen, &r->n_rejected};
    for (int k = 0; k < 3; k++) {
        json_t *v = json_object_get(o, keys[k]);
        if (!v) return bad(c, TUNA_BAD_KEYS, "missing key \"%s\" (a pre-tokenized preference record needs prompt_ids, chosen_ids and rejected_ids)", keys[k]);
        if (!json_is_array(v)) return bad(c, TUNA_BAD_TYPE, "\"%s\" is %s, expected a list of integers", keys[k], json_type_name(v));
        if (json_array_size(v) == 0)
            return bad(c, k ? TUNA_BAD_EMPTY : TUNA_BAD_VALUE, "\"%s\" is empty%s", keys[k],
                       k ? "" : " (the first response token is predicted from the prompt's last: give at least one, e.g. BOS)");
        if (json_array_size(v) > (1u << 24)) return bad(c, TUNA_BAD_VALUE, "\"%s\" is too long (%zu)", keys[k], json_array_size(v));
        tuna_status s = parse_ids(c, v, keys[k], 0, dst[k]);
        if (s) return s;
        *cnt[k] = (int64_t)json_array_size(v);
    }
    if (r->n_chosen == r->n_rejected && !memcmp(r->chosen_ids, r->rejected_ids, (size_t)r->n_chosen * sizeof(int32_t)))
        return bad(c, TUNA_BAD_VALUE, "\"chosen_ids\" and \"rejected_ids\" are identical");
    return TUNA_OK;
}

/* {"prompt_ids","completion_ids","label"} (KTO, unpaired): the completion's
 * tokens in chosen_ids, no rejected_ids (NULL) */
static tuna_status parse_completion_ids(ctx *c, const json_t *o, tuna_record *r) {
    r->kind = TUNA_RECORD_PREFERENCE_TOKENS;
    r->format = TUNA_FORMAT_PREFERENCE_PRETOKENIZED;
    if (json_object_get(o, "chosen_ids") || json_object_get(o, "rejected_ids"))
        return bad(c, TUNA_BAD_KEYS, "ambiguous record: \"completion_ids\" with \"chosen_ids\"/\"rejected_ids\"");
    static const char *const keys[2] = {"prompt_ids", "completion_ids"};
    int32_t **dst[2] = {&r->input_ids, &r->chosen_ids};
    int64_t *cnt[2] = {&r->n_ids, &r->n_chosen};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(o, keys[k]);
        if (!v) return bad(c, TUNA_BAD_KEYS, "missing key \"%s\" (a pre-tokenized KTO record needs prompt_ids, completion_ids and label)", keys[k]);
        if (!json_is_array(v)) return bad(c, TUNA_BAD_TYPE, "\"%s\" is %s, expected a list of integers", keys[k], json_type_name(v));
        if (json_array_size(v) == 0) return bad(c, k ? TUNA_BAD_EMPTY : TUNA_BAD_VALUE, "\"%s\" is empty", keys[k]);
        if (json_array_size(v) > (1u << 24)) return bad(c, TUNA_BAD_VALUE, "\"%s\" is too long (%zu)", keys[k], json_array_size(v));
        tuna_status s = parse_ids(c, v, keys[k], 0, dst[k]);
        if (s) return s;
        *cnt[k] = (int64_t)json_array_size(v);
    }
    return get_label(c, o, r);
}

/* Detection by keys, in priority order (a record may carry extra columns:
 * UltraFeedback has prompt, messages, chosen, rejected and is a preference
 * record, as TRL treats it). */
static tuna_status from_json(tuna_record *rec, const json_t *o, ctx *c) {
    if (!json_is_object(o)) return bad(c, TUNA_BAD_TYPE, "record is %s, expected a JSON object", json_type_name(o));
    tuna_status s;
    if (json_object_get(o, "chosen_ids") || json_object_get(o, "rejected_ids") || json_object_get(o, "prompt_ids") ||
        json_object_get(o, "completion_ids")) {
        if (json_object_get(o, "input_ids")) return bad(c, TUNA_BAD_KEYS, "ambiguous record: both \"input_ids\" and preference ids");
        int kto = json_object_get(o, "completion_ids") ||
                  (json_object_get(o, "label") && !json_object_get(o, "chosen_ids") && !json_object_get(o, "rejected_ids"));
        s = kto ? parse_completion_ids(c, o, rec) : parse_pref_ids(c, o, rec);
    } else if (json_object_get(o, "input_ids") || json_object_get(o, "labels")) s = parse_pretok(c, o, rec);
    else if (json_object_get(o, "chosen") || json_object_get(o, "rejected") || json_object_get(o, "chosen_messages") ||
             json_object_get(o, "rejected_messages"))
        s = parse_preference(c, o, rec);
    else if (json_object_get(o, "messages")) { rec->format = TUNA_FORMAT_MESSAGES; s = parse_chat(c, o, "messages", rec); }
    else if (json_object_get(o, "conversations")) { rec->format = TUNA_FORMAT_SHAREGPT; s = parse_chat(c, o, "conversations", rec); }
    else if (json_object_get(o, "instruction") || json_object_get(o, "output")) s = parse_alpaca(c, o, rec);
    else if (json_object_get(o, "completion")) s = parse_prompt_completion(c, o, rec);
    else if (json_object_get(o, "prompt"))
        s = bad(c, TUNA_BAD_KEYS, "\"prompt\" without \"completion\" (or \"chosen\"/\"rejected\")");
    else if (json_object_get(o, "text")) {
        rec->kind = TUNA_RECORD_TEXT;
        rec->format = TUNA_FORMAT_TEXT;
        s = get_string(c, json_object_get(o, "text"), "text", &rec->text, &rec->text_len);
        if (!s && blank(rec->text, rec->text_len)) s = bad(c, TUNA_BAD_EMPTY, "empty text (\"text\")");
    } else
        s = bad(c, TUNA_BAD_KEYS, "no known keys (expected messages, conversations, instruction/output, "
                                  "prompt/completion, text, chosen/rejected, input_ids or chosen_ids/rejected_ids)");
    return s;
}

tuna_status tuna_record_from_json(tuna_record *rec, const json_t *obj, const tuna_data_options *opts, tuna_bad_kind *why) {
    tuna_record_clear(rec);
    ctx c = {why, opts};
    tuna_status s = from_json(rec, obj, &c);
    if (s) { tuna_record_clear(rec); return s; }
    return TUNA_OK;
}

tuna_status tuna_record_parse(tuna_record *rec, const char *bytes, size_t len, const tuna_data_options *opts,
                              tuna_bad_kind *why) {
    tuna_record_clear(rec);
    ctx c = {why, opts};
    if (len && bytes[len - 1] == '\n') len--;
    if (len && bytes[len - 1] == '\r') len--;
    size_t bad_at = tuna_utf8_check(bytes, len);
    if (bad_at < len)
        return bad(&c, TUNA_BAD_UTF8, "invalid UTF-8 (byte 0x%02X at column %zu)", (unsigned char)bytes[bad_at], bad_at + 1);
    json_error_t je;
    /* duplicate keys are refused: which value would count is a guess */
    json_t *o = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) return bad(&c, TUNA_BAD_JSON, "not valid JSON: %s (column %d)", tuna_json_error_text(&je), je.column);
    tuna_status s = from_json(rec, o, &c);
    json_decref(o);
    if (!s && !(rec->raw = dup_bytes(bytes, len))) s = nomem();
    if (s) { tuna_record_clear(rec); return s; }
    rec->raw_len = len;
    return TUNA_OK;
}

/* ---- helpers for later stages ---- */
json_t *tuna_messages_to_json(const tuna_message *msgs, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        json_t *m = json_pack("{s:s, s:s%}", "role", tuna_role_name(msgs[i].role), "content", msgs[i].content, msgs[i].len);
        if (!m || json_array_append_new(a, m)) { json_decref(a); return NULL; }
    }
    return a;
}

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_msgs(sbuf *b, const tuna_message *m, int n) {
    for (int i = 0; i < n; i++) {
        const char *r = tuna_role_name(m[i].role);
        sb_put(b, r, strlen(r));
        sb_put(b, "\x1f", 1);
        sb_put(b, m[i].content, m[i].len);
        sb_put(b, "\x1e", 1);
    }
}
static void sb_part(sbuf *b, const tuna_part *p) {
    if (p->is_messages) sb_msgs(b, p->msgs, p->n);
    else { sb_put(b, "\x1f", 1); sb_put(b, p->text ? p->text : "", p->len); sb_put(b, "\x1e", 1); }
}

static int is_space_cp(int32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* NFKC + case fold, then white space collapsed and trimmed per field (the
 * \x1f / \x1e separators are field boundaries). */
static tuna_status normalize(const char *s, size_t n, char **out, size_t *len) {
    utf8proc_uint8_t *m = NULL;
    utf8proc_ssize_t ml = n ? utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &m,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD)
                            : 0;
    if (ml < 0) return core_fail(TUNA_ERR_FORMAT, "cannot normalise text: %s", utf8proc_errmsg(ml));
    const char *src = n ? (const char *)m : "";
    char *d = malloc((size_t)ml + 1);
    if (!d) { free(m); return nomem(); }
    size_t o = 0;
    int pend = 0, at_start = 1;
    for (utf8proc_ssize_t i = 0; i < ml;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)src + i, ml - i, &cp);
        if (k <= 0) { k = 1; cp = (unsigned char)src[i]; }
        if (cp == 0x1f || cp == 0x1e) {
            d[o++] = (char)cp;
            pend = 0;
            at_start = 1;
        } else if (is_space_cp(cp)) {
            if (!at_start) pend = 1;
        } else {
            if (pend) d[o++] = ' ';
            pend = 0;
            at_start = 0;
            memcpy(d + o, src + i, (size_t)k);
            o += (size_t)k;
        }
        i += k;
    }
    d[o] = 0;
    free(m);
    *out = d;
    *len = o;
    return TUNA_OK;
}

tuna_status tuna_record_text(const tuna_record *rec, int norm, char **out, size_t *len) {
    sbuf b = {0};
    sb_put(&b, "", 0);
    switch (rec->kind) {
    case TUNA_RECORD_CHAT: sb_msgs(&b, rec->messages, rec->n_messages); break;
    case TUNA_RECORD_PROMPT_COMPLETION: sb_part(&b, &rec->prompt); sb_part(&b, &rec->completion); break;
    case TUNA_RECORD_PREFERENCE:
        sb_part(&b, &rec->prompt);
        sb_part(&b, &rec->chosen);
        sb_part(&b, &rec->rejected);
        break;
    case TUNA_RECORD_TEXT: sb_put(&b, "\x1f", 1); sb_put(&b, rec->text, rec->text_len); sb_put(&b, "\x1e", 1); break;
    case TUNA_RECORD_PREFERENCE_TOKENS: {
        const int32_t *a[3] = {rec->input_ids, rec->chosen_ids, rec->rejected_ids};
        int64_t n[3] = {rec->n_ids, rec->n_chosen, rec->n_rejected};
        for (int k = 0; k < 3; k++) {
            sb_put(&b, "\x1f", 1);
            for (int64_t i = 0; i < n[k]; i++) {
                char t[32];
                int w = snprintf(t, sizeof t, "%s%d", i ? " " : "", a[k][i]);
                sb_put(&b, t, (size_t)w);
            }
            sb_put(&b, "\x1e", 1);
        }
        break;
    }
    case TUNA_RECORD_PRETOKENIZED:
        for (int64_t i = 0; i < rec->n_ids; i++) {
            char t[32];
            int k = snprintf(t, sizeof t, "%s%d", i ? " " : "", rec->input_ids[i]);
            sb_put(&b, t, (size_t)k);
        }
        if (rec->labels) {
            sb_put(&b, "\x1e", 1);
            for (int64_t i = 0; i < rec->n_ids; i++) {
                char t[32];
                int k = snprintf(t, sizeof t, "%s%d", i ? " " : "", rec->labels[i]);
                sb_put(&b, t, (size_t)k);
            }
        }
        break;
    default: break;
    }
    if (b.oom) { free(b.p); return nomem(); }
    if (!norm) { *out = b.p; *len = b.n; return TUNA_OK; }
    tuna_status s = normalize(b.p, b.n, out, len);
    free(b.p);
    return s;
}
