/* preference.c — preference records (prompt, chosen, rejected) into the token
 * pairs DPO trains on. The split between prompt and response follows TRL
 * (render the prompt with the generation prompt, take each response as the
 * rest of its full rendering); the prompt/stop-token conventions follow
 * tuna's SFT encoding, so a model sees the same tokens in SFT and DPO.
 * Pairs are stored as two consecutive sequences of a tuna_pretok with the
 * prompt masked, so the trainer's row losses are minus the responses'
 * log-probabilities. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "data/cache_internal.h"
#include "tuna_dataset.h"
#include "core/error.h"

void tuna_pref_tokens_free(tuna_pref_tokens *p) {
    if (!p) return;
    free(p->prompt);
    free(p->chosen);
    free(p->rejected);
    memset(p, 0, sizeof *p);
}

static tuna_status nomem(void) { return core_fail(TUNA_ERR_NOMEM, "out of memory"); }

static int32_t *dup_ids(const int32_t *a, int64_t n) {
    int32_t *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    if (d && n) memcpy(d, a, (size_t)n * sizeof *d);
    return d;
}

static tuna_status render(const tuna_template *tmpl, tuna_tokenizer *tok, const tuna_message *a, int na,
                          const tuna_message *b, int nb, int gen, char **out, size_t *len) {
    tuna_message *all = malloc((size_t)(na + nb + 1) * sizeof *all);
    if (!all) return nomem();
    if (na) memcpy(all, a, (size_t)na * sizeof *all);
    if (nb) memcpy(all + na, b, (size_t)nb * sizeof *all);
    json_t *arr = tuna_messages_to_json(all, na + nb);
    free(all);
    if (!arr) return nomem();
    tuna_template_vars v = {0};
    v.bos_token = tuna_tokenizer_bos_token(tok);
    v.eos_token = tuna_tokenizer_eos_token(tok);
    v.add_generation_prompt = gen;
    tuna_status st = tuna_template_render(tmpl, arr, &v, out, len);
    json_decref(arr);
    return st;
}

/* Response text -> ids: no special tokens added; cut after the last stop token
 * (text a template writes after it is not the model's to learn), or EOS
 * appended when there is none. */
static tuna_status encode_response(tuna_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n) {
    int32_t *raw = NULL;
    size_t nr = 0;
    tuna_status st = tuna_tokenizer_encode(tok, text, len, 0, &raw, &nr);
    if (st != TUNA_OK) return st;
    int32_t eos = tuna_tokenizer_eos_id(tok);
    size_t keep = nr;
    int have_stop = 0;
    for (size_t i = nr; i-- > 0;)
        if (raw[i] == eos || tuna_tokenizer_is_special(tok, raw[i])) { keep = i + 1; have_stop = 1; break; }
    int32_t *r = realloc(raw, (keep + 2) * sizeof *r);
    if (!r) { free(raw); return nomem(); }
    if (!have_stop && eos >= 0) r[keep++] = eos;
    *ids = r;
    *n = keep;
    return TUNA_OK;
}

/* length of the common prefix of a and b, backed up to a UTF-8 character start */
static size_t common_prefix(const char *a, size_t na, const char *b, size_t nb) {
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    if (k < na || k < nb)
        while (k > 0 && ((unsigned char)(k < na ? a[k] : b[k]) & 0xC0) == 0x80) k--;
    return k;
}

tuna_status tuna_dataset_encode_preference(const tuna_record *rec, tuna_tokenizer *tok, const tuna_template *tmpl,
                                           tuna_pref_tokens *out) {
    memset(out, 0, sizeof *out);
    if (rec->kind == TUNA_RECORD_PREFERENCE_TOKENS) {
        if (!rec->rejected_ids)
            return core_fail(TUNA_ERR_FORMAT, "a KTO record (completion_ids) in preference data (tuna dpo needs chosen/rejected pairs; tuna kto takes these)");
        out->prompt = dup_ids(rec->input_ids, rec->n_ids);
        out->chosen = dup_ids(rec->chosen_ids, rec->n_chosen);
        out->rejected = dup_ids(rec->rejected_ids, rec->n_rejected);
        if (!out->prompt || !out->chosen || !out->rejected) { tuna_pref_tokens_free(out); return nomem(); }
        out->n_prompt = (size_t)rec->n_ids;
        out->n_chosen = (size_t)rec->n_chosen;
        out->n_rejected = (size_t)rec->n_rejected;
        return TUNA_OK;
    }
    if (rec->kind != TUNA_RECORD_PREFERENCE)
        return core_fail(TUNA_ERR_FORMAT, "a %s record in preference data (tuna dpo needs chosen/rejected pairs)",
                         tuna_record_kind_name(rec->kind));
    if (!tok) return core_fail(TUNA_ERR_ARG, "text preference records need a tokenizer (the model folder has none)");
    char *texts[3] = {NULL, NULL, NULL};
    size_t lens[3] = {0, 0, 0};
    const char *resp[2];
    size_t rlen[2];
    tuna_status st = TUNA_OK;
    if (rec->chosen.is_messages) {
        if (!tmpl)
            return core_fail(TUNA_ERR_ARG, "the model has no chat template (tokenizer_config.json chat_template); pass --template NAME|FILE");
        st = render(tmpl, tok, rec->prompt.msgs, rec->prompt.n, NULL, 0, 1, &texts[0], &lens[0]);
        if (st == TUNA_OK) st = render(tmpl, tok, rec->prompt.msgs, rec->prompt.n, rec->chosen.msgs, rec->chosen.n, 0, &texts[1], &lens[1]);
        if (st == TUNA_OK) st = render(tmpl, tok, rec->prompt.msgs, rec->prompt.n, rec->rejected.msgs, rec->rejected.n, 0, &texts[2], &lens[2]);
        if (st == TUNA_OK) {
            /* TRL: the prompt is what the renderings share (a no-op unless the
             * generation prompt differs from the start of the assistant turn) */
            size_t p = common_prefix(texts[0], lens[0], texts[1], lens[1]);
            size_t q = common_prefix(texts[0], p, texts[2], lens[2]);
            lens[0] = q;
            texts[0][q] = 0;
            resp[0] = texts[1] + q;
            rlen[0] = lens[1] - q;
            resp[1] = texts[2] + q;
            rlen[1] = lens[2] - q;
        }
    } else {
        if (!(texts[0] = malloc(rec->prompt.len + 1))) st = nomem();
        else {
            if (rec->prompt.len) memcpy(texts[0], rec->prompt.text, rec->prompt.len);
            texts[0][rec->prompt.len] = 0;
            lens[0] = rec->prompt.len;
        }
        resp[0] = rec->chosen.text;
        rlen[0] = rec->chosen.len;
        resp[1] = rec->rejected.text;
        rlen[1] = rec->rejected.len;
    }
    if (st == TUNA_OK && (rlen[0] == 0 || rlen[1] == 0))
        st = core_fail(TUNA_ERR_FORMAT, "the template renders an empty %s response", rlen[0] == 0 ? "chosen" : "rejected");
    if (st == TUNA_OK) st = tuna_dataset_encode_text(tok, texts[0], lens[0], &out->prompt, &out->n_prompt);
    if (st == TUNA_OK) st = encode_response(tok, resp[0], rlen[0], &out->chosen, &out->n_chosen);
    if (st == TUNA_OK) st = encode_response(tok, resp[1], rlen[1], &out->rejected, &out->n_rejected);
    for (int k = 0; k < 3; k++) free(texts[k]);
    if (st != TUNA_OK) tuna_pref_tokens_free(out);
    return st;
}

/* prompt + response into the builder, the prompt masked (-100); scratch
 * holds 2 x (np + nr) ints */
static int add_pair_row(data_builder *b, int32_t *scratch, const int32_t *prompt, size_t np, const int32_t *resp, size_t nr) {
    int32_t *ids = scratch, *labels = scratch + np + nr;
    memcpy(ids, prompt, np * sizeof *ids);
    memcpy(ids + np, resp, nr * sizeof *ids);
    for (size_t i = 0; i < np; i++) labels[i] = -100;
    memcpy(labels + np, resp, nr * sizeof *labels);
    return data_builder_add(b, ids, labels, np + nr);
}

/* b's sequences as a new data set *out (b's arrays move into it) */
static tuna_status builder_to_pretok(data_builder *b, tuna_pretok **out) {
    tuna_pretok p = {.n = b->n, .off = b->off, .ids = b->ids, .labels = b->labels, .max_len = b->max_len};
    memset(b, 0, sizeof *b);
    if (!p.off) p.off = calloc(1, sizeof *p.off);
    return pretok_take(&p, out);
}

tuna_status tuna_dataset_load_preferences(const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                                          const tuna_pref_options *o, tuna_pretok **out, tuna_pretok **val_out,
                                          tuna_pref_stats *stats) {
    *out = NULL;
    if (val_out) *val_out = NULL;
    tuna_pref_stats local;
    tuna_pref_stats *s = stats ? stats : &local;
    memset(s, 0, sizeof *s);
    tuna_data_reader *r = NULL;
    tuna_status st = tuna_data_reader_open(&r, path, &o->data);
    if (st != TUNA_OK) return st;
    data_builder tr = {0}, va = {0};
    tuna_record rec = {0};
    int got = 1;
    while (st == TUNA_OK) {
        st = tuna_data_reader_next(r, &rec, &got);
        if (st != TUNA_OK || !got) break;
        tuna_pref_tokens pt;
        st = tuna_dataset_encode_preference(&rec, tok, tmpl, &pt);
        if (st != TUNA_OK) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", tuna_last_error());
            st = core_fail(st, "%s:%ld: %s", path, rec.line, msg);
            break;
        }
        const int32_t *prompt = pt.prompt;
        size_t np = pt.n_prompt, nc = pt.n_chosen, nr = pt.n_rejected;
        if (o->max_prompt_len > 0 && np > (size_t)o->max_prompt_len) {
            prompt += np - (size_t)o->max_prompt_len; /* keep the end: the part next to the response */
            np = (size_t)o->max_prompt_len;
            s->prompts_truncated++;
        }
        int keep = 1;
        if (o->max_len > 0) {
            if (np >= (size_t)o->max_len) keep = 0;
            else {
                size_t room = (size_t)o->max_len - np;
                if (nc > room || nr > room) s->responses_truncated++;
                if (nc > room) nc = room;
                if (nr > room) nr = room;
            }
        }
        /* the first response token is predicted from the prompt's last one */
        if (keep && np == 0 && (nc < 2 || nr < 2)) keep = 0;
        if (!keep) s->dropped++;
        else {
            int is_val = val_out && o->val_fraction > 0 && tuna_record_is_val(&rec, o->val_fraction, o->val_seed);
            data_builder *d = is_val ? &va : &tr;
            size_t longest = np + (nc > nr ? nc : nr);
            int32_t *scratch = malloc(2 * longest * sizeof *scratch);
            if (!scratch || !add_pair_row(d, scratch, prompt, np, pt.chosen, nc) || !add_pair_row(d, scratch, prompt, np, pt.rejected, nr))
                st = nomem();
            free(scratch);
            if (is_val) s->val_pairs++;
            else s->pairs++;
            s->tokens += (int64_t)(2 * np + nc + nr);
            s->counted += (int64_t)(nc + nr) - (np == 0 ? 2 : 0);
        }
        tuna_pref_tokens_free(&pt);
    }
    tuna_record_clear(&rec);
    tuna_data_reader_stats(r, &s->data);
    tuna_data_reader_free(r);
    if (st == TUNA_OK && tr.n == 0)
        st = core_fail(TUNA_ERR_FORMAT, "%s: no usable preference pairs%s", path,
                       s->dropped ? " (every prompt fills --max-len)" : "");
    if (st != TUNA_OK) {
        free(tr.off); free(tr.ids); free(tr.labels);
        free(va.off); free(va.ids); free(va.labels);
        return st;
    }
    st = builder_to_pretok(&tr, out);
    if (st == TUNA_OK && val_out) st = builder_to_pretok(&va, val_out);
    free(va.off); free(va.ids); free(va.labels); /* no val_out, or moved (NULL) */
    if (st != TUNA_OK) {
        tuna_pretok_free(*out);
        *out = NULL;
    }
    return st;
}
