/* tok_bpe.c — the BPE model: merges by rank over one pre-token, as HF's
 * BPE::merge_word does, with a pre-token -> ids cache in front.
 *
 * A word starts as one symbol per UTF-8 character (unknown characters become
 * <0xNN> byte tokens with byte_fallback, else unk, fused when fuse_unk, else
 * nothing, as in HF). Then
 * the adjacent pair with the lowest merge rank (leftmost on ties) is merged
 * until no pair has a merge. A binary heap of candidate pairs keeps this
 * O(n log n): stale entries are recognised by the lengths of their symbols,
 * which only grow. */
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "core/error.h"

/* Words longer than this are encoded every time: long runs are rare and
 * would crowd the cache. */
#define CACHE_MAX_WORD 256
/* The cache is cleared when its id pool passes this many entries. */
#define CACHE_MAX_IDS (4u << 20)

typedef struct { int32_t id, prev, next; uint32_t len; } sym;
typedef struct { int32_t rank, pos; uint32_t llen, rlen; int32_t id; } cand;

/* ---- merge map ---- */
static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t pair_slot(uint64_t k, size_t mask) {
    k ^= k >> 31;
    k *= 0x9e3779b97f4a7c15ull;
    k ^= k >> 29;
    return (size_t)k & mask;
}

int tk_merges_init(tk_merge_map *m, size_t expect) {
    size_t cap = 16;
    while (cap < expect * 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].rank = -1;
    m->cap = cap;
    m->count = 0;
    return 0;
}

void tk_merges_free(tk_merge_map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

int tk_merges_put(tk_merge_map *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->count + 1) * 2 > m->cap) {
        tk_merge_map g;
        if (tk_merges_init(&g, m->cap)) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].rank >= 0)
                tk_merges_put(&g, (int32_t)(m->slots[i].key >> 32), (int32_t)(uint32_t)m->slots[i].key,
                              m->slots[i].rank, m->slots[i].id);
        free(m->slots);
        *m = g;
    }
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = pair_slot(k, mask);; i = (i + 1) & mask) {
        tk_merge *s = &m->slots[i];
        if (s->rank < 0) { s->key = k; s->rank = rank; s->id = id; m->count++; return 0; }
        /* HF keeps the first occurrence of a duplicated merge */
        if (s->key == k) return 0;
    }
}

const tk_merge *tk_merges_get(const tk_merge_map *m, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = pair_slot(k, mask);; i = (i + 1) & mask) {
        const tk_merge *s = &m->slots[i];
        if (s->rank < 0) return NULL;
        if (s->key == k) return s;
    }
}

/* ---- heap of candidate merges, ordered by (rank, pos) ---- */
static int cand_less(const cand *x, const cand *y) {
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(cand *h, size_t *n, cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static cand heap_pop(cand *h, size_t *n) {
    cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) { m = l; best = &h[l]; }
        if (r < *n && cand_less(&h[r], best)) { m = r; }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static int grow_scratch(tuna_tokenizer *tok, size_t n) {
    if (n <= tok->sym_cap) return 0;
    size_t cap = tok->sym_cap ? tok->sym_cap : 64;
    while (cap < n) cap *= 2;
    void *s = realloc(tok->sym, cap * sizeof(sym));
    if (!s) return -1;
    tok->sym = s;
    /* each merge pushes at most two candidates: 3n bounds the heap */
    void *h = realloc(tok->heap, 3 * cap * sizeof(cand));
    if (!h) return -1;
    tok->heap = h;
    tok->sym_cap = cap;
    tok->heap_cap = 3 * cap;
    return 0;
}

static void push_pair(const tuna_tokenizer *tok, sym *s, cand *h, size_t *hn, int32_t a) {
    int32_t b = s[a].next;
    if (b < 0) return;
    const tk_merge *m = tk_merges_get(&tok->merges, s[a].id, s[b].id);
    if (!m) return;
    cand c = {m->rank, a, s[a].len, s[b].len, m->id};
    heap_push(h, hn, c);
}

/* Looks up a character (with the subword prefix / word suffix when set). */
static int32_t char_id(tuna_tokenizer *tok, const char *c, size_t n, int first, int last) {
    if ((first || !tok->subword_prefix_len) && (!last || !tok->word_suffix_len))
        return tk_map_get(&tok->vocab, c, n);
    char tmp[256];
    size_t k = 0;
    if (!first && tok->subword_prefix_len) {
        if (tok->subword_prefix_len > 128) return -1;
        memcpy(tmp, tok->subword_prefix, tok->subword_prefix_len);
        k = tok->subword_prefix_len;
    }
    memcpy(tmp + k, c, n);
    k += n;
    if (last && tok->word_suffix_len) {
        if (tok->word_suffix_len > 100) return -1;
        memcpy(tmp + k, tok->word_suffix, tok->word_suffix_len);
        k += tok->word_suffix_len;
    }
    return tk_map_get(&tok->vocab, tmp, k);
}

static tuna_status bpe_merge_word(tuna_tokenizer *tok, const char *w, size_t n) {
    if (grow_scratch(tok, n + 1)) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
    sym *s = tok->sym;
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = (size_t)tk_utf8_len((unsigned char)w[i]);
        if (i + cl > n) cl = n - i;
        int32_t id = char_id(tok, w + i, cl, i == 0, i + cl == n);
        if (id >= 0) {
            s[ns] = (sym){id, ns - 1, -1, (uint32_t)cl}; ns++;
        } else {
            int done = 0;
            if (tok->byte_fallback) {
                size_t k = 0;
                while (k < cl && tok->byte_ids[(unsigned char)w[i + k]] >= 0) k++;
                if (k == cl) {
                    for (k = 0; k < cl; k++, ns++)
                        s[ns] = (sym){tok->byte_ids[(unsigned char)w[i + k]], ns - 1, -1, 1};
                    done = 1;
                }
            }
            /* without an unk token HF drops the character; so does tuna, to give the same ids */
            if (!done && tok->unk_id >= 0) {
                if (tok->fuse_unk && ns > 0 && s[ns - 1].id == tok->unk_id) s[ns - 1].len += (uint32_t)cl;
                else { s[ns] = (sym){tok->unk_id, ns - 1, -1, (uint32_t)cl}; ns++; }
            }
        }
        i += cl;
    }
    for (int32_t i = 0; i + 1 < ns; i++) s[i].next = i + 1;

    cand *h = tok->heap;
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < ns; i++) push_pair(tok, s, h, &hn, i);
    while (hn) {
        cand c = heap_pop(h, &hn);
        int32_t a = c.pos, b = s[a].next;
        /* stale: the left symbol was absorbed or grew, or its right neighbour changed */
        if (s[a].len == 0 || s[a].len != c.llen || b < 0 || s[b].len != c.rlen) continue;
        s[a].id = c.id;
        s[a].len += s[b].len;
        s[b].len = 0;
        s[a].next = s[b].next;
        if (s[b].next >= 0) s[s[b].next].prev = a;
        if (s[a].prev >= 0) push_pair(tok, s, h, &hn, s[a].prev);
        push_pair(tok, s, h, &hn, a);
    }
    for (int32_t i = 0; i >= 0 && ns > 0; i = s[i].next)
        if (tk_ids_push(&tok->out, s[i].id)) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
    return TUNA_OK;
}

static tuna_status bpe_word_cached(tuna_tokenizer *tok, const char *w, size_t n) {
    if (n == 0) return TUNA_OK;
    if (tok->ignore_merges) {
        int32_t id = tk_map_get(&tok->vocab, w, n);
        if (id >= 0) return tk_ids_push(&tok->out, id) ? core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory") : TUNA_OK;
    }
    int cacheable = n <= CACHE_MAX_WORD;
    if (cacheable) {
        int32_t off = tk_map_get(&tok->cache, w, n);
        if (off >= 0) {
            int32_t cnt = tok->cache_ids.p[off];
            for (int32_t i = 0; i < cnt; i++)
                if (tk_ids_push(&tok->out, tok->cache_ids.p[off + 1 + i]))
                    return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
            return TUNA_OK;
        }
    }
    size_t start = tok->out.n;
    tuna_status st = bpe_merge_word(tok, w, n);
    if (st || !cacheable) return st;
    if (tok->cache_ids.n > CACHE_MAX_IDS) {
        tk_map_clear(&tok->cache);
        tok->cache_ids.n = 0;
    }
    /* The cache is only an accelerator: running out of memory here is ignored. */
    size_t off = tok->cache_ids.n, cnt = tok->out.n - start;
    if (tk_ids_push(&tok->cache_ids, (int32_t)cnt)) return TUNA_OK;
    for (size_t i = 0; i < cnt; i++)
        if (tk_ids_push(&tok->cache_ids, tok->out.p[start + i])) { tok->cache_ids.n = off; return TUNA_OK; }
    if (tk_map_put(&tok->cache, w, n, (int32_t)off)) tok->cache_ids.n = off;
    return TUNA_OK;
}

#define MARK "\xE2\x96\x81" /* U+2581, SentencePiece's space */

tuna_status tk_bpe_word(tuna_tokenizer *tok, const char *w, size_t n) {
    if (!tok->sp_split) return bpe_word_cached(tok, w, n);
    /* Without a pre-tokenizer a SentencePiece-style model gets the whole text
     * as one word. When no token has U+2581 after another character (checked
     * at load), no merge crosses such a point, so cutting there changes no id
     * and lets the cache work on words. */
    size_t start = 0;
    for (size_t i = 3; i + 3 <= n; i++) {
        if (memcmp(w + i, MARK, 3) != 0) continue;
        if (memcmp(w + i - 3, MARK, 3) == 0) continue;
        tuna_status st = bpe_word_cached(tok, w + start, i - start);
        if (st) return st;
        start = i;
        i += 2;
    }
    return bpe_word_cached(tok, w + start, n - start);
}

int tk_bpe_can_split(const tuna_tokenizer *tok) {
    if (tk_map_get(&tok->vocab, MARK, 3) < 0) return 0;
    for (int id = 0; id < tok->vocab_size; id++) {
        if (tok->str_off[id] == UINT32_MAX) continue;
        const char *t = tok->strs.p + tok->str_off[id];
        size_t n = strlen(t);
        for (size_t i = 1; i + 3 <= n; i++)
            if (!memcmp(t + i, MARK, 3) && (i < 3 || memcmp(t + i - 3, MARK, 3) != 0)) return 0;
    }
    return 1;
}
