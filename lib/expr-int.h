/*
 * expr-int.h: private to lib/expr*.c, the expression language's tree,
 * values and function table.  Not part of the public interface.
 */
#ifndef SYNC_EXPR_INT_H
#define SYNC_EXPR_INT_H

#include <stdint.h>

/* Limits that keep a hostile expression from exhausting memory or stack. */
#define EXPR_MAXDEPTH   200             /* nesting of the tree */
#define EXPR_MAXVALUE   (16u << 20)     /* bytes in one value */
#define EXPR_MAXVALUES  100000          /* values in one result */

/* The type of one value.  Connect's dialect is typed; we keep the type
 * so that CStr(True) is "True" and 1 + 2 is 3, but coerce leniently.
 * V_DATE has both: num is the date (ticks, see expr-date.c) and p its
 * text, so that it is a string to every function but the date ones. */
enum vtype { V_STR, V_NUM, V_BOOL, V_BIN, V_REF, V_DATE };

/* One value; p (NUL-terminated, len bytes) is owned by the item and is
 * NULL for V_NUM and V_BOOL, which use num. */
struct item {
	enum vtype t;
	int64_t num;
	char *p;
	size_t len;
};

enum vkind { K_VALUES, K_NULL, K_AUTHNULL, K_IGNORE };

/* A value list: kind K_VALUES has n >= 1 items; the other kinds none.
 * The list owns its items. */
struct val {
	enum vkind kind;
	struct item *it;
	size_t n, cap;
};

/*
 * a op b op c (one priority, left to right) is one N_CHAIN node: args[0]
 * is a, and each later arg an N_BINOP whose one arg is the operand on
 * the right of its operator.  Flat rather than a left-deep tree, so that
 * a chain of 60,000 terms is evaluated, walked and freed in a loop, not
 * 60,000 frames deep.
 */
enum nkind {
	N_STR, N_NUM, N_BOOL, N_NULL, N_AUTHNULL, N_IGNORE,
	N_ATTR, N_PARAM, N_VAR, N_ENUM, N_CALL, N_CHAIN, N_BINOP, N_NEG
};

enum binop { OP_CAT, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
	OP_ADD, OP_SUB, OP_MUL, OP_AND, OP_OR };

struct node;
struct ectx;
struct func;

/* Eager per-value function: called once per index of the (broadcast)
 * arguments, each argument one item; appends 0..n items to out. */
typedef int scalar_fn(struct ectx *c, const struct node *n,
    struct item **a, size_t na, struct val *out);
/* Any other function: gets the call node, evaluates what it needs. */
typedef int call_fn(struct ectx *c, const struct node *n, struct val *out);

#define F_NULLEMPTY 1   /* a NULL first argument counts as "" */
#define F_BINDS     2   /* first argument is a $variable in scope of arg 3 */
#define F_OMIT      4   /* an argument may be left empty: f(a, , b) */

struct func {
	const char *name;
	int min, max;           /* argument counts; max -1 for any */
	int flags;
	scalar_fn *scalar;      /* one of scalar and call is set */
	call_fn *call;
};

/* A node of the tree; owns its strings and children. */
struct node {
	enum nkind kind;
	int col;                /* 1-based column, in characters */
	char *s;                /* STR, ATTR, PARAM, VAR, ENUM: text */
	size_t slen;
	int64_t num;            /* NUM, BOOL */
	enum binop op;          /* BINOP */
	const struct func *fn;  /* CALL */
	struct node **args;     /* CALL, CHAIN: nargs; BINOP, NEG: 1 */
	size_t nargs, argcap;   /* argcap: room in args while parsing */
};

struct sync_expr {
	struct node *root;
};

struct binding {
	const char *name;       /* borrowed from the tree */
	const struct val *v;    /* borrowed */
	struct binding *next;
};

/* One evaluation. */
struct ectx {
	const struct sync_expr_env *env;
	struct sync_err *err;
	struct binding *vars;
	int depth;
};

/* Functions shared by lib/expr*.c carry the library's sync_ prefix in
 * the archive, so that only sync_* symbols leave libsync. */
#define expr_eval       sync_expri_expr_eval
#define expr_lookup     sync_expri_expr_lookup
#define val_release     sync_expri_val_release
#define val_null        sync_expri_val_null
#define val_push        sync_expri_val_push
#define val_pushitem    sync_expri_val_pushitem
#define val_copy        sync_expri_val_copy
#define rterr           sync_expri_rterr
#define item_num        sync_expri_item_num
#define item_bool       sync_expri_item_bool
#define item_str        sync_expri_item_str
#define parse_num       sync_expri_parse_num
#define val_present     sync_expri_val_present
#define expr_func_find  sync_expri_expr_func_find
#define expr_map        sync_expri_expr_map
#define f_cdate         sync_expri_f_cdate
#define f_dateadd       sync_expri_f_dateadd
#define f_datediff      sync_expri_f_datediff
#define f_datefromnum   sync_expri_f_datefromnum
#define f_numfromdate   sync_expri_f_numfromdate
#define f_formatdatetime sync_expri_f_formatdatetime
#define c_formatdatetime sync_expri_c_formatdatetime
#define c_now           sync_expri_c_now
#define c_isdate        sync_expri_c_isdate

/* expr.c */
int expr_eval(struct ectx *c, const struct node *n, struct val *out);
int expr_lookup(struct ectx *c, const struct node *n, const char *name,
    int param, struct val *out);
void val_release(struct val *v);
void val_null(struct val *v, enum vkind k);
int val_push(struct ectx *c, struct val *v, enum vtype t, const char *p,
    size_t len, int64_t num);
int val_pushitem(struct ectx *c, struct val *v, const struct item *it);
int val_copy(struct ectx *c, struct val *dst, const struct val *src);
int rterr(struct ectx *c, const struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int item_num(struct ectx *c, const struct node *n, const struct item *it,
    const char *what, int64_t *out);
int item_bool(struct ectx *c, const struct node *n, const struct item *it,
    int *out);
int item_str(struct ectx *c, const struct node *n, const struct item *it,
    struct sync_buf *b);
int parse_num(const char *s, size_t len, int64_t *out);
int val_present(const struct val *v);

/* expr-func.c */
const struct func *expr_func_find(const char *name, size_t len);
int expr_map(struct ectx *c, const struct node *n, struct val *args,
    size_t nargs, struct val *out);

/* expr-date.c */
scalar_fn f_cdate, f_dateadd, f_datediff, f_datefromnum, f_numfromdate,
    f_formatdatetime;
call_fn c_formatdatetime, c_now, c_isdate;

#endif
