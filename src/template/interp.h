/* interp.h — what the evaluator core (eval.c) and its built-ins share:
 * the rendering state and scopes, the callable-value kinds, and the helpers
 * the core calls in them (methods.c: functions, string and object
 * methods, JS text and comparison semantics, sorting; filters.c: filters and
 * tests). The built-ins reach the evaluator only through the three hooks in
 * ev (argument evaluation, callable values, macro calls), so calls go one way:
 * eval.c -> filters.c -> methods.c. Internal to src/template/; errors unwind
 * through FAIL (tp_fail). */
#ifndef TUNA_TEMPLATE_INTERP_H
#define TUNA_TEMPLATE_INTERP_H
#include "template/tmpl.h"

/* kinds of callable values (V_FUNC), and the methods of strings and objects */
enum { FN_RAISE, FN_RANGE, FN_NAMESPACE, FN_STRFTIME, FN_STRMETHOD, FN_OBJMETHOD, FN_MACRO };
extern const char *const tp_str_methods[];
enum { SM_UPPER, SM_LOWER, SM_STRIP, SM_TITLE, SM_CAPITALIZE, SM_RSTRIP, SM_LSTRIP, SM_STARTSWITH,
       SM_ENDSWITH, SM_SPLIT, SM_REPLACE };
extern const char *const tp_obj_methods[];
enum { OM_GET, OM_ITEMS, OM_KEYS, OM_VALUES, OM_DICTSORT };

typedef struct scope scope;
struct scope {
    scope *parent;
    tv *vars;
};

typedef struct ev ev;
typedef struct { tv **v; int n; } argv_t;                /* evaluated call arguments (kwargs last) */
struct ev {
    tp_ctx *c;
    long steps, max_steps;
    size_t max_out;
    int depth;
    int ctl;        /* 1 break, 2 continue pending */
    scope *global;
    tp_buf *top;    /* the rendering's own output (generation marks refer to it) */
    tp_marks *marks;
    /* the evaluator's hooks for the built-ins (set by eval.c's tp_eval) */
    argv_t (*eval_args)(ev *E, tp_list l, scope *env);
    tv *(*fn_value)(ev *E, int kind, int method, tv *self, const tp_node *macro);
    tv *(*call_macro)(ev *E, const tp_node *x, const tp_node *m, tv **args, int n, scope *caller);
};

#define FAIL(E, x, ...) tp_fail((E)->c, (x) ? (x)->pos : -1, __VA_ARGS__)

typedef struct { tv **v; size_t n, cap; } tvvec;         /* growable array of values */
/* a sort's settings; the comparison may fail (longjmp) */
typedef struct { ev *E; const tp_node *x; int cs, rev; tstr attr; int by_value; int has_attr; } sort_ctx;

/* ---- methods.c ---- */
int tp_find_name(const char *const *names, tstr s);
tstr tp_raw_str(ev *E, const tv *v);
size_t tp_utf16_len(tstr s);
size_t tp_cp_offsets(ev *E, tstr s, size_t **offs);
tv *tp_str_case(ev *E, tstr s, int upper, int first_only);
tv *tp_str_title(ev *E, tstr s);
tv *tp_str_trim(ev *E, tstr s, int start, int end);
const char *tp_find_sub(tstr h, tstr nd, size_t from);
void tp_tvpush(ev *E, tvvec *a, tv *x);
tv *tp_tvvec_array(ev *E, tvvec *a);
tv *tp_str_replace(ev *E, const tp_node *x, tstr s, tv **args, int n);
double tp_js_to_number(const tv *v);
int tp_is_numlike(const tv *v);
int tp_loose_eq(const tv *a, const tv *b);
int tp_strict_eq(const tv *a, const tv *b);
tv *tp_attr_path(tv *item, tstr path);
tv *tp_sorted(ev *E, sort_ctx *S, tv *arr);
tv *tp_obj_items(ev *E, tv *o, int what);
tv *tp_kwarg(tv **args, int n, const char *name);
int tp_npositional(tv **args, int n);
tv *tp_dictsort(ev *E, const tp_node *x, tv *o, tv **args, int n);
tv *tp_call_fn(ev *E, const tp_node *x, tv *f, tv **args, int n, scope *env);

/* ---- filters.c ---- */
tv *tp_apply_filter(ev *E, tv *v, const tp_node *f, scope *env);
int tp_test_value(ev *E, const tp_node *x, tstr name, tv *v);
#endif
