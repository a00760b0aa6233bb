/* reader.c — streaming reader of training records (tuna_data.h): JSONL line by
 * line (memory bounded by the longest line), or a file holding one JSON array
 * (loaded whole: such files are small in practice). Applies the bad-record
 * policy: report each bad record as FILE:LINE through the caller's callback,
 * skip and count it, stop at the first with strict, and fail at the end when
 * more than max_bad of the records were bad. Never drops a record silently. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/reader_internal.h"
#include "io/input_file.h"
#include "io/input_kind.h"
#include "tuna.h"
#include "core/json_error.h"
#include "core/error.h"

struct tuna_data_reader {
    char *path;
    tuna_data_options o;
    FILE *f;
    char *line;           /* JSONL line buffer */
    size_t cap;
    long lineno;          /* JSONL: last line read */
    long index;           /* next record number */
    int is_array;
    json_t *arr;          /* array file: the whole array */
    long *arr_line;       /* [size of arr] line where each element starts */
    size_t arr_i;
    int finished;
    tuna_data_stats st;
    uint64_t hash;        /* FNV-1a of the bytes read so far (data_reader_hash) */
    char first_bad[600];  /* first report, for the max-bad message */
    data_bad_note *notes; /* the first DATA_BAD_NOTES reports */
    int n_notes;
};

/* Line of each top-level element of a JSON array text (which has parsed, so
 * only strings and nesting need tracking). */
static void element_lines(const char *s, size_t n, long *out, size_t count) {
    long line = 1;
    int depth = 0, in_str = 0, want = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && k < count; i++) {
        char ch = s[i];
        if (ch == '\n') { line++; continue; }
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = 0;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\r') continue;
        if (depth == 1 && want && ch != ',' && ch != ']') { out[k++] = line; want = 0; }
        if (ch == '"') in_str = 1;
        else if (ch == '[' || ch == '{') { depth++; if (depth == 1) want = 1; }
        else if (ch == ']' || ch == '}') depth--;
        else if (ch == ',' && depth == 1) want = 1;
    }
    while (k < count) out[k++] = line;
}

static tuna_status load_array(tuna_data_reader *r) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); return core_fail(TUNA_ERR_NOMEM, "out of memory reading %s", r->path); }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, r->f);
        if (k == 0) break;
        n += k;
    }
    if (ferror(r->f)) { free(buf); return core_fail(TUNA_ERR_IO, "%s: read error", r->path); }
    r->hash = tuna_hash64(r->hash, buf, n);
    size_t skip = (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) ? 3 : 0;
    size_t bad_at = tuna_utf8_check(buf + skip, n - skip);
    if (bad_at < n - skip) {
        long line = 1, col = 1;
        for (size_t i = skip; i < skip + bad_at; i++) {
            if (buf[i] == '\n') { line++; col = 1; } else col++;
        }
        unsigned char b = (unsigned char)buf[skip + bad_at];
        free(buf);
        return core_fail(TUNA_ERR_FORMAT, "%s:%ld: invalid UTF-8 (byte 0x%02X at column %ld); a JSON array file cannot skip one record: fix it or use JSONL",
                         r->path, line, b, col);
    }
    json_error_t je;
    r->arr = json_loadb(buf + skip, n - skip, JSON_REJECT_DUPLICATES, &je);
    if (!r->arr) {
        free(buf);
        return core_fail(TUNA_ERR_FORMAT, "%s:%d: not valid JSON: %s (column %d); a JSON array file cannot skip one record",
                         r->path, je.line, tuna_json_error_text(&je), je.column);
    }
    if (!json_is_array(r->arr)) { free(buf); return core_fail(TUNA_ERR_FORMAT, "%s: expected a JSON array of records", r->path); }
    size_t cnt = json_array_size(r->arr);
    r->arr_line = malloc((cnt ? cnt : 1) * sizeof *r->arr_line);
    if (!r->arr_line) { free(buf); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    element_lines(buf + skip, n - skip, r->arr_line, cnt);
    free(buf);
    return TUNA_OK;
}

tuna_status tuna_data_reader_open(tuna_data_reader **out, const char *path, const tuna_data_options *opts) {
    *out = NULL;
    tuna_data_reader *r = calloc(1, sizeof *r);
    if (!r) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (opts) r->o = *opts;
    else tuna_data_options_init(&r->o);
    r->path = strdup(path);
    if (!r->path) { free(r); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    r->hash = TUNA_HASH_INIT;
    const input_progress progress = {r->o.on_read, r->o.read_ctx};
    tuna_status s = input_file_open_ex(path, 0, &progress, &r->f);
    if (s != TUNA_OK) {
        tuna_data_reader_free(r);
        return s;
    }
    input_kind kind = input_kind_sniff(r->f);
    if (kind == INPUT_GZIP) {
        tuna_data_reader_free(r);
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: gzip-compressed; decompress it first (gzip -dk)", path);
    }
    r->is_array = kind == INPUT_JSON_ARRAY;
    if (r->is_array) {
        s = load_array(r);
        if (s) { tuna_data_reader_free(r); return s; }
    }
    *out = r;
    return TUNA_OK;
}

static void format_report(char *msg, size_t n, const char *path, int is_array, long line, long index, const char *reason) {
    if (is_array) snprintf(msg, n, "%s:%ld: record %ld: %s", path, line, index, reason);
    else snprintf(msg, n, "%s:%ld: %s", path, line, reason);
}

/* Hands one bad record to the callback; returns TUNA_ERR_FORMAT under strict. */
static tuna_status deliver(const tuna_data_options *o, const tuna_bad_record *b) {
    if (o->on_bad) o->on_bad(o->ctx, b);
    if (o->strict) return core_fail(TUNA_ERR_FORMAT, "%s", b->message);
    return TUNA_OK;
}

/* Keeps the first reports for data_reader_notes. */
static void note(tuna_data_reader *r, long line, long index, tuna_bad_kind kind, const char *reason) {
    if (r->n_notes >= DATA_BAD_NOTES) return;
    if (!r->notes && !(r->notes = calloc(DATA_BAD_NOTES, sizeof *r->notes))) return;
    data_bad_note *b = &r->notes[r->n_notes++];
    b->line = line;
    b->index = index;
    b->kind = (int)kind;
    snprintf(b->reason, sizeof b->reason, "%s", reason);
}

/* Reports one bad record; returns TUNA_ERR_FORMAT under strict. */
static tuna_status report(tuna_data_reader *r, long line, long index, tuna_bad_kind kind, const char *reason,
                          const char *raw, size_t raw_len) {
    char msg[sizeof r->first_bad];
    format_report(msg, sizeof msg, r->path, r->is_array, line, index, reason);
    r->st.records++;
    r->st.bad++;
    r->st.bad_by_kind[kind]++;
    if (!r->first_bad[0]) snprintf(r->first_bad, sizeof r->first_bad, "%s", msg);
    note(r, line, index, kind, reason);
    tuna_bad_record b = {r->path, line, index, kind, reason, msg, raw, raw_len};
    return deliver(&r->o, &b);
}

/* more than max_bad of the records bad: the end-of-read failure */
static tuna_status check_max_bad(const char *path, const tuna_data_stats *st, double max_bad, const char *first_bad) {
    double allowed = max_bad * (double)st->records;
    if (st->bad > 0 && (double)st->bad > allowed + 1e-9)
        return core_fail(TUNA_ERR_FORMAT, "%s: %ld of %ld records are bad (%.2f%%), more than the %g%% allowed (--max-bad); first: %s",
                         path, st->bad, st->records, 100.0 * (double)st->bad / (double)st->records,
                         100.0 * max_bad, first_bad);
    return TUNA_OK;
}

static tuna_status finish(tuna_data_reader *r) {
    r->finished = 1;
    return check_max_bad(r->path, &r->st, r->o.max_bad, r->first_bad);
}

tuna_status data_policy_replay(const char *path, const tuna_data_options *o, int is_array, const tuna_data_stats *st,
                               const data_bad_note *notes, int n_notes) {
    char msg[600], first[600] = "";
    for (int i = 0; i < n_notes; i++) {
        const data_bad_note *n = &notes[i];
        format_report(msg, sizeof msg, path, is_array, n->line, n->index, n->reason);
        if (i == 0) snprintf(first, sizeof first, "%s", msg);
        tuna_bad_record b = {path, n->line, n->index, (tuna_bad_kind)n->kind, n->reason, msg, "", 0};
        tuna_status s = deliver(o, &b);
        if (s != TUNA_OK) return s;
    }
    return check_max_bad(path, st, o->max_bad, first);
}

int data_reader_notes(const tuna_data_reader *r, const data_bad_note **notes) {
    *notes = r->notes;
    return r->n_notes;
}

uint64_t data_reader_size(const tuna_data_reader *r) {
    struct stat sb;
    return r->f && fstat(fileno(r->f), &sb) == 0 && sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
}

uint64_t data_reader_hash(const tuna_data_reader *r) { return r->hash; }

tuna_status tuna_data_reader_next(tuna_data_reader *r, tuna_record *rec, int *got) {
    *got = 0;
    tuna_record_clear(rec);
    if (r->finished) return TUNA_OK;
    tuna_bad_kind why = TUNA_BAD_JSON;
    if (r->is_array) {
        while (r->arr_i < json_array_size(r->arr)) {
            size_t i = r->arr_i++;
            long index = r->index++, line = r->arr_line[i];
            json_t *e = json_array_get(r->arr, i);
            tuna_status s = tuna_record_from_json(rec, e, &r->o, &why);
            char *raw = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!raw) { tuna_record_clear(rec); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
            if (s == TUNA_ERR_FORMAT) {
                char reason[512];
                snprintf(reason, sizeof reason, "%s", tuna_last_error());
                s = report(r, line, index, why, reason, raw, strlen(raw));
                free(raw);
                if (s) return s;
                continue;
            }
            if (s) { free(raw); return s; }
            rec->raw = raw;
            rec->raw_len = strlen(raw);
            rec->file = r->path;
            rec->line = line;
            rec->index = index;
            r->st.records++;
            r->st.good++;
            r->st.by_format[rec->format]++;
            *got = 1;
            return TUNA_OK;
        }
        return finish(r);
    }
    ssize_t len;
    while ((len = getline(&r->line, &r->cap, r->f)) != -1) {
        r->hash = tuna_hash64(r->hash, r->line, (size_t)len);
        r->lineno++;
        const char *p = r->line;
        size_t n = (size_t)len;
        if (r->lineno == 1 && n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) { p += 3; n -= 3; }
        int blank = 1;
        for (size_t i = 0; i < n && blank; i++) blank = (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r');
        if (blank) continue; /* not a record */
        long index = r->index++;
        size_t body = n;
        if (body && p[body - 1] == '\n') body--;
        if (body && p[body - 1] == '\r') body--;
        tuna_status s;
        if (memchr(p, 0, body)) {
            why = TUNA_BAD_JSON;
            s = core_fail(TUNA_ERR_FORMAT, "not valid JSON: a NUL byte in the line");
        } else
            s = tuna_record_parse(rec, p, body, &r->o, &why);
        if (s == TUNA_ERR_FORMAT) {
            char reason[512];
            snprintf(reason, sizeof reason, "%s", tuna_last_error());
            if ((s = report(r, r->lineno, index, why, reason, p, body))) return s;
            continue;
        }
        if (s) return s;
        rec->file = r->path;
        rec->line = r->lineno;
        rec->index = index;
        r->st.records++;
        r->st.good++;
        r->st.by_format[rec->format]++;
        *got = 1;
        return TUNA_OK;
    }
    if (ferror(r->f)) return core_fail(TUNA_ERR_IO, "%s: read error", r->path);
    return finish(r);
}

void tuna_data_reader_stats(const tuna_data_reader *r, tuna_data_stats *out) { *out = r->st; }
int tuna_data_reader_is_array(const tuna_data_reader *r) { return r->is_array; }

void tuna_data_reader_free(tuna_data_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    free(r->line);
    json_decref(r->arr);
    free(r->arr_line);
    free(r->notes);
    free(r->path);
    free(r);
}
