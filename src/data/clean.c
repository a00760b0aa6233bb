/* clean.c — `tuna data clean`: drops bad records, records outside the length
 * limits, exact duplicates and near duplicates, keeping the rest byte for
 * byte, and writes every dropped record with its reason to a side file.
 *
 * Exact duplicates: 128-bit hash (two seeded 64-bit hashes) of the record's
 * normalised canonical text (tuna_record_text: NFKC, case folded, white space
 * collapsed; roles included, so the same words under another role differ).
 * Near duplicates: MinHash over shingles of k consecutive words (default 5;
 * a record shorter than k words is one shingle), num_perm hash functions
 * h_i(x) = mix(x ^ seed_i) derived from the seed; LSH with b bands of r rows,
 * r the largest value for which a pair at the threshold shares at least one
 * band with probability >= 0.99 (1 - (1 - t^r)^b); candidates are confirmed
 * when the fraction of equal MinHash values (the Jaccard estimate) reaches the
 * threshold. Records are processed in file order and compared with the kept
 * ones only, so the first of a group is kept and the result is deterministic. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mix.h"
#include "data/data_io.h"
#include "tuna.h"
#include "core/error.h"

#define MAX_PERM 256

const char *tuna_drop_reason_name(tuna_drop_reason r) {
    static const char *n[] = {"bad_record", "exact_duplicate", "near_duplicate", "too_short", "too_long"};
    return (unsigned)r < TUNA_DROP_COUNT ? n[r] : "?";
}

void tuna_clean_options_init(tuna_clean_options *o) {
    memset(o, 0, sizeof *o);
    o->near_dup = 0.9;
    o->shingle_words = 5;
    o->num_perm = 128;
    o->seed = 1;
    tuna_data_options_init(&o->data);
    o->data.max_bad = 1.0; /* cleaning is where bad records are dropped */
}

/* ---- a uint64 -> int map (open addressing; key 0 is stored as 1) ---- */
typedef struct {
    uint64_t *key;
    int32_t *val;
    size_t cap, n;
} u64map;

static int map_grow(u64map *m) {
    size_t nc = m->cap ? m->cap * 2 : 1024;
    uint64_t *k = calloc(nc, sizeof *k);
    int32_t *v = malloc(nc * sizeof *v);
    if (!k || !v) { free(k); free(v); return 0; }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->key[i]) continue;
        size_t j = core_mix64(m->key[i]) & (nc - 1);
        while (k[j]) j = (j + 1) & (nc - 1);
        k[j] = m->key[i];
        v[j] = m->val[i];
    }
    free(m->key);
    free(m->val);
    m->key = k;
    m->val = v;
    m->cap = nc;
    return 1;
}
/* Slot of key (existing or the empty one where it would go); NULL on OOM. */
static int32_t *map_slot(u64map *m, uint64_t key, int *is_new) {
    if (!key) key = 1;
    if ((m->n + 1) * 2 > m->cap && !map_grow(m)) return NULL;
    size_t j = core_mix64(key) & (m->cap - 1);
    while (m->key[j] && m->key[j] != key) j = (j + 1) & (m->cap - 1);
    *is_new = !m->key[j];
    if (*is_new) { m->key[j] = key; m->n++; m->val[j] = -1; }
    return &m->val[j];
}
static void map_free(u64map *m) { free(m->key); free(m->val); }

/* ---- state ---- */
typedef struct {
    const tuna_clean_options *o;
    tuna_clean_stats *st;
    atomic_file dropped;
    tuna_status err;           /* first error inside the bad-record callback */
    /* exact duplicates: hash pair -> line of the first occurrence */
    u64map exact;              /* key: first hash; value: index into ex_* */
    uint64_t *ex_h2;
    long *ex_line;
    int32_t *ex_next;          /* chain of entries sharing the first hash */
    size_t ex_n, ex_cap;
    /* near duplicates */
    int P, bands, rows;
    uint64_t perm_seed[MAX_PERM];
    uint32_t *sig;             /* [n_kept][P] */
    long *kept_line;
    int32_t *seen;             /* [n_kept] stamp: last record a candidate was checked for */
    size_t n_kept, kept_cap;
    u64map bucket;             /* band key -> head entry */
    int32_t *ent_rec, *ent_next;
    size_t ent_n, ent_cap;
} cleaner;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

/* Writes one dropped record: {"file","line","reason","detail","raw"|"raw_hex"}. */
static tuna_status write_dropped(cleaner *c, const char *file, long line, const char *reason, const char *detail,
                                 const char *raw, size_t raw_len) {
    json_t *o = json_object();
    if (!o) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "line", json_integer(line));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "detail", json_string(detail));
    if (tuna_utf8_check(raw, raw_len) == raw_len && !memchr(raw, 0, raw_len)) {
        json_object_set_new(o, "raw", json_stringn(raw, raw_len));
    } else { /* not representable as a JSON string: keep the bytes exactly */
        char *hex = malloc(raw_len * 2 + 1);
        if (!hex) { json_decref(o); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
        for (size_t i = 0; i < raw_len; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned char)raw[i]);
        json_object_set_new(o, "raw_hex", json_stringn(hex, raw_len * 2));
        free(hex);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    tuna_status st = data_out_line(&c->dropped, s, strlen(s));
    free(s);
    return st;
}

static void on_bad(void *ctx, const tuna_bad_record *b) {
    cleaner *c = ctx;
    c->st->dropped++;
    c->st->by_reason[TUNA_DROP_BAD]++;
    if (c->err) return;
    char reason[64];
    snprintf(reason, sizeof reason, "%s", tuna_bad_key(b->kind));
    c->err = write_dropped(c, b->file, b->line, reason, b->reason, b->raw, b->raw_len);
    /* chain a user callback too, if any */
    if (c->o->data.on_bad) c->o->data.on_bad(c->o->data.ctx, b);
}

/* Code points of the record's content (what --min-chars/--max-chars limit). */
static long content_chars(const tuna_record *r) {
    char *t = NULL;
    size_t n = 0;
    if (r->kind == TUNA_RECORD_PRETOKENIZED) return (long)r->n_ids;
    if (r->kind == TUNA_RECORD_PREFERENCE_TOKENS) return (long)(r->n_ids + r->n_chosen + r->n_rejected);
    if (tuna_record_text(r, 0, &t, &n)) return -1;
    /* drop the role names and separators the canonical text adds */
    long cnt = 0;
    int in_role = r->kind == TUNA_RECORD_CHAT;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == 0x1f) { in_role = 0; continue; }
        if (ch == 0x1e) { in_role = 1; continue; }
        if (!in_role && (ch & 0xC0) != 0x80) cnt++;
    }
    free(t);
    return cnt;
}

/* MinHash signature of the normalised text. */
static void minhash(const cleaner *c, const char *t, size_t n, uint32_t *sig) {
    uint64_t mins[MAX_PERM];
    for (int i = 0; i < c->P; i++) mins[i] = UINT64_MAX;
    int k = c->o->shingle_words > 0 ? c->o->shingle_words : 5;
    /* word hashes in a ring of the last k words */
    uint64_t ring[64];
    if (k > 64) k = 64;
    long nw = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && (t[i] == ' ' || t[i] == 0x1f || t[i] == 0x1e)) i++;
        if (i >= n) break;
        size_t b = i;
        while (i < n && !(t[i] == ' ' || t[i] == 0x1f || t[i] == 0x1e)) i++;
        ring[nw % k] = data_hash64(t + b, i - b, 0x5157);
        nw++;
        if (nw >= k) {
            uint64_t h = 0x243f6a8885a308d3ULL;
            for (int j = 0; j < k; j++) h = core_mix64(h ^ ring[(nw - k + j) % k]) + (uint64_t)j;
            for (int p = 0; p < c->P; p++) {
                uint64_t v = core_mix64(h ^ c->perm_seed[p]);
                if (v < mins[p]) mins[p] = v;
            }
        }
    }
    if (nw < k) { /* short record: all its words are one shingle */
        uint64_t h = 0x243f6a8885a308d3ULL;
        for (long j = 0; j < nw; j++) h = core_mix64(h ^ ring[j]) + (uint64_t)j;
        for (int p = 0; p < c->P; p++) mins[p] = core_mix64(h ^ c->perm_seed[p]);
    }
    for (int p = 0; p < c->P; p++) sig[p] = (uint32_t)(mins[p] >> 32);
}

static uint64_t band_key(const cleaner *c, const uint32_t *sig, int band) {
    return data_hash64(sig + (size_t)band * (size_t)c->rows, (size_t)c->rows * sizeof *sig, 0xb4d0 + (uint64_t)band);
}

/* Exact duplicate lookup/insert: returns the first line, or 0 after inserting. */
static long exact_check(cleaner *c, uint64_t h1, uint64_t h2, long line, tuna_status *err) {
    int is_new;
    int32_t *head = map_slot(&c->exact, h1, &is_new);
    if (!head) { *err = core_fail(TUNA_ERR_NOMEM, "out of memory"); return 0; }
    for (int32_t e = *head; e >= 0; e = c->ex_next[e])
        if (c->ex_h2[e] == h2) return c->ex_line[e];
    size_t cap = c->ex_cap;
    if (!grow((void **)&c->ex_h2, &cap, c->ex_n + 1, sizeof *c->ex_h2) ||
        !grow((void **)&c->ex_line, &(size_t){c->ex_cap}, c->ex_n + 1, sizeof *c->ex_line) ||
        !grow((void **)&c->ex_next, &(size_t){c->ex_cap}, c->ex_n + 1, sizeof *c->ex_next)) {
        *err = core_fail(TUNA_ERR_NOMEM, "out of memory");
        return 0;
    }
    c->ex_cap = cap;
    c->ex_h2[c->ex_n] = h2;
    c->ex_line[c->ex_n] = line;
    c->ex_next[c->ex_n] = *head;
    *head = (int32_t)c->ex_n++;
    return 0;
}

/* Near duplicate: the line of a kept record whose estimated Jaccard with sig
 * is >= threshold (its estimate in *jac), or 0. */
static long near_check(cleaner *c, const uint32_t *sig, int32_t stamp, double *jac) {
    double t = c->o->near_dup;
    for (int b = 0; b < c->bands; b++) {
        int is_new;
        int32_t *head = map_slot(&c->bucket, band_key(c, sig, b), &is_new);
        if (!head) return -1;
        for (int32_t e = *head; e >= 0; e = c->ent_next[e]) {
            int32_t id = c->ent_rec[e];
            if (c->seen[id] == stamp) continue;
            c->seen[id] = stamp;
            const uint32_t *o = c->sig + (size_t)id * (size_t)c->P;
            int eq = 0;
            for (int p = 0; p < c->P; p++) eq += o[p] == sig[p];
            double j = (double)eq / c->P;
            if (j >= t) { *jac = j; return c->kept_line[id]; }
        }
    }
    return 0;
}

static tuna_status keep_sig(cleaner *c, const uint32_t *sig, long line) {
    size_t cap = c->kept_cap;
    if (!grow((void **)&c->sig, &cap, c->n_kept + 1, (size_t)c->P * sizeof *c->sig) ||
        !grow((void **)&c->kept_line, &(size_t){c->kept_cap}, c->n_kept + 1, sizeof *c->kept_line) ||
        !grow((void **)&c->seen, &(size_t){c->kept_cap}, c->n_kept + 1, sizeof *c->seen))
        return core_fail(TUNA_ERR_NOMEM, "out of memory");
    c->kept_cap = cap;
    int32_t id = (int32_t)c->n_kept++;
    memcpy(c->sig + (size_t)id * (size_t)c->P, sig, (size_t)c->P * sizeof *sig);
    c->kept_line[id] = line;
    c->seen[id] = -1;
    for (int b = 0; b < c->bands; b++) {
        int is_new;
        int32_t *head = map_slot(&c->bucket, band_key(c, sig, b), &is_new);
        size_t ecap = c->ent_cap;
        if (!head || !grow((void **)&c->ent_rec, &ecap, c->ent_n + 1, sizeof *c->ent_rec) ||
            !grow((void **)&c->ent_next, &(size_t){c->ent_cap}, c->ent_n + 1, sizeof *c->ent_next))
            return core_fail(TUNA_ERR_NOMEM, "out of memory");
        c->ent_cap = ecap;
        c->ent_rec[c->ent_n] = id;
        c->ent_next[c->ent_n] = *head;
        *head = (int32_t)c->ent_n++;
    }
    return TUNA_OK;
}

/* Largest rows per band r (bands = P / r) with P(candidate | J = t) >= 0.99. */
static void choose_bands(int P, double t, int *bands, int *rows) {
    *rows = 1;
    *bands = P;
    for (int r = P; r >= 1; r--) {
        int b = P / r;
        double p = 1.0 - pow(1.0 - pow(t, r), b);
        if (p >= 0.99) { *rows = r; *bands = b; return; }
    }
}

static void cleaner_free(cleaner *c) {
    map_free(&c->exact);
    free(c->ex_h2);
    free(c->ex_line);
    free(c->ex_next);
    free(c->sig);
    free(c->kept_line);
    free(c->seen);
    map_free(&c->bucket);
    free(c->ent_rec);
    free(c->ent_next);
}

tuna_status tuna_data_clean(const char *in_path, const char *out_path, const char *dropped_path,
                            const tuna_clean_options *opts, tuna_clean_stats *stats) {
    tuna_clean_options defaults;
    if (!opts) { tuna_clean_options_init(&defaults); opts = &defaults; }
    tuna_clean_stats st_local;
    if (!stats) stats = &st_local;
    memset(stats, 0, sizeof *stats);
    if (!(opts->near_dup > 0)) return core_fail(TUNA_ERR_ARG, "near-duplicate threshold %g must be in (0, 1] (above 1: off)", opts->near_dup);
    if (opts->num_perm < 1 || opts->num_perm > MAX_PERM)
        return core_fail(TUNA_ERR_ARG, "MinHash permutations %d must be in [1, %d]", opts->num_perm, MAX_PERM);
    if (opts->min_chars < 0 || opts->max_chars < 0 || (opts->max_chars && opts->min_chars > opts->max_chars))
        return core_fail(TUNA_ERR_ARG, "length limits: min %ld, max %ld", opts->min_chars, opts->max_chars);

    cleaner c;
    memset(&c, 0, sizeof c);
    c.o = opts;
    c.st = stats;
    c.P = opts->num_perm;
    int near_on = opts->near_dup <= 1.0;
    if (near_on) choose_bands(c.P, opts->near_dup, &c.bands, &c.rows);
    stats->bands = c.bands;
    stats->rows = c.rows;
    uint64_t s = opts->seed;
    for (int i = 0; i < c.P; i++) c.perm_seed[i] = core_mix64(s += 0x9e3779b97f4a7c15ULL);

    tuna_data_options dopt = opts->data;
    dopt.on_bad = on_bad;
    dopt.ctx = &c;
    atomic_file out = {0};
    tuna_data_reader *rd = NULL;
    tuna_record rec;
    memset(&rec, 0, sizeof rec);
    char *norm = NULL;
    tuna_status st = tuna_data_reader_open(&rd, in_path, &dopt);
    if (!st) st = atomic_file_open(&out, out_path);
    if (!st) st = atomic_file_open(&c.dropped, dropped_path);
    uint32_t sig[MAX_PERM];
    while (!st) {
        int got;
        st = tuna_data_reader_next(rd, &rec, &got);
        if (!st && c.err) st = c.err;
        if (st || !got) break;
        size_t nl;
        if ((st = tuna_record_text(&rec, 1, &norm, &nl))) break;
        char detail[200];
        tuna_drop_reason why = TUNA_DROP_COUNT;
        long chars = content_chars(&rec);
        if (opts->min_chars && chars < opts->min_chars) {
            why = TUNA_DROP_TOO_SHORT;
            snprintf(detail, sizeof detail, "%ld characters, fewer than --min-chars %ld", chars, opts->min_chars);
        } else if (opts->max_chars && chars > opts->max_chars) {
            why = TUNA_DROP_TOO_LONG;
            snprintf(detail, sizeof detail, "%ld characters, more than --max-chars %ld", chars, opts->max_chars);
        } else {
            long first = exact_check(&c, data_hash64(norm, nl, 0x6578616374ULL), data_hash64(norm, nl, 0x6475706cULL),
                                     rec.line, &st);
            if (st) break;
            if (first) {
                why = TUNA_DROP_EXACT_DUP;
                snprintf(detail, sizeof detail, "same normalised text as line %ld", first);
            } else if (near_on) {
                minhash(&c, norm, nl, sig);
                double jac = 0;
                long other = near_check(&c, sig, (int32_t)rec.index, &jac);
                if (other < 0) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
                if (other) {
                    why = TUNA_DROP_NEAR_DUP;
                    snprintf(detail, sizeof detail, "estimated Jaccard %.3f with line %ld (threshold %g)", jac, other, opts->near_dup);
                } else if ((st = keep_sig(&c, sig, rec.line))) break;
            }
        }
        free(norm);
        norm = NULL;
        if (why != TUNA_DROP_COUNT) {
            stats->dropped++;
            stats->by_reason[why]++;
            st = write_dropped(&c, rec.file, rec.line, tuna_drop_reason_name(why), detail, rec.raw, rec.raw_len);
        } else {
            stats->kept++;
            st = data_out_line(&out, rec.raw, rec.raw_len);
        }
    }
    free(norm);
    tuna_record_clear(&rec);
    if (rd) tuna_data_reader_stats(rd, &stats->data);
    tuna_data_reader_free(rd);
    if (!st) st = atomic_file_commit(&out);
    if (!st) st = atomic_file_commit(&c.dropped);
    atomic_file_abort(&out);
    atomic_file_abort(&c.dropped);
    cleaner_free(&c);
    return st;
}
