/* gguf.c — GGUF v3 reader (memory-mapped, every length and offset checked
 * against the file) and writer (key/values and tensor infos first, tensor
 * data converted one tensor at a time while writing, so the writer holds no
 * second copy of the weights). See gguf.h for the layout. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/gguf_kquant.h"
#include "io/atomic_file.h"
#include "io/safetensors.h" /* fp16 conversions, the finiteness check */
#include "core/error.h"

#define GGUF_ALIGN 32
#define QK 32

size_t gguf_type_size(int type, int64_t n) {
    if (n < 0) return 0;
    switch (type) {
    case GGML_F32: return (size_t)n * 4;
    case GGML_F16: return (size_t)n * 2;
    case GGML_Q8_0: return n % QK ? 0 : (size_t)(n / QK) * 34;
    case GGML_Q4_0: return n % QK ? 0 : (size_t)(n / QK) * 18;
    default: {
        int v = kq_block_values(type);
        return v && n % v == 0 ? (size_t)(n / v) * kq_block_bytes(type) : 0;
    }
    }
}

int gguf_block_values(int type) {
    if (type == GGML_F32 || type == GGML_F16) return 1;
    return type == GGML_Q8_0 || type == GGML_Q4_0 ? QK : kq_block_values(type);
}

const char *gguf_type_name(int type) {
    switch (type) {
    case GGML_F32: return "F32";
    case GGML_F16: return "F16";
    case GGML_Q8_0: return "Q8_0";
    case GGML_Q4_0: return "Q4_0";
    case GGML_Q5_0: return "Q5_0";
    case GGML_Q5_1: return "Q5_1";
    case GGML_Q2_K: return "Q2_K";
    case GGML_Q3_K: return "Q3_K";
    case GGML_Q4_K: return "Q4_K";
    case GGML_Q5_K: return "Q5_K";
    case GGML_Q6_K: return "Q6_K";
    default: return "?";
    }
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = st_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static float get_f16(const uint8_t *p) { return st_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* ggml quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d) */
void gguf_quantize_q8_0(const float *x, uint8_t *out, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += QK, out += 34) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        put_f16(out, d);
        for (int j = 0; j < QK; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* ggml quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8,
 * q = min(15, (int8)(x / d + 8.5)); element j low nibble, j + 16 high nibble */
void gguf_quantize_q4_0(const float *x, uint8_t *out, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += QK, out += 18) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK; j++)
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        put_f16(out, d);
        for (int j = 0; j < QK / 2; j++) {
            int a = (int8_t)(x[j] * id + 8.5f), c = (int8_t)(x[QK / 2 + j] * id + 8.5f);
            if (a > 15) a = 15;
            if (c > 15) c = 15;
            out[2 + j] = (uint8_t)(a | c << 4);
        }
    }
}

/* ---------------- writer ---------------- */
typedef struct {
    char *name;
    int ndim;
    int64_t rows, cols;
    int type;
    const float *data;
    gguf_row_reader read; /* rows read when written (data NULL) */
    void *ctx;
    uint64_t offset;
} wtensor;

struct gguf_writer {
    uint8_t *kv;      /* serialised key/values */
    size_t kv_n, kv_cap;
    uint64_t n_kv;
    wtensor *t;
    size_t n_t, cap_t;
    int oom;
};

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w);
}

static void put(gguf_writer *w, const void *p, size_t n) {
    if (w->oom) return;
    if (w->kv_n + n > w->kv_cap) {
        size_t c = w->kv_cap ? w->kv_cap * 2 : 65536;
        while (c < w->kv_n + n) c *= 2;
        uint8_t *q = realloc(w->kv, c);
        if (!q) { w->oom = 1; return; }
        w->kv = q;
        w->kv_cap = c;
    }
    memcpy(w->kv + w->kv_n, p, n);
    w->kv_n += n;
}
static void put_u32(gguf_writer *w, uint32_t v) { put(w, &v, 4); } /* little-endian hosts only (x86-64, aarch64) */
static void put_u64(gguf_writer *w, uint64_t v) { put(w, &v, 8); }
static void put_str(gguf_writer *w, const char *s) {
    uint64_t n = strlen(s);
    put_u64(w, n);
    put(w, s, n);
}
static void key(gguf_writer *w, const char *k, uint32_t type) {
    put_str(w, k);
    put_u32(w, type);
    w->n_kv++;
}

void gguf_kv_u32(gguf_writer *w, const char *k, uint32_t v) { key(w, k, GGUF_T_U32); put_u32(w, v); }
void gguf_kv_i32(gguf_writer *w, const char *k, int32_t v) { key(w, k, GGUF_T_I32); put(w, &v, 4); }
void gguf_kv_f32(gguf_writer *w, const char *k, float v) { key(w, k, GGUF_T_F32); put(w, &v, 4); }
void gguf_kv_bool(gguf_writer *w, const char *k, int v) {
    uint8_t b = v ? 1 : 0;
    key(w, k, GGUF_T_BOOL);
    put(w, &b, 1);
}
void gguf_kv_str(gguf_writer *w, const char *k, const char *v) { key(w, k, GGUF_T_STRING); put_str(w, v); }
void gguf_kv_str_array(gguf_writer *w, const char *k, const char *const *v, size_t n) {
    key(w, k, GGUF_T_ARRAY);
    put_u32(w, GGUF_T_STRING);
    put_u64(w, n);
    for (size_t i = 0; i < n; i++) put_str(w, v[i]);
}
void gguf_kv_f32_array(gguf_writer *w, const char *k, const float *v, size_t n) {
    key(w, k, GGUF_T_ARRAY);
    put_u32(w, GGUF_T_F32);
    put_u64(w, n);
    put(w, v, n * 4);
}
void gguf_kv_i32_array(gguf_writer *w, const char *k, const int32_t *v, size_t n) {
    key(w, k, GGUF_T_ARRAY);
    put_u32(w, GGUF_T_I32);
    put_u64(w, n);
    put(w, v, n * 4);
}

/* index of the first NaN or infinity in x[n], or -1 */
static int64_t first_non_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* a new tensor entry, its values from data or read */
static tuna_status add_entry(gguf_writer *w, const char *name, int ndim, int64_t rows, int64_t cols, int type, const float *data,
                             gguf_row_reader read, void *ctx) {
    if (!gguf_type_size(type, cols) && cols > 0)
        return core_fail(TUNA_ERR_ARG, "%s: %lld columns cannot be stored as %s (blocks of %d)", name, (long long)cols, gguf_type_name(type),
                         gguf_block_values(type));
    if (w->n_t == w->cap_t) {
        size_t c = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *q = realloc(w->t, c * sizeof *q);
        if (!q) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        w->t = q;
        w->cap_t = c;
    }
    wtensor *t = &w->t[w->n_t];
    *t = (wtensor){.name = strdup(name), .ndim = ndim, .rows = rows, .cols = cols, .type = type, .data = data, .read = read, .ctx = ctx};
    if (!t->name) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    w->n_t++;
    return TUNA_OK;
}

/* a quantized tensor's NaN or infinity (element bad of x), named */
static tuna_status non_finite(const char *name, int64_t bad, float v, int type) {
    return core_fail(TUNA_ERR_NUMERIC, "%s: element %lld is %g: %s cannot store NaN or infinite weights", name, (long long)bad,
                     (double)v, gguf_type_name(type));
}

tuna_status gguf_add_tensor(gguf_writer *w, const char *name, int ndim, int64_t rows, int64_t cols, int type, const float *data) {
    /* a block's scale and integer codes have no NaN or infinity (and the
     * float-to-int conversion of one is undefined): refused before anything
     * is written */
    int64_t bad = gguf_block_values(type) > 1 ? first_non_finite(data, rows * cols) : -1;
    if (bad >= 0) return non_finite(name, bad, data[bad], type);
    return add_entry(w, name, ndim, rows, cols, type, data, NULL, NULL);
}

tuna_status gguf_add_tensor_rows(gguf_writer *w, const char *name, int ndim, int64_t rows, int64_t cols, int type,
                                 gguf_row_reader read, void *ctx) {
    return add_entry(w, name, ndim, rows, cols, type, NULL, read, ctx);
}

static int pad_to(FILE *f, uint64_t *pos) {
    static const uint8_t zero[GGUF_ALIGN];
    uint64_t p = (GGUF_ALIGN - *pos % GGUF_ALIGN) % GGUF_ALIGN;
    *pos += p;
    return p == 0 || fwrite(zero, 1, p, f) == p;
}

/* tensor t's rows, converted to its type, then the padding; a write error's
 * errno in *err; a quantized row with a NaN or infinity refused */
static tuna_status write_data(FILE *f, const wtensor *t, uint64_t *pos, int *err) {
    size_t row_bytes = gguf_type_size(t->type, t->cols);
    uint8_t *buf = malloc(row_bytes ? row_bytes : 1);
    float *row = t->read ? malloc((size_t)(t->cols ? t->cols : 1) * sizeof *row) : NULL;
    tuna_status st = !buf || (t->read && !row) ? core_fail(TUNA_ERR_NOMEM, "out of memory writing %s", t->name) : TUNA_OK;
    int quant = gguf_block_values(t->type) > 1;
    for (int64_t r = 0; st == TUNA_OK && !*err && r < t->rows; r++) {
        const float *x = t->data ? t->data + r * t->cols : row;
        if (t->read) t->read(t->ctx, r, row);
        int64_t bad = quant && t->read ? first_non_finite(x, t->cols) : -1;
        if (bad >= 0) { st = non_finite(t->name, r * t->cols + bad, x[bad], t->type); break; }
        if (t->type == GGML_F32) memcpy(buf, x, row_bytes);
        else if (t->type == GGML_F16) for (int64_t j = 0; j < t->cols; j++) put_f16(buf + 2 * j, x[j]);
        else if (t->type == GGML_Q8_0) gguf_quantize_q8_0(x, buf, t->cols);
        else if (t->type == GGML_Q4_0) gguf_quantize_q4_0(x, buf, t->cols);
        else kq_quantize(t->type, x, buf, t->cols);
        if (fwrite(buf, 1, row_bytes, f) != row_bytes) *err = errno ? errno : EIO;
        *pos += row_bytes;
    }
    if (st == TUNA_OK && !*err && !pad_to(f, pos)) *err = errno ? errno : EIO;
    free(buf);
    free(row);
    return st;
}

tuna_status gguf_writer_finish(gguf_writer *w, const char *path) {
    if (w->oom) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    atomic_file out;
    tuna_status st = atomic_file_open(&out, path);
    if (st != TUNA_OK) return st;
    FILE *f = out.f;
    /* header, key/values, tensor infos (offsets relative to the data block) */
    gguf_writer hw = {0};
    put(&hw, "GGUF", 4);
    put_u32(&hw, 3);
    put_u64(&hw, w->n_t);
    put_u64(&hw, w->n_kv);
    put(&hw, w->kv, w->kv_n);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        put_str(&hw, t->name);
        put_u32(&hw, (uint32_t)t->ndim);
        put_u64(&hw, (uint64_t)t->cols);
        if (t->ndim > 1) put_u64(&hw, (uint64_t)t->rows);
        put_u32(&hw, (uint32_t)t->type);
        put_u64(&hw, off);
        t->offset = off;
        off += gguf_type_size(t->type, t->rows * t->cols);
        off += (GGUF_ALIGN - off % GGUF_ALIGN) % GGUF_ALIGN;
    }
    int err = 0, ok = !hw.oom && fwrite(hw.kv, 1, hw.kv_n, f) == hw.kv_n;
    if (!ok && !hw.oom) err = errno ? errno : EIO;
    uint64_t pos = hw.kv_n;
    free(hw.kv);
    if (ok && !(ok = pad_to(f, &pos))) err = errno ? errno : EIO;
    /* data, one row at a time */
    for (size_t i = 0; ok && st == TUNA_OK && i < w->n_t; i++) {
        st = write_data(f, &w->t[i], &pos, &err);
        ok = st == TUNA_OK && !err;
    }
    if (ok) return atomic_file_commit(&out);
    atomic_file_abort(&out);
    if (st != TUNA_OK) return st;
    return err ? atomic_write_failed(path, err) : core_fail(TUNA_ERR_NOMEM, "%s: out of memory", path);
}

/* ---------------- reader ---------------- */
/* The fewest bytes an entry takes in the file: a key/value is a key length
 * (8) + a type (4) + at least a 1-byte value; a tensor info is a name length
 * (8) + a dimension count (4) + one dimension (8) + a type (4) + an offset
 * (8). The counts in the header are checked against them before any table is
 * allocated, so a hostile count cannot make the reader allocate more than a
 * few times the file's own size. */
#define GGUF_MIN_KV_BYTES 13
#define GGUF_MIN_TENSOR_BYTES 32
#define GGUF_MAX_KEY 65535 /* the specification's limit on a key's length */

typedef struct { const uint8_t *p, *end; const char *name; } cur;

static int need(cur *c, size_t n) { return (size_t)(c->end - c->p) >= n; }
static int rd_u32(cur *c, uint32_t *v) { if (!need(c, 4)) return 0; memcpy(v, c->p, 4); c->p += 4; return 1; }
static int rd_u64(cur *c, uint64_t *v) { if (!need(c, 8)) return 0; memcpy(v, c->p, 8); c->p += 8; return 1; }
static int rd_str(cur *c, const char **s, uint64_t *n) {
    if (!rd_u64(c, n) || !need(c, *n)) return 0;
    *s = (const char *)c->p;
    c->p += *n;
    return 1;
}

static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_T_U8: case GGUF_T_I8: case GGUF_T_BOOL: return 1;
    case GGUF_T_U16: case GGUF_T_I16: return 2;
    case GGUF_T_U32: case GGUF_T_I32: case GGUF_T_F32: return 4;
    case GGUF_T_U64: case GGUF_T_I64: case GGUF_T_F64: return 8;
    default: return 0;
    }
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (size_t i = 0; f->kv && i < f->n_kv; i++) free(f->kv[i].strs);
    free(f->kv);
    free(f->tensors);
    if (f->map && f->size) munmap(f->map, f->size); /* size 0: a caller's buffer (gguf_parse) */
    memset(f, 0, sizeof *f);
}

/* magic, version and counts; the key/value and tensor tables allocated */
static tuna_status parse_header(gguf_file *f, cur *c, uint64_t *nt, uint64_t *nkv) {
    uint32_t ver = 0;
    if (!(c->end - c->p >= 4 && !memcmp(c->p, "GGUF", 4)))
        return core_fail(TUNA_ERR_FORMAT, "%s: not a GGUF file (no \"GGUF\" magic)", f->path);
    c->p += 4;
    if (!rd_u32(c, &ver) || !rd_u64(c, nt) || !rd_u64(c, nkv)) return core_fail(TUNA_ERR_FORMAT, "%s: truncated header", f->path);
    if (ver != 3 && ver != 2) return core_fail(TUNA_ERR_UNSUPPORTED, "%s: GGUF version %u (tuna reads 2 and 3)", f->path, ver);
    uint64_t rest = (uint64_t)(c->end - c->p);
    if (*nkv > rest / GGUF_MIN_KV_BYTES || *nt > rest / GGUF_MIN_TENSOR_BYTES ||
        *nkv * GGUF_MIN_KV_BYTES + *nt * GGUF_MIN_TENSOR_BYTES > rest)
        return core_fail(TUNA_ERR_FORMAT, "%s: %llu key/values and %llu tensors cannot fit in the %llu bytes after the header (%d and %d bytes each at least)",
                         f->path, (unsigned long long)*nkv, (unsigned long long)*nt, (unsigned long long)rest, GGUF_MIN_KV_BYTES,
                         GGUF_MIN_TENSOR_BYTES);
    f->kv = calloc(*nkv ? *nkv : 1, sizeof *f->kv);
    f->tensors = calloc(*nt ? *nt : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    f->alignment = GGUF_ALIGN;
    return TUNA_OK;
}

/* an array value: strings (each one's start kept in kv->strs) or scalars */
static tuna_status parse_array(gguf_file *f, cur *c, gguf_kv *kv) {
    int kn = (int)kv->key_len;
    const char *k = kv->key;
    if (!rd_u32(c, &kv->arr_type) || !rd_u64(c, &kv->arr_n))
        return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: truncated array", f->path, kn, k);
    kv->val = c->p;
    if (kv->arr_type != GGUF_T_STRING) {
        size_t es = scalar_size(kv->arr_type);
        if (!es) return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: array of type %u", f->path, kn, k, kv->arr_type);
        if (kv->arr_n > (uint64_t)(c->end - c->p) / es) return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: array runs past the end", f->path, kn, k);
        c->p += kv->arr_n * es;
        return TUNA_OK;
    }
    if (kv->arr_n > (uint64_t)(c->end - c->p) / 8) return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: %llu strings cannot fit", f->path, kn, k, (unsigned long long)kv->arr_n);
    kv->strs = malloc((size_t)(kv->arr_n ? kv->arr_n : 1) * sizeof *kv->strs);
    if (!kv->strs) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (uint64_t j = 0; j < kv->arr_n; j++) {
        const char *s;
        uint64_t sn;
        kv->strs[j] = c->p;
        if (!rd_str(c, &s, &sn)) return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: string %llu truncated", f->path, kn, k, (unsigned long long)j);
    }
    return TUNA_OK;
}

/* key/value i: its key, type and value (kv->val points at it in the map) */
static tuna_status parse_kv(gguf_file *f, cur *c, uint64_t i) {
    gguf_kv *kv = &f->kv[i];
    const char *k;
    uint64_t kn;
    if (!rd_str(c, &k, &kn) || !rd_u32(c, &kv->type)) return core_fail(TUNA_ERR_FORMAT, "%s: key %llu: truncated", f->path, (unsigned long long)i);
    if (kn > GGUF_MAX_KEY)
        return core_fail(TUNA_ERR_FORMAT, "%s: key %llu: %llu bytes long (GGUF keys have at most %d)", f->path, (unsigned long long)i,
                         (unsigned long long)kn, GGUF_MAX_KEY);
    kv->key = k;
    kv->key_len = (size_t)kn;
    f->n_kv = i + 1;
    if (kv->type == GGUF_T_ARRAY) return parse_array(f, c, kv);
    if (kv->type == GGUF_T_STRING) {
        const char *s;
        uint64_t sn;
        kv->val = c->p;
        if (!rd_str(c, &s, &sn)) return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: truncated string", f->path, (int)kn, k);
        return TUNA_OK;
    }
    size_t es = scalar_size(kv->type);
    if (!es) return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: unknown value type %u", f->path, (int)kn, k, kv->type);
    if (!need(c, es)) return core_fail(TUNA_ERR_FORMAT, "%s: key %.*s: truncated value", f->path, (int)kn, k);
    kv->val = c->p;
    c->p += es;
    return TUNA_OK;
}

/* tensor i's name, shape (1 to 4 dimensions), type and offset in the data */
static tuna_status parse_tensor(gguf_file *f, cur *c, uint64_t i) {
    gguf_tensor *t = &f->tensors[i];
    const char *nm;
    uint64_t nn, off;
    uint32_t nd;
    if (!rd_str(c, &nm, &nn) || !rd_u32(c, &nd)) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %llu: truncated", f->path, (unsigned long long)i);
    if (nn >= sizeof t->name) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %llu: name of %llu bytes", f->path, (unsigned long long)i, (unsigned long long)nn);
    memcpy(t->name, nm, nn);
    t->name[nn] = 0;
    if (nd < 1 || nd > 4) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s: %u dimensions", f->path, t->name, nd);
    t->ndim = (int)nd;
    t->numel = 1;
    for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if (!rd_u64(c, &v) || v == 0 || v > (1ULL << 40)) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s: bad dimension", f->path, t->name);
        t->ne[d] = (int64_t)v;
        if (t->numel > (int64_t)(1ULL << 50) / t->ne[d]) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s: too many elements", f->path, t->name);
        t->numel *= t->ne[d];
    }
    if (!rd_u32(c, &t->type) || !rd_u64(c, &off)) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s: truncated", f->path, t->name);
    t->nbytes = gguf_type_size((int)t->type, t->numel);
    int bv = gguf_block_values((int)t->type);
    if (bv > 1 && t->ne[0] % bv)
        return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s: type %s stores rows in blocks of %d values, but its rows (ne[0]) have %lld",
                         f->path, t->name, gguf_type_name((int)t->type), bv, (long long)t->ne[0]);
    if (!t->nbytes || gguf_type_size((int)t->type, t->ne[0]) == 0)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: tensor %s: type %u (%s) with ne[0] %lld is not one tuna reads (F32, F16, Q8_0, Q4_0, Q5_0, Q5_1, Q2_K..Q6_K)",
                         f->path, t->name, t->type, gguf_type_name((int)t->type), (long long)t->ne[0]);
    if (off % f->alignment) return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s: offset %llu not aligned", f->path, t->name, (unsigned long long)off);
    t->offset = off;
    f->n_tensors = i + 1;
    return TUNA_OK;
}

/* tensor offsets made absolute: the data starts at the next aligned byte
 * after the tensor table; every tensor must end inside the file */
static tuna_status place_tensors(gguf_file *f, const cur *c, size_t size) {
    uint64_t data = (uint64_t)(c->p - f->map);
    data += (f->alignment - data % f->alignment) % f->alignment;
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > size || data > size - t->offset || t->nbytes > size - data - t->offset)
            return core_fail(TUNA_ERR_FORMAT, "%s: tensor %s: data (%llu bytes) runs past the end of the file", f->path, t->name,
                             (unsigned long long)t->nbytes);
        t->offset += data;
    }
    return TUNA_OK;
}

static tuna_status parse_impl(gguf_file *f, size_t size) {
    cur c = {f->map, f->map + size, f->path};
    uint64_t nt = 0, nkv = 0, al;
    tuna_status st = parse_header(f, &c, &nt, &nkv);
    for (uint64_t i = 0; st == TUNA_OK && i < nkv; i++) st = parse_kv(f, &c, i);
    if (st != TUNA_OK) return st;
    if (gguf_get_u64(f, "general.alignment", &al) == 0) {
        if (al == 0 || al > 65536 || (al & (al - 1))) return core_fail(TUNA_ERR_FORMAT, "%s: general.alignment %llu is not a power of two", f->path, (unsigned long long)al);
        f->alignment = (uint32_t)al;
    }
    for (uint64_t i = 0; st == TUNA_OK && i < nt; i++) st = parse_tensor(f, &c, i);
    return st == TUNA_OK ? place_tensors(f, &c, size) : st;
}

tuna_status gguf_open(gguf_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return core_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 24) { close(fd); return core_fail(TUNA_ERR_FORMAT, "%s: too short for GGUF", path); }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return core_fail(TUNA_ERR_IO, "%s: cannot map", path);
    f->map = m;
    f->size = (size_t)sb.st_size;
    tuna_status st = parse_impl(f, f->size);
    if (st != TUNA_OK) gguf_close(f);
    return st;
}

tuna_status gguf_parse(gguf_file *f, const void *buf, size_t size, const char *name) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", name);
    f->map = (uint8_t *)buf;
    f->size = 0; /* not ours to unmap */
    tuna_status st = parse_impl(f, size);
    if (st != TUNA_OK) gguf_close(f);
    return st;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *k) {
    size_t n = strlen(k);
    for (size_t i = 0; i < f->n_kv; i++)
        if (f->kv[i].key_len == n && !memcmp(f->kv[i].key, k, n)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (size_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

int gguf_get_u64(const gguf_file *f, const char *k, uint64_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, k);
    if (!kv) return -1;
    const uint8_t *p = kv->val;
    switch (kv->type) {
    case GGUF_T_U8: *out = p[0]; return 0;
    case GGUF_T_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_T_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_T_U64: memcpy(out, p, 8); return 0;
    case GGUF_T_I32: { int32_t v; memcpy(&v, p, 4); if (v < 0) return -1; *out = (uint64_t)v; return 0; }
    case GGUF_T_I64: { int64_t v; memcpy(&v, p, 8); if (v < 0) return -1; *out = (uint64_t)v; return 0; }
    case GGUF_T_BOOL: *out = p[0] != 0; return 0;
    default: return -1;
    }
}

int gguf_get_f64(const gguf_file *f, const char *k, double *out) {
    const gguf_kv *kv = gguf_find_kv(f, k);
    if (!kv) return -1;
    if (kv->type == GGUF_T_F32) { float v; memcpy(&v, kv->val, 4); *out = v; return 0; }
    if (kv->type == GGUF_T_F64) { memcpy(out, kv->val, 8); return 0; }
    uint64_t u;
    if (gguf_get_u64(f, k, &u) == 0) { *out = (double)u; return 0; }
    return -1;
}

/* The metadata read as strictly as config.json (model/config.c): a key of
 * another type or out of range is an error naming the file, the key and the
 * value, never the default (io/gguf.h). */
static void meta_bad(tuna_status *st, const gguf_file *f, const char *key, const char *fmt, double v, const char *want) {
    if (*st != TUNA_OK) return;
    char val[64];
    if (fmt) snprintf(val, sizeof val, fmt, v);
    else snprintf(val, sizeof val, "(GGUF type %u)", gguf_find_kv(f, key)->type);
    *st = core_fail(TUNA_ERR_FORMAT, "%s: %s %s: must be %s", f->path, key, val, want);
}

int gguf_meta_int(const gguf_file *f, const char *key, int lo, int dflt, tuna_status *st) {
    uint64_t v;
    if (!gguf_find_kv(f, key)) return dflt;
    if (gguf_get_u64(f, key, &v) != 0) { meta_bad(st, f, key, NULL, 0, "an integer"); return dflt; }
    if (v < (uint64_t)lo || v > INT_MAX) {
        char want[64];
        snprintf(want, sizeof want, "an integer in [%d, %d]", lo, INT_MAX);
        meta_bad(st, f, key, "%.0f", (double)v, want);
        return dflt;
    }
    return (int)v;
}

double gguf_meta_pos(const gguf_file *f, const char *key, double dflt, tuna_status *st) {
    double v;
    if (!gguf_find_kv(f, key)) return dflt;
    if (gguf_get_f64(f, key, &v) != 0) { meta_bad(st, f, key, NULL, 0, "a number"); return dflt; }
    if (!(v > 0 && v <= FLT_MAX)) { meta_bad(st, f, key, "%g", v, "a finite number > 0"); return dflt; }
    return v;
}

const char *gguf_get_str(const gguf_file *f, const char *k, size_t *len) {
    const gguf_kv *kv = gguf_find_kv(f, k);
    if (!kv || kv->type != GGUF_T_STRING) return NULL;
    uint64_t n;
    memcpy(&n, kv->val, 8);
    if (len) *len = (size_t)n;
    return (const char *)kv->val + 8;
}

const char *gguf_arr_str(const gguf_kv *kv, uint64_t i, size_t *len) {
    if (!kv->strs || i >= kv->arr_n) return NULL;
    uint64_t n;
    memcpy(&n, kv->strs[i], 8);
    if (len) *len = (size_t)n;
    return (const char *)kv->strs[i] + 8;
}

/* one block: Q8_0 q * d; Q4_0 (nibble - 8) * d, element j in the low nibble
 * of byte j, element j+16 in its high nibble; the others io/gguf_kquant.c */
static void dequant_block(int type, const uint8_t *p, float *y) {
    if (type != GGML_Q8_0 && type != GGML_Q4_0) { kq_dequantize_block(type, p, y); return; }
    float d = get_f16(p);
    if (type == GGML_Q8_0) {
        for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)p[2 + j] * d;
        return;
    }
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((p[2 + j] & 0xF) - 8) * d;
        y[j + QK / 2] = (float)((p[2 + j] >> 4) - 8) * d;
    }
}

void gguf_dequantize(int type, const uint8_t *blocks, int64_t first, int64_t n, float *out, int add) {
    int64_t bv = gguf_block_values(type);
    size_t bs = gguf_type_size(type, bv);
    float y[KQ_MAX_BLOCK];
    for (int64_t i = first, end = first + n; i < end;) {
        int64_t j0 = i % bv, k = bv - j0 < end - i ? bv - j0 : end - i;
        float *dst = !add && k == bv ? out : y; /* whole blocks straight into out */
        dequant_block(type, blocks + (size_t)(i / bv) * bs, dst);
        if (dst == y) {
            if (add) for (int64_t j = 0; j < k; j++) out[j] += y[j0 + j];
            else memcpy(out, y + j0, (size_t)k * sizeof(float));
        }
        out += k;
        i += k;
    }
}

tuna_status gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor *t, float *out) {
    const uint8_t *p = f->map + t->offset;
    switch (t->type) {
    case GGML_F32: memcpy(out, p, (size_t)t->numel * 4); break;
    case GGML_F16: for (int64_t i = 0; i < t->numel; i++) out[i] = get_f16(p + 2 * i); break;
    default:
        if (gguf_block_values((int)t->type) < 2) return core_fail(TUNA_ERR_UNSUPPORTED, "%s: tensor %s: type %u", f->path, t->name, t->type);
        gguf_dequantize((int)t->type, p, 0, t->numel, out, 0);
    }
    return st_check_finite(out, t->numel, f->path, t->name);
}

/* element i's f16 bits (F16), or its block's scale bits (Q8_0, Q4_0) */
static uint16_t half_bits(const uint8_t *p, int type, int64_t i) {
    size_t at = type == GGML_F16 ? (size_t)i * 2 : (size_t)(i / QK) * gguf_type_size(type, QK);
    return (uint16_t)(p[at] | p[at + 1] << 8);
}

/* a k-quant or Q5_0/Q5_1 tensor: each block's values (its scales reach them all) */
static tuna_status check_finite_blocks(const gguf_file *f, const gguf_tensor *t) {
    int type = (int)t->type, bv = gguf_block_values(type);
    size_t bs = gguf_type_size(type, bv);
    float y[KQ_MAX_BLOCK];
    for (int64_t b = 0; b < t->numel / bv; b++) {
        kq_dequantize_block(type, f->map + t->offset + (size_t)b * bs, y);
        for (int j = 0; j < bv; j++)
            if (!isfinite(y[j]))
                return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' has a NaN or infinite scale in block %lld (elements %lld..%lld; weights must be finite)",
                                 f->path, t->name, (long long)b, (long long)b * bv, (long long)(b + 1) * bv - 1);
    }
    return TUNA_OK;
}

tuna_status gguf_check_finite(const gguf_file *f, const gguf_tensor *t) {
    if (kq_block_values((int)t->type)) return check_finite_blocks(f, t);
    const uint8_t *p = f->map + t->offset;
    int type = (int)t->type, step = type == GGML_F32 || type == GGML_F16 ? 1 : QK;
    for (int64_t i = 0; i < t->numel; i += step) {
        uint32_t u, mask = 0x7c00u;
        if (type == GGML_F32) memcpy(&u, p + 4 * i, 4), mask = 0x7f800000u;
        else u = half_bits(p, type, i);
        if ((u & mask) != mask) continue;
        int f32 = type == GGML_F32, nan = (u & (f32 ? 0x7fffffu : 0x3ffu)) != 0, neg = (u >> (f32 ? 31 : 15)) & 1;
        if (step == 1)
            return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' holds %s at element %lld (weights must be finite)", f->path,
                             t->name, nan ? "NaN" : neg ? "-inf" : "+inf", (long long)i);
        return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' has a %s scale in block %lld (elements %lld..%lld; weights must be finite)",
                         f->path, t->name, nan ? "NaN" : "infinite", (long long)(i / QK), (long long)i, (long long)i + QK - 1);
    }
    return TUNA_OK;
}
