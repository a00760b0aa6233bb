/* cmd_template.c — `tuna template`: renders a conversation with a model's
 * chat template (or a built-in one) and prints exactly the rendered string,
 * with no newline added, so its output can be compared byte for byte. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "core/json_error.h"
#include "tokenizer/tok_config.h"
#include "core/error.h"

static void template_usage(FILE *f) {
    fprintf(f,
            "usage: tuna template --model DIR --messages F.json [--add-generation-prompt]\n"
            "                     [--template NAME|FILE] [--print-template]\n\n"
            "Renders the conversation in F.json (a JSON array of {\"role\", \"content\"}, or an\n"
            "object with such a \"messages\" array) with the chat_template of\n"
            "DIR/tokenizer_config.json and prints the exact string.\n\n"
            "  --model DIR              model folder (chat_template, bos_token, eos_token)\n"
            "  --messages F.json        the conversation\n"
            "  --add-generation-prompt  end with the prompt for the assistant's reply\n"
            "  --template NAME|FILE     a built-in template (");
    const char *const *names = tuna_template_builtin_names();
    for (int i = 0; names[i]; i++) fprintf(f, "%s%s", i ? ", " : "", names[i]);
    fprintf(f, ") or a Jinja file,\n"
               "                           used instead of the model's\n"
               "  --print-template         print the template source that would be used, and stop\n");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0) break;
        n += k;
    }
    fclose(f);
    if (buf) {
        char *nb = realloc(buf, n + 1);
        if (nb) buf = nb;
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

/* bos_token / eos_token are strings or AddedToken objects {"content": ...} */
int cmd_template(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { template_usage(stdout); return 0; }
    const char *model = NULL, *messages_path = NULL, *tmpl_arg = NULL;
    int agp = 0, print_src = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--add-generation-prompt")) { agp = 1; continue; }
        if (!strcmp(a, "--print-template")) { print_src = 1; continue; }
        const char **dst = !strcmp(a, "--model") ? &model : !strcmp(a, "--messages") ? &messages_path
                         : !strcmp(a, "--template") ? &tmpl_arg : NULL;
        if (!dst) return cli_usage_error("template: unknown option '%s' (try tuna template --help)", a);
        if (i + 1 >= argc) return cli_usage_error("%s needs a value", a);
        *dst = argv[++i];
    }
    if (!messages_path && !print_src) return cli_usage_error("template: --messages is required");
    if (!model && !tmpl_arg) return cli_usage_error("template: --model or --template is required");

    int rc = 2;
    json_t *cfg = NULL, *msgs = NULL;
    char *src_buf = NULL, *out = NULL;
    tuna_template *t = NULL;
    const char *src = NULL;
    size_t src_len = 0;
    tuna_template_vars vars = {0};
    vars.add_generation_prompt = agp;
    json_error_t je;

    if (model) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizer_config.json", model);
        cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
        if (!cfg) { rc = cli_usage_error("%s: line %d: %s", path, je.line, tuna_json_error_text(&je)); goto done; }
        jkeys r = {cfg, path, "", json_is_object(cfg) ? TUNA_OK : core_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", path)};
        vars.bos_token = tk_config_token(&r, "bos_token");
        vars.eos_token = tk_config_token(&r, "eos_token");
        src = tk_config_template(&r);
        if (r.st != TUNA_OK) { rc = cli_status_error(r.st); goto done; }
        if (src) src_len = strlen(src);
        if (!src && !tmpl_arg) {
            rc = cli_usage_error("%s has no chat_template; pass --template NAME (chatml, llama3, llama2, alpaca, zephyr) or a file", path);
            goto done;
        }
    }
    if (tmpl_arg) {
        src = tuna_template_builtin(tmpl_arg);
        if (src) src_len = strlen(src);
        else {
            src_buf = read_file(tmpl_arg, &src_len);
            if (!src_buf) {
                rc = cli_usage_error("--template: '%s' is neither a built-in template nor a readable file", tmpl_arg);
                goto done;
            }
            src = src_buf;
        }
    }
    if (print_src) {
        rc = fwrite(src, 1, src_len, stdout) == src_len && fflush(stdout) == 0 ? 0 : 1;
        goto done;
    }
    msgs = json_load_file(messages_path, 0, &je);
    if (!msgs) { rc = cli_usage_error("%s: line %d: %s", messages_path, je.line, tuna_json_error_text(&je)); goto done; }
    if (json_is_object(msgs) && json_is_array(json_object_get(msgs, "messages"))) {
        json_t *m = json_incref(json_object_get(msgs, "messages"));
        json_decref(msgs);
        msgs = m;
    }
    if (!json_is_array(msgs)) { rc = cli_usage_error("%s: expected a JSON array of messages", messages_path); goto done; }

    tuna_status s = tuna_template_compile(&t, src, src_len);
    if (s) { rc = cli_status_error(s); goto done; }
    size_t n;
    s = tuna_template_render(t, msgs, &vars, &out, &n);
    if (s) { rc = cli_status_error(s); goto done; }
    rc = fwrite(out, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
    if (rc) fprintf(stderr, "tuna: error: cannot write the output\n");
done:
    free(out);
    tuna_template_free(t);
    free(src_buf);
    json_decref(msgs);
    json_decref(cfg);
    return rc;
}
