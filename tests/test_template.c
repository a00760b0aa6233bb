/* test_template.c — chat templates: byte-for-byte parity with the reference
 * renderer (@huggingface/jinja) on every template in ../shared/data, the
 * built-ins and hand-written ones (fixtures from tools/template-fixtures/),
 * assistant spans (fixtures and exact hand-computed values), syntax-error
 * positions, raise_exception, and the limits that stop hostile templates.
 * Templates from shared data are read from ../shared at test time (the
 * fixtures only name file and line); they are skipped when it is absent. */
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "tuna.h"

#define FIX "tests/fixtures/template/"

/* Source of a template descriptor from templates.json; NULL when the shared
 * file is absent (test_shared_path's SKIP, or failure under CI, recorded once
 * per file). *owned is set when
 * the caller must free the result. */
static char *template_source(const char *id, json_t *d, int *skipped) {
    *skipped = 0;
    json_t *text = json_object_get(d, "text"), *bi = json_object_get(d, "builtin");
    if (json_is_string(text)) return strdup(json_string_value(text));
    if (json_is_string(bi)) {
        const char *s = tuna_template_builtin(json_string_value(bi));
        return s ? strdup(s) : NULL;
    }
    const char *file = json_string_value(json_object_get(d, "file"));
    const char *key = json_string_value(json_object_get(d, "key"));
    if (!file) { CHECKF(0, "template %s: no text, builtin or file in templates.json", id); return NULL; }
    static char last_missing[512];
    char what[600];
    snprintf(what, sizeof what, "template %s", id);
    *skipped = 1;
    if (!strcmp(last_missing, file)) return NULL; /* recorded for the template before */
    const char *p = test_shared_path(file, what);
    if (!p) {
        snprintf(last_missing, sizeof last_missing, "%s", file);
        return NULL;
    }
    *skipped = 0;
    json_t *line = json_object_get(d, "line");
    char *res = NULL;
    if (json_is_integer(line)) {
        FILE *f = fopen(p, "r");
        if (!f) return NULL;
        char *l = NULL;
        size_t cap = 0;
        for (long i = 1; getline(&l, &cap, f) > 0; i++)
            if (i == json_integer_value(line)) {
                json_error_t je;
                json_t *o = json_loads(l, 0, &je);
                if (json_is_string(json_object_get(o, key))) res = strdup(json_string_value(json_object_get(o, key)));
                json_decref(o);
                break;
            }
        free(l);
        fclose(f);
    } else {
        json_error_t je;
        json_t *o = json_load_file(p, JSON_DECODE_INT_AS_REAL, &je);
        json_t *ct = json_object_get(o, key);
        if (json_is_array(ct)) {
            size_t i;
            json_t *e;
            json_array_foreach(ct, i, e)
                if (!strcmp(json_string_value(json_object_get(e, "name")) ? json_string_value(json_object_get(e, "name")) : "", "default"))
                    ct = json_object_get(e, "template");
        }
        if (json_is_string(ct)) res = strdup(json_string_value(ct));
        json_decref(o);
    }
    return res;
}

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* A message of what differs first, for a readable failure. */
static void show_diff(const char *id, const char *cid, const char *want, size_t wn, const char *got, size_t gn) {
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i]) i++;
    size_t from = i > 20 ? i - 20 : 0;
    fprintf(stderr, "  %s/%s differs at byte %zu:\n    want: %.*s|\n    got:  %.*s|\n", id, cid, i,
            (int)(wn - from > 60 ? 60 : wn - from), want + from, (int)(gn - from > 60 ? 60 : gn - from), got + from);
}

static void test_parity(void) {
    json_error_t je;
    json_t *tmpls = json_load_file(FIX "templates.json", 0, &je);
    json_t *convs = json_load_file(FIX "conversations.json", 0, &je);
    CHECK(tmpls && convs);
    if (!tmpls || !convs) return;
    FILE *f = fopen(FIX "cases.jsonl", "r");
    CHECK(f != NULL);
    if (!f) return;
    /* per template: compiled once, and whether every case matched */
    const char *cur_id = NULL;
    tuna_template *t = NULL;
    int cur_skipped = 0, cur_compiled = 0, cur_all_ok = 1;
    char cur_compile_err[512] = "";
    int n_templates = 0, n_identical = 0, n_skipped_t = 0, n_cases = 0, n_case_ok = 0;
    char *line = NULL;
    size_t cap = 0;
    char *ids = NULL;
    json_t *c = NULL;
    for (;;) {
        ssize_t k = getline(&line, &cap, f);
        json_decref(c);
        c = k > 0 ? json_loads(line, 0, &je) : NULL;
        const char *id = c ? jstr(c, "template") : NULL;
        if (!id || !cur_id || strcmp(id, cur_id)) {
            if (cur_id) {
                if (cur_skipped) n_skipped_t++;
                else {
                    n_templates++;
                    if (cur_all_ok) n_identical++;
                    else fprintf(stderr, "template %s: not identical\n", cur_id);
                }
            }
            tuna_template_free(t);
            t = NULL;
            if (!id) break;
            free(ids);
            ids = strdup(id);
            cur_id = ids;
            cur_all_ok = 1;
            char *src = template_source(id, json_object_get(tmpls, id), &cur_skipped);
            if (!cur_skipped) {
                CHECKF(src != NULL, "no source for template %s", id);
                tuna_status s = src ? tuna_template_compile(&t, src, strlen(src)) : TUNA_ERR_INTERNAL;
                cur_compiled = s == TUNA_OK;
                snprintf(cur_compile_err, sizeof cur_compile_err, "%s", s ? tuna_last_error() : "");
            }
            free(src);
        }
        if (cur_skipped) continue;
        n_cases++;
        const char *cid = jstr(c, "conversation");
        json_t *msgs = json_object_get(convs, cid);
        const char *expected = jstr(c, "expected"), *err = jstr(c, "error");
        int ok;
        if (!cur_compiled) {
            ok = err && jstr(c, "stage") && !strcmp(jstr(c, "stage"), "compile");
            if (!ok) fprintf(stderr, "  %s: compile failed: %s\n", cur_id, cur_compile_err);
        } else {
            json_t *extra = json_object_get(c, "extra"); /* more variables, e.g. tools */
            char *extra_s = extra ? json_dumps(extra, 0) : NULL;
            tuna_template_vars v = {jstr(c, "bos_token"), jstr(c, "eos_token"),
                                    json_is_true(json_object_get(c, "add_generation_prompt")), extra_s, 0, 0};
            char *out = NULL;
            size_t n = 0;
            tuna_status s = tuna_template_render(t, msgs, &v, &out, &n);
            if (expected) {
                size_t wn = json_string_length(json_object_get(c, "expected"));
                ok = s == TUNA_OK && n == wn && !memcmp(out, expected, n);
                if (!ok && s) fprintf(stderr, "  %s/%s: failed: %s\n", cur_id, cid, tuna_last_error());
                else if (!ok) show_diff(cur_id, cid, expected, wn, out, n);
            } else {
                /* both fail; a raise_exception message must be the same text
                 * (other messages are the renderers' own words) */
                ok = s != TUNA_OK;
                const char *d = tuna_last_error(), *raised = "chat template raised an error: ";
                if (ok && err && !strncmp(d, raised, strlen(raised))) ok = !strcmp(d + strlen(raised), err);
                if (!ok) fprintf(stderr, "  %s/%s: expected an error (%s), got %s\n", cur_id, cid, err,
                                 s ? tuna_last_error() : "success");
            }
            free(out);
            free(extra_s);
        }
        if (ok) n_case_ok++;
        else cur_all_ok = 0;
        CHECKF(ok, "template %s, conversation %s, add_generation_prompt %d", cur_id, cid,
               json_is_true(json_object_get(c, "add_generation_prompt")));
    }
    printf("parity: %d/%d templates identical on all conversations, %d/%d cases, %d templates skipped\n",
           n_identical, n_templates, n_case_ok, n_cases, n_skipped_t);
    free(ids);
    free(line);
    fclose(f);
    json_decref(tmpls);
    json_decref(convs);
}

static void test_span_fixtures(void) {
    json_error_t je;
    json_t *tmpls = json_load_file(FIX "templates.json", 0, &je);
    json_t *convs = json_load_file(FIX "conversations.json", 0, &je);
    FILE *f = fopen(FIX "spans.jsonl", "r");
    CHECK(tmpls && convs && f);
    if (!tmpls || !convs || !f) { if (f) fclose(f); json_decref(tmpls); json_decref(convs); return; }
    char *line = NULL;
    size_t cap = 0;
    int n = 0, ok_n = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *c = json_loads(line, 0, &je);
        const char *id = jstr(c, "template");
        int skipped;
        char *src = template_source(id, json_object_get(tmpls, id), &skipped);
        tuna_template *t = NULL;
        if (!skipped && src && tuna_template_compile(&t, src, strlen(src)) == TUNA_OK) {
            tuna_template_vars v = {jstr(c, "bos_token"), jstr(c, "eos_token"), 0, NULL, 0, 0};
            char *text = NULL;
            size_t tl;
            tuna_template_span *sp = NULL;
            int ns = 0;
            tuna_status s = tuna_template_assistant_spans(t, json_object_get(convs, jstr(c, "conversation")), &v,
                                                          &text, &tl, &sp, &ns);
            json_t *want = json_object_get(c, "spans");
            int ok;
            if (!want) ok = s != TUNA_OK;
            else {
                ok = s == TUNA_OK && (size_t)ns == json_array_size(want);
                for (int i = 0; ok && i < ns; i++) {
                    json_t *w = json_array_get(want, (size_t)i);
                    ok = (json_int_t)sp[i].begin == json_integer_value(json_array_get(w, 0)) &&
                         (json_int_t)sp[i].end == json_integer_value(json_array_get(w, 1)) &&
                         sp[i].message == json_integer_value(json_array_get(w, 2));
                }
            }
            n++;
            ok_n += ok;
            CHECKF(ok, "spans of %s on %s (%s)", id, jstr(c, "conversation"), s ? tuna_last_error() : "ok");
            free(text);
            free(sp);
        } else if (!skipped) CHECKF(0, "template %s does not compile", id);
        tuna_template_free(t);
        free(src);
        json_decref(c);
    }
    printf("spans: %d/%d span cases identical\n", ok_n, n);
    free(line);
    fclose(f);
    json_decref(tmpls);
    json_decref(convs);
}

/* Exact spans worked out by hand for the chatml built-in. */
static void test_spans_exact(void) {
    tuna_template *t = NULL;
    const char *src = tuna_template_builtin("chatml");
    CHECK(src != NULL);
    CHECK(tuna_template_compile(&t, src, strlen(src)) == TUNA_OK);
    json_error_t je;
    json_t *m = json_loads("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"U1\"},"
                           "{\"role\":\"assistant\",\"content\":\"A1\"},{\"role\":\"user\",\"content\":\"U2\"},"
                           "{\"role\":\"assistant\",\"content\":\"A2\"}]", 0, &je);
    char *text = NULL;
    size_t tl = 0;
    tuna_template_span *sp = NULL;
    int ns = 0;
    CHECK(tuna_template_assistant_spans(t, m, NULL, &text, &tl, &sp, &ns) == TUNA_OK);
    const char *want = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
                       "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
                       "<|im_start|>assistant\nA2<|im_end|>\n";
    CHECK(text && !strcmp(text, want) && tl == strlen(want));
    CHECK(ns == 2);
    if (ns == 2 && text) {
        /* "A1<|im_end|>\n" starts after the generation prompt of message 2 */
        size_t b0 = strlen("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n");
        CHECK(sp[0].begin == b0 && sp[0].end == b0 + strlen("A1<|im_end|>\n") && sp[0].message == 2);
        CHECK(!strncmp(text + sp[0].begin, "A1<|im_end|>\n", sp[0].end - sp[0].begin));
        CHECK(sp[1].message == 4 && sp[1].end == tl && !strcmp(text + sp[1].begin, "A2<|im_end|>\n"));
    }
    free(text);
    free(sp);
    /* a template that ends conversations differently cannot be split */
    tuna_template *t2 = NULL;
    const char *eos_at_end = "{% for m in messages %}{{ m.content }};{% endfor %}{% if not add_generation_prompt %}END{% endif %}";
    CHECK(tuna_template_compile(&t2, eos_at_end, strlen(eos_at_end)) == TUNA_OK);
    CHECK(tuna_template_assistant_spans(t2, m, NULL, &text, &tl, &sp, &ns) == TUNA_ERR_UNSUPPORTED);
    CHECK(strstr(tuna_last_error(), "message 2") != NULL);
    tuna_template_free(t2);
    json_decref(m);
    tuna_template_free(t);
}

/* {% generation %} blocks give the spans (HF's assistant mask), which also
 * works for a template that ends conversations differently (phi-3 style). */
static void test_generation_spans(void) {
    const char *src =
        "{% for m in messages %}{% if m.role == 'assistant' %}<|assistant|>\n{% generation %}"
        "{{ m.content }}<|end|>\n{% endgeneration %}{% else %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}";
    tuna_template *t = NULL;
    CHECK(tuna_template_compile(&t, src, strlen(src)) == TUNA_OK);
    json_error_t je;
    json_t *m = json_loads("[{\"role\":\"user\",\"content\":\"U1\"},{\"role\":\"assistant\",\"content\":\"A1\"},"
                           "{\"role\":\"user\",\"content\":\"U2\"},{\"role\":\"assistant\",\"content\":\"A2\"}]", 0, &je);
    tuna_template_vars v = {"<s>", "<|endoftext|>", 1, NULL, 0, 0};
    char *text = NULL;
    size_t tl = 0;
    tuna_template_span *sp = NULL;
    int ns = 0;
    CHECK(tuna_template_assistant_spans(t, m, &v, &text, &tl, &sp, &ns) == TUNA_OK);
    const char *want = "<|user|>\nU1<|end|>\n<|assistant|>\nA1<|end|>\n<|user|>\nU2<|end|>\n<|assistant|>\nA2<|end|>\n<|endoftext|>";
    CHECKF(text && !strcmp(text, want), "%s", text ? text : "(null)");
    CHECK(ns == 2);
    if (ns == 2 && text) {
        size_t b0 = strlen("<|user|>\nU1<|end|>\n<|assistant|>\n");
        CHECK(sp[0].begin == b0 && sp[0].end == b0 + strlen("A1<|end|>\n") && sp[0].message == 1);
        CHECK(sp[1].message == 3 && !strncmp(text + sp[1].begin, "A2<|end|>\n", sp[1].end - sp[1].begin) &&
              sp[1].end == tl - strlen("<|endoftext|>"));
    }
    free(text);
    free(sp);
    tuna_template_free(t);
    /* blocks must pair up */
    const char *bad = "{% generation %}x";
    CHECK(tuna_template_compile(&t, bad, strlen(bad)) == TUNA_OK);
    CHECK(tuna_template_assistant_spans(t, m, NULL, &text, &tl, &sp, &ns) == TUNA_ERR_FORMAT);
    CHECK(strstr(tuna_last_error(), "pair") != NULL);
    tuna_template_free(t);
    /* whitespace control around the tags, and blocks skipped by continue */
    const char *ws = "{% for m in messages %}  {%- generation -%}  {{ m.content }}  {%- endgeneration %}  "
                     "{% if loop.first %}{% continue %}{% endif %}{% endfor %}";
    CHECK(tuna_template_compile(&t, ws, strlen(ws)) == TUNA_OK);
    CHECK(tuna_template_assistant_spans(t, m, NULL, &text, &tl, &sp, &ns) == TUNA_OK);
    /* iteration 0 is discarded by continue; the others render "<c>  " with the block around "<c>" */
    CHECKF(text && !strcmp(text, "A1  U2  A2  "), "%s", text ? text : "(null)");
    CHECK(ns == 3 && sp[0].begin == 0 && sp[0].end == 2 && sp[1].begin == 4 && sp[1].end == 6 && sp[0].message == -1);
    free(text);
    free(sp);
    tuna_template_free(t);
    json_decref(m);
}

static void expect_compile_error(const char *src, const char *where, const char *what) {
    tuna_template *t = NULL;
    tuna_status s = tuna_template_compile(&t, src, strlen(src));
    CHECKF(s == TUNA_ERR_FORMAT && t == NULL, "compiling %s should fail", src);
    const char *d = tuna_last_error();
    CHECKF(strstr(d, where) != NULL && strstr(d, what) != NULL, "error for %s: '%s' (want '%s' ... '%s')", src, d, where, what);
    tuna_template_free(t);
}

static void test_syntax_errors(void) {
    expect_compile_error("hello {{ name }", "line 1, column 15", "'}}'");
    expect_compile_error("a\nb\n  {% if x %}\n  ok\n", "line 5, column 1", "{% endif %}");
    expect_compile_error("{% for m in messages %}\n{{ m.content | }}\n{% endfor %}", "line 2, column 16", "unexpected '}}'");
    expect_compile_error("line one\n{% frobnicate %}", "line 2, column 4", "unknown statement");
    expect_compile_error("{{ 'unterminated }}", "line 1", "end of template");
    expect_compile_error("ü{{ a ? b }}", "line 1, column 7", "unexpected character");
    expect_compile_error("{% if a %}{% else %}{% elif b %}{% endif %}", "line 1, column 24", "elif");
    expect_compile_error("{{ '\\q' }}", "line 1, column 5", "escaped character");
    expect_compile_error("{# never closed", "line 1, column 1", "comment");
    expect_compile_error("{% macro f(a, a) %}{% endmacro %}", "line 1", "duplicate parameter");
}

static tuna_status render_str(const char *src, const char *msgs_json, int agp, char **out) {
    tuna_template *t = NULL;
    *out = NULL;
    tuna_status s = tuna_template_compile(&t, src, strlen(src));
    if (s) return s;
    json_error_t je;
    json_t *m = json_loads(msgs_json, 0, &je);
    tuna_template_vars v = {"<s>", "</s>", agp, "{\"tools\": [{\"name\": \"f\"}]}", 1 << 20, 200000};
    s = tuna_template_render(t, m, &v, out, NULL);
    json_decref(m);
    tuna_template_free(t);
    return s;
}

static void test_runtime(void) {
    const char *msgs = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    char *out;
    /* raise_exception gives the template's own message */
    CHECK(render_str("{{ raise_exception('Roles must alternate') }}", msgs, 0, &out) == TUNA_ERR_FORMAT);
    CHECK(!strcmp(tuna_last_error(), "chat template raised an error: Roles must alternate"));
    free(out);
    /* runtime errors name the position */
    CHECK(render_str("ok\n  {{ messages[0].content | frobnicate }}", msgs, 0, &out) == TUNA_ERR_FORMAT);
    CHECKF(strstr(tuna_last_error(), "line 2, column 28") != NULL, "%s", tuna_last_error());
    free(out);
    /* division by zero is an error, as Jinja2's ZeroDivisionError (not inf or nan) */
    static const char *const zero_div[][2] = {{"{{ 1/0 }}", "division by zero"},
                                              {"{{ 1.5/0 }}", "float division by zero"},
                                              {"{{ 7//0 }}", "integer division or modulo by zero"},
                                              {"{{ 7%0 }}", "integer division or modulo by zero"},
                                              {"{{ 7.0//0 }}", "float floor division by zero"},
                                              {"{{ 7%0.0 }}", "float modulo"}};
    for (size_t i = 0; i < sizeof zero_div / sizeof zero_div[0]; i++) {
        tuna_status s = render_str(zero_div[i][0], msgs, 0, &out);
        CHECKF(s == TUNA_ERR_FORMAT && strstr(tuna_last_error(), zero_div[i][1]) && strstr(tuna_last_error(), "line 1, column "),
               "%s: status %d, '%s' (want '%s')", zero_div[i][0], s, s ? tuna_last_error() : out, zero_div[i][1]);
        free(out);
    }
    CHECK(render_str("{{ 7 % 2 }}|{{ 7 // 2 }}|{{ 1 / 4 }}", msgs, 0, &out) == TUNA_OK && out && !strcmp(out, "1|3|0.25"));
    free(out);
    /* modulo and floor division follow Python's signs (the result of % has
     * the divisor's sign; // rounds toward minus infinity), not C's fmod */
    const char *py = "{{ (-7) % 3 }}|{{ 7 % -3 }}|{{ (-7) // 2 }}|{{ 7 // -2 }}|{{ (-7.5) % 2 }}|{{ 7.5 % -2 }}|{{ (-6) % 3 }}|"
                     "{{ 1 // 0.1 }}|{{ (-7.5) // 2 }}";
    tuna_status ps = render_str(py, msgs, 0, &out);
    CHECKF(ps == TUNA_OK && out && !strcmp(out, "2|-2|-4|-4|0.5|-0.5|0|9.0|-4.0"), "status %d, '%s' (want Python's 2|-2|-4|-4|0.5|-0.5|0|9.0|-4.0)",
           ps, ps ? tuna_last_error() : out);
    free(out);
    /* extra variables (tools) are visible, undefined ones render as "" */
    CHECK(render_str("{{ tools[0].name }}|{{ nothing }}|{{ bos_token }}{{ add_generation_prompt }}", msgs, 1, &out) == TUNA_OK);
    CHECK(out && !strcmp(out, "f||<s>true"));
    free(out);
    /* hostile templates stop at the limits instead of hanging: nested loops
     * over large ranges exhaust the working memory (each range is a list)
     * before the step limit; a long loop over one range hits the step limit */
    CHECK(render_str("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", msgs, 0, &out) ==
          TUNA_ERR_FORMAT);
    CHECKF(strstr(tuna_last_error(), "chat template needs more than 20971520 bytes of memory"), "%s", tuna_last_error());
    free(out);
    CHECK(render_str("{% for i in range(20000) %}{% if i and i and i and i and i and i and i and i and i and i %}{% endif %}{% endfor %}",
                     msgs, 0, &out) == TUNA_ERR_FORMAT);
    CHECKF(strstr(tuna_last_error(), "template runs too long (more than 200000 steps)"), "%s", tuna_last_error());
    free(out);
    CHECK(render_str("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
                     msgs, 0, &out) == TUNA_ERR_FORMAT);
    free(out);
    CHECK(render_str("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", msgs, 0, &out) == TUNA_ERR_FORMAT);
    CHECKF(strstr(tuna_last_error(), "deep") != NULL, "%s", tuna_last_error());
    free(out);
    /* deep nesting in the source is refused at compile time */
    char deep[4000];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1000; i++) deep[k++] = '(';
    deep[k] = 0;
    tuna_template *t = NULL;
    CHECK(tuna_template_compile(&t, deep, k) == TUNA_ERR_FORMAT);
    /* built-ins: names and unknown */
    const char *const *names = tuna_template_builtin_names();
    int nb = 0;
    for (; names[nb]; nb++) CHECK(tuna_template_builtin(names[nb]) != NULL);
    CHECK(nb == 5);
    CHECK(tuna_template_builtin("nope") == NULL);
    /* the llama2 built-in refuses roles out of order */
    CHECK(render_str(tuna_template_builtin("llama2"), "[{\"role\":\"assistant\",\"content\":\"x\"}]", 0, &out) == TUNA_ERR_FORMAT);
    CHECK(strstr(tuna_last_error(), "alternate") != NULL);
    free(out);
}

/* Runs `tuna template args` (the CLI built beside this test, see check.h),
 * capturing stdout and the exit code. */
static char *run_cli(const char *args, int *rc, size_t *n) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s template %s 2>/dev/null", test_cli, args);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    *n = 0;
    size_t got;
    while (buf && (got = fread(buf + *n, 1, cap - *n - 1, p)) > 0) {
        *n += got;
        if (*n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (buf) buf[*n] = 0;
    return buf;
}

/* The CLI prints exactly the rendering (no newline added) and maps errors to
 * exit code 2. */
static void test_cli_template(void) {
    if (!test_need_cli("tuna template CLI")) return;
    char msgs[] = "/tmp/tuna_test_template_XXXXXX";
    int fd = mkstemp(msgs);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *conv = "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi \u00fc\\n\"}]";
    CHECK(write(fd, conv, strlen(conv)) == (ssize_t)strlen(conv));
    close(fd);
    char args[2048];
    int rc;
    size_t n;
    snprintf(args, sizeof args, "--template chatml --messages %s --add-generation-prompt", msgs);
    char *out = run_cli(args, &rc, &n);
    const char *want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi \xc3\xbc\n<|im_end|>\n<|im_start|>assistant\n";
    CHECKF(out && rc == 0 && n == strlen(want) && !memcmp(out, want, n), "CLI output '%s' rc %d", out ? out : "(none)", rc);
    free(out);
    const char *smol = test_shared_path("tokenizers/SmolLM2-135M-Instruct/tokenizer_config.json", "tuna template --model");
    if (smol) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", smol);
        *strrchr(dir, '/') = 0;
        snprintf(args, sizeof args, "--model %s --messages %s", dir, msgs);
        out = run_cli(args, &rc, &n);
        const char *w2 = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi \xc3\xbc\n<|im_end|>\n";
        CHECKF(out && rc == 0 && n == strlen(w2) && !memcmp(out, w2, n), "CLI --model output '%s' rc %d", out ? out : "(none)", rc);
        free(out);
    }
    snprintf(args, sizeof args, "--template no-such-template --messages %s", msgs);
    out = run_cli(args, &rc, &n);
    CHECK(out && rc == 2 && n == 0);
    free(out);
    snprintf(args, sizeof args, "--template llama2 --messages %s", msgs); /* a system message only + user: fine */
    out = run_cli(args, &rc, &n);
    CHECK(out && rc == 0 && strstr(out, "<<SYS>>") != NULL);
    free(out);
    unlink(msgs);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    test_parity();
    test_span_fixtures();
    test_spans_exact();
    test_generation_spans();
    test_syntax_errors();
    test_runtime();
    test_cli_template();
    return test_done();
}
