/* hub_select.c — a pull's file selection (hub_select.h). */
#include "hub/hub_select.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "hub/hub_id.h"

static const char *const wanted[] = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja", "chat_template.json",
    "adapter_config.json", "adapter_model.safetensors", HUB_INDEX_NAME};

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

static int by_default(const char *path, const hub_shards *idx) {
    if (strchr(path, '/')) return 0;
    for (size_t k = 0; k < sizeof wanted / sizeof *wanted; k++)
        if (!strcmp(path, wanted[k])) return 1;
    if (!ends_with(path, ".safetensors")) return 0;
    if (!idx) return 1;
    for (int k = 0; k < idx->n; k++)
        if (!strcmp(path, idx->names[k])) return 1;
    return 0;
}

static int glob_match(const char *glob, const char *path) {
    size_t n = strlen(glob);
    if (n && glob[n - 1] == '/') return !strncmp(glob, path, n); /* a folder */
    return fnmatch(glob, path, 0) == 0;
}

int hub_selected(const char *path, const tuna_hub_opts *o, const hub_shards *idx) {
    int take = o && o->n_include ? 0 : by_default(path, idx);
    for (int k = 0; o && k < o->n_include && !take; k++) take = glob_match(o->include[k], path);
    for (int k = 0; o && k < o->n_exclude && take; k++) take = !glob_match(o->exclude[k], path);
    return take;
}

static tuna_status add_shard(hub_shards *s, const char *name) {
    for (int k = 0; k < s->n; k++)
        if (!strcmp(s->names[k], name)) return TUNA_OK;
    char **grown = realloc(s->names, (size_t)(s->n + 1) * sizeof *grown);
    if (!grown) return core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    s->names = grown;
    if (!(s->names[s->n] = strdup(name))) return core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    s->n++;
    return TUNA_OK;
}

tuna_status hub_shards_parse(const char *json, size_t len, hub_shards *s) {
    s->names = NULL, s->n = 0;
    json_error_t e;
    json_t *root = json_loadb(json, len, 0, &e), *map = json_object_get(root, "weight_map");
    tuna_status st = json_is_object(map) ? TUNA_OK
                     : core_fail(TUNA_ERR_FORMAT, "%s: no weight_map object (line %d: %s)", HUB_INDEX_NAME, e.line, root ? "" : e.text);
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        if (st) break;
        const char *f = json_string_value(v);
        st = f && hub_path_ok(f) ? add_shard(s, f) : core_fail(TUNA_ERR_FORMAT, "%s: weight_map[\"%.100s\"] is not a file name", HUB_INDEX_NAME, key);
    }
    json_decref(root);
    if (st) hub_shards_free(s);
    return st;
}

void hub_shards_free(hub_shards *s) {
    for (int k = 0; k < s->n; k++) free(s->names[k]);
    free(s->names);
    s->names = NULL, s->n = 0;
}
