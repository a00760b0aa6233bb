/* fuzz_template.c — libFuzzer target for chat templates: compiles arbitrary
 * bytes as a template and renders it against a fixed conversation. Must never
 * crash, leak or hang; small limits (output, steps) keep each input fast, and
 * compile/render errors are expected outcomes, not findings. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include "tuna.h"

static const char *CONVERSATION =
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"Hi \\\"there\\\" \\u00fc\\n\"},"
    "{\"role\":\"assistant\",\"content\":\"Hello.\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1.5}}}]},"
    "{\"role\":\"user\",\"content\":\"Bye\"}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *msgs;
    if (!msgs) {
        json_error_t je;
        msgs = json_loads(CONVERSATION, 0, &je);
        if (!msgs) abort();
    }
    tuna_template *t = NULL;
    if (tuna_template_compile(&t, (const char *)data, size) != TUNA_OK) return 0;
    tuna_template_vars v = {"<s>", "</s>", (int)(size & 1), "{\"tools\":[{\"name\":\"f\"}]}", 1 << 16, 20000};
    char *out = NULL;
    size_t n = 0;
    if (tuna_template_render(t, msgs, &v, &out, &n) == TUNA_OK) {
        if (out[n] != 0) abort(); /* the result is NUL-terminated */
        free(out);
    }
    if (size < 4096) { /* spans render prefixes: quadratic, so only small inputs */
        char *text = NULL;
        tuna_template_span *sp = NULL;
        int ns = 0;
        if (tuna_template_assistant_spans(t, msgs, &v, &text, &n, &sp, &ns) == TUNA_OK) {
            for (int i = 0; i < ns; i++)
                if (sp[i].begin > sp[i].end || sp[i].end > n) abort();
            free(text);
            free(sp);
        }
    }
    tuna_template_free(t);
    return 0;
}
