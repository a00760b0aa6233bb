/* evaluate.c — the pieces of `tuna eval` and `tuna compare` that are not
 * I/O: examples from records, few-shot prompts, scoring one prediction,
 * running totals, per-example losses and batched generation. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pretok_internal.h"
#include "tuna_dataset.h"
#include "tuna_eval.h"
#include "tuna_peft.h"
#include "tuna_score.h"
#include "core/error.h"

/* ---- examples ---- */

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) { memcpy(p, s, n); p[n] = 0; }
    return p;
}

void tuna_eval_example_clear(tuna_eval_example *ex) {
    for (int i = 0; i < ex->n_msgs; i++) free(ex->msgs[i].content);
    free(ex->msgs);
    free(ex->prompt_text);
    free(ex->reference);
    memset(ex, 0, sizeof *ex);
}

static tuna_status copy_msgs(tuna_eval_example *ex, const tuna_message *m, int n) {
    ex->msgs = calloc((size_t)(n ? n : 1), sizeof *ex->msgs);
    if (!ex->msgs) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        ex->msgs[i] = m[i];
        ex->msgs[i].content = dup_n(m[i].content, m[i].len);
        ex->n_msgs = i + 1;
        if (!ex->msgs[i].content) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    }
    return TUNA_OK;
}

tuna_status tuna_eval_example_from_record(const tuna_record *rec, tuna_eval_example *ex) {
    memset(ex, 0, sizeof *ex);
    tuna_status st;
    /* a preference record is asked its prompt and answered by its chosen response */
    int paired = rec->kind == TUNA_RECORD_PROMPT_COMPLETION || rec->kind == TUNA_RECORD_PREFERENCE;
    const tuna_part *comp = rec->kind == TUNA_RECORD_PREFERENCE ? &rec->chosen : &rec->completion;
    if (rec->kind == TUNA_RECORD_CHAT) {
        int last = rec->n_messages - 1;
        while (last >= 0 && rec->messages[last].role != TUNA_ROLE_ASSISTANT) last--;
        if (last < 0) return core_fail(TUNA_ERR_UNSUPPORTED, "the conversation has no assistant turn to compare with");
        st = copy_msgs(ex, rec->messages, last);
        if (st == TUNA_OK && !(ex->reference = dup_n(rec->messages[last].content, rec->messages[last].len)))
            st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    } else if (paired && comp->is_messages && (rec->prompt.is_messages || rec->prompt.len == 0)) {
        int last = comp->n - 1;
        while (last >= 0 && comp->msgs[last].role != TUNA_ROLE_ASSISTANT) last--;
        if (last < 0) return core_fail(TUNA_ERR_UNSUPPORTED, "the response has no assistant message to compare with");
        /* earlier response messages (rare) belong to the prompt */
        int np = rec->prompt.n, n = np + last;
        tuna_message *all = malloc((size_t)(n ? n : 1) * sizeof *all);
        if (!all) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        if (np) memcpy(all, rec->prompt.msgs, (size_t)np * sizeof *all);
        if (last) memcpy(all + np, comp->msgs, (size_t)last * sizeof *all);
        st = copy_msgs(ex, all, n);
        free(all);
        const tuna_message *r = &comp->msgs[last];
        if (st == TUNA_OK && !(ex->reference = dup_n(r->content, r->len))) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    } else if (paired && !comp->is_messages && !rec->prompt.is_messages) {
        ex->prompt_text = dup_n(rec->prompt.text ? rec->prompt.text : "", rec->prompt.len);
        ex->reference = dup_n(comp->text, comp->len);
        st = ex->prompt_text && ex->reference ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
    } else {
        return core_fail(TUNA_ERR_UNSUPPORTED, "a %s record has no single reference response to generate against",
                         tuna_record_kind_name(rec->kind));
    }
    if (st != TUNA_OK) tuna_eval_example_clear(ex);
    return st;
}

/* ---- prompts ---- */

/* the example's prompt as plain text: its turns' contents, one per line */
static void document_prompt(FILE *f, const tuna_eval_example *ex) {
    if (ex->prompt_text) { fputs(ex->prompt_text, f); return; }
    for (int i = 0; i < ex->n_msgs; i++) fprintf(f, "%s\n", ex->msgs[i].content);
}

static tuna_status render_turns(const tuna_template *tmpl, tuna_tokenizer *tok, const tuna_eval_example *ex,
                                const tuna_eval_example *shots, int k, char **out) {
    if (!tmpl) return core_fail(TUNA_ERR_ARG, "the model has no chat template (tokenizer_config.json chat_template); pass --template NAME|FILE");
    json_t *arr = json_array();
    if (!arr) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    /* the query's system turn stays first; shots come as earlier exchanges */
    int first = ex->n_msgs > 0 && ex->msgs[0].role == TUNA_ROLE_SYSTEM;
    if (first) json_array_append_new(arr, json_pack("{s:s,s:s}", "role", "system", "content", ex->msgs[0].content));
    for (int s = 0; s < k; s++) {
        const tuna_eval_example *e = &shots[s];
        if (e->prompt_text) json_array_append_new(arr, json_pack("{s:s,s:s}", "role", "user", "content", e->prompt_text));
        for (int i = 0; i < e->n_msgs; i++) {
            if (e->msgs[i].role == TUNA_ROLE_SYSTEM) continue;
            json_array_append_new(arr, json_pack("{s:s,s:s}", "role", tuna_role_name(e->msgs[i].role), "content", e->msgs[i].content));
        }
        json_array_append_new(arr, json_pack("{s:s,s:s}", "role", "assistant", "content", e->reference));
    }
    if (ex->prompt_text) json_array_append_new(arr, json_pack("{s:s,s:s}", "role", "user", "content", ex->prompt_text));
    for (int i = first; i < ex->n_msgs; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "role", tuna_role_name(ex->msgs[i].role), "content", ex->msgs[i].content));
    tuna_template_vars vars = {.bos_token = tuna_tokenizer_bos_token(tok), .eos_token = tuna_tokenizer_eos_token(tok),
                               .add_generation_prompt = 1};
    tuna_status st = tuna_template_render(tmpl, arr, &vars, out, NULL);
    json_decref(arr);
    return st;
}

tuna_status tuna_eval_prompt(tuna_tokenizer *tok, const tuna_template *tmpl, const tuna_eval_example *ex,
                             const tuna_eval_example *shots, int k, tuna_shot_format fmt, int32_t **ids, size_t *n,
                             char **text_out) {
    char *text = NULL;
    tuna_status st = TUNA_OK;
    if (text_out) *text_out = NULL;
    if (fmt == TUNA_SHOTS_DOCUMENT || (ex->prompt_text && k == 0)) {
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        for (int s = 0; s < k; s++) {
            document_prompt(f, &shots[s]);
            fprintf(f, "%s\n\n", shots[s].reference);
        }
        document_prompt(f, ex);
        if (fclose(f) != 0 || !text) { free(text); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    } else {
        st = render_turns(tmpl, tok, ex, shots, k, &text);
        if (st != TUNA_OK) return st;
    }
    st = tuna_dataset_encode_text(tok, text, strlen(text), ids, n);
    if (st == TUNA_OK && text_out) *text_out = text;
    else free(text);
    return st;
}

/* ---- scoring ---- */

tuna_status tuna_eval_score(const char *pred, const char *ref, const char *regex, tuna_eval_scores *s) {
    memset(s, 0, sizeof *s);
    s->exact = tuna_score_exact(pred, ref);
    s->contains = tuna_score_contains(pred, ref);
    s->rouge_l = tuna_score_rouge_l(pred, ref);
    s->json_valid = tuna_score_json_valid(ref) ? tuna_score_json_valid(pred) : -1;
    if (s->json_valid >= 0) {
        json_t *r = json_loads(ref, JSON_DECODE_ANY, NULL);
        int obj = json_is_object(r);
        json_decref(r);
        if (obj) tuna_score_json_fields(pred, ref, &s->json_correct, &s->json_total);
    }
    s->regex = -1;
    if (regex) {
        int m = tuna_score_regex(pred, regex);
        if (m < 0) return core_fail(TUNA_ERR_ARG, "--regex: the pattern does not compile: %s", regex);
        s->regex = m;
    }
    return TUNA_OK;
}

/* ---- totals ---- */

struct tuna_eval_tally {
    long examples, generated, json_examples, regex_examples;
    double loss_sum;
    int64_t tokens;
    int has_loss;
    double exact, contains, rouge_l, json_valid, regex;
    long json_correct, json_total;
    json_t *per_key; /* key -> [correct, total] */
    double prompt_tokens, completion_tokens, seconds;
};

tuna_eval_tally *tuna_eval_tally_new(void) {
    tuna_eval_tally *t = calloc(1, sizeof *t);
    if (t && !(t->per_key = json_object())) { free(t); return NULL; }
    return t;
}

void tuna_eval_tally_free(tuna_eval_tally *t) {
    if (!t) return;
    json_decref(t->per_key);
    free(t);
}

void tuna_eval_tally_loss(tuna_eval_tally *t, double loss_sum, int64_t tokens) {
    t->examples++;
    t->has_loss = 1;
    t->loss_sum += loss_sum;
    t->tokens += tokens;
}

static void count_key(void *ctx, const char *key, int ok) {
    json_t *per_key = ctx, *e = json_object_get(per_key, key);
    if (!e) {
        e = json_pack("[ii]", 0, 0);
        if (!e || json_object_set_new(per_key, key, e)) return;
    }
    json_array_set_new(e, 0, json_integer(json_integer_value(json_array_get(e, 0)) + ok));
    json_array_set_new(e, 1, json_integer(json_integer_value(json_array_get(e, 1)) + 1));
}

void tuna_eval_tally_generation(tuna_eval_tally *t, const char *pred, const char *ref, const tuna_eval_scores *s,
                                int prompt_tokens, int completion_tokens, double seconds) {
    if (!t->has_loss) t->examples++;
    t->generated++;
    t->exact += s->exact;
    t->contains += s->contains;
    t->rouge_l += s->rouge_l;
    if (s->json_valid >= 0) { t->json_examples++; t->json_valid += s->json_valid; }
    if (s->regex >= 0) { t->regex_examples++; t->regex += s->regex; }
    if (s->json_total > 0) {
        int c, n;
        tuna_score_json_fields_each(pred, ref, &c, &n, count_key, t->per_key);
        t->json_correct += c;
        t->json_total += n;
    }
    t->prompt_tokens += prompt_tokens;
    t->completion_tokens += completion_tokens;
    t->seconds += seconds;
}

int tuna_eval_metric_known(const char *name) {
    static const char *const names[] = {"exact_match", "contains", "rouge_l", "json_valid", "json_fields", "regex", "loss", "ppl"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}

double tuna_eval_tally_metric(const tuna_eval_tally *t, const char *name) {
    double g = (double)t->generated;
    if (!strcmp(name, "loss")) return t->tokens ? t->loss_sum / (double)t->tokens : NAN;
    if (!strcmp(name, "ppl")) return t->tokens ? exp(t->loss_sum / (double)t->tokens) : NAN;
    if (!strcmp(name, "exact_match")) return g ? t->exact / g : NAN;
    if (!strcmp(name, "contains")) return g ? t->contains / g : NAN;
    if (!strcmp(name, "rouge_l")) return g ? t->rouge_l / g : NAN;
    if (!strcmp(name, "json_valid")) return t->json_examples ? t->json_valid / (double)t->json_examples : NAN;
    if (!strcmp(name, "json_fields")) return t->json_total ? (double)t->json_correct / (double)t->json_total : NAN;
    if (!strcmp(name, "regex")) return t->regex_examples ? t->regex / (double)t->regex_examples : NAN;
    return NAN;
}

json_t *tuna_eval_tally_json(const tuna_eval_tally *t) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "examples", json_integer(t->examples));
    if (t->has_loss) {
        json_object_set_new(o, "tokens", json_integer(t->tokens));
        if (t->tokens) {
            json_object_set_new(o, "loss", json_real(tuna_eval_tally_metric(t, "loss")));
            json_object_set_new(o, "ppl", json_real(tuna_eval_tally_metric(t, "ppl")));
        }
    }
    if (t->generated) {
        double g = (double)t->generated;
        json_object_set_new(o, "generated", json_integer(t->generated));
        json_object_set_new(o, "exact_match", json_real(t->exact / g));
        json_object_set_new(o, "contains", json_real(t->contains / g));
        json_object_set_new(o, "rouge_l", json_real(t->rouge_l / g));
        if (t->regex_examples) json_object_set_new(o, "regex", json_real(t->regex / (double)t->regex_examples));
        if (t->json_examples) {
            json_object_set_new(o, "json_examples", json_integer(t->json_examples));
            json_object_set_new(o, "json_valid", json_real(t->json_valid / (double)t->json_examples));
        }
        if (t->json_total) {
            json_t *pk = json_object(), *f = json_object();
            const char *k;
            json_t *v;
            json_object_foreach(t->per_key, k, v) {
                double c = (double)json_integer_value(json_array_get(v, 0)), n = (double)json_integer_value(json_array_get(v, 1));
                json_object_set_new(pk, k, json_real(c / n));
            }
            json_object_set_new(f, "overall", json_real((double)t->json_correct / (double)t->json_total));
            json_object_set_new(f, "per_key", pk);
            json_object_set_new(o, "json_fields", f);
        }
        json_object_set_new(o, "mean_prompt_tokens", json_real(t->prompt_tokens / g));
        json_object_set_new(o, "mean_completion_tokens", json_real(t->completion_tokens / g));
        json_object_set_new(o, "mean_latency_s", json_real(t->seconds / g));
        json_object_set_new(o, "tokens_per_s", json_real(t->seconds > 0 ? t->completion_tokens / t->seconds : 0));
    }
    return o;
}

/* ---- losses ---- */

tuna_status tuna_eval_losses(tuna_model *m, const tuna_pretok *data, int batch, double *loss_sum, int64_t *tokens,
                             void (*on_progress)(void *ctx, int64_t done, int64_t total), void *ctx) {
    if (data->n == 0) return TUNA_OK;
    int B = batch < data->n ? batch : (int)data->n, T = data->max_len > 1 ? data->max_len : 2;
    int32_t *ids = malloc((size_t)B * T * sizeof *ids), *labels = malloc((size_t)B * T * sizeof *labels);
    double *rows = malloc((size_t)B * sizeof *rows);
    tuna_status st = ids && labels && rows ? tuna_model_prepare(m, B, T, 0) : core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int64_t s0 = 0; st == TUNA_OK && s0 < data->n; s0 += B) {
        int b = (int)(data->n - s0 < B ? data->n - s0 : B), t = 2;
        for (int i = 0; i < b; i++) {
            int64_t len = data->off[s0 + i + 1] - data->off[s0 + i];
            if (len > t) t = (int)len;
        }
        for (int i = 0; i < b; i++) {
            int64_t o = data->off[s0 + i], len = data->off[s0 + i + 1] - o;
            int64_t counted = 0;
            for (int j = 0; j < t; j++) {
                ids[i * t + j] = j < len ? data->ids[o + j] : 0;
                labels[i * t + j] = j < len ? data->labels[o + j] : -100;
                counted += j > 0 && labels[i * t + j] >= 0;
            }
            tokens[s0 + i] = counted;
        }
        tuna_batch bt = {.B = b, .T = t, .input_ids = ids, .labels = labels};
        tuna_loss l;
        st = tuna_model_forward(m, &bt, &l);
        if (st != TUNA_OK) break;
        st = tuna_model_row_losses(m, b, t, rows);
        if (st != TUNA_OK) break;
        for (int i = 0; i < b; i++) loss_sum[s0 + i] = rows[i];
        if (on_progress) on_progress(ctx, s0 + b, data->n);
    }
    free(ids);
    free(labels);
    free(rows);
    return st;
}

/* ---- generation ---- */

tuna_status tuna_eval_generate(tuna_model *m, const tuna_tokenizer *tok, int32_t *const *prompts,
                               const size_t *n_prompts, int n, int batch, const tuna_gen_opts *o, tuna_gen_result *res,
                               void (*on_progress)(void *ctx, int64_t done, int64_t total), void *ctx) {
    const tuna_config *c = tuna_model_config(m);
    const tuna_peft_config *pc = tuna_peft_get(m);
    int P = pc && pc->type == TUNA_PEFT_PROMPT ? pc->num_virtual_tokens : 0;
    size_t longest = 0;
    int longest_i = 0;
    for (int i = 0; i < n; i++)
        if (n_prompts[i] > longest) { longest = n_prompts[i]; longest_i = i; }
    tuna_gen_opts go = *o;
    if (c->learned_positions && (long)longest + P + go.max_new_tokens > c->max_positions) {
        go.max_new_tokens = c->max_positions - (int)longest - P;
        if (go.max_new_tokens < 1)
            return core_fail(TUNA_ERR_ARG, "prompt %d has %zu tokens, more than the model's %d positions leave room for", longest_i,
                             longest, c->max_positions);
    }
    int B = batch < n ? batch : n;
    if (B < 1) B = 1;
    int ctx_len = (int)longest + P + go.max_new_tokens, max_tok = (int)longest + P > B ? (int)longest + P : B;
    tuna_decoder *d = NULL;
    tuna_status st = tuna_decoder_create(&d, m, B, ctx_len, max_tok);
    uint64_t *seeds = malloc((size_t)B * sizeof *seeds);
    int *lens = malloc((size_t)B * sizeof *lens);
    if (st == TUNA_OK && (!seeds || !lens)) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    int done = 0;
    for (int s0 = 0; st == TUNA_OK && s0 < n; s0 += B) {
        int b = n - s0 < B ? n - s0 : B;
        for (int i = 0; i < b; i++) {
            seeds[i] = o->sample.seed + (uint64_t)(s0 + i);
            lens[i] = (int)n_prompts[s0 + i];
        }
        st = tuna_generate_batch(d, tok, (const int32_t *const *)(prompts + s0), lens, b, seeds, &go, res + s0);
        if (st == TUNA_OK) done = s0 + b;
        if (st == TUNA_OK && on_progress) on_progress(ctx, done, n);
    }
    if (st != TUNA_OK)
        for (int i = 0; i < done; i++) tuna_gen_result_free(&res[i]);
    free(seeds);
    free(lens);
    tuna_decoder_free(d);
    return st;
}
