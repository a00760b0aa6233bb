/* tok_encode.c — the encoding pipeline and added-token matching.
 *
 * As in HF's AddedVocabulary: added tokens whose "normalized" flag is false
 * are found in the raw text first (leftmost-longest, lstrip/rstrip eating the
 * whitespace next to them, single_word requiring word boundaries); the text
 * between them is normalized, then searched for the normalized added tokens
 * (whose patterns are their normalized contents), and what is left goes
 * through the pre-tokenizer and the BPE model. The post-processor's ids
 * (BOS/EOS) are added around the result when special tokens are requested. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "tok_internal.h"
#include "core/error.h"

/* ---- trie ---- */
static int32_t trie_node(tk_trie *t, unsigned char byte) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tk_trie_node *p = realloc(t->nodes, cap * sizeof *p);
        if (!p) return -1;
        t->nodes = p;
        t->cap = cap;
    }
    t->nodes[t->n] = (tk_trie_node){-1, -1, -1, byte};
    return (int32_t)t->n++;
}

static int trie_insert(tk_trie *t, const char *s, size_t n, int32_t token) {
    if (t->n == 0 && trie_node(t, 0) < 0) return -1;
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int32_t ch = t->nodes[cur].child;
        while (ch >= 0 && t->nodes[ch].byte != c) ch = t->nodes[ch].sibling;
        if (ch < 0) {
            ch = trie_node(t, c);
            if (ch < 0) return -1;
            t->nodes[ch].sibling = t->nodes[cur].child;
            t->nodes[cur].child = ch;
        }
        cur = ch;
    }
    if (t->nodes[cur].token < 0) t->nodes[cur].token = token; /* first definition wins */
    t->first[(unsigned char)s[0]] = 1;
    return 0;
}

void tk_trie_free(tk_trie *t) {
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

tuna_status tk_trie_build(tuna_tokenizer *tok) {
    for (int i = 0; i < tok->n_added; i++) {
        tk_added *a = &tok->added[i];
        if (a->normalized) {
            tk_buf nb = {0};
            tuna_status st = tk_normalize(tok, a->content, a->len, &nb);
            if (st) { tk_buf_free(&nb); return st; }
            a->pattern = nb.p ? nb.p : calloc(1, 1);
            a->plen = nb.n;
            if (!a->pattern) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
        }
        const char *p = a->normalized ? a->pattern : a->content;
        size_t pl = a->normalized ? a->plen : a->len;
        if (pl == 0) continue;
        if (trie_insert(a->normalized ? &tok->trie_norm : &tok->trie_raw, p, pl, i))
            return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
    }
    return TUNA_OK;
}

/* Longest pattern starting at s[i], or -1; sets *end. */
static int32_t trie_match_at(const tk_trie *t, const char *s, size_t n, size_t i, size_t *end) {
    int32_t cur = 0, best = -1;
    for (size_t k = i; k < n; k++) {
        int32_t ch = t->nodes[cur].child;
        while (ch >= 0 && t->nodes[ch].byte != (unsigned char)s[k]) ch = t->nodes[ch].sibling;
        if (ch < 0) break;
        cur = ch;
        if (t->nodes[cur].token >= 0) { best = t->nodes[cur].token; *end = k + 1; }
    }
    return best;
}

/* \w of Rust's regex crate, which HF uses for single_word: letters, marks,
 * decimal and letter numbers, connector punctuation, ZWNJ/ZWJ. */
static int is_word_char(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return 1;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) || c == UTF8PROC_CATEGORY_ND ||
           c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC;
}

/* Start of the character that ends at s[i] (i > 0). */
static size_t prev_char(const char *s, size_t i) {
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

typedef tuna_status (*text_fn)(tuna_tokenizer *tok, const char *s, size_t n, int at_start);

/* Splits s on the added tokens of trie t: gaps go to fn, matches to tok->out. */
static tuna_status split_added(tuna_tokenizer *tok, const tk_trie *t, const char *s, size_t n, int at_start, text_fn fn) {
    if (t->n == 0) return fn(tok, s, n, at_start);
    size_t done = 0, i = 0;
    tuna_status st;
    while (i < n) {
        if (!t->first[(unsigned char)s[i]]) { i++; continue; }
        size_t end = 0;
        int32_t k = trie_match_at(t, s, n, i, &end);
        if (k < 0) { i++; continue; }
        const tk_added *a = &tok->added[k];
        size_t start = i;
        uint32_t cp;
        if (a->single_word) {
            int left_ok = start == 0 || !tk_utf8_decode(s + prev_char(s, start), start - prev_char(s, start), &cp) || !is_word_char(cp);
            int right_ok = end == n || !tk_utf8_decode(s + end, n - end, &cp) || !is_word_char(cp);
            /* HF drops the match and searches on after it, not inside it */
            if (!left_ok || !right_ok) { i = end; continue; }
        }
        if (a->lstrip)
            while (start > done) {
                size_t p = prev_char(s, start);
                if (!tk_utf8_decode(s + p, start - p, &cp) || !tk_is_whitespace(cp)) break;
                start = p;
            }
        if (a->rstrip)
            while (end < n) {
                int l = tk_utf8_decode(s + end, n - end, &cp);
                if (!l || !tk_is_whitespace(cp)) break;
                end += (size_t)l;
            }
        if (start > done && (st = fn(tok, s + done, start - done, at_start && done == 0))) return st;
        if (tk_ids_push(&tok->out, a->id)) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
        done = i = end;
    }
    if (done < n) return fn(tok, s + done, n - done, at_start && done == 0);
    return TUNA_OK;
}

/* Normalizes one raw piece, then splits it on the normalized added tokens. */
static tuna_status encode_raw_piece(tuna_tokenizer *tok, const char *s, size_t n, int at_start) {
    tuna_status st = tk_normalize(tok, s, n, &tok->norm_buf);
    if (st) return st;
    /* norm_buf is not touched again until this piece is done */
    return split_added(tok, &tok->trie_norm, tok->norm_buf.p, tok->norm_buf.n, at_start, tk_pretokenize);
}

tuna_status tuna_tokenizer_encode(tuna_tokenizer *tok, const char *text, size_t len, int add_special,
                                  int32_t **ids, size_t *n) {
    if (!tok || !ids || !n || (!text && len)) return core_fail(TUNA_ERR_ARG, "tokenizer: encode: NULL argument");
    *ids = NULL;
    *n = 0;
    size_t bad = tk_utf8_check(text, len);
    if (bad != len) return core_fail(TUNA_ERR_ARG, "tokenizer: input is not valid UTF-8 (byte %zu)", bad);
    tok->out.n = 0;
    tuna_status st = TUNA_OK;
    if (add_special)
        for (int i = 0; i < tok->n_post_pre && !st; i++)
            if (tk_ids_push(&tok->out, tok->post_pre[i])) st = TUNA_ERR_NOMEM;
    if (!st && len) st = split_added(tok, &tok->trie_raw, text, len, 1, encode_raw_piece);
    if (!st && add_special)
        for (int i = 0; i < tok->n_post_post && !st; i++)
            if (tk_ids_push(&tok->out, tok->post_post[i])) st = TUNA_ERR_NOMEM;
    if (st == TUNA_ERR_NOMEM) return core_fail(st, "tokenizer: out of memory");
    if (st) return st;
    if (tok->out.n) {
        *ids = malloc(tok->out.n * sizeof **ids);
        if (!*ids) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(*ids, tok->out.p, tok->out.n * sizeof **ids);
    }
    *n = tok->out.n;
    /* keep the scratch from growing without bound after one huge input */
    if (tok->out.cap > (16u << 20)) { free(tok->out.p); tok->out = (tk_ids){0}; }
    return TUNA_OK;
}
