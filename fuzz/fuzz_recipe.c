/* fuzz_recipe.c — libFuzzer target for recipe files (src/io/recipe.c): any
 * bytes must be read as a recipe or refused with an error status and a
 * "NAME:LINE: ..." detail; a recipe that reads is walked whole (every
 * scalar's text, every mapping's keys looked up) and freed, never crashing
 * or leaking. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/recipe.h"

static size_t walk(const recipe_node *nd, int depth) {
    if (!nd || depth > RECIPE_MAX_DEPTH + 1) abort(); /* the reader bounds the depth */
    if (nd->kind == RECIPE_SCALAR) return strlen(nd->text) + (size_t)recipe_is_null(nd);
    size_t n = 0;
    for (int k = 0; k < nd->n; k++) {
        if (nd->kind == RECIPE_MAP && recipe_get(nd, nd->keys[k]->text) == NULL) abort();
        n += walk(nd->items[k], depth + 1);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    recipe *r = NULL;
    if (recipe_parse(&r, "fuzz.yaml", data, size) != TUNA_OK) {
        if (r) abort();
        return 0;
    }
    const recipe_node *root = recipe_root(r);
    if (!root || root->kind != RECIPE_MAP) abort();
    walk(root, 0);
    recipe_free(r);
    return 0;
}
