/* input_kind.c — a data input's kind from its name or its first bytes (see
 * input_kind.h). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "io/input_kind.h"

/* 1 when the line starting at offset at of f is one JSON object with a
 * string member key */
static int first_line_is_object(FILE *f, long at, const char *key) {
    if (fseek(f, at, SEEK_SET) != 0) return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    json_error_t err;
    json_t *j = n > 0 ? json_loadb(line, (size_t)n, 0, &err) : NULL;
    int ok = json_is_object(j) && json_is_string(json_object_get(j, key));
    json_decref(j);
    free(line);
    return ok;
}

/* the kind by the first bytes; with key, INPUT_JSONL only when the first line
 * is an object with a string member key (read and parsed) */
static input_kind sniff(FILE *f, const char *key) {
    unsigned char head[4096];
    rewind(f);
    size_t n = fread(head, 1, sizeof head, f);
    input_kind k = INPUT_TEXT;
    size_t i = (n >= 3 && !memcmp(head, "\xEF\xBB\xBF", 3)) ? 3 : 0;
    while (i < n && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n')) i++;
    if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) k = INPUT_GZIP;
    else if (i < n && head[i] == '[') k = INPUT_JSON_ARRAY;
    else if (i < n && head[i] == '{' && (!key || first_line_is_object(f, (long)i, key))) k = INPUT_JSONL;
    clearerr(f);
    rewind(f);
    return k;
}

input_kind input_kind_sniff(FILE *f) { return sniff(f, NULL); }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcasecmp(s + n - m, suffix);
}

int input_kind_is_jsonl(const char *path, FILE *f) {
    if (ends_with(path, ".jsonl")) return 1;
    if (ends_with(path, ".txt")) return 0;
    return sniff(f, "text") == INPUT_JSONL;
}
