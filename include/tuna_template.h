/* tuna_template.h — chat templates: a Jinja interpreter that renders a
 * conversation byte-for-byte as Hugging Face's reference renderer
 * (@huggingface/jinja, used by transformers.js) does, built-in templates for
 * models that ship none, and the assistant spans SFT needs for its loss mask.
 *
 * Compilation applies HF's settings (trim_blocks, lstrip_blocks, one trailing
 * newline dropped). Values seen by templates are the JSON value model
 * (dicts, lists, strings, numbers, booleans, null) plus undefined, which
 * renders as "" like jinja2's default Undefined.
 * Known differences from the reference (documented, not hidden): strings are
 * indexed and sliced by code point (JS indexes by UTF-16 unit), upper/lower use
 * the C library's Unicode case tables plus JS's one-to-many mappings for
 * "ß" and ligatures, printing a function gives "[function]" (JS prints its
 * source), a list compared with == to a string is unequal (JS compares its
 * string form), and the {% call %} block, argument unpacking (*args,
 * **kwargs) and macros' varargs/kwargs are not supported. */
#ifndef TUNA_TEMPLATE_H
#define TUNA_TEMPLATE_H
#include "tuna.h"
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct json_t; /* jansson */

typedef struct tuna_template tuna_template;

/* Variables besides `messages` given to a rendering. NULL strings are left
 * undefined. extra_json, when not NULL, is a JSON object whose members become
 * more variables (e.g. "tools"). Limits bound hostile templates: 0 = default
 * (max_bytes: 64 MiB of output, working memory 4 x max_bytes + 16 MiB;
 * max_steps: 10 million evaluation steps). */
typedef struct {
    const char *bos_token;
    const char *eos_token;
    int add_generation_prompt;
    const char *extra_json;
    size_t max_bytes;
    long max_steps;
} tuna_template_vars;

/* Compiles template source (len bytes, need not be NUL-terminated). On
 * success *out owns the template (free with tuna_template_free). Syntax errors
 * return TUNA_ERR_FORMAT with "line L, column C: <what>" (1-based; columns
 * count characters of the original source). */
tuna_status tuna_template_compile(tuna_template **out, const char *src, size_t len);
void tuna_template_free(tuna_template *t);
/* Threads: rendering only reads a compiled template (each call keeps its own
 * state), so several threads may render one template at once. */

/* Renders messages (a JSON array of objects with at least "role" and
 * "content"; other keys are visible too) with vars (NULL = all defaults).
 * On success *out is a NUL-terminated malloc'd string the caller frees and
 * *out_len (may be NULL) its length. raise_exception(msg) in the template
 * fails with TUNA_ERR_FORMAT and detail "chat template raised an error: <msg>";
 * other runtime errors give "chat template: line L, column C: <what>". */
tuna_status tuna_template_render(const tuna_template *t, const struct json_t *messages,
                                 const tuna_template_vars *vars, char **out, size_t *out_len);

/* Source of a built-in template ("chatml", "llama3", "llama2", "alpaca",
 * "zephyr"), or NULL for an unknown name. Static storage. */
const char *tuna_template_builtin(const char *name);
/* NULL-terminated list of the built-in names. */
const char *const *tuna_template_builtin_names(void);

/* One assistant turn in a rendered conversation: bytes [begin, end) of the
 * full text, for messages[message]. */
typedef struct {
    size_t begin, end;
    int message;
} tuna_template_span;

/* Renders the whole conversation (add_generation_prompt false, whatever vars
 * says) and finds, for every message with role "assistant", the bytes that
 * belong to it, by rendering prefixes of the conversation (never by searching
 * for strings). With R(k, g) = the rendering of messages[0..k) with
 * add_generation_prompt = g, the span of assistant message i is
 *   begin = len R(i, true)       (after the prompt and the generation prompt)
 *   end   = len R(i + 1, false)  (after the content and whatever end-of-turn
 *                                 text the template writes after it, e.g.
 *                                 "<|im_end|>\n"; for the last message, the
 *                                 end of the full text).
 * Both prefix renderings must be prefixes of the full text, otherwise
 * TUNA_ERR_UNSUPPORTED names the message (templates that write different text
 * at the end of a conversation than between turns cannot be split this way).
 * A template with {% generation %} ... {% endgeneration %} blocks (the tags
 * transformers uses for return_assistant_tokens_mask) gets those blocks
 * instead: one span per block, in order; message is the index of the
 * matching assistant message when there is one block per assistant message,
 * else -1. Blocks inside macros or set blocks do not count.
 * On success *text (malloc'd, NUL-terminated, length *text_len) is the full
 * rendering and *spans (malloc'd) holds *n_spans spans in message order; the
 * caller frees both. */
tuna_status tuna_template_assistant_spans(const tuna_template *t, const struct json_t *messages,
                                          const tuna_template_vars *vars, char **text,
                                          size_t *text_len, tuna_template_span **spans,
                                          int *n_spans);

#ifdef __cplusplus
}
#endif
#endif
