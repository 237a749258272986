/*
 * fuzz.h -- what the fuzz targets of fuzz/ share: the byte reader, the
 * counting and failing allocator (testalloc.h, shared with the unit
 * tests), the value pool, and the interpreter of the context command
 * language (the "ctx language") that ctx_ops, oom and cpython_diff run.
 *
 * THE CTX LANGUAGE
 * An input is a string of commands. A command is one letter followed by its
 * argument bytes; a byte that is not a command letter where a command is
 * expected is skipped (so seeds can be written by hand, with spaces). An
 * argument byte '0'..'9' means 0..9 (mod the range), any other byte b means
 * b mod the range, so "S012" sets var 0 to value 1 with token slot 2.
 *
 *   V s f d   new var in slot s; f: bit0 default d, bit1 value hooks,
 *             bit2 through cv_var_new_ex even without hooks
 *   W s f d t w  like V, hooked; when a value released through this var
 *             dies (its count reaches zero), its release hook sets var
 *             slot t to value w in the current context (R14a), and the
 *             reference makes the same write when the call returns
 *   v s       release var slot s
 *   S s d t   set var s to value d, token into slot t
 *   s s d     set var s to value d, no token
 *   T t d     set through cv_token_var(token t) (S11)
 *   G s       get var s
 *   O s d     get_or(var s, value d)
 *   R s t     reset var s with token t (any token: fresh, used, another
 *             var's, another context's)
 *   t t       release token t
 *   I t       token info: var, old value, used
 *   N c f     new empty context in slot c (f odd: cv_context_new_on)
 *   C c       copy of the current context into slot c
 *   c a c     copy of context a into slot c
 *   x c       release context c
 *   E c       enter context c
 *   X c       exit context c
 *   Q         exit the current context (cv_context_current())
 *   ( c       run context c: the commands up to the matching ')' are fn's
 *             body (run inline when the run fails)
 *   ) r       end of a run body; fn returns r
 *   L c       len of context c (c >= 8: the current one)
 *   F c k w s d   foreach over c (c >= 8: current); k > 0: stop after k
 *             pairs; w odd: the callback sets var s = d in the current
 *             context on its first call (the walk must not see it)
 *   K c s     cv_context_get(context c, var s)
 *
 * Every command runs on two implementations side by side: the library
 * (one backend, real calls) and a reference (fz_ref_ops: the model of
 * model.c, or CPython's contextvars in cpython_diff.c). The interpreter
 * compares every observable result and abort()s on the first difference.
 */
#ifndef CV_FUZZ_H
#define CV_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "ctxvar.h"
/* The counting and failing allocator, tu_alloc_*: the unit tests' own
 * (tests/support/testalloc.c, which needs no cmocka), so that the oom
 * target fails allocations exactly as the OOM unit tests do. */
#include "testalloc.h"

/* Caps: input bytes, commands, objects. */
#define FZ_MAX_INPUT 4096
#define FZ_MAX_CMDS 1024
#define FZ_NVARS 8      /* var slots */
#define FZ_NCTX 8       /* context slots */
#define FZ_NTOK 8       /* token slots */
#define FZ_NVAL 8       /* values: 0 is the NULL pointer */
#define FZ_MAX_UIDS 64  /* contexts made per world (the base is uid 0) */
#define FZ_MAX_VARIDS 64 /* vars made per world */
#define FZ_MAX_DEPTH 24 /* entered contexts on the stack, base included */
#define FZ_MAX_RUN 6    /* nested runs */

#define FZ_SKIP 1000    /* a reference's answer: cannot express, skip it */
#define FZ_MISSING (-1) /* a value index for "no value" */
#define FZ_UNKNOWN (-2) /* the reference cannot observe this */

/* ------------------------------------------------------------------------
 * Reading bytes
 * ------------------------------------------------------------------------ */
typedef struct fz_reader {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last */
} fz_reader;

/* The next byte, or 0 when the input is exhausted. */
int fz_byte(fz_reader *r);
/* An argument in [0, n): '0'..'9' are digits, other bytes are mod n. */
int fz_arg(fz_reader *r, int n);
uint32_t fz_u32(fz_reader *r);

/* ------------------------------------------------------------------------
 * Values: FZ_NVAL distinct pointers (index 0 is NULL) with per-value
 * retain counters for the value hooks (R14).
 * ------------------------------------------------------------------------ */
void *fz_value(int i);
int fz_value_index(const void *p);   /* -1 if not a pool value */
/* The caller's own reference to value i while it passes it into one call
 * (R14b: a value dies when the library's holds and this are all gone). */
void *fz_hold(int i);
void fz_unhold(int i);
void fz_hook_retain(void *value, void *ud);
void fz_hook_release(void *value, void *ud);
long fz_hook_balance(void);          /* retains minus releases, all values */
void *fz_hook_ud(void);              /* the ud the hooks insist on */

/* Aborts with a message formatted like printf, prefixed by the target. */
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 1, 2)))
#endif
void fz_die(const char *fmt, ...);
extern const char *fz_target;        /* "ctx_ops", ... for messages */
extern unsigned long fz_exec_count;  /* inputs run by this process */

/* Backends selected by $CTXVAR_FUZZ_BACKENDS (comma separated names,
 * resolved by fz_backend_lookup), else every library backend
 * (cv_backend_list). Returns how many, at most cap. */
typedef const cv_backend *(*fz_lookup_fn)(const char *name);
extern fz_lookup_fn fz_backend_lookup; /* cv_backend_get unless a canary
                                          build installs another */
size_t fz_backends(const cv_backend **out, size_t cap);

/* A target's LLVMFuzzerInitialize: FZ_TARGET("oom", setup) names the
 * target, runs setup() (the target's backends, its model) and installs the
 * test allocator, once; LLVMFuzzerTestOneInput calls it too when the
 * driver did not. */
void fz_init(const char *target, void (*setup)(void));
#define FZ_TARGET(label, setup)                                           \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                     \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                      \
    {                                                                      \
        (void)argc;                                                        \
        (void)argv;                                                        \
        fz_init(label, setup);                                             \
        return 0;                                                          \
    }

/* ------------------------------------------------------------------------
 * The reference implementation of the ctx language. Slots are the
 * interpreter's: the reference keeps its own object per slot. Each
 * function returns 0 or a CV_E* code (or FZ_SKIP), like the library.
 * ------------------------------------------------------------------------ */
typedef struct fz_pair {
    int var;    /* var id (the number in its name "v<id>") */
    int val;    /* value index */
} fz_pair;

typedef struct fz_ref_ops {
    const char *name;
    void (*begin)(void *self);   /* a fresh world: empty base context */
    void (*end)(void *self);     /* drop everything */
    /* OOM mode only: save the whole state / go back to it. */
    void (*save)(void *self);
    void (*restore)(void *self);

    int (*var_new)(void *self, int slot, int id, int has_default, int dflt);
    void (*var_release)(void *self, int slot);
    int (*set)(void *self, int vslot, int val, int tslot /* -1: none */);
    int (*set_via_token)(void *self, int tslot, int val);
    int (*get)(void *self, int vslot, int *val);   /* 0 or CV_ELOOKUP */
    int (*get_or)(void *self, int vslot, int dflt, int *val);
    int (*reset)(void *self, int vslot, int tslot);
    void (*tok_release)(void *self, int tslot);
    /* *used may be FZ_UNKNOWN; *old FZ_MISSING */
    int (*tok_info)(void *self, int tslot, int *var_id, int *used, int *old);
    int (*ctx_new)(void *self, int slot);
    int (*ctx_copy_current)(void *self, int slot);
    int (*ctx_copy)(void *self, int src, int slot);
    void (*ctx_release)(void *self, int slot);
    int (*enter)(void *self, int slot);
    int (*exit)(void *self, int slot /* -1: the current one */);
    int (*run_begin)(void *self, int slot);  /* enters, or an error */
    void (*run_end)(void *self, int depth_before); /* unwinds to it */
    /* len and the pairs of context slot (or -1: the current one) */
    int (*len)(void *self, int slot, long *n);
    int (*items)(void *self, int slot, fz_pair *out, int cap, int *n);
    int (*ctx_get)(void *self, int slot, int vslot, int *val); /* 1/0 */
} fz_ref_ops;

/* The model (model.c): plain arrays, written from SPEC.md alone. */
extern const fz_ref_ops fz_model_ops;
void *fz_model_new(void);

/* ------------------------------------------------------------------------
 * The interpreter
 * ------------------------------------------------------------------------ */
typedef struct fz_opts {
    const cv_backend *backend;   /* the library side's backend */
    const fz_ref_ops *ref;       /* the reference side */
    void *ref_self;
    int oom;                     /* an allocation may fail: tolerate and
                                    verify ENOMEM (needs ref save/restore) */
    int skip_base_exit;          /* the reference cannot exit the base */
    int skip_run_frame_exit;     /* do not exit a run's own context inside
                                    its body (cpython_diff: CPython would
                                    allow it; bug B1 before c2faae3) */
    int lazy_base;               /* do not make the base context up front */
    long fail_at;                /* oom: the fail_at-th allocation of the
                                    world fails (0: none) */
    int fail_forever;            /* oom: and every one after it, until the
                                    call that hit it returns */
    size_t max_cmds;             /* 0: FZ_MAX_CMDS */
} fz_opts;

typedef struct fz_result {
    unsigned long steps;         /* commands run */
    uint64_t digest;             /* hash of every observation */
    long enomem;                 /* calls that reported CV_ENOMEM */
    long absorbed;               /* calls that worked around a failed
                                    allocation and succeeded */
    long hook_writes;            /* writes made by W hooks: when a value
                                    dies differs by backend (chainmap
                                    keeps shadowed values a while), so
                                    digests compare only without them */
} fz_result;

/* Runs the input on both sides; abort()s on any difference, on a leak or
 * on unbalanced value hooks. Leaves no context, var or token behind. */
void fz_ctx_run(const uint8_t *data, size_t size, const fz_opts *o,
                fz_result *res);

#endif
