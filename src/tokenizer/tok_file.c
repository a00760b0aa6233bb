/* tok_file.c — reading the tokenizer's files: a whole file into memory, a
 * JSON file parsed with its path in the message, and path helpers. Shared by
 * the opening (tok_open.c) and the readers (tok_llama2c.c, tok_slow_bpe.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tok_internal.h"
#include "core/error.h"

tuna_status tk_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return core_fail(TUNA_ERR_IO, "%s: %s", path, strerror(errno));
    tk_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (tk_buf_put(&b, chunk, k)) { fclose(f); tk_buf_free(&b); return core_fail(TUNA_ERR_NOMEM, "%s: out of memory", path); }
    int err = ferror(f);
    fclose(f);
    if (err) { tk_buf_free(&b); return core_fail(TUNA_ERR_IO, "%s: read error", path); }
    if (!b.p && tk_buf_put(&b, "", 0)) return core_fail(TUNA_ERR_NOMEM, "%s: out of memory", path);
    *data = b.p;
    *len = b.n;
    return TUNA_OK;
}

int tk_is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

char *tk_join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* int_as_real: for config files, whose model_max_length can be 1e30 written
 * as an integer, which jansson refuses; their ids are then read as numbers. */
json_t *tk_load_json_file(const char *path, int int_as_real, tuna_status *st) {
    char *data;
    size_t len;
    *st = tk_read_file(path, &data, &len);
    if (*st) return NULL;
    json_error_t e;
    json_t *j = json_loadb(data, len, int_as_real ? JSON_DECODE_INT_AS_REAL : 0, &e);
    free(data);
    if (!j) *st = core_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, e.line, e.text);
    return j;
}
