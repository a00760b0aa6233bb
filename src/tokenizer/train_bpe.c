/* train_bpe.c — byte-level BPE training (`tuna tokenizer train`).
 *
 * Pipeline: read sequences (text lines with their newline, or JSONL "text"
 * values) -> cut out special-token text -> pre-tokenize with the GPT-2 regex
 * (or a Split regex), keeping matches and the gaps between them as HF's
 * Isolated behaviour does -> count distinct pre-tokens ("words") -> each word
 * becomes a sequence of byte symbols -> merge loop -> tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json.
 *
 * Merge loop: a pair -> (count, list of words holding it) table and a binary
 * max-heap of (count, pair) entries with lazy invalidation: an entry whose
 * count no longer matches the table is re-pushed with the current count (or
 * dropped at 0) when it reaches the top. A merge visits only the words on the
 * merged pair's list and adjusts the counts of the neighbouring pairs, so the
 * cost of a merge is proportional to the words it touches, never a recount.
 *
 * Matching HF's BpeTrainer (tokenizers/src/models/bpe/trainer.rs): ids are
 * the special tokens, then the 256 byte symbols sorted by code point of their
 * byte-level character, then merged tokens in creation order (a merge whose
 * string already exists reuses that id and adds no vocabulary entry); the pair
 * chosen is the one with the highest count, ties to the smallest (left id,
 * right id); within a word, occurrences merge left to right; training stops at
 * vocab_size ids, an empty queue, or a best count below min_frequency. Plain
 * text is fed line by line with the line ending kept, as train(files) does.
 * Deliberate differences: (1) special-token text in the input is cut out, as
 * encoding does (HF's trainer would learn merges for "<|", "endoftext", ...);
 * (2) counts are exact: HF never lowers the count of the pair it merged, so in
 * the rare case where a later merge re-creates that pair (only possible when a
 * merge re-creates an existing token string) its count can be inflated there.
 * tools/tokenizer-train-check compares the merges with HF's trainer.
 *
 * Rules: the library prints nothing (progress via callback); all memory is
 * owned by one trainer struct freed on every path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "io/input_file.h"
#include "io/input_kind.h"
#include "tok_internal.h"
#include "tuna_tokenizer_train.h"
#include "core/error.h"

/* The pattern tok_pretok.c uses for ByteLevel(use_regex=true): GPT-2's. */
#define GPT2_SPLIT_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static const char *const default_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

/* Standard ChatML; '\n' inside the Jinja string literals is a Jinja escape. */
static const char chatml_template[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

typedef struct { int64_t count; int32_t a, b; } heap_ent;
typedef struct {
    int64_t count;
    int32_t a, b;
    int32_t head;       /* first node of the word list, -1 when empty */
    int32_t last_word;  /* word appended last (skips immediate repeats) */
    uint32_t stamp;     /* merge step that last put it on the touched list */
    int merged;         /* already in the merges list */
} pair_t;
typedef struct { int32_t word, next; } node_t;

typedef struct {
    const tuna_bpe_train_opts *o;
    const char *const *spec; int n_spec;
    /* words: distinct pre-tokens, symbols stored back to back */
    tk_map word_map;            /* raw bytes -> word index */
    int64_t *wcount;            /* [nw] */
    size_t *woff;               /* [nw] offset in sym */
    int32_t *wlen;              /* [nw] current number of symbols */
    uint32_t *wstamp;           /* [nw] merge step that last visited it */
    size_t nw, wcap;
    int32_t *sym; size_t nsym, symcap;
    int32_t byte_id[256];
    /* vocabulary: byte-level strings, NUL-terminated in vstr */
    tk_buf vstr;
    size_t *voff; int nv, vcap;
    tk_map vmap;                /* string -> id */
    /* merges in rank order */
    int32_t *mrg; int nm, mcap; /* pairs (a, b) */
    /* pair table, heap, word lists */
    pair_t *pairs; size_t np, pcap;
    int32_t *pslot; size_t pslot_cap;   /* open addressing: pair index or -1 */
    heap_ent *heap; size_t nh, hcap;
    node_t *nodes; size_t nn, ncap;
    int32_t *touched; size_t nt, tcap;
    uint32_t step;
    /* reading */
    tk_regex re;
    int64_t bytes, total_bytes, next_report, sequences;
    int truncated;
    size_t *spec_next;          /* per special: next occurrence in the current text */
} trainer;

static tuna_status nomem(void) { return core_fail(TUNA_ERR_NOMEM, "tokenizer train: out of memory"); }

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* ---- vocabulary ---- */
static int vocab_add(trainer *t, const char *s, size_t n) {
    size_t cap = (size_t)t->vcap;
    if (grow((void **)&t->voff, &cap, (size_t)t->nv + 1, sizeof *t->voff)) return -1;
    t->vcap = (int)cap;
    size_t off = t->vstr.n;
    if (tk_buf_put(&t->vstr, s, n) || tk_buf_putc(&t->vstr, '\0')) return -1;
    if (tk_map_put(&t->vmap, s, n, t->nv)) return -1;
    t->voff[t->nv++] = off;
    return 0;
}
static const char *vocab_str(const trainer *t, int32_t id) { return t->vstr.p + t->voff[id]; }

/* ---- pair table (open addressing on (a, b)) ---- */
static uint64_t pair_hash(int32_t a, int32_t b) {
    uint64_t h = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}

static int pslot_rebuild(trainer *t, size_t cap) {
    int32_t *s = malloc(cap * sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < cap; i++) s[i] = -1;
    for (size_t p = 0; p < t->np; p++) {
        size_t j = pair_hash(t->pairs[p].a, t->pairs[p].b) & (cap - 1);
        while (s[j] >= 0) j = (j + 1) & (cap - 1);
        s[j] = (int32_t)p;
    }
    free(t->pslot);
    t->pslot = s;
    t->pslot_cap = cap;
    return 0;
}

/* Index of pair (a, b); creates it (count 0) when create != 0. -1 when
 * absent, -2 out of memory. */
static int32_t pair_get(trainer *t, int32_t a, int32_t b, int create) {
    size_t mask = t->pslot_cap - 1;
    for (size_t j = pair_hash(a, b) & mask;; j = (j + 1) & mask) {
        int32_t p = t->pslot[j];
        if (p < 0) {
            if (!create) return -1;
            if (t->np >= INT32_MAX - 1) return -2;
            if (grow((void **)&t->pairs, &t->pcap, t->np + 1, sizeof *t->pairs)) return -2;
            t->pairs[t->np] = (pair_t){0, a, b, -1, -1, 0, 0};
            t->pslot[j] = (int32_t)t->np;
            p = (int32_t)t->np++;
            if (t->np * 2 > t->pslot_cap && pslot_rebuild(t, t->pslot_cap * 2)) return -2;
            return p;
        }
        if (t->pairs[p].a == a && t->pairs[p].b == b) return p;
    }
}

/* Adds delta (count of word w, signed) to pair (a, b); a positive change puts
 * w on the pair's word list and the pair on the touched list. 0 ok, -1 nomem. */
static int pair_change(trainer *t, int32_t a, int32_t b, int64_t delta, int32_t w) {
    int32_t p = pair_get(t, a, b, delta > 0);
    if (p == -2) return -1;
    if (p < 0) return 0; /* cannot happen: a pair is counted before it is removed */
    pair_t *pp = &t->pairs[p];
    pp->count += delta;
    if (delta <= 0) return 0;
    if (pp->last_word != w) {
        if (grow((void **)&t->nodes, &t->ncap, t->nn + 1, sizeof *t->nodes) || t->nn >= INT32_MAX) return -1;
        pp = &t->pairs[p];
        t->nodes[t->nn] = (node_t){w, pp->head};
        pp->head = (int32_t)t->nn++;
        pp->last_word = w;
    }
    if (pp->stamp != t->step) {
        pp->stamp = t->step;
        if (grow((void **)&t->touched, &t->tcap, t->nt + 1, sizeof *t->touched)) return -1;
        t->touched[t->nt++] = p;
    }
    return 0;
}

/* ---- heap: highest count first, then smallest (a, b) ---- */
static int ent_before(const heap_ent *x, const heap_ent *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void sift_down(heap_ent *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        if (l < n && ent_before(&h[l], &h[best])) best = l;
        if (l + 1 < n && ent_before(&h[l + 1], &h[best])) best = l + 1;
        if (best == i) return;
        heap_ent tmp = h[i]; h[i] = h[best]; h[best] = tmp;
        i = best;
    }
}

static int heap_push(trainer *t, int64_t count, int32_t a, int32_t b) {
    if (grow((void **)&t->heap, &t->hcap, t->nh + 1, sizeof *t->heap)) return -1;
    size_t i = t->nh++;
    t->heap[i] = (heap_ent){count, a, b};
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!ent_before(&t->heap[i], &t->heap[par])) break;
        heap_ent tmp = t->heap[i]; t->heap[i] = t->heap[par]; t->heap[par] = tmp;
        i = par;
    }
    return 0;
}

static heap_ent heap_pop(trainer *t) {
    heap_ent top = t->heap[0];
    t->heap[0] = t->heap[--t->nh];
    sift_down(t->heap, t->nh, 0);
    return top;
}

/* ---- words ---- */
static int add_word(trainer *t, const char *s, size_t n) {
    int32_t w = tk_map_get(&t->word_map, s, n);
    if (w >= 0) { t->wcount[w]++; return 0; }
    if (t->nw >= INT32_MAX - 1 || n > INT32_MAX) return -1;
    if (t->nw == t->wcap) {
        size_t c = t->wcap ? t->wcap * 2 : 1024;
        int64_t *wc = realloc(t->wcount, c * sizeof *wc);
        if (!wc) return -1;
        t->wcount = wc;
        size_t *wo = realloc(t->woff, c * sizeof *wo);
        if (!wo) return -1;
        t->woff = wo;
        int32_t *wl = realloc(t->wlen, c * sizeof *wl);
        if (!wl) return -1;
        t->wlen = wl;
        t->wcap = c;
    }
    if (grow((void **)&t->sym, &t->symcap, t->nsym + n, sizeof *t->sym)) return -1;
    w = (int32_t)t->nw++;
    if (tk_map_put(&t->word_map, s, n, w)) return -1;
    t->wcount[w] = 1;
    t->woff[w] = t->nsym;
    t->wlen[w] = (int32_t)n;
    for (size_t i = 0; i < n; i++) t->sym[t->nsym++] = t->byte_id[(unsigned char)s[i]];
    return 0;
}

/* Pre-tokenizes one special-free piece: regex matches and the gaps between
 * them are words (HF's Split behaviour "Isolated"). */
static tuna_status pretokenize(trainer *t, const char *s, size_t n) {
    size_t pos = 0, ms, me;
    int rc;
    while ((rc = tk_regex_next(&t->re, s, n, pos, &ms, &me)) == 1) {
        if (ms > pos && add_word(t, s + pos, ms - pos)) return nomem();
        if (add_word(t, s + ms, me - ms)) return nomem();
        pos = me;
    }
    if (rc < 0) return core_fail(TUNA_ERR_INTERNAL, "tokenizer train: regex match failed");
    if (pos < n && add_word(t, s + pos, n - pos)) return nomem();
    return TUNA_OK;
}

/* One training sequence (valid UTF-8): cut at special tokens (leftmost, then
 * longest), pre-tokenize the pieces between them. */
static tuna_status feed(trainer *t, const char *s, size_t n) {
    t->sequences++;
    for (int k = 0; k < t->n_spec; k++) t->spec_next[k] = 0; /* 0: not searched yet */
    size_t pos = 0;
    while (pos < n) {
        size_t best = n, blen = 0;
        for (int k = 0; k < t->n_spec; k++) {
            size_t sl = strlen(t->spec[k]);
            if (t->spec_next[k] == 0 || t->spec_next[k] - 1 < pos) {
                const char *f = memmem(s + pos, n - pos, t->spec[k], sl);
                t->spec_next[k] = f ? (size_t)(f - s) + 1 : n + 1;
            }
            size_t at = t->spec_next[k] - 1;
            if (at < best || (at == best && at < n && sl > blen)) { best = at; blen = sl; }
        }
        if (best > pos) {
            tuna_status st = pretokenize(t, s + pos, best - pos);
            if (st) return st;
        }
        pos = best + blen;
    }
    return TUNA_OK;
}

static void report_read(trainer *t) {
    if (t->o->progress && t->bytes >= t->next_report) {
        t->o->progress(t->o->progress_ctx, "read", t->bytes, t->total_bytes);
        t->next_report = t->bytes + (1 << 22);
    }
}

/* 1 when the max_bytes limit leaves no room for len more bytes. */
static int over_limit(trainer *t, size_t len) {
    if (t->o->max_bytes > 0 && t->bytes + (int64_t)len > t->o->max_bytes) {
        t->truncated = 1;
        return 1;
    }
    return 0;
}

static tuna_status read_file(trainer *t, const char *path) {
    /* a pipe is copied only as far as --max-bytes can use; one byte more, so
     * that a line crossing the limit is seen to cross it and left out */
    uint64_t want = t->o->max_bytes > 0 ? (uint64_t)(t->o->max_bytes - t->bytes) + 1 : 0;
    FILE *f;
    tuna_status st = input_file_open(path, want, &f);
    if (st != TUNA_OK) return st;
    int jsonl = input_kind_is_jsonl(path, f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int64_t lineno = 0;
    while (!st && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t n = (size_t)got;
        if (over_limit(t, n)) break;
        t->bytes += (int64_t)n;
        if (!jsonl) {
            size_t bad = tk_utf8_check(line, n);
            if (bad < n)
                st = core_fail(TUNA_ERR_FORMAT, "%s:%lld: invalid UTF-8 at byte %zu of the line", path,
                               (long long)lineno, bad + 1);
            else
                st = feed(t, line, n);
        } else {
            size_t i = 0;
            while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
            if (i == n) continue;
            json_error_t err;
            json_t *j = json_loadb(line, n, 0, &err);
            json_t *text = json_object_get(j, "text");
            if (!j)
                st = core_fail(TUNA_ERR_FORMAT, "%s:%lld: not JSON: %s", path, (long long)lineno, err.text);
            else if (!json_is_string(text))
                st = core_fail(TUNA_ERR_FORMAT, "%s:%lld: no \"text\" string in the record", path, (long long)lineno);
            else
                st = feed(t, json_string_value(text), json_string_length(text));
            json_decref(j);
        }
        report_read(t);
    }
    if (!st && ferror(f)) st = core_fail(TUNA_ERR_IO, "%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return st;
}

/* ---- merging ---- */
/* Replaces every occurrence of (a, b) in word w by id nw_id, left to right,
 * and moves the counts of the neighbouring pairs (as HF's Word::merge). */
static int merge_word(trainer *t, int32_t w, int32_t a, int32_t b, int32_t id) {
    int32_t *s = t->sym + t->woff[w];
    int32_t n = t->wlen[w], o = 0;
    int64_t c = t->wcount[w];
    for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (o > 0 && (pair_change(t, s[o - 1], a, -c, w) || pair_change(t, s[o - 1], id, c, w))) return -1;
            if (i + 2 < n && (pair_change(t, b, s[i + 2], -c, w) || pair_change(t, id, s[i + 2], c, w))) return -1;
            if (pair_change(t, a, b, -c, w)) return -1;
            s[o++] = id; /* o <= i: s[i + 2] was read above */
            i += 2;
        } else {
            s[o++] = s[i++];
        }
    }
    t->wlen[w] = o;
    return 0;
}

static tuna_status train_merges(trainer *t) {
    /* initial pair counts */
    t->step = 1;
    for (size_t w = 0; w < t->nw; w++) {
        const int32_t *s = t->sym + t->woff[w];
        for (int32_t i = 0; i + 1 < t->wlen[w]; i++)
            if (pair_change(t, s[i], s[i + 1], t->wcount[w], (int32_t)w)) return nomem();
    }
    t->nt = 0;
    if (grow((void **)&t->heap, &t->hcap, t->np + 1, sizeof *t->heap)) return nomem();
    for (size_t p = 0; p < t->np; p++)
        if (t->pairs[p].count > 0) t->heap[t->nh++] = (heap_ent){t->pairs[p].count, t->pairs[p].a, t->pairs[p].b};
    for (size_t i = t->nh / 2; i-- > 0;) sift_down(t->heap, t->nh, i);

    int64_t min_freq = t->o->min_frequency > 0 ? t->o->min_frequency : 0;
    int target = t->o->vocab_size, base = t->nv;
    tk_buf tmp = {0};
    tuna_status st = TUNA_OK;
    while (t->nv < target && t->nh > 0) {
        heap_ent top = heap_pop(t);
        int32_t p = pair_get(t, top.a, top.b, 0);
        int64_t cur = p >= 0 ? t->pairs[p].count : 0;
        if (top.count != cur) {
            if (cur > 0 && heap_push(t, cur, top.a, top.b)) { st = nomem(); break; }
            continue;
        }
        if (cur < 1 || cur < min_freq) break;
        /* the merged token: reuse the id of an existing identical string */
        tmp.n = 0;
        const char *sa = vocab_str(t, top.a), *sb = vocab_str(t, top.b);
        if (tk_buf_put(&tmp, sa, strlen(sa)) || tk_buf_put(&tmp, sb, strlen(sb))) { st = nomem(); break; }
        int32_t id = tk_map_get(&t->vmap, tmp.p, tmp.n);
        if (id < 0) {
            id = t->nv;
            if (vocab_add(t, tmp.p, tmp.n)) { st = nomem(); break; }
        }
        if (!t->pairs[p].merged) {
            size_t mc = (size_t)t->mcap;
            if (grow((void **)&t->mrg, &mc, 2 * (size_t)t->nm + 2, sizeof *t->mrg)) { st = nomem(); break; }
            t->mcap = (int)mc;
            t->mrg[2 * t->nm] = top.a;
            t->mrg[2 * t->nm + 1] = top.b;
            t->nm++;
            t->pairs[p].merged = 1;
        }
        /* visit each word on the pair's list once; detach the list first, so
         * that occurrences a later merge re-creates start a fresh one */
        t->step++;
        t->nt = 0;
        int32_t node = t->pairs[p].head;
        t->pairs[p].head = -1;
        t->pairs[p].last_word = -1;
        for (; node >= 0; node = t->nodes[node].next) {
            int32_t w = t->nodes[node].word;
            if (t->wstamp[w] == t->step) continue;
            t->wstamp[w] = t->step;
            if (merge_word(t, w, top.a, top.b, id)) { st = nomem(); break; }
        }
        if (st) break;
        for (size_t i = 0; i < t->nt; i++) {
            const pair_t *q = &t->pairs[t->touched[i]];
            if (q->count > 0 && heap_push(t, q->count, q->a, q->b)) { st = nomem(); break; }
        }
        if (st) break;
        if (t->o->progress && (t->nv - base) % 500 == 0)
            t->o->progress(t->o->progress_ctx, "merge", t->nv - base, target - base);
    }
    tk_buf_free(&tmp);
    return st;
}

/* ---- output ---- */
static json_t *added_token_json(const char *content, int with_id, int id) {
    json_t *j = with_id ? json_pack("{s:i, s:s}", "id", id, "content", content) : json_pack("{s:s}", "content", content);
    if (!j) return NULL;
    if (json_object_set_new(j, "single_word", json_false()) || json_object_set_new(j, "lstrip", json_false()) ||
        json_object_set_new(j, "rstrip", json_false()) || json_object_set_new(j, "normalized", json_false()) ||
        json_object_set_new(j, "special", json_true())) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *byte_level_json(int trim_offsets) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets",
                     trim_offsets, "use_regex", 1);
}

static json_t *tokenizer_json(const trainer *t) {
    json_t *root = json_object(), *added = json_array(), *vocab = json_object(), *merges = json_array();
    json_t *model = NULL, *pre = NULL;
    int bad = !root || !added || !vocab || !merges;
    for (int k = 0; !bad && k < t->n_spec; k++) bad = json_array_append_new(added, added_token_json(t->spec[k], 1, k));
    for (int id = 0; !bad && id < t->nv; id++) bad = json_object_set_new(vocab, vocab_str(t, id), json_integer(id));
    for (int m = 0; !bad && m < t->nm; m++)
        bad = json_array_append_new(merges, json_pack("[s, s]", vocab_str(t, t->mrg[2 * m]), vocab_str(t, t->mrg[2 * m + 1])));
    if (!bad) {
        if (t->o->split_regex) {
            json_t *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex", t->o->split_regex,
                                      "behavior", "Isolated", "invert", 0);
            json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                                   "use_regex", 0);
            if (split && bl) /* "o" hands both references to the new object, even on failure */
                pre = json_pack("{s:s, s:[o, o]}", "type", "Sequence", "pretokenizers", split, bl);
            else { json_decref(split); json_decref(bl); }
        } else {
            pre = byte_level_json(1);
        }
        model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b}", "type", "BPE", "dropout", "unk_token",
                          "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                          "ignore_merges", 0);
        bad = !pre || !model || json_object_set(model, "vocab", vocab) || json_object_set(model, "merges", merges);
    }
    if (!bad)
        bad = json_object_set_new(root, "version", json_string("1.0")) ||
              json_object_set_new(root, "truncation", json_null()) || json_object_set_new(root, "padding", json_null()) ||
              json_object_set(root, "added_tokens", added) || json_object_set_new(root, "normalizer", json_null()) ||
              json_object_set(root, "pre_tokenizer", pre) ||
              json_object_set_new(root, "post_processor", byte_level_json(0)) ||
              json_object_set_new(root, "decoder", byte_level_json(1)) || json_object_set(root, "model", model);
    json_decref(added); json_decref(vocab); json_decref(merges); json_decref(model); json_decref(pre);
    if (bad) { json_decref(root); return NULL; }
    return root;
}

static int has_special(const trainer *t, const char *s) {
    for (int k = 0; k < t->n_spec; k++)
        if (!strcmp(t->spec[k], s)) return 1;
    return 0;
}

/* tokenizer_config.json (with_config) or special_tokens_map.json. */
static json_t *config_json(const trainer *t, int with_config) {
    const char *first = t->spec[0];
    json_t *root = json_object(), *extra = json_array(), *atd = with_config ? json_object() : NULL;
    int bad = !root || !extra || (with_config && !atd);
    for (int k = 1; !bad && k < t->n_spec; k++) bad = json_array_append_new(extra, json_string(t->spec[k]));
    for (int k = 0; !bad && with_config && k < t->n_spec; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        bad = json_object_set_new(atd, key, added_token_json(t->spec[k], 0, 0));
    }
    if (!bad && with_config)
        bad = json_object_set_new(root, "add_prefix_space", json_false()) || json_object_set(root, "added_tokens_decoder", atd);
    if (!bad)
        bad = json_object_set(root, "additional_special_tokens", extra) ||
              json_object_set_new(root, "bos_token", json_string(first));
    /* the ChatML template needs both of its markers */
    if (!bad && with_config && t->o->chat_template)
        bad = json_object_set_new(root, "chat_template", json_string(t->o->chat_template));
    else if (!bad && with_config && has_special(t, "<|im_start|>") && has_special(t, "<|im_end|>"))
        bad = json_object_set_new(root, "chat_template", json_string(chatml_template));
    if (!bad && with_config) bad = json_object_set_new(root, "clean_up_tokenization_spaces", json_false());
    if (!bad) bad = json_object_set_new(root, "eos_token", json_string(first));
    if (!bad && with_config)
        bad = json_object_set_new(root, "model_max_length",
                                  json_integer(t->o->model_max_length > 0 ? t->o->model_max_length : 2048));
    if (!bad) bad = json_object_set_new(root, "pad_token", json_string(first));
    if (!bad && with_config) bad = json_object_set_new(root, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    if (!bad) bad = json_object_set_new(root, "unk_token", json_string(first));
    json_decref(extra);
    json_decref(atd);
    if (bad) { json_decref(root); return NULL; }
    return root;
}

static tuna_status write_json(const char *dir, const char *name, json_t *j) {
    if (!j) return nomem();
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text) return nomem();
    size_t dl = strlen(dir), nl = strlen(name);
    char *path = malloc(dl + nl + 2);
    if (!path) { free(text); return nomem(); }
    memcpy(path, dir, dl);
    path[dl] = '/';
    memcpy(path + dl + 1, name, nl + 1);
    size_t tl = strlen(text);
    text[tl] = '\n'; /* json_dumps leaves no final newline; write one */
    tuna_status st = atomic_file_write(path, text, tl + 1);
    free(path);
    free(text);
    return st;
}

/* mkdir -p */
static tuna_status make_dir(const char *dir) {
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) return nomem();
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            tuna_status st = core_fail(atomic_write_status(errno), "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return st;
        }
        p[i] = c;
    }
    free(p);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return core_fail(TUNA_ERR_IO, "%s: not a directory", dir);
    return TUNA_OK;
}

/* ---- setup ---- */
static tuna_status check_opts(trainer *t, const tuna_bpe_train_opts *o, const char *out_dir) {
    if (!out_dir || !*out_dir) return core_fail(TUNA_ERR_ARG, "tokenizer train: no output directory");
    if (!o->files || o->n_files <= 0) return core_fail(TUNA_ERR_ARG, "tokenizer train: no input files");
    for (int i = 0; i < o->n_files; i++)
        if (!o->files[i] || !*o->files[i]) return core_fail(TUNA_ERR_ARG, "tokenizer train: empty input file name");
    t->spec = o->special ? o->special : default_specials;
    t->n_spec = o->special ? o->n_special : 3;
    if (t->n_spec < 1 || t->n_spec > 4096)
        return core_fail(TUNA_ERR_ARG, "tokenizer train: %d special tokens (1 to 4096 wanted; the first is bos/eos/pad)",
                         t->n_spec);
    for (int k = 0; k < t->n_spec; k++) {
        const char *s = t->spec[k];
        size_t n = s ? strlen(s) : 0;
        if (!n) return core_fail(TUNA_ERR_ARG, "tokenizer train: special token %d is empty", k);
        if (tk_utf8_check(s, n) != n) return core_fail(TUNA_ERR_ARG, "tokenizer train: special token %d is not UTF-8", k);
        uint32_t cp;
        if (tk_utf8_decode(s, n, &cp) == (int)n && tk_cp_to_byte(cp) >= 0)
            return core_fail(TUNA_ERR_ARG, "tokenizer train: special token \"%s\" is a byte symbol of the base vocabulary", s);
        for (int j = 0; j < k; j++)
            if (!strcmp(t->spec[j], s)) return core_fail(TUNA_ERR_ARG, "tokenizer train: special token \"%s\" given twice", s);
    }
    int need = t->n_spec + 256;
    if (o->vocab_size < need || o->vocab_size > (1 << 24))
        return core_fail(TUNA_ERR_ARG,
                         "tokenizer train: vocab size %d is out of range: it must hold the 256 byte tokens and the "
                         "%d special tokens (at least %d, at most %d)", o->vocab_size, t->n_spec, need, 1 << 24);
    if (o->min_frequency < 0) return core_fail(TUNA_ERR_ARG, "tokenizer train: min frequency %d < 0", o->min_frequency);
    if (o->max_bytes < 0) return core_fail(TUNA_ERR_ARG, "tokenizer train: max bytes < 0");
    return TUNA_OK;
}

static void trainer_free(trainer *t) {
    tk_map_free(&t->word_map);
    free(t->wcount); free(t->woff); free(t->wlen); free(t->wstamp); free(t->sym);
    tk_buf_free(&t->vstr);
    free(t->voff);
    tk_map_free(&t->vmap);
    free(t->mrg); free(t->pairs); free(t->pslot); free(t->heap); free(t->nodes); free(t->touched);
    if (t->re.code) tk_regex_free(&t->re);
    free(t->spec_next);
}

void tuna_bpe_train_opts_default(tuna_bpe_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->min_frequency = 2;
    o->model_max_length = 2048;
}

tuna_status tuna_bpe_train(const tuna_bpe_train_opts *o, const char *out_dir, tuna_bpe_train_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!o) return core_fail(TUNA_ERR_ARG, "tokenizer train: no options");
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o;
    tuna_status st = check_opts(&t, o, out_dir);
    if (st) return st;
    /* inputs must exist before any work is done (a pipe's size is unknown:
     * it is read when its turn comes, see read_file) */
    for (int i = 0; i < o->n_files; i++) {
        struct stat sb;
        if (stat(o->files[i], &sb) != 0) return core_fail(TUNA_ERR_IO, "%s: %s", o->files[i], strerror(errno));
        if (S_ISDIR(sb.st_mode)) return core_fail(TUNA_ERR_ARG, "%s: is a directory", o->files[i]);
        if (S_ISREG(sb.st_mode)) t.total_bytes += (int64_t)sb.st_size;
    }
    if (o->max_bytes > 0 && t.total_bytes > o->max_bytes) t.total_bytes = o->max_bytes;
    const char *rx = o->split_regex ? o->split_regex : GPT2_SPLIT_REGEX;
    if ((st = tk_regex_compile(&t.re, rx, strlen(rx), "tokenizer train")) != TUNA_OK) goto done;
    if (!(t.spec_next = calloc((size_t)t.n_spec, sizeof *t.spec_next)) || tk_map_init(&t.word_map, 1 << 16) ||
        tk_map_init(&t.vmap, (size_t)o->vocab_size) || pslot_rebuild(&t, 1 << 16)) {
        st = nomem();
        goto done;
    }
    /* ids: specials, then the byte symbols in code point order (as HF sorts its alphabet) */
    for (int k = 0; k < t.n_spec && !st; k++)
        if (vocab_add(&t, t.spec[k], strlen(t.spec[k]))) st = nomem();
    for (uint32_t cp = 0; cp < 512 && !st; cp++) {
        int b = tk_cp_to_byte(cp);
        if (b < 0) continue;
        char u[4];
        int l = tk_utf8_encode(cp, u);
        t.byte_id[b] = t.nv;
        if (vocab_add(&t, u, (size_t)l)) st = nomem();
    }
    if (st) goto done;

    for (int i = 0; i < o->n_files && !st && !t.truncated; i++) st = read_file(&t, o->files[i]);
    if (st) goto done;
    if (o->progress) o->progress(o->progress_ctx, "read", t.bytes, t.bytes);
    if (!(t.wstamp = calloc(t.nw ? t.nw : 1, sizeof *t.wstamp))) { st = nomem(); goto done; }
    if ((st = train_merges(&t)) != TUNA_OK) goto done;
    if (o->progress) o->progress(o->progress_ctx, "merge", t.nv - t.n_spec - 256, o->vocab_size - t.n_spec - 256);

    if ((st = make_dir(out_dir)) != TUNA_OK) goto done;
    if (!(st = write_json(out_dir, "tokenizer.json", tokenizer_json(&t))) &&
        !(st = write_json(out_dir, "tokenizer_config.json", config_json(&t, 1))))
        st = write_json(out_dir, "special_tokens_map.json", config_json(&t, 0));
    if (!st && stats) {
        stats->bytes = t.bytes;
        stats->sequences = t.sequences;
        stats->words = (int64_t)t.nw;
        stats->vocab_size = t.nv;
        stats->merges = t.nm;
        stats->truncated = t.truncated;
    }
done:
    trainer_free(&t);
    return st;
}
