/* kto.c — unpaired KTO records (prompt, completion, boolean label) into the
 * rows tuna kto trains on: per item its prompt + completion and the KL row
 * (the same prompt with a mismatched completion), as TRL's KTOTrainer builds
 * them (_get_kl_dataset: completions rolled by one within consecutive chunks
 * of the per-device batch). Encoding reuses the preference encoder (the
 * completion in the chosen response's place), so a completion gets the
 * tokens a DPO chosen response would. */
#include <stdlib.h>
#include <string.h>

#include "data/cache_internal.h"
#include "tuna_dataset.h"
#include "core/error.h"

/* one encoded item, truncated */
typedef struct {
    int32_t *prompt, *completion;
    size_t np, nc;
    uint8_t label;
} kto_item;

typedef struct {
    kto_item *v;
    long n, cap;
} kto_items;

static void items_free(kto_items *it) {
    for (long i = 0; i < it->n; i++) { free(it->v[i].prompt); free(it->v[i].completion); }
    free(it->v);
}

/* rec as a preference record whose chosen and rejected responses are its
 * completion (pointers shared with rec: never cleared); 0 when rec is not a
 * KTO record */
static int as_pair(const tuna_record *rec, tuna_record *f) {
    *f = *rec;
    if (rec->kind == TUNA_RECORD_PROMPT_COMPLETION) {
        f->kind = TUNA_RECORD_PREFERENCE;
        f->chosen = f->rejected = rec->completion;
        return 1;
    }
    if (rec->kind == TUNA_RECORD_PREFERENCE_TOKENS && !rec->rejected_ids) {
        f->rejected_ids = rec->chosen_ids;
        f->n_rejected = rec->n_chosen;
        return 1;
    }
    return 0;
}

/* rec encoded, truncated and appended to it (or counted as dropped) */
static tuna_status add_item(kto_items *it, const tuna_record *rec, tuna_tokenizer *tok, const tuna_template *tmpl,
                            const tuna_kto_options *o, tuna_kto_stats *s) {
    tuna_record f;
    if (!as_pair(rec, &f)) {
        int pair = rec->kind == TUNA_RECORD_PREFERENCE || rec->kind == TUNA_RECORD_PREFERENCE_TOKENS;
        return core_fail(TUNA_ERR_FORMAT, "a %s record in KTO data (tuna kto needs \"prompt\", \"completion\" and \"label\"%s)",
                         pair ? "preference pair (chosen/rejected)" : tuna_record_kind_name(rec->kind),
                         pair ? "; tuna dpo takes pairs" : "");
    }
    if (rec->label < 0) return core_fail(TUNA_ERR_FORMAT, "missing key \"label\" (true: desirable, false: undesirable)");
    tuna_pref_tokens pt;
    tuna_status st = tuna_dataset_encode_preference(&f, tok, tmpl, &pt);
    if (st != TUNA_OK) return st;
    size_t np = pt.n_prompt, nc = pt.n_chosen, skip = 0;
    if (o->max_prompt_len > 0 && np > (size_t)o->max_prompt_len) {
        skip = np - (size_t)o->max_prompt_len; /* keep the end: the part next to the completion */
        np = (size_t)o->max_prompt_len;
        s->prompts_truncated++;
    }
    int keep = !(o->max_len > 0 && np >= (size_t)o->max_len);
    if (keep && o->max_len > 0 && nc > (size_t)o->max_len - np) {
        nc = (size_t)o->max_len - np;
        s->completions_truncated++;
    }
    if (keep && np == 0 && nc < 2) keep = 0; /* the first token is predicted from the prompt's last */
    if (!keep) { s->dropped++; tuna_pref_tokens_free(&pt); return TUNA_OK; }
    if (it->n == it->cap) {
        long cap = it->cap ? 2 * it->cap : 64;
        kto_item *v = realloc(it->v, (size_t)cap * sizeof *v);
        if (!v) { tuna_pref_tokens_free(&pt); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
        it->v = v;
        it->cap = cap;
    }
    kto_item *x = &it->v[it->n++];
    memmove(pt.prompt, pt.prompt + skip, np * sizeof *pt.prompt);
    *x = (kto_item){pt.prompt, pt.chosen, np, nc, (uint8_t)rec->label};
    free(pt.rejected);
    s->desirable += rec->label == 1;
    s->undesirable += rec->label == 0;
    return TUNA_OK;
}

/* p's prompt + c's completion (cut to max_len) into b, the prompt masked */
static int add_row(data_builder *b, const kto_item *p, const kto_item *c, int max_len) {
    size_t np = p->np, nc = c->nc;
    if (max_len > 0 && nc > (size_t)max_len - np) nc = (size_t)max_len - np;
    int32_t *ids = malloc(2 * (np + nc) * sizeof *ids);
    if (!ids) return 0;
    int32_t *labels = ids + np + nc;
    memcpy(ids, p->prompt, np * sizeof *ids);
    memcpy(ids + np, c->completion, nc * sizeof *ids);
    for (size_t i = 0; i < np; i++) labels[i] = -100;
    memcpy(labels + np, c->completion, nc * sizeof *labels);
    int ok = data_builder_add(b, ids, labels, np + nc);
    free(ids);
    return ok;
}

/* the items' rows: each item then its KL row (the previous completion in its chunk) */
static tuna_status build_rows(const kto_items *it, const tuna_kto_options *o, tuna_kto_stats *s, tuna_pretok **out,
                              uint8_t **desirable) {
    data_builder b = {0};
    uint8_t *lab = malloc((size_t)it->n + 1);
    int ok = lab != NULL;
    for (long c0 = 0; ok && c0 < it->n; c0 += o->chunk) {
        long c1 = c0 + o->chunk < it->n ? c0 + o->chunk : it->n;
        for (long i = c0; ok && i < c1; i++) {
            const kto_item *x = &it->v[i], *kl = &it->v[i > c0 ? i - 1 : c1 - 1];
            ok = add_row(&b, x, x, o->max_len) && add_row(&b, x, kl, o->max_len);
            lab[i] = x->label;
            s->tokens += (int64_t)(x->np + x->nc);
            s->counted += (int64_t)x->nc - (x->np == 0);
        }
    }
    tuna_pretok p = {.n = b.n, .off = b.off, .ids = b.ids, .labels = b.labels, .max_len = b.max_len};
    tuna_status st = ok ? pretok_take(&p, out) : core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st != TUNA_OK) { free(b.off); free(b.ids); free(b.labels); free(lab); return st; }
    *desirable = lab;
    return TUNA_OK;
}

tuna_status tuna_dataset_load_kto(const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                                  const tuna_kto_options *o, tuna_pretok **out, uint8_t **desirable, tuna_kto_stats *stats) {
    *out = NULL;
    *desirable = NULL;
    tuna_kto_stats local;
    tuna_kto_stats *s = stats ? stats : &local;
    memset(s, 0, sizeof *s);
    if (o->chunk < 2)
        return core_fail(TUNA_ERR_ARG, "KTO needs a batch of at least 2 items (each item's KL row takes another item's completion)");
    tuna_data_reader *r = NULL;
    tuna_status st = tuna_data_reader_open(&r, path, &o->data);
    if (st != TUNA_OK) return st;
    kto_items it = {0};
    tuna_record rec = {0};
    int got = 1;
    while (st == TUNA_OK) {
        st = tuna_data_reader_next(r, &rec, &got);
        if (st != TUNA_OK || !got) break;
        st = add_item(&it, &rec, tok, tmpl, o, s);
        if (st != TUNA_OK) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", tuna_last_error());
            st = core_fail(st, "%s:%ld: %s", path, rec.line, msg);
        }
    }
    tuna_record_clear(&rec);
    tuna_data_reader_stats(r, &s->data);
    tuna_data_reader_free(r);
    s->items = it.n;
    if (st == TUNA_OK && it.n < 2)
        st = core_fail(TUNA_ERR_FORMAT, "%s: %ld usable KTO items (at least 2 needed%s)", path, it.n,
                       s->dropped ? "; prompts filling --max-len were left out" : "");
    if (st == TUNA_OK) st = build_rows(&it, o, s, out, desirable);
    items_free(&it);
    return st;
}
