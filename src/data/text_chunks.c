/* text_chunks.c — plain text into fixed-length training sequences, for
 * pre-training and for the general-text perplexity check. Documents (JSONL
 * {"text": ...} lines, or a whole text file: io/input_kind.h tells which,
 * by name or content) are tokenized with the special tokens the tokenizer
 * adds by default (BOS for Llama-family tokenizers), each
 * followed by EOS when the tokenizer has one, concatenated, and cut into
 * sequences of seq_len tokens (the last partial one kept if it has at least 2
 * tokens). Labels equal input ids: every token counts. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pretok_internal.h"
#include "io/input_file.h"
#include "io/input_kind.h"
#include "tuna.h"
#include "tuna_text.h"
#include "core/json_error.h"
#include "core/error.h"

typedef struct {
    int32_t *ids;
    int64_t n, cap;
} id_buf;

static int push_ids(id_buf *b, const int32_t *ids, size_t n) {
    if (b->n + (int64_t)n > b->cap) {
        int64_t c = b->cap ? b->cap : 4096;
        while (c < b->n + (int64_t)n) c *= 2;
        int32_t *p = realloc(b->ids, (size_t)c * sizeof(int32_t));
        if (!p) return 0;
        b->ids = p;
        b->cap = c;
    }
    memcpy(b->ids + b->n, ids, n * sizeof(int32_t));
    b->n += (int64_t)n;
    return 1;
}

static tuna_status add_doc(tuna_tokenizer *tok, id_buf *b, const char *text, size_t len, const char *where) {
    int32_t *ids = NULL;
    size_t n = 0;
    tuna_status st = tuna_tokenizer_encode(tok, text, len, 1, &ids, &n);
    if (st != TUNA_OK) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", tuna_last_error());
        return core_fail(st, "%s: %s", where, msg);
    }
    int ok = push_ids(b, ids, n);
    free(ids);
    int32_t eos = tuna_tokenizer_eos_id(tok);
    if (ok && eos >= 0 && (n == 0 || b->ids[b->n - 1] != eos)) ok = push_ids(b, &eos, 1);
    return ok ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory tokenizing %s", where);
}

tuna_status tuna_text_chunks(tuna_tokenizer *tok, const char *path, int seq_len, tuna_pretok **out_p) {
    *out_p = NULL;
    tuna_pretok chunks, *out = &chunks;
    memset(out, 0, sizeof *out);
    if (seq_len < 2) return core_fail(TUNA_ERR_ARG, "sequence length %d too short", seq_len);
    FILE *f;
    tuna_status st = input_file_open(path, 0, &f);
    if (st != TUNA_OK) return st;
    int jsonl = input_kind_is_jsonl(path, f);
    id_buf b = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    if (jsonl) {
        long lineno = 0;
        char where[600];
        while (st == TUNA_OK && (len = getline(&line, &cap, f)) != -1) {
            lineno++;
            snprintf(where, sizeof where, "%s:%ld", path, lineno);
            int blank = 1;
            for (ssize_t i = 0; i < len && blank; i++) blank = line[i] == ' ' || line[i] == '\n' || line[i] == '\r' || line[i] == '\t';
            if (blank) continue;
            json_error_t jerr;
            json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
            json_t *t = o ? json_object_get(o, "text") : NULL;
            if (!o) st = core_fail(TUNA_ERR_FORMAT, "%s: not valid JSON: %s", where, tuna_json_error_text(&jerr));
            else if (!json_is_string(t)) st = core_fail(TUNA_ERR_FORMAT, "%s: expected an object with a \"text\" string", where);
            else st = add_doc(tok, &b, json_string_value(t), json_string_length(t), where);
            json_decref(o);
        }
    } else {
        /* a whole text file is one document */
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
        if (!buf) st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", path);
        else if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) st = core_fail(TUNA_ERR_IO, "%s: read error", path);
        else st = add_doc(tok, &b, buf, (size_t)sz, path);
        free(buf);
    }
    free(line);
    fclose(f);
    if (st != TUNA_OK) { free(b.ids); return st; }
    int64_t nseq = (b.n + seq_len - 1) / seq_len;
    if (nseq > 0 && b.n - (nseq - 1) * seq_len < 2) nseq--;
    if (nseq <= 0) { free(b.ids); return core_fail(TUNA_ERR_FORMAT, "%s: fewer than 2 tokens of text", path); }
    out->n = nseq;
    out->off = malloc((size_t)(nseq + 1) * sizeof(int64_t));
    out->labels = malloc((size_t)b.n * sizeof(int32_t));
    if (!out->off || !out->labels) { free(b.ids); pretok_clear(out); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    for (int64_t i = 0; i <= nseq; i++) out->off[i] = i * seq_len < b.n ? i * seq_len : b.n;
    out->off[nseq] = nseq * seq_len < b.n ? nseq * seq_len : b.n;
    out->ids = b.ids;
    memcpy(out->labels, b.ids, (size_t)out->off[nseq] * sizeof(int32_t));
    out->max_len = seq_len < out->off[nseq] ? seq_len : (int)out->off[nseq];
    return pretok_take(out, out_p);
}
