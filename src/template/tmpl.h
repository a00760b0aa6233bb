/* tmpl.h — internals of the chat-template interpreter (src/template/).
 * Everything a compilation or a rendering allocates lives in one arena freed
 * at once, and errors unwind with longjmp to the API entry point; so no
 * function here frees anything or checks for failure after an allocation.
 * Values are immutable once built, except namespaces (set ns.x = ...), and
 * are shared freely, as the reference (JS objects) shares them. */
#ifndef TUNA_TEMPLATE_TMPL_H
#define TUNA_TEMPLATE_TMPL_H
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include "tuna.h"

struct json_t;

/* ---- arena + error unwinding ---- */
typedef struct tp_chunk tp_chunk;
typedef struct {
    tp_chunk *head;
    size_t used, limit;     /* bytes handed out / cap (0 = none) */
    jmp_buf *jb;            /* where errors go */
    tuna_status err;
    char msg[512];
    const char *src;        /* original source, for line/column */
    size_t src_len;
    void *locale;           /* locale_t for case mapping, made on first use */
} tp_ctx;

void *tp_alloc(tp_ctx *c, size_t n);
void tp_arena_free(tp_ctx *c);
/* Records "line L, column C: msg" (pos < 0: no position) and unwinds. */
_Noreturn void tp_fail(tp_ctx *c, long pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void tp_fail_raw(tp_ctx *c, tuna_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef struct { const char *s; size_t n; } tstr;
tstr tp_strdup(tp_ctx *c, const char *s, size_t n);
int tstr_eq(tstr a, const char *lit);

/* growable byte buffer in the arena (old copies are abandoned to it) */
typedef struct { char *p; size_t n, cap; } tp_buf;
void tp_buf_put(tp_ctx *c, tp_buf *b, const char *s, size_t n);
void tp_buf_puts(tp_ctx *c, tp_buf *b, const char *s);

/* ---- UTF-8 / JS text helpers ---- */
int tp_utf8_dec(const char *s, size_t n, uint32_t *cp);    /* bytes used (>=1) */
int tp_utf8_enc(uint32_t cp, char *out);                   /* bytes written */
int tp_js_space(uint32_t cp);                              /* JS \s */
size_t tp_js_space_at(const char *s, size_t n);            /* bytes of a \s char at s, or 0 */
size_t tp_trim_end_len(const char *s, size_t n);           /* length after trimEnd */
size_t tp_trim_start_off(const char *s, size_t n);         /* bytes trimStart removes */
void tp_js_num(double x, char *out, size_t cap);           /* Number.prototype.toString */

/* ---- lexer / parser ---- */
enum { T_TEXT, T_NUM, T_STR, T_IDENT, T_EQUALS, T_LPAREN, T_RPAREN, T_OPEN_STMT, T_CLOSE_STMT,
       T_OPEN_EXPR, T_CLOSE_EXPR, T_LBRACKET, T_RBRACKET, T_LBRACE, T_RBRACE, T_COMMA, T_DOT,
       T_COLON, T_PIPE, T_ADD, T_MUL, T_POW, T_CMP, T_UNARY, T_COMMENT,
       T_GEN /* where a {% generation %} / {% endgeneration %} tag was (v.n = 1 for the end) */ };
typedef struct { int type; tstr v; long pos; } tp_token;

/* node kinds */
enum { N_STR, N_INT, N_FLOAT, N_ARRAY, N_TUPLE, N_OBJECT, N_IDENT, N_MEMBER, N_SLICE, N_CALL,
       N_KWARG, N_UNARY, N_BINARY, N_FILTER, N_TEST, N_SELECT, N_TERNARY, N_COMMENT,
       N_IF, N_FOR, N_SET, N_MACRO, N_BREAK, N_CONTINUE, N_FILTERBLOCK, N_PROGRAM,
       N_GEN /* generation tag: flag 0 start, 1 end; renders nothing */ };
typedef struct tp_node tp_node;
typedef struct { tp_node **v; int n; } tp_list;
struct tp_node {
    int kind;
    long pos;          /* offset in the original source */
    tstr s;            /* identifier name, string value, operator */
    double num;
    int flag;          /* computed member / negated test */
    tp_node *a, *b, *c;
    tp_list l1, l2;
};

/* lex.c: preprocesses and tokenizes src (c->src set by the caller, for error
 * positions); returns the tokens, *ntok of them, generation markers included. */
tp_token *tp_lex(tp_ctx *c, const char *src, size_t len, int *ntok);
/* parse.c: tokenizes and parses src (HF preprocessing applied); returns N_PROGRAM,
 * whose flag counts the {% generation %} tags kept as N_GEN nodes. */
tp_node *tp_parse(tp_ctx *c, const char *src, size_t len);

/* ---- values ---- */
typedef enum { V_UNDEF, V_NULL, V_BOOL, V_INT, V_FLOAT, V_STR, V_ARRAY, V_TUPLE, V_OBJECT,
               V_KWARGS, V_NS, V_FUNC } tv_type;
typedef struct tv tv;
struct tv {
    tv_type t;
    union {
        int b;
        double num;    /* V_INT and V_FLOAT: JS numbers are doubles */
        tstr str;
        struct { tv **v; size_t n; } arr;
        struct { tstr *k; tv **v; size_t n, cap; } obj;
        struct { int kind; int method; tv *self; const tp_node *macro; } fn;
    } u;
};
extern tv tv_undef_, tv_null_, tv_true_, tv_false_;
#define TV_UNDEF (&tv_undef_)
#define TV_NULL (&tv_null_)
#define TV_BOOL(x) ((x) ? &tv_true_ : &tv_false_)

tv *tv_num(tp_ctx *c, tv_type t, double x);
tv *tv_str(tp_ctx *c, const char *s, size_t n);   /* copies */
tv *tv_str_ref(tp_ctx *c, tstr s);                /* no copy */
tv *tv_arr(tp_ctx *c, tv_type t, size_t n);       /* n slots, filled by caller */
tv *tv_obj(tp_ctx *c, tv_type t);
void tv_obj_set(tp_ctx *c, tv *o, tstr k, tv *v);
tv *tv_obj_get(const tv *o, tstr k);              /* NULL if absent */
const char *tv_type_name(const tv *v);
int tv_truthy(const tv *v);
/* JSON (jansson) -> value, as JSON.parse + the reference's conversion do */
tv *tv_from_json(tp_ctx *c, const struct json_t *j);
/* RuntimeValue.toString (what {{ v }} prints); null/undefined print "" there */
void tv_to_output(tp_ctx *c, tp_buf *b, const tv *v);
/* String(v.value): the JS conversion used by ~, + and join */
void tv_raw_string(tp_ctx *c, tp_buf *b, const tv *v);
typedef struct { long indent; int ensure_ascii, sort_keys; const char *item_sep, *key_sep; } tp_json_opts;
void tv_to_json(tp_ctx *c, tp_buf *b, const tv *v, const tp_json_opts *o, int depth, int undef_null);

/* ---- evaluation ---- */
typedef struct {
    long max_steps;
    size_t max_out;
} tp_limits;
/* Output offsets of the generation tags met at the top level of the output
 * (not inside macros or set blocks), in order; kind 0 start, 1 end. */
typedef struct { size_t *off; int *kind; int n, cap; } tp_marks;
/* Renders prog with the global variables in globals (an object value);
 * marks (may be NULL) receives the generation tags. */
void tp_eval(tp_ctx *c, const tp_node *prog, tv *globals, const tp_limits *lim, tp_buf *out, tp_marks *marks);
#endif
