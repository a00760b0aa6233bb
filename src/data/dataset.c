/* dataset.c — records to masked training sequences (see tuna_dataset.h).
 *
 * Per record kind:
 *  - chat: rendered with the template; labels on the tokens of assistant
 *    turns up to and including their stop token (EOS or a special end-of-turn
 *    token such as <|im_end|>; the template's formatting after it is not
 *    counted); turns with loss_weight 0 are not counted;
 *  - prompt/completion: strings are concatenated (no template, as TRL does
 *    for the standard form) and the completion is counted; message lists go
 *    through the template like a chat, counting the completion's turns;
 *  - text: every token counts;
 *  - pre-tokenized: ids and labels as given.
 * BOS: the text is encoded without special tokens and the tokenizer's default
 * prefix (BOS for Llama-family tokenizers) is put in front unless the
 * rendering already starts with it, so there is at most one BOS, at position
 * 0. EOS: appended (and counted) when the last counted token is not already
 * EOS or a special end-of-turn token, so the model learns to stop. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/cache_internal.h"
#include "io/input_file.h"
#include "tuna_dataset.h"
#include "core/error.h"

#define DATASET_FORMAT_VERSION "tuna-dataset-3" /* 2: masks with rstrip special tokens (Phi-3); 3: entries keep the read's counts */

void tuna_dataset_options_init(tuna_dataset_options *o) {
    memset(o, 0, sizeof *o);
    o->truncate = TUNA_TRUNCATE_RIGHT;
    tuna_data_options_init(&o->data);
}

static char *slurp_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[sz] = 0; *n = (size_t)sz; }
    return b;
}

tuna_status tuna_dataset_template(tuna_template **out, const tuna_tokenizer *tok, const char *override,
                                  char **source_out) {
    *out = NULL;
    if (source_out) *source_out = NULL;
    const char *src = NULL;
    char *owned = NULL;
    size_t len = 0;
    if (override) {
        src = tuna_template_builtin(override);
        if (!src) {
            owned = slurp_file(override, &len);
            if (!owned)
                return core_fail(TUNA_ERR_IO, "--template %s: neither a built-in template name nor a readable file", override);
            src = owned;
        } else len = strlen(src);
    } else {
        src = tuna_tokenizer_chat_template(tok);
        if (!src) return TUNA_OK; /* no template: only records that need none can be used */
        len = strlen(src);
    }
    tuna_status st = tuna_template_compile(out, src, len);
    if (st != TUNA_OK) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", tuna_last_error());
        free(owned);
        return core_fail(st, "chat template%s%s: %s", override ? " " : "", override ? override : "", msg);
    }
    if (source_out) *source_out = owned ? owned : strdup(src);
    else free(owned);
    return TUNA_OK;
}

/* Encodes text without special tokens and computes each token's start byte in
 * text from the streaming decoder. The decoded stream is aligned with the text
 * byte by byte: where decode(encode(x)) == x this is exact; SentencePiece-style
 * tokenizers decode spaces differently around special tokens (" [INST]" for
 * "<s>[INST]", "Hello</s>" for "Hello </s>"), so the alignment skips spaces
 * present on one side only. */
static tuna_status encode_with_offsets(tuna_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t **starts,
                                       size_t *n) {
    tuna_status st = tuna_tokenizer_encode(tok, text, len, 0, ids, n);
    if (st != TUNA_OK) return st;
    *starts = malloc((*n ? *n : 1) * sizeof(size_t));
    tuna_detok_stream *ds = NULL;
    if (!*starts) { free(*ids); *ids = NULL; return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    st = tuna_detok_stream_new(&ds, tok, 0);
    size_t o = 0; /* aligned position in text */
    for (size_t i = 0; st == TUNA_OK && i < *n; i++) {
        const char *piece;
        size_t plen;
        st = tuna_detok_stream_push(ds, (*ids)[i], &piece, &plen);
        size_t k = 0;
        int started = 0;
        (*starts)[i] = o;
        while (k < plen) {
            if (o < len && text[o] == piece[k]) {
                if (!started) { (*starts)[i] = o; started = 1; }
                o++;
                k++;
            } else if (piece[k] == ' ') k++;           /* a space only the decoder writes */
            /* white space only the text has: a space SentencePiece does not
             * decode, or what a special token's rstrip/lstrip took (Phi-3's
             * "<|end|>\n") */
            else if (o < len && (text[o] == ' ' || text[o] == '\n' || text[o] == '\t' || text[o] == '\r')) o++;
            else break; /* decode differs from the text otherwise: keep the last aligned place */
        }
    }
    tuna_detok_stream_free(ds);
    if (st != TUNA_OK) { free(*ids); free(*starts); *ids = NULL; *starts = NULL; }
    return st;
}

typedef struct {
    int32_t *ids, *labels;
    size_t n, cap;
} seq_buf;

static int seq_push(seq_buf *s, int32_t id, int32_t label) {
    if (s->n == s->cap) {
        size_t c = s->cap ? 2 * s->cap : 256;
        int32_t *a = realloc(s->ids, c * sizeof(int32_t)), *b = a ? realloc(s->labels, c * sizeof(int32_t)) : NULL;
        if (a) s->ids = a;
        if (!a || !b) return 0;
        s->labels = b;
        s->cap = c;
    }
    s->ids[s->n] = id;
    s->labels[s->n] = label;
    s->n++;
    return 1;
}

/* The tokenizer's default prefix (what add_special puts in front), e.g. [BOS]. */
static tuna_status default_prefix(tuna_tokenizer *tok, int32_t **pre, size_t *npre) {
    return tuna_tokenizer_encode(tok, "", 0, 1, pre, npre);
}

tuna_status tuna_dataset_encode_text(tuna_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n) {
    int32_t *body = NULL, *pre = NULL;
    size_t nb = 0, npre = 0;
    tuna_status st = tuna_tokenizer_encode(tok, text, len, 0, &body, &nb);
    if (st == TUNA_OK) st = default_prefix(tok, &pre, &npre);
    if (st == TUNA_OK) {
        size_t skip = npre > 0 && nb >= npre && !memcmp(body, pre, npre * sizeof(int32_t)) ? 0 : npre;
        *ids = malloc((skip + nb + 1) * sizeof(int32_t));
        if (!*ids) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
        else {
            if (skip) memcpy(*ids, pre, skip * sizeof(int32_t));
            if (nb) memcpy(*ids + skip, body, nb * sizeof(int32_t));
            *n = skip + nb;
        }
    }
    free(body);
    free(pre);
    return st;
}

typedef struct { size_t begin, end; } byte_span;

/* text + counted byte spans -> ids/labels */
static tuna_status encode_spans(tuna_tokenizer *tok, const char *text, size_t len, const byte_span *spans, int nspans,
                                int all, int add_eos, seq_buf *out) {
    int32_t *ids = NULL, *pre = NULL;
    size_t *starts = NULL, n = 0, npre = 0;
    tuna_status st = encode_with_offsets(tok, text, len, &ids, &starts, &n);
    if (st == TUNA_OK) st = default_prefix(tok, &pre, &npre);
    if (st != TUNA_OK) { free(ids); free(starts); return st; }
    int ok = 1;
    /* at most one BOS: skip the prefix when the rendering already starts with it */
    int has_prefix = npre > 0 && n >= npre && !memcmp(ids, pre, npre * sizeof(int32_t));
    for (size_t i = 0; ok && !has_prefix && i < npre; i++) ok = seq_push(out, pre[i], all ? pre[i] : -100);
    int32_t eos = tuna_tokenizer_eos_id(tok);
    int k = 0, last_span = -1, last_span_has_stop = 0;
    for (size_t i = 0; ok && i < n; i++) {
        /* a token counts when its bytes overlap a span: one that straddles the
         * prompt/response boundary ("ab" for prompt "a" + completion "b")
         * carries response text */
        size_t end = i + 1 < n ? starts[i + 1] : len;
        if (end <= starts[i]) end = starts[i] + 1;
        while (k < nspans && starts[i] >= spans[k].end) k++;
        int in_span = k < nspans && starts[i] < spans[k].end && end > spans[k].begin;
        if (in_span && k != last_span) { last_span = k; last_span_has_stop = 0; }
        /* the turn ends at its stop token: formatting the template writes after
         * it (ChatML's "\n" after <|im_end|>) is not the model's to learn, as
         * with {% generation %} tags */
        if (in_span && last_span_has_stop) in_span = 0;
        int counted = all || in_span;
        ok = seq_push(out, ids[i], counted ? ids[i] : -100);
        if (in_span && (ids[i] == eos || tuna_tokenizer_is_special(tok, ids[i]))) last_span_has_stop = 1;
    }
    /* the last response must end with a stop token the model can learn */
    if (ok && add_eos && eos >= 0 && last_span >= 0 && !last_span_has_stop) ok = seq_push(out, eos, eos);
    free(ids);
    free(starts);
    free(pre);
    return ok ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
}

static tuna_status template_spans(const tuna_template *tmpl, const tuna_tokenizer *tok, const tuna_message *msgs, int n,
                                  int first_counted, char **text, size_t *len, byte_span **spans, int *nspans) {
    if (!tmpl) return core_fail(TUNA_ERR_ARG, "the model has no chat template (tokenizer_config.json chat_template); pass --template NAME|FILE");
    json_t *arr = tuna_messages_to_json(msgs, n);
    if (!arr) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    tuna_template_vars vars = {0};
    vars.bos_token = tuna_tokenizer_bos_token(tok);
    vars.eos_token = tuna_tokenizer_eos_token(tok);
    tuna_template_span *ts = NULL;
    int nts = 0;
    tuna_status st = tuna_template_assistant_spans(tmpl, arr, &vars, text, len, &ts, &nts);
    json_decref(arr);
    if (st != TUNA_OK) return st;
    *spans = malloc((size_t)(nts ? nts : 1) * sizeof **spans);
    *nspans = 0;
    if (!*spans) { free(ts); free(*text); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < nts; i++) {
        int m = ts[i].message;
        if (m >= 0 && m < first_counted) continue;                 /* prompt turns of a prompt/completion */
        if (m >= 0 && m < n && msgs[m].loss_weight == 0.0f) continue; /* LLaMA-Factory loss_weight 0 */
        (*spans)[(*nspans)++] = (byte_span){ts[i].begin, ts[i].end};
    }
    free(ts);
    return TUNA_OK;
}

tuna_status tuna_dataset_encode_record(const tuna_record *rec, tuna_tokenizer *tok, const tuna_template *tmpl,
                                       int loss_on_all, int32_t **ids, int32_t **labels, size_t *n, char **text_out) {
    seq_buf out = {0};
    tuna_status st = TUNA_OK;
    char *text = NULL;
    size_t len = 0;
    byte_span *spans = NULL;
    int nspans = 0;
    if (text_out) *text_out = NULL;
    switch (rec->kind) {
    case TUNA_RECORD_CHAT:
        st = template_spans(tmpl, tok, rec->messages, rec->n_messages, 0, &text, &len, &spans, &nspans);
        if (st == TUNA_OK) st = encode_spans(tok, text, len, spans, nspans, loss_on_all, 1, &out);
        break;
    case TUNA_RECORD_PROMPT_COMPLETION:
        if (rec->prompt.is_messages || rec->completion.is_messages) {
            if (!rec->prompt.is_messages || !rec->completion.is_messages) {
                st = core_fail(TUNA_ERR_FORMAT, "prompt and completion must both be strings or both message lists");
                break;
            }
            int np = rec->prompt.n, nc = rec->completion.n;
            tuna_message *all = malloc((size_t)(np + nc) * sizeof *all);
            if (!all) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
            memcpy(all, rec->prompt.msgs, (size_t)np * sizeof *all);
            memcpy(all + np, rec->completion.msgs, (size_t)nc * sizeof *all);
            st = template_spans(tmpl, tok, all, np + nc, np, &text, &len, &spans, &nspans);
            free(all);
            if (st == TUNA_OK) st = encode_spans(tok, text, len, spans, nspans, loss_on_all, 1, &out);
        } else {
            len = rec->prompt.len + rec->completion.len;
            text = malloc(len + 1);
            spans = malloc(sizeof *spans);
            if (!text || !spans) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
            memcpy(text, rec->prompt.text, rec->prompt.len);
            memcpy(text + rec->prompt.len, rec->completion.text, rec->completion.len);
            text[len] = 0;
            spans[0] = (byte_span){rec->prompt.len, len};
            nspans = 1;
            st = encode_spans(tok, text, len, spans, nspans, loss_on_all, 1, &out);
        }
        break;
    case TUNA_RECORD_TEXT: {
        text = malloc(rec->text_len + 1);
        spans = malloc(sizeof *spans);
        if (!text || !spans) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
        memcpy(text, rec->text, rec->text_len);
        text[rec->text_len] = 0;
        len = rec->text_len;
        spans[0] = (byte_span){0, len};
        st = encode_spans(tok, text, len, spans, 1, 1, 1, &out);
        break;
    }
    case TUNA_RECORD_PRETOKENIZED:
        for (int64_t i = 0; i < rec->n_ids; i++) {
            int32_t l = loss_on_all || !rec->labels ? rec->input_ids[i] : rec->labels[i];
            if (!seq_push(&out, rec->input_ids[i], l)) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
        }
        break;
    case TUNA_RECORD_PREFERENCE:
    case TUNA_RECORD_PREFERENCE_TOKENS:
        st = core_fail(TUNA_ERR_FORMAT, "a preference record (chosen/rejected) in SFT data: use tuna dpo for these");
        break;
    default:
        st = core_fail(TUNA_ERR_FORMAT, "record of unknown kind");
    }
    free(spans);
    if (st != TUNA_OK) {
        free(text);
        free(out.ids);
        free(out.labels);
        return st;
    }
    if (text_out) *text_out = text;
    else free(text);
    *ids = out.ids;
    *labels = out.labels;
    *n = out.n;
    return TUNA_OK;
}

int data_builder_add(data_builder *b, const int32_t *ids, const int32_t *labels, size_t n) {
    if (b->n + 2 > b->cap_seq) {
        int64_t c = b->cap_seq ? 2 * b->cap_seq : 1024;
        int64_t *o = realloc(b->off, (size_t)c * sizeof(int64_t));
        if (!o) return 0;
        b->off = o;
        b->cap_seq = c;
    }
    if (b->spool_ids) {
        if (b->n == 0) b->off[0] = 0;
        if (fwrite(ids, 4, n, b->spool_ids) != n || fwrite(labels, 4, n, b->spool_labels) != n) return 0;
        b->ntok += (int64_t)n;
        b->n++;
        b->off[b->n] = b->ntok;
        if ((int)n > b->max_len) b->max_len = (int)n;
        return 1;
    }
    if (b->ntok + (int64_t)n > b->cap_tok) {
        int64_t c = b->cap_tok ? 2 * b->cap_tok : 65536;
        while (c < b->ntok + (int64_t)n) c *= 2;
        int32_t *x = realloc(b->ids, (size_t)c * 4), *y = x ? realloc(b->labels, (size_t)c * 4) : NULL;
        if (x) b->ids = x;
        if (!x || !y) return 0;
        b->labels = y;
        b->cap_tok = c;
    }
    if (b->n == 0) b->off[0] = 0;
    memcpy(b->ids + b->ntok, ids, n * 4);
    memcpy(b->labels + b->ntok, labels, n * 4);
    b->ntok += (int64_t)n;
    b->n++;
    b->off[b->n] = b->ntok;
    if ((int)n > b->max_len) b->max_len = (int)n;
    return 1;
}

/* ids and labels (-100 aside) of one encoded record inside [0, V) */
static tuna_status check_ids(const int32_t *ids, const int32_t *labels, size_t n, int V) {
    for (size_t i = 0; V > 0 && i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return core_fail(TUNA_ERR_FORMAT, "token id %d (position %zu) is outside the model's vocabulary (0..%d)", ids[i], i, V - 1);
        if (labels[i] != -100 && (labels[i] < 0 || labels[i] >= V))
            return core_fail(TUNA_ERR_FORMAT, "label %d (position %zu) is neither -100 nor in the model's vocabulary (0..%d)",
                             labels[i], i, V - 1);
    }
    return TUNA_OK;
}

static uint64_t hash_str(uint64_t h, const char *s) {
    h = tuna_hash64(h, s ? s : "(null)", s ? strlen(s) : 6);
    return tuna_hash64(h, "\x1f", 1);
}

static void count_stats(const tuna_pretok *p, tuna_tokenizer *tok, tuna_dataset_stats *s) {
    int32_t eos = tuna_tokenizer_eos_id(tok);
    s->examples = (long)p->n;
    s->tokens = p->off[p->n];
    s->counted = 0;
    s->no_counted = s->ends_with_eos = 0;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t c = 0;
        int32_t last = -1;
        for (int64_t k = p->off[i] + 1; k < p->off[i + 1]; k++)
            if (p->labels[k] != -100) { c++; last = p->labels[k]; }
        s->counted += c;
        if (!c) s->no_counted++;
        else if (last == eos || tuna_tokenizer_is_special(tok, last)) s->ends_with_eos++;
    }
}

/* The cache key: everything the tokens depend on; *content: the hash of the
 * file's bytes in it (data_reader_hash's, for a read of the same bytes). */
static tuna_status dataset_key(const char *path, const char *template_source, const char *tokenizer_dir,
                               const tuna_dataset_options *o, uint64_t *key, uint64_t *content) {
    uint64_t k = hash_str(TUNA_HASH_INIT, DATASET_FORMAT_VERSION);
    *content = TUNA_HASH_INIT;
    tuna_status st = tuna_hash_file(content, path);
    k = tuna_hash64(k, content, sizeof *content);
    const char *tok_files[] = {"tokenizer.json", "tokenizer_config.json", "tokenizer.bin", "vocab.json", "merges.txt"};
    for (size_t i = 0; st == TUNA_OK && tokenizer_dir && i < sizeof tok_files / sizeof tok_files[0]; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", tokenizer_dir, tok_files[i]);
        struct stat sb;
        if (stat(p, &sb) == 0) st = tuna_hash_file(&k, p);
        k = hash_str(k, tok_files[i]);
    }
    if (st != TUNA_OK) return st;
    k = hash_str(k, template_source);
    char opts[160];
    snprintf(opts, sizeof opts, "%d/%d/%d/%s", o->seq_len, (int)o->truncate, o->loss_on_all,
             o->data.instruction_sep ? o->data.instruction_sep : "\n");
    *key = hash_str(k, opts);
    return TUNA_OK;
}

/* appends one line to the stats' cache note ("; " between) */
static void add_note(tuna_dataset_stats *s, const char *what) {
    size_t n = strlen(s->cache_note);
    snprintf(s->cache_note + n, sizeof s->cache_note - n, "%s%s", n ? "; " : "", what);
}

static void note_uncached(tuna_dataset_stats *s) {
    char msg[900];
    snprintf(msg, sizeof msg, "token cache not written (%s): running uncached", tuna_last_error());
    add_note(s, msg);
}

/* The file's bytes as the reader read them differ from those the key was
 * made of (rewritten in between): the tokens may mix both, so no entry. */
static void note_changed(tuna_dataset_stats *s, const char *path) {
    char msg[900];
    snprintf(msg, sizeof msg, "%s changed while it was read: token cache not written", path);
    add_note(s, msg);
}

static void set_stats(const tuna_pretok *p, tuna_tokenizer *tok, tuna_dataset_stats *s) {
    long trunc = s->truncated, drop = s->dropped;
    count_stats(p, tok, s);
    s->truncated = trunc;
    s->dropped = drop;
}

/* A cache hit: the tokens, and the bad-record policy applied to the read
 * they came from (a hit checks what a read checks). *hit 0: no usable entry
 * (a damaged one is left in the cache note and rebuilt by the caller). */
static tuna_status from_cache(const char *path, tuna_tokenizer *tok, const tuna_dataset_options *o, uint64_t key,
                              tuna_pretok **out, tuna_dataset_stats *s, int *hit) {
    *hit = 0;
    cache_blob extra;
    cache_meta m;
    tuna_status st = cache_load_entry(o->cache_dir, key, out, &extra);
    if (st == TUNA_ERR_IO) return TUNA_OK; /* no entry */
    if (st == TUNA_OK && (st = cache_meta_decode(&m, extra.p, extra.n)) != TUNA_OK) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s", tuna_last_error());
        tuna_pretok_free(*out);
        *out = NULL;
        core_fail(st, "%s/%016llx.tokens: damaged cache entry (%s)", o->cache_dir, (unsigned long long)key, msg);
    }
    if (st != TUNA_OK) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s: read again", tuna_last_error());
        add_note(s, msg);
        return TUNA_OK;
    }
    st = data_policy_replay(path, &o->data, m.is_array, &m.data, m.notes, m.n_notes);
    if (st == TUNA_OK) {
        *hit = s->from_cache = 1;
        s->data = m.data;
        s->truncated = m.truncated;
        s->dropped = m.dropped;
        set_stats(*out, tok, s);
    } else {
        tuna_pretok_free(*out);
        *out = NULL;
    }
    cache_meta_free(&m);
    return st;
}

/* What the reader saw, for the cache entry (*meta malloc'ed). */
static tuna_status read_meta(const tuna_data_reader *r, const tuna_dataset_stats *s, void **meta, size_t *len) {
    const data_bad_note *notes;
    cache_meta m = {s->data, s->truncated, s->dropped, tuna_data_reader_is_array(r), 0, NULL};
    m.n_notes = data_reader_notes(r, &notes);
    m.notes = (data_bad_note *)notes;
    return cache_meta_encode(&m, meta, len);
}

/* The tokens spooled to temporary files back into memory (the cache could
 * not take them). */
static tuna_status unspool(data_builder *b) {
    size_t n = (size_t)b->ntok;
    b->ids = malloc((n ? n : 1) * 4);
    b->labels = malloc((n ? n : 1) * 4);
    int ok = b->ids && b->labels;
    rewind(b->spool_ids);
    rewind(b->spool_labels);
    ok = ok && fread(b->ids, 4, n, b->spool_ids) == n && fread(b->labels, 4, n, b->spool_labels) == n;
    fclose(b->spool_ids);
    fclose(b->spool_labels);
    b->spool_ids = b->spool_labels = NULL;
    return ok ? TUNA_OK : core_fail(TUNA_ERR_IO, "cannot read the temporary token files back");
}

/* Spooled tokens into the cache and back as its mapping (*mapped 1); when the
 * cache cannot take them, a note and the tokens back in memory. */
static tuna_status publish_spooled(data_builder *b, const char *dir, uint64_t key, cache_blob meta, tuna_pretok **out,
                                   tuna_dataset_stats *s, int *mapped) {
    fflush(b->spool_ids);
    fflush(b->spool_labels);
    tuna_status st = cache_store_spooled(dir, key, b->n, b->off, b->max_len, b->spool_ids, b->spool_labels, meta);
    if (st == TUNA_OK) st = tuna_cache_load(dir, key, out);
    if (st == TUNA_OK) {
        *mapped = 1;
        fclose(b->spool_ids);
        fclose(b->spool_labels);
        b->spool_ids = b->spool_labels = NULL;
        return TUNA_OK;
    }
    note_uncached(s);
    return unspool(b);
}

/* Reads and tokenizes the file into b (spooled when b has spool files). */
static tuna_status read_records(tuna_data_reader *r, const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                                const tuna_dataset_options *o, data_builder *b, tuna_dataset_stats *s) {
    tuna_record rec = {0};
    int got = 1;
    tuna_status st = TUNA_OK;
    uint64_t total = data_reader_size(r), done = 0;
    while (st == TUNA_OK) {
        st = tuna_data_reader_next(r, &rec, &got);
        if (st != TUNA_OK || !got) break;
        int32_t *ids = NULL, *labels = NULL;
        size_t n = 0;
        st = tuna_dataset_encode_record(&rec, tok, tmpl, o->loss_on_all, &ids, &labels, &n, NULL);
        if (st == TUNA_OK) st = check_ids(ids, labels, n, o->vocab_size);
        if (st != TUNA_OK) {
            free(ids);
            free(labels);
            char msg[900];
            snprintf(msg, sizeof msg, "%s", tuna_last_error());
            st = core_fail(st, "%s:%ld: %s", path, rec.line, msg);
            break;
        }
        done += rec.raw_len + 1;
        if (o->on_progress && (s->examples & 1023) == 0) o->on_progress(o->progress_ctx, done, total);
        size_t keep0 = 0, keep = n;
        if (o->seq_len > 0 && n > (size_t)o->seq_len) {
            if (o->truncate == TUNA_TRUNCATE_DROP) {
                s->dropped++;
                free(ids);
                free(labels);
                continue;
            }
            s->truncated++;
            keep = (size_t)o->seq_len;
            if (o->truncate == TUNA_TRUNCATE_LEFT) keep0 = n - keep;
        }
        if (!data_builder_add(b, ids + keep0, labels + keep0, keep))
            st = core_fail(b->spool_ids ? TUNA_ERR_IO : TUNA_ERR_NOMEM, "%s while reading %s",
                           b->spool_ids ? "cannot write temporary token files" : "out of memory", path);
        s->examples++;
        free(ids);
        free(labels);
    }
    tuna_record_clear(&rec);
    tuna_data_reader_stats(r, &s->data);
    if (st == TUNA_OK && b->n == 0) st = core_fail(TUNA_ERR_FORMAT, "%s: no usable records", path);
    if (o->on_progress && st == TUNA_OK) o->on_progress(o->progress_ctx, total, total);
    return st;
}

static void builder_free(data_builder *b) {
    if (b->spool_ids) fclose(b->spool_ids);
    if (b->spool_labels) fclose(b->spool_labels);
    free(b->off);
    free(b->ids);
    free(b->labels);
    memset(b, 0, sizeof *b);
}

tuna_status tuna_dataset_load(const char *path, tuna_tokenizer *tok, const tuna_template *tmpl,
                              const char *template_source, const char *tokenizer_dir,
                              const tuna_dataset_options *o, tuna_pretok **out, tuna_dataset_stats *stats) {
    *out = NULL;
    tuna_dataset_stats st_local;
    tuna_dataset_stats *s = stats ? stats : &st_local;
    memset(s, 0, sizeof *s);
    /* a pipe or device is read once and has no identity to key on: uncached */
    const char *cache = o->cache_dir && input_file_is_regular(path) ? o->cache_dir : NULL;
    uint64_t key = 0, content = 0;
    tuna_status st = TUNA_OK;
    if (cache) {
        int hit = 0;
        st = dataset_key(path, template_source, tokenizer_dir, o, &key, &content);
        if (st == TUNA_OK) st = from_cache(path, tok, o, key, out, s, &hit);
        s->key = key;
        if (st != TUNA_OK || hit) return st;
    }
    tuna_data_reader *r = NULL;
    st = tuna_data_reader_open(&r, path, &o->data);
    if (st != TUNA_OK) return st;
    data_builder b = {0};
    if (cache) {
        /* spool to anonymous temporary files: memory holds offsets only */
        b.spool_ids = tmpfile();
        b.spool_labels = tmpfile();
        if (!b.spool_ids || !b.spool_labels) {
            if (b.spool_ids) fclose(b.spool_ids);
            if (b.spool_labels) fclose(b.spool_labels);
            b.spool_ids = b.spool_labels = NULL; /* fall back to memory */
        }
    }
    st = read_records(r, path, tok, tmpl, o, &b, s);
    if (st == TUNA_OK && cache && data_reader_hash(r) != content) {
        note_changed(s, path);
        cache = NULL;
    }
    void *meta = NULL;
    size_t meta_len = 0;
    if (st == TUNA_OK && cache) st = read_meta(r, s, &meta, &meta_len);
    tuna_data_reader_free(r);
    int mapped = 0, spooled = b.spool_ids != NULL;
    if (st == TUNA_OK && spooled)
        st = cache ? publish_spooled(&b, cache, key, (cache_blob){meta, meta_len}, out, s, &mapped) : unspool(&b);
    if (st != TUNA_OK || mapped) {
        builder_free(&b);
        free(meta);
        if (st == TUNA_OK) set_stats(*out, tok, s);
        return st;
    }
    tuna_pretok p = {.n = b.n, .off = b.off, .ids = b.ids, .labels = b.labels, .max_len = b.max_len};
    st = pretok_take(&p, out);
    if (st != TUNA_OK) {
        free(meta);
        return st;
    }
    set_stats(*out, tok, s);
    /* a failed cache write only costs time */
    if (cache && !spooled && cache_store_entry(cache, key, *out, (cache_blob){meta, meta_len}) != TUNA_OK) note_uncached(s);
    free(meta);
    return TUNA_OK;
}
