/* train_recipe.c — `--config RECIPE` of sft, dpo and pretrain turned into
 * options (train_recipe.h): each key of the recipe's mapping is checked
 * against the command's option table and becomes "--name value" (a flag:
 * true/false; a list of values for a single-value option: joined with ',';
 * a repeatable option: one --name per item, --data items also as {path,
 * weight}), remembered with its FILE:LINE for the parser's messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/train_mode.h"
#include "cli/train_recipe.h"
#include "core/error.h"
#include "io/recipe.h"

static int nomem(void) { return cli_status_error(core_fail(TUNA_ERR_NOMEM, "out of memory")); }

static char *own(train_argv *a, char *s) {
    if (!s) return NULL;
    if (a->n_owned == a->cap_owned) {
        int cap = a->cap_owned ? 2 * a->cap_owned : 32;
        char **n = realloc(a->owned, (size_t)cap * sizeof *n);
        if (!n) { free(s); return NULL; }
        a->owned = n;
        a->cap_owned = cap;
    }
    return a->owned[a->n_owned++] = s;
}

/* one entry at the end of a's argv: 0, or -1 out of memory */
static int push(train_argv *a, const char *arg, const char *where) {
    if (!arg) return -1;
    if (a->argc + 1 >= a->cap) {
        int cap = a->cap ? 2 * a->cap : 64;
        char **v = realloc(a->argv, (size_t)cap * sizeof *v);
        if (v) a->argv = v;
        const char **w = v ? realloc(a->where, (size_t)cap * sizeof *w) : NULL;
        if (!w) return -1;
        a->where = w;
        a->cap = cap;
    }
    a->argv[a->argc] = (char *)arg;
    a->where[a->argc++] = where;
    a->argv[a->argc] = NULL;
    return 0;
}

static char *str_printf(const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a, b);
    return s;
}

void train_argv_free(train_argv *a) {
    for (int k = 0; k < a->n_owned; k++) free(a->owned[k]);
    free(a->owned);
    free(a->argv);
    free(a->where);
    recipe_free(a->rec);
    memset(a, 0, sizeof *a);
}

/* a plain true/false (YAML 1.1's yes/no/on/off too): 1, 0, or -1 when not one */
static int boolean(const recipe_node *v) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int k = 0; v->kind == RECIPE_SCALAR && v->plain && k < 3; k++) {
        if (!strcasecmp(v->text, yes[k])) return 1;
        if (!strcasecmp(v->text, no[k])) return 0;
    }
    return -1;
}

typedef struct {
    train_argv *a;
    const char *file, *key, *opt; /* opt: "--name" */
} item_ctx;

static const char *where(item_ctx *c, int line) {
    char num[16];
    snprintf(num, sizeof num, "%d", line);
    return own(c->a, str_printf("%s:%s", c->file, num));
}

static int type_error(item_ctx *c, const recipe_node *v, const char *what) {
    if (v->kind == RECIPE_SCALAR) return cli_usage_error("%s:%d: '%s' %s (got '%s')", c->file, v->line, c->key, what, v->text);
    return cli_usage_error("%s:%d: '%s' %s", c->file, v->line, c->key, what);
}

/* "--opt value" from a recipe value node */
static int push_value(item_ctx *c, const char *value, int line) {
    const char *w = where(c, line);
    return w && !push(c->a, c->opt, w) && !push(c->a, value, w) ? 0 : nomem();
}

/* a sequence of scalars as "a,b,c" */
static int push_joined(item_ctx *c, const recipe_node *v) {
    size_t n = 1;
    for (int k = 0; k < v->n; k++) {
        if (v->items[k]->kind != RECIPE_SCALAR) return type_error(c, v->items[k], "takes one value or a list of plain values");
        n += strlen(v->items[k]->text) + 1;
    }
    char *s = own(c->a, calloc(n, 1));
    if (!s) return nomem();
    for (int k = 0; k < v->n; k++) {
        if (k) strcat(s, ",");
        strcat(s, v->items[k]->text);
    }
    return push_value(c, s, v->line);
}

/* one item of a repeatable option: a value, or {path: P, weight: W} (weight: --data only) */
static int push_item(item_ctx *c, const recipe_node *v) {
    if (v->kind == RECIPE_SCALAR) return recipe_is_null(v) ? 0 : push_value(c, v->text, v->line);
    if (v->kind != RECIPE_MAP) return type_error(c, v, "items are paths or {path: FILE, weight: W}");
    const recipe_node *path = recipe_get(v, "path"), *weight = recipe_get(v, "weight");
    for (int k = 0; k < v->n; k++)
        if (strcmp(v->keys[k]->text, "path") && (strcmp(v->keys[k]->text, "weight") || strcmp(c->key, "data")))
            return cli_usage_error("%s:%d: unknown key '%s' in an item of '%s' (path%s)", c->file, v->keys[k]->line,
                                   v->keys[k]->text, c->key, strcmp(c->key, "data") ? "" : ", weight");
    if (!path || path->kind != RECIPE_SCALAR || recipe_is_null(path)) return type_error(c, v, "item needs a path");
    if (!weight) return push_value(c, path->text, path->line);
    char *end;
    if (weight->kind != RECIPE_SCALAR || (strtod(weight->text, &end), end == weight->text || *end))
        return type_error(c, weight, "weight must be a number");
    char *s = own(c->a, str_printf("%s:%s", path->text, weight->text));
    return s ? push_value(c, s, v->line) : nomem();
}

/* the options of one key's value */
static int push_key(item_ctx *c, const train_optdef *d, const recipe_node *v) {
    if (recipe_is_null(v)) return 0; /* not given */
    if (d->arity == OPT_FLAG) {
        int b = boolean(v);
        if (b < 0) return type_error(c, v, "is a flag: true or false");
        const char *w = b ? where(c, v->line) : NULL;
        return !b ? 0 : w && !push(c->a, c->opt, w) ? 0 : nomem();
    }
    if (d->arity == OPT_LIST && v->kind == RECIPE_SEQ) {
        int rc = 0;
        for (int k = 0; !rc && k < v->n; k++) rc = push_item(c, v->items[k]);
        return rc;
    }
    if (d->arity == OPT_LIST) return push_item(c, v);
    if (v->kind == RECIPE_SEQ) return push_joined(c, v);
    if (v->kind == RECIPE_MAP) return type_error(c, v, "takes a value, not a mapping");
    return push_value(c, v->text, v->line);
}

/* the repeatable option name (no "--") given on the command line */
static int given_on_line(const train_mode *mode, int argc, char **argv, const train_optdef *d) {
    for (int i = 1; i < argc; i++) {
        const train_optdef *e = !strncmp(argv[i], "--", 2) ? optab_find(mode, argv[i] + 2, 0) : NULL;
        if (e == d) return 1;
        if (e && e->arity != OPT_FLAG) i++;
    }
    return 0;
}

/* every key of the recipe at path as options */
static int push_recipe(train_argv *a, const train_mode *mode, const char *path, int argc, char **argv) {
    tuna_status st = recipe_load(&a->rec, path);
    if (st != TUNA_OK) return cli_status_error(st);
    const recipe_node *root = recipe_root(a->rec);
    for (int k = 0; k < root->n; k++) {
        const char *key = root->keys[k]->text;
        int line = root->keys[k]->line;
        if (!strcmp(key, "config"))
            return cli_usage_error("%s:%d: 'config' in a recipe: recipes do not nest%s", path, line,
                                   strcmp(mode->name, "pretrain") ? "" : " (the architecture is 'arch')");
        const train_optdef *d = optab_find(mode, key, 1);
        if (!d) {
            char keys[2048];
            optab_keys(mode, keys, sizeof keys);
            return cli_usage_error("%s:%d: unknown key '%s' (tuna %s options: %s)", path, line, key, mode->name, keys);
        }
        for (int j = 0; j < k; j++)
            if (optab_find(mode, root->keys[j]->text, 1) == d)
                return cli_usage_error("%s:%d: key '%s' given twice (first on line %d as '%s')", path, line, key, root->keys[j]->line,
                                       root->keys[j]->text);
        if (d->arity == OPT_LIST && given_on_line(mode, argc, argv, d)) continue; /* the command line's list wins */
        item_ctx c = {a, path, key, own(a, str_printf("--%s%s", d->name, ""))};
        int rc = c.opt ? push_key(&c, d, root->items[k]) : nomem();
        if (rc) return rc;
    }
    return 0;
}

/* pretrain's --config ARCH.json of old: an HF config, not a recipe (a pipe
 * is read once, as a recipe) */
static int is_hf_config(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    json_t *j = json_load_file(path, 0, NULL);
    int yes = json_is_object(j) && (json_object_get(j, "model_type") || json_object_get(j, "architectures"));
    json_decref(j);
    return yes;
}

/* the index of --config in argv (0: none); 2 after printing when it is bad */
static int find_config(const train_mode *mode, int argc, char **argv, int *at) {
    *at = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (*at)
                return cli_usage_error("%s: --config given twice%s", mode->name,
                                       strcmp(mode->name, "pretrain") ? "" : " (a recipe and an architecture: name the architecture with --arch)");
            if (i + 1 == argc) return cli_usage_error("%s: --config needs a file", mode->name);
            *at = i++;
            continue;
        }
        const train_optdef *d = !strncmp(argv[i], "--", 2) ? optab_find(mode, argv[i] + 2, 0) : NULL;
        if (d && d->arity != OPT_FLAG) i++;
    }
    return 0;
}

int train_recipe_expand(train_argv *out, const train_mode *mode, int argc, char **argv) {
    memset(out, 0, sizeof *out);
    int at, rc = find_config(mode, argc, argv, &at);
    if (rc) return rc;
    if (push(out, argv[0], NULL)) return nomem();
    int arch = at && !strcmp(mode->name, "pretrain") && is_hf_config(argv[at + 1]);
    if (at && !arch && (rc = push_recipe(out, mode, argv[at + 1], argc, argv)) != 0) return rc;
    for (int i = 1; i < argc; i++) {
        if (i == at && !arch) { i++; continue; }
        if (push(out, i == at ? "--arch" : argv[i], NULL)) return nomem();
    }
    return 0;
}
