/* train_recipe_out.c — the run's resolved options as recipe.yaml (see
 * train_recipe.h): one "key: value" line per option of the table, in its
 * order; null for what was not given; numbers in the shortest text that
 * reads back as the same float or double, so `--config OUT/recipe.yaml`
 * repeats the run bit for bit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/train_mode.h"
#include "cli/train_recipe.h"

_Static_assert(sizeof(tuna_schedule) == sizeof(int) && sizeof(tuna_truncate) == sizeof(int) &&
                   sizeof(tuna_loss_norm) == sizeof(int) && sizeof(tuna_dpo_loss_type) == sizeof(int),
               "REC_CHOICE reads the enums as int");

/* a YAML double-quoted string */
static void put_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f) fprintf(f, "\\x%02x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

static void put_double(FILE *f, double v) {
    char b[40];
    for (int p = 6; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*g", p, v);
        if (strtod(b, NULL) == v) break;
    }
    fputs(b, f);
}

static void put_float(FILE *f, float v) {
    char b[40];
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)v);
        if ((float)strtod(b, NULL) == v) break;
    }
    fputs(b, f);
}

/* the k-th of choices' '|'-separated names */
static void put_choice(FILE *f, const char *choices, int k) {
    const char *p = choices;
    for (; k > 0 && p; k--) p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL;
    if (!p) { fputs("null", f); return; }
    fprintf(f, "%.*s", (int)(strchr(p, '|') ? (size_t)(strchr(p, '|') - p) : strlen(p)), p);
}

static void put_data(FILE *f, const train_opts *o) {
    if (!o->n_data) { fputs("null", f); return; }
    for (int k = 0; k < o->n_data; k++) {
        fputs(o->any_weight ? "\n  - {path: " : k ? ", " : "[", f);
        put_str(f, o->data_paths[k]);
        if (o->any_weight) { fputs(", weight: ", f); put_double(f, o->data_w[k]); fputc('}', f); }
    }
    if (!o->any_weight) fputc(']', f);
}

static void put_vals(FILE *f, const train_opts *o) {
    if (!o->n_val) { fputs("null", f); return; }
    for (int k = 0; k < o->n_val; k++) {
        fputs(k ? ", " : "[", f);
        put_str(f, o->val_paths[k]);
    }
    fputc(']', f);
}

static void put_rewards(FILE *f, const train_opts *o) {
    if (!o->grpo.n_rewards) { fputs("null", f); return; }
    for (int k = 0; k < o->grpo.n_rewards; k++) {
        fputs(k ? ", " : "[", f);
        put_str(f, o->grpo.rewards[k]);
    }
    fputc(']', f);
}

/* the value of d in o after "key: " */
static void put_value(FILE *f, const train_optdef *d, const train_opts *o) {
    const char *at = (const char *)o + d->off;
    int iv;
    int64_t lv;
    switch (d->rec) {
    case REC_STR: if (*(const char *const *)at) put_str(f, *(const char *const *)at); else fputs("null", f); break;
    case REC_INT: fprintf(f, "%d", *(const int *)at); break;
    case REC_INT_SET: if ((iv = *(const int *)at)) fprintf(f, "%d", iv); else fputs("null", f); break;
    case REC_I64_SET: if ((lv = *(const int64_t *)at)) fprintf(f, "%lld", (long long)lv); else fputs("null", f); break;
    case REC_U64: fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)at); break;
    case REC_FLOAT: put_float(f, *(const float *)at); break;
    case REC_DOUBLE: put_double(f, *(const double *)at); break;
    case REC_FLAG: fputs(*(const int *)at ? "true" : "false", f); break;
    case REC_NOT_FLAG: fputs(*(const int *)at ? "false" : "true", f); break;
    case REC_CHOICE: put_choice(f, d->choices, *(const int *)at); break;
    case REC_DATA: put_data(f, o); break;
    case REC_VALS: put_vals(f, o); break;
    case REC_REWARDS: put_rewards(f, o); break;
    case REC_BETAS: fputc('[', f); put_float(f, o->a.beta1); fputs(", ", f); put_float(f, o->a.beta2); fputc(']', f); break;
    case REC_NONE: break;
    }
}

char *train_recipe_text(const train_opts *o) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fprintf(f, "# tuna %s: every option of this run (its recipe, command line and resolved defaults).\n"
               "# Run it again: tuna %s --config recipe.yaml --out NEW_DIR\n", o->cmd, o->cmd);
    const train_optdef *d;
    for (int k = 0; (d = optab_at(o->mode, k)) != NULL; k++) {
        if (d->rec == REC_NONE) continue;
        for (const char *c = d->name; *c; c++) fputc(*c == '-' ? '_' : *c, f);
        fputs(d->rec == REC_DATA && o->any_weight ? ":" : ": ", f);
        put_value(f, d, o);
        fputc('\n', f);
    }
    if (fclose(f) != 0) { free(buf); return NULL; }
    return buf;
}
