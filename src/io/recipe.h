/* recipe.h — reading a recipe file: YAML 1.1 through libyaml (so JSON too)
 * into a small tree of scalars, sequences and mappings, each node with the
 * line it starts on, for the CLI to map onto its options (train_recipe.c).
 * The reader knows no option names; it refuses what no recipe needs:
 * a root that is not a mapping, keys that are not plain names, a key given
 * twice in one mapping, aliases (one node reached twice), NUL bytes in a
 * value and nesting deeper than RECIPE_MAX_DEPTH. An empty file is an empty
 * mapping. Internal to libtuna. */
#ifndef TUNA_IO_RECIPE_H
#define TUNA_IO_RECIPE_H
#include <stddef.h>

#include "tuna.h"

enum { RECIPE_MAX_DEPTH = 8 };

typedef enum { RECIPE_SCALAR, RECIPE_SEQ, RECIPE_MAP } recipe_kind;

typedef struct recipe_node {
    recipe_kind kind;
    int line;                   /* 1-based line where the node starts */
    const char *text;           /* SCALAR: its text, NUL-terminated */
    int plain;                  /* SCALAR: written without quotes (null, true, false are words only then) */
    int n;                      /* SEQ, MAP: number of items */
    struct recipe_node **items; /* SEQ, MAP: the items (MAP: the values) */
    struct recipe_node **keys;  /* MAP: the keys, scalars */
} recipe_node;

typedef struct recipe recipe;

/* Reads path (name, e.g. "recipe.yaml", is used in messages; NULL: path).
 * TUNA_OK and *out (free with recipe_free), or TUNA_ERR_IO (cannot read) /
 * TUNA_ERR_FORMAT with "NAME:LINE: what is wrong" recorded; *out NULL. */
tuna_status recipe_load(recipe **out, const char *path);
/* The same from len bytes in memory, named name in messages. */
tuna_status recipe_parse(recipe **out, const char *name, const void *data, size_t len);
/* The root mapping; valid until recipe_free. */
const recipe_node *recipe_root(const recipe *r);
/* The item of map under key (exact match), or NULL. */
const recipe_node *recipe_get(const recipe_node *map, const char *key);
/* 1 when node is a plain null (null, Null, NULL, ~ or nothing), else 0. */
int recipe_is_null(const recipe_node *node);
void recipe_free(recipe *r);
#endif
