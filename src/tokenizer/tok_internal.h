/* tok_internal.h — shared structures of the tokenizer module (src/tokenizer).
 *
 * The encoding pipeline follows HF tokenizers step by step, so each stage can
 * be checked against its documented behaviour:
 *   added tokens (raw text) -> normalizer -> added tokens (normalized text)
 *   -> pre-tokenizer steps -> BPE model (with a pre-token cache) -> post-processor.
 * Decoding runs the decoder chain over token strings, as HF does.
 * Everything here is private to src/tokenizer; the public API is
 * include/tuna_tokenizer.h. A handle is single-threaded: the scratch buffers,
 * the regex match data and the cache below are mutated by encode. */
#ifndef TUNA_TOK_INTERNAL_H
#define TUNA_TOK_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "core/json_keys.h"
#include "io/atomic_file.h"
#include "tuna.h"
#include "tuna_tokenizer.h"

/* ---- growable buffers ---- */
typedef struct { char *p; size_t n, cap; } tk_buf;
typedef struct { int32_t *p; size_t n, cap; } tk_ids;
int tk_buf_reserve(tk_buf *b, size_t extra);            /* 0 ok, -1 out of memory */
int tk_buf_put(tk_buf *b, const void *s, size_t n);
int tk_buf_putc(tk_buf *b, char c);
int tk_ids_push(tk_ids *v, int32_t id);
void tk_buf_free(tk_buf *b);
/* Records "tokenizer: out of memory" and returns TUNA_ERR_NOMEM. */
tuna_status tk_nomem(void);

/* ---- string -> int32 hash map; owns copies of its keys ---- */
typedef struct { uint64_t h; uint32_t off, len; int32_t val; } tk_slot;
typedef struct {
    tk_slot *slots;   /* cap entries; len == UINT32_MAX marks empty */
    size_t cap, count;
    tk_buf keys;
} tk_map;
int tk_map_init(tk_map *m, size_t expect);
void tk_map_free(tk_map *m);
void tk_map_clear(tk_map *m);
/* Inserts or overwrites; 0 ok, -1 out of memory. */
int tk_map_put(tk_map *m, const char *k, size_t n, int32_t val);
/* Value of key, or -1 when absent (values stored are never negative). */
int32_t tk_map_get(const tk_map *m, const char *k, size_t n);
uint64_t tk_hash(const char *k, size_t n);

/* ---- merges: (left id, right id) -> (rank, merged id) ---- */
typedef struct { uint64_t key; int32_t rank, id; } tk_merge;
typedef struct { tk_merge *slots; size_t cap, count; } tk_merge_map;

/* ---- UTF-8 ---- */
/* Length of the UTF-8 character starting at s (1..4); 1 for an invalid lead. */
int tk_utf8_len(unsigned char c);
/* Decodes one character of s[0..n); returns its length, or 0 if invalid. */
int tk_utf8_decode(const char *s, size_t n, uint32_t *cp);
int tk_utf8_encode(uint32_t cp, char *out);
/* Offset of the first invalid byte, or n when s is valid UTF-8. */
size_t tk_utf8_check(const char *s, size_t n);
int tk_is_whitespace(uint32_t cp); /* Unicode White_Space, as Rust char::is_whitespace */

/* ---- regex (PCRE2, Oniguruma-compatible \s) ---- */
typedef struct {
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} tk_regex;
tuna_status tk_regex_compile(tk_regex *re, const char *pattern, size_t len, const char *what);
void tk_regex_free(tk_regex *re);
/* Finds the next match at or after start; returns 1 and sets [*ms,*me), 0 when
 * none, -1 on a matching error. */
int tk_regex_next(tk_regex *re, const char *s, size_t n, size_t start, size_t *ms, size_t *me);

/* ---- normalizers ---- */
typedef enum { TN_NFC, TN_NFD, TN_NFKC, TN_NFKD, TN_LOWER, TN_PREPEND, TN_REPLACE, TN_STRIP,
               TN_STRIP_ACCENTS } tk_norm_type;
typedef struct {
    tk_norm_type type;
    char *a; size_t alen;      /* prepend text / replace pattern (string) */
    char *b; size_t blen;      /* replace content */
    tk_regex re; int has_re;   /* replace pattern (regex) */
    int left, right;           /* strip */
} tk_norm;

/* ---- pre-tokenizers (a Sequence is flattened into steps) ---- */
typedef enum { TP_BYTELEVEL, TP_SPLIT, TP_DIGITS, TP_METASPACE, TP_WHITESPACE, TP_WSSPLIT,
               TP_PUNCT } tk_pre_type;
typedef enum { TB_REMOVED, TB_ISOLATED, TB_MERGED_PREV, TB_MERGED_NEXT, TB_CONTIGUOUS } tk_behavior;
typedef struct {
    tk_pre_type type;
    int add_prefix_space, use_regex;      /* ByteLevel */
    tk_regex re; int has_re;              /* Split(Regex), ByteLevel, Whitespace */
    char *str; size_t slen;               /* Split(String); Metaspace replacement */
    tk_behavior behavior; int invert;     /* Split, Punctuation */
    int individual_digits;                /* Digits */
    int prepend;                          /* Metaspace: 0 never, 1 first, 2 always */
    int split;                            /* Metaspace */
} tk_pre;

/* ---- decoders ---- */
typedef enum { TD_BYTELEVEL, TD_REPLACE, TD_BYTEFALLBACK, TD_FUSE, TD_STRIP, TD_METASPACE,
               TD_BPE_SUFFIX } tk_dec_type;
typedef struct {
    tk_dec_type type;
    char *a; size_t alen;   /* replace pattern / metaspace replacement / suffix / prefix */
    char *b; size_t blen;   /* replace content */
    int start, stop;        /* strip: count of content chars; content in a */
    int prepend;            /* metaspace: drop the replacement chars of the first token */
} tk_dec;

/* ---- added tokens ---- */
typedef struct {
    int32_t id;
    char *content; size_t len;   /* as written in tokenizer.json */
    char *pattern; size_t plen;  /* normalized content when normalized */
    int special, lstrip, rstrip, single_word, normalized;
} tk_added;

/* Byte trie over added-token patterns, for leftmost-longest matching. */
typedef struct { int32_t child, sibling, token; unsigned char byte; } tk_trie_node;
typedef struct { tk_trie_node *nodes; size_t n, cap; uint8_t first[256]; } tk_trie;

/* ---- the tokenizer ---- */
struct tuna_tokenizer {
    /* vocabulary */
    int vocab_size;            /* max id + 1 */
    tk_buf strs;               /* NUL-terminated token strings */
    uint32_t *str_off;         /* [vocab_size] offset in strs, UINT32_MAX when unused */
    uint8_t *special;          /* [vocab_size] 1 for special added tokens */
    tk_map vocab;              /* model vocabulary: token -> id */
    tk_map added_vocab;        /* added tokens: content -> id */

    /* BPE model */
    tk_merge_map merges;
    int32_t unk_id;            /* model unk token, -1 none */
    int fuse_unk, byte_fallback, ignore_merges;
    int sp_split;              /* words may be cut before U+2581 (see tk_bpe_word) */
    char *subword_prefix; size_t subword_prefix_len;   /* continuing_subword_prefix */
    char *word_suffix; size_t word_suffix_len;         /* end_of_word_suffix */
    int32_t byte_ids[256];     /* ids of <0xNN>, -1 when absent */

    /* pipeline */
    tk_norm *norms; int n_norms;
    tk_pre *pres; int n_pres;
    tk_dec *decs; int n_decs;
    int has_decoder;
    tk_added *added; int n_added;
    tk_trie trie_raw, trie_norm;        /* non-normalized / normalized added tokens */
    int32_t *post_pre; int n_post_pre;  /* ids the post-processor puts before A */
    int32_t *post_post; int n_post_post;/* ... and after A */

    /* tokenizer_config.json */
    int32_t bos_id, eos_id, pad_id, cfg_unk_id;
    char *bos_tok, *eos_tok;
    char *chat_template;

    /* encode scratch and cache (single-threaded use) */
    tk_buf norm_buf;
    tk_buf pre_buf[8];
    tk_map cache;              /* pre-token -> offset in cache_ids */
    tk_ids cache_ids;          /* count, ids..., count, ids... */
    void *sym; size_t sym_cap; /* BPE symbols */
    void *heap; size_t heap_cap;
    tk_ids out;
};

/* tok_bpe.c */
int tk_merges_init(tk_merge_map *m, size_t expect);
void tk_merges_free(tk_merge_map *m);
int tk_merges_put(tk_merge_map *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const tk_merge *tk_merges_get(const tk_merge_map *m, int32_t a, int32_t b);
/* 1 when no vocabulary token has U+2581 after another character. */
int tk_bpe_can_split(const tuna_tokenizer *tok);
/* Appends the ids of one pre-token to tok->out. */
tuna_status tk_bpe_word(tuna_tokenizer *tok, const char *w, size_t n);

/* tok_normalize.c */
tuna_status tk_norm_parse(tuna_tokenizer *tok, json_t *j);
void tk_norm_free(tk_norm *n);
/* Normalizes s into out (cleared first). */
tuna_status tk_normalize(const tuna_tokenizer *tok, const char *s, size_t n, tk_buf *out);

/* tok_pretok.c */
tuna_status tk_pre_parse(tuna_tokenizer *tok, json_t *j);
void tk_pre_free(tk_pre *p);
/* Pre-tokenizes one normalized piece and BPE-encodes each pre-token into tok->out.
 * at_start: the piece begins at offset 0 of the input (Metaspace "first"). */
tuna_status tk_pretokenize(tuna_tokenizer *tok, const char *s, size_t n, int at_start);
/* GPT-2 byte <-> unicode mapping (printable Latin-1 bytes map to themselves,
 * the other 68 bytes to U+0100..U+0143 in byte order). */
static inline uint32_t tk_byte_to_cp(unsigned char b) {
    if (b <= 32) return 256u + b;
    if (b >= 127 && b <= 160) return 289u + (b - 127u);
    if (b == 173) return 323;
    return b;
}
static inline int tk_cp_to_byte(uint32_t cp) { /* -1 when cp is not a byte-level char */
    if (cp >= 256 && cp <= 288) return (int)(cp - 256);
    if (cp >= 289 && cp <= 322) return (int)(cp - 289 + 127);
    if (cp == 323) return 173;
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 255 && cp != 173)) return (int)cp;
    return -1;
}

/* tok_decode.c */
tuna_status tk_dec_parse(tuna_tokenizer *tok, json_t *j);
void tk_dec_free(tk_dec *d);

/* Loading, in the order of the calls (never back):
 * tok_open.c (public tuna_tokenizer_load*: decides the kind) -> the readers
 * (tok_llama2c.c, tok_gguf.c, tok_slow_bpe.c) -> tok_build.c; tok_file.c
 * serves the first two. Files are written through io/atomic_file.h. */
/* tok_file.c */
tuna_status tk_read_file(const char *path, char **data, size_t *len);
int tk_is_file(const char *path);                        /* 1: a regular file */
char *tk_join_path(const char *dir, const char *name);   /* "dir/name"; NULL when out of memory */
/* Parses a JSON file; NULL with *st set on failure. int_as_real: see tok_file.c. */
json_t *tk_load_json_file(const char *path, int int_as_real, tuna_status *st);
/* tok_build.c: a tokenizer from a tokenizer.json object and an optional
 * tokenizer_config.json object (cfg_path names it in messages) */
tuna_status tk_load_from_json(tuna_tokenizer **out, json_t *root, json_t *config, const char *cfg_path);
/* tok_gguf.c: the vocabulary of a GGUF file */
tuna_status tk_load_gguf(tuna_tokenizer **out, const char *path);
/* tok_llama2c.c: a tokenizer from a llama2.c tokenizer.bin file */
tuna_status tk_load_llama2c(tuna_tokenizer **out, const char *path);
/* Builds a tokenizer.json object from a llama2.c tokenizer.bin image. */
tuna_status tk_llama2c_to_json(const char *data, size_t len, const char *what, json_t **out);
/* tok_slow_bpe.c: a tokenizer.json object from vocab.json + merges.txt of a
 * GPT-2-style folder; config is its tokenizer_config.json (its
 * tokenizer_class selects the pre-tokenizer regex). */
tuna_status tk_slow_bpe_to_json(const char *dir, json_t *config, json_t **out);

/* tok_encode.c */
void tk_trie_free(tk_trie *t);
tuna_status tk_trie_build(tuna_tokenizer *tok);
#endif
