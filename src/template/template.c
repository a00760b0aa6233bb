/* template.c — public API of chat templates (include/tuna_template.h):
 * compile, render, built-in templates, assistant spans. Each call runs inside
 * a setjmp so that the interpreter's errors (which longjmp) come back here as
 * a tuna_status, and everything the call allocated goes with its arena. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "template/tmpl.h"
#include <locale.h>
#include "core/error.h"

struct tuna_template {
    tp_ctx ctx;          /* owns the syntax tree */
    tp_node *prog;
    char *src;
    size_t src_len;
};

#define DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define DEFAULT_MAX_STEPS 10000000L

tuna_status tuna_template_compile(tuna_template **out, const char *src, size_t len) {
    if (!out || (!src && len)) return core_fail(TUNA_ERR_ARG, "tuna_template_compile: NULL argument");
    *out = NULL;
    tuna_template *t = calloc(1, sizeof *t);
    if (!t) return core_fail(TUNA_ERR_NOMEM, "out of memory compiling a chat template");
    t->src = malloc(len + 1);
    if (!t->src) { free(t); return core_fail(TUNA_ERR_NOMEM, "out of memory compiling a chat template"); }
    if (len) memcpy(t->src, src, len);
    t->src[len] = 0;
    t->src_len = len;
    jmp_buf jb;
    t->ctx.jb = &jb;
    if (setjmp(jb)) {
        tuna_status s = core_fail(t->ctx.err, "chat template: %s", t->ctx.msg);
        tuna_template_free(t);
        return s;
    }
    t->prog = tp_parse(&t->ctx, t->src, len);
    t->ctx.jb = NULL;
    *out = t;
    return TUNA_OK;
}

void tuna_template_free(tuna_template *t) {
    if (!t) return;
    tp_arena_free(&t->ctx);
    free(t->src);
    free(t);
}

/* State of one rendering, on the heap: it is changed after setjmp, so it must
 * not live in automatic variables that longjmp could leave stale. */
typedef struct {
    tp_ctx c;
    json_t *extra;
    const tuna_template *t;
    const json_t *messages;
    long n;
    const tuna_template_vars *vars;
    int agp;
    char **out;
    size_t *out_len;
    tp_marks *marks_out;  /* NULL, or receives the generation marks (malloc'd) */
} render_state;

static void render_state_free(render_state *st) {
    if (st->c.locale) freelocale((locale_t)st->c.locale);
    tp_arena_free(&st->c);
    json_decref(st->extra);
    free(st);
}

static tuna_status render_run(render_state *const st) {
    tp_ctx *const c = &st->c;
    const tuna_template_vars *vars = st->vars;
    size_t max_bytes = vars->max_bytes ? vars->max_bytes : DEFAULT_MAX_BYTES;
    c->limit = max_bytes * 4 + ((size_t)16 << 20); /* working memory: output plus copies */
    c->src = st->t->src;
    c->src_len = st->t->src_len;
    jmp_buf jb;
    c->jb = &jb;
    if (setjmp(jb)) {
        tuna_status s = c->err == TUNA_ERR_NOMEM || !strncmp(c->msg, "chat template", 13)
                            ? core_fail(c->err, "%s", c->msg)
                            : core_fail(c->err, "chat template: %s", c->msg);
        render_state_free(st);
        return s;
    }
    tv *g = tv_obj(c, V_OBJECT);
    if (st->messages) {
        if (!json_is_array(st->messages)) tp_fail_raw(c, TUNA_ERR_ARG, "chat template: messages must be a JSON array");
        size_t total = json_array_size(st->messages);
        size_t k = st->n < 0 || (size_t)st->n > total ? total : (size_t)st->n;
        tv *m = tv_arr(c, V_ARRAY, k);
        for (size_t i = 0; i < k; i++) m->u.arr.v[i] = tv_from_json(c, json_array_get(st->messages, i));
        tv_obj_set(c, g, (tstr){"messages", 8}, m);
    }
    if (vars->bos_token) tv_obj_set(c, g, (tstr){"bos_token", 9}, tv_str(c, vars->bos_token, strlen(vars->bos_token)));
    if (vars->eos_token) tv_obj_set(c, g, (tstr){"eos_token", 9}, tv_str(c, vars->eos_token, strlen(vars->eos_token)));
    tv_obj_set(c, g, (tstr){"add_generation_prompt", 21}, TV_BOOL(st->agp));
    if (vars->extra_json) {
        json_error_t je;
        st->extra = json_loads(vars->extra_json, 0, &je);
        if (!json_is_object(st->extra))
            tp_fail_raw(c, TUNA_ERR_ARG, "chat template: extra variables must be a JSON object");
        const char *key;
        json_t *val;
        json_object_foreach(st->extra, key, val)
            tv_obj_set(c, g, tp_strdup(c, key, strlen(key)), tv_from_json(c, val));
    }
    tp_limits lim = {vars->max_steps > 0 ? vars->max_steps : DEFAULT_MAX_STEPS, max_bytes};
    tp_buf buf = {0};
    tp_marks marks = {0};
    tp_eval(c, st->t->prog, g, &lim, &buf, st->marks_out ? &marks : NULL);
    char *r = malloc(buf.n + 1);
    if (!r) tp_fail_raw(c, TUNA_ERR_NOMEM, "out of memory rendering a chat template");
    memcpy(r, buf.p, buf.n + 1);
    if (st->marks_out) {
        tp_marks *m = st->marks_out;
        m->n = marks.n;
        m->off = malloc(sizeof *m->off * (size_t)(marks.n + 1));
        m->kind = malloc(sizeof *m->kind * (size_t)(marks.n + 1));
        if (!m->off || !m->kind) {
            free(m->off);
            free(m->kind);
            free(r);
            m->off = NULL;
            m->kind = NULL;
            tp_fail_raw(c, TUNA_ERR_NOMEM, "out of memory rendering a chat template");
        }
        if (marks.n) {
            memcpy(m->off, marks.off, sizeof *m->off * (size_t)marks.n);
            memcpy(m->kind, marks.kind, sizeof *m->kind * (size_t)marks.n);
        }
    }
    *st->out = r;
    if (st->out_len) *st->out_len = buf.n;
    render_state_free(st);
    return TUNA_OK;
}

/* Renders messages[0..n) (n < 0: all) with add_generation_prompt = agp. */
static tuna_status render_n(const tuna_template *t, const json_t *messages, long n,
                            const tuna_template_vars *vars, int agp, char **out, size_t *out_len) {
    static const tuna_template_vars dv = {0};
    render_state *st = calloc(1, sizeof *st);
    if (!st) return core_fail(TUNA_ERR_NOMEM, "out of memory rendering a chat template");
    st->t = t;
    st->messages = messages;
    st->n = n;
    st->vars = vars ? vars : &dv;
    st->agp = agp;
    st->out = out;
    st->out_len = out_len;
    return render_run(st);
}

/* Spans from {% generation %} blocks (HF's assistant-token mask): the bytes
 * rendered between each generation tag and its endgeneration. */
static tuna_status generation_spans(const tuna_template *t, const json_t *messages,
                                    const tuna_template_vars *vars, char **text, size_t *text_len,
                                    tuna_template_span **spans, int *n_spans) {
    static const tuna_template_vars dv = {0};
    render_state *st = calloc(1, sizeof *st);
    tp_marks m = {0};
    if (!st) return core_fail(TUNA_ERR_NOMEM, "out of memory rendering a chat template");
    char *full;
    size_t full_len;
    st->t = t;
    st->messages = messages;
    st->n = -1;
    st->vars = vars ? vars : &dv;
    st->out = &full;
    st->out_len = &full_len;
    st->marks_out = &m;
    tuna_status s = render_run(st);
    if (s) return s;
    int n_asst = 0;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *role = json_object_get(json_array_get(messages, i), "role");
        n_asst += json_is_string(role) && !strcmp(json_string_value(role), "assistant");
    }
    tuna_template_span *sp = malloc(sizeof *sp * (size_t)(m.n / 2 + 1));
    int k = 0;
    if (!sp) s = core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; !s && i < m.n; i += 2) {
        if (m.kind[i] != 0 || i + 1 >= m.n || m.kind[i + 1] != 1) {
            s = core_fail(TUNA_ERR_FORMAT, "chat template: {%% generation %%} and {%% endgeneration %%} do not pair up");
            break;
        }
        sp[k++] = (tuna_template_span){m.off[i], m.off[i + 1], -1};
    }
    free(m.off);
    free(m.kind);
    if (s) { free(sp); free(full); return s; }
    if (k == n_asst) { /* one block per assistant message: name them */
        int j = 0;
        for (size_t i = 0; i < json_array_size(messages); i++) {
            json_t *role = json_object_get(json_array_get(messages, i), "role");
            if (json_is_string(role) && !strcmp(json_string_value(role), "assistant")) sp[j++].message = (int)i;
        }
    }
    *text = full;
    if (text_len) *text_len = full_len;
    *spans = sp;
    *n_spans = k;
    return TUNA_OK;
}

tuna_status tuna_template_render(const tuna_template *t, const json_t *messages,
                                 const tuna_template_vars *vars, char **out, size_t *out_len) {
    if (!t || !out) return core_fail(TUNA_ERR_ARG, "tuna_template_render: NULL argument");
    *out = NULL;
    return render_n(t, messages, -1, vars, vars ? vars->add_generation_prompt : 0, out, out_len);
}

tuna_status tuna_template_assistant_spans(const tuna_template *t, const json_t *messages,
                                          const tuna_template_vars *vars, char **text,
                                          size_t *text_len, tuna_template_span **spans,
                                          int *n_spans) {
    if (!t || !messages || !text || !spans || !n_spans)
        return core_fail(TUNA_ERR_ARG, "tuna_template_assistant_spans: NULL argument");
    *text = NULL;
    *spans = NULL;
    *n_spans = 0;
    if (!json_is_array(messages)) return core_fail(TUNA_ERR_ARG, "chat template: messages must be a JSON array");
    if (t->prog->flag > 0) return generation_spans(t, messages, vars, text, text_len, spans, n_spans);
    size_t full_len;
    char *full;
    tuna_status s = render_n(t, messages, -1, vars, 0, &full, &full_len);
    if (s) return s;
    size_t n = json_array_size(messages);
    tuna_template_span *sp = malloc(sizeof *sp * (n ? n : 1));
    if (!sp) { free(full); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *role = json_object_get(json_array_get(messages, i), "role");
        if (!json_is_string(role) || strcmp(json_string_value(role), "assistant")) continue;
        size_t b_len, e_len = full_len;
        char *pre;
        s = render_n(t, messages, (long)i, vars, 1, &pre, &b_len);
        if (s) goto fail;
        int ok = b_len <= full_len && !memcmp(pre, full, b_len);
        free(pre);
        if (!ok) {
            s = core_fail(TUNA_ERR_UNSUPPORTED, "chat template: the prompt before message %zu (rendered with "
                          "add_generation_prompt) is not a prefix of the whole conversation", i);
            goto fail;
        }
        if (i + 1 < n) {
            s = render_n(t, messages, (long)i + 1, vars, 0, &pre, &e_len);
            if (s) goto fail;
            ok = e_len <= full_len && !memcmp(pre, full, e_len);
            free(pre);
            if (!ok) {
                s = core_fail(TUNA_ERR_UNSUPPORTED, "chat template: the conversation up to message %zu is not "
                              "a prefix of the whole conversation (the template ends conversations differently)", i);
                goto fail;
            }
        }
        if (e_len < b_len) {
            s = core_fail(TUNA_ERR_UNSUPPORTED, "chat template: assistant message %zu renders before its prompt ends", i);
            goto fail;
        }
        sp[k++] = (tuna_template_span){b_len, e_len, (int)i};
    }
    *text = full;
    if (text_len) *text_len = full_len;
    *spans = sp;
    *n_spans = k;
    return TUNA_OK;
fail:
    free(full);
    free(sp);
    return s;
}

/* ---- built-in templates, for models that ship none ----
 * Written for this project. bos_token/eos_token may be undefined (no model
 * folder), hence `| default('')` where they are concatenated. */
static const char *const BUILTIN_NAMES[] = {"chatml", "llama3", "llama2", "alpaca", "zephyr", NULL};
static const char *const BUILTIN_SRC[] = {
    /* chatml */
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    /* llama3 */
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    /* llama2: the system prompt goes inside the first [INST] */
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% set system_message = '<<SYS>>\\n' + messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = '' %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ (bos_token | default('')) + '[INST] ' + (system_message if loop.first else '') + message['content'] | trim + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'] | trim + ' ' + (eos_token | default('')) }}"
    "{% endif %}"
    "{% endfor %}",
    /* alpaca */
    "{% if messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + '\\n\\n' }}{% set loop_messages = messages[1:] %}"
    "{% else %}"
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\\n\\n' }}"
    "{% set loop_messages = messages %}"
    "{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + (eos_token | default('')) + '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
    /* zephyr */
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + (eos_token | default('')) + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
};

const char *tuna_template_builtin(const char *name) {
    if (!name) return NULL;
    for (int i = 0; BUILTIN_NAMES[i]; i++)
        if (!strcmp(name, BUILTIN_NAMES[i])) return BUILTIN_SRC[i];
    return NULL;
}

const char *const *tuna_template_builtin_names(void) { return BUILTIN_NAMES; }
