/* recipe.c — a recipe file read with libyaml's document loader, then copied
 * into recipe_node's tree (recipe.h) with the checks a recipe needs. The
 * nodes are one array in the document's node order; each sequence or
 * mapping owns its item arrays. Scalars point into the document, which the
 * recipe keeps until recipe_free. */
#include "io/recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/error.h"

enum { RECIPE_MAX_ITEMS = 4096 }; /* items of one sequence or mapping */

struct recipe {
    yaml_document_t doc;
    recipe_node *nodes; /* one per document node (index = node id - 1) */
    unsigned char *seen;
    recipe_node empty;  /* the root of an empty file */
    const recipe_node *root;
    const char *name;
};

static tuna_status bad(const recipe *r, int line, const char *what) {
    return core_fail(TUNA_ERR_FORMAT, "%s:%d: %s", r->name, line, what);
}

static tuna_status build(recipe *r, int id, int depth, recipe_node **out);

/* the items of a sequence (keys NULL) or of a mapping into nd */
static tuna_status build_items(recipe *r, recipe_node *nd, const yaml_node_t *yn, int depth) {
    int is_map = yn->type == YAML_MAPPING_NODE;
    size_t n = is_map ? (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start)
                      : (size_t)(yn->data.sequence.items.top - yn->data.sequence.items.start);
    if (n > RECIPE_MAX_ITEMS) return bad(r, nd->line, "too many items");
    nd->items = calloc(n + 1, sizeof *nd->items);
    if (is_map) nd->keys = calloc(n + 1, sizeof *nd->keys);
    if (!nd->items || (is_map && !nd->keys)) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++, nd->n++) {
        int vid = is_map ? yn->data.mapping.pairs.start[k].value : yn->data.sequence.items.start[k];
        tuna_status st = build(r, vid, depth + 1, &nd->items[k]);
        if (st == TUNA_OK && is_map) st = build(r, yn->data.mapping.pairs.start[k].key, depth + 1, &nd->keys[k]);
        if (st != TUNA_OK) return st;
        if (!is_map) continue;
        const recipe_node *key = nd->keys[k];
        if (key->kind != RECIPE_SCALAR || !key->text[0]) return bad(r, key->line, "a key must be a name");
        for (size_t j = 0; j < k; j++)
            if (!strcmp(nd->keys[j]->text, key->text)) {
                char what[192];
                snprintf(what, sizeof what, "key '%.100s' given twice (first on line %d)", key->text, nd->keys[j]->line);
                return bad(r, key->line, what);
            }
    }
    return TUNA_OK;
}

/* node id (1-based) of the document as *out */
static tuna_status build(recipe *r, int id, int depth, recipe_node **out) {
    yaml_node_t *yn = yaml_document_get_node(&r->doc, id);
    if (!yn) return core_fail(TUNA_ERR_FORMAT, "%s: malformed document", r->name);
    recipe_node *nd = &r->nodes[id - 1];
    nd->line = (int)yn->start_mark.line + 1;
    if (r->seen[id - 1]) return bad(r, nd->line, "aliases (*name) are not supported in a recipe");
    if (depth > RECIPE_MAX_DEPTH) return bad(r, nd->line, "nested too deep");
    r->seen[id - 1] = 1;
    *out = nd;
    if (yn->type == YAML_SCALAR_NODE) {
        nd->kind = RECIPE_SCALAR;
        nd->text = (const char *)yn->data.scalar.value;
        nd->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (strlen(nd->text) != yn->data.scalar.length) return bad(r, nd->line, "a NUL byte in a value");
        return TUNA_OK;
    }
    nd->kind = yn->type == YAML_MAPPING_NODE ? RECIPE_MAP : RECIPE_SEQ;
    return build_items(r, nd, yn, depth);
}

/* the document's tree, after a second document was ruled out */
static tuna_status build_root(recipe *r, yaml_parser_t *p) {
    yaml_document_t next;
    if (!yaml_parser_load(p, &next))
        return core_fail(TUNA_ERR_FORMAT, "%s:%d: %s", r->name, (int)p->problem_mark.line + 1, p->problem ? p->problem : "bad YAML");
    int more = yaml_document_get_root_node(&next) != NULL;
    yaml_document_delete(&next);
    if (more) return core_fail(TUNA_ERR_FORMAT, "%s: more than one YAML document (one recipe per file)", r->name);
    size_t n = (size_t)(r->doc.nodes.top - r->doc.nodes.start);
    r->empty.kind = RECIPE_MAP;
    r->root = &r->empty;
    if (n == 0) return TUNA_OK;
    r->nodes = calloc(n, sizeof *r->nodes);
    r->seen = calloc(n, 1);
    if (!r->nodes || !r->seen) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    recipe_node *root;
    tuna_status st = build(r, 1, 0, &root);
    if (st == TUNA_OK && root->kind != RECIPE_MAP)
        return bad(r, root->line, "a recipe is a mapping of option names to values (name: value lines)");
    if (st == TUNA_OK) r->root = root;
    return st;
}

tuna_status recipe_parse(recipe **out, const char *name, const void *data, size_t len) {
    *out = NULL;
    recipe *r = calloc(1, sizeof *r);
    if (!r) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    r->name = name;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) { free(r); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    yaml_parser_set_input_string(&p, data, len);
    tuna_status st;
    if (!yaml_parser_load(&p, &r->doc)) {
        st = core_fail(TUNA_ERR_FORMAT, "%s:%d: %s%s%s", name, (int)p.problem_mark.line + 1, p.problem ? p.problem : "bad YAML",
                       p.context ? " " : "", p.context ? p.context : "");
        yaml_parser_delete(&p);
        free(r);
        return st;
    }
    st = build_root(r, &p);
    yaml_parser_delete(&p);
    if (st != TUNA_OK) { recipe_free(r); return st; }
    *out = r;
    return TUNA_OK;
}

tuna_status recipe_load(recipe **out, const char *path) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return core_fail(TUNA_ERR_IO, "%s: cannot open recipe", path);
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 65536 > cap) {
            char *nb = realloc(buf, cap = 2 * cap + 65536);
            if (!nb) { free(buf); fclose(f); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0 && len < (64u << 20));
    int err = ferror(f);
    fclose(f);
    tuna_status st = err ? core_fail(TUNA_ERR_IO, "%s: cannot read recipe", path)
                   : len >= (64u << 20) ? core_fail(TUNA_ERR_FORMAT, "%s: larger than 64 MiB: not a recipe", path)
                                        : recipe_parse(out, path, buf, len);
    free(buf); /* the document holds copies of the scalars */
    return st;
}

const recipe_node *recipe_root(const recipe *r) { return r->root; }

const recipe_node *recipe_get(const recipe_node *map, const char *key) {
    for (int k = 0; map && map->kind == RECIPE_MAP && k < map->n; k++)
        if (!strcmp(map->keys[k]->text, key)) return map->items[k];
    return NULL;
}

int recipe_is_null(const recipe_node *nd) {
    if (!nd || nd->kind != RECIPE_SCALAR || !nd->plain) return 0;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t k = 0; k < sizeof nulls / sizeof *nulls; k++)
        if (!strcmp(nd->text, nulls[k])) return 1;
    return 0;
}

void recipe_free(recipe *r) {
    if (!r) return;
    size_t n = r->nodes ? (size_t)(r->doc.nodes.top - r->doc.nodes.start) : 0;
    for (size_t k = 0; k < n; k++) {
        free(r->nodes[k].items);
        free(r->nodes[k].keys);
    }
    free(r->nodes);
    free(r->seen);
    yaml_document_delete(&r->doc);
    free(r);
}
