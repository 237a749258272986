/*
 * ctxvar.h -- context variables for C (PEP 567 semantics).
 *
 * A cv_var is a key. A cv_context maps vars to opaque values. Each thread
 * has a current context; cv_var_get/cv_var_set act on it. Contexts are
 * copied in O(1) and entered with cv_context_run or cv_context_enter/exit,
 * which is how a runtime gives every task its own view of the variables.
 * The storage behind a context is a pluggable map backend (cv_backend).
 *
 * Conventions (see docs/SPEC.md for the rules R1... cited below):
 *  - Functions that can fail return int: 0 (or a documented non-negative
 *    result) on success, a negative CV_E* code on failure. A failed call
 *    changes nothing and leaks nothing, also when an allocation fails.
 *  - Out-parameters are written only on success.
 *  - Values are void * and compared by identity; the library never
 *    dereferences them, except through the optional value hooks (R14).
 *  - "borrowed" results are valid while the object they come from is.
 *
 * Thread safety: vars, tokens and contexts are reference counted with
 * atomics and may be released from any thread. A context is written only
 * by the one thread that has it entered (entering is exclusive, R13); reading
 * a context (get, len, foreach, copy) from another thread while its owner
 * writes it is a data race, exactly as for any unsynchronised object.
 */
#ifndef CTXVAR_H
#define CTXVAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(CV_BUILDING_SHARED)
#define CV_EXTERN __attribute__((visibility("default")))
#else
#define CV_EXTERN
#endif

/*
 * Versions. The numbers come from the file VERSION at the root of the
 * source tree (a test checks that these agree with it); the build takes
 * the SONAME, the symbol version node, the .pc and the CMake package from
 * the same file. CTXVAR_VERSION compares: major * 10000 + minor * 100 +
 * patch. cv_version() and cv_version_string() give the library's own,
 * which can be a later patch release than the header a program was built
 * with (a different minor version does not load: docs/design/abi.md).
 */
#define CTXVAR_VERSION_MAJOR 0
#define CTXVAR_VERSION_MINOR 2
#define CTXVAR_VERSION_PATCH 0
#define CTXVAR_VERSION_STRING "0.2.0"
#define CTXVAR_VERSION                                                    \
    (CTXVAR_VERSION_MAJOR * 10000 + CTXVAR_VERSION_MINOR * 100 +           \
     CTXVAR_VERSION_PATCH)

CV_EXTERN int cv_version(void);                /* CTXVAR_VERSION of the library */
CV_EXTERN const char *cv_version_string(void); /* "0.2.0" */

/*
 * Error codes. One list generates the enum, cv_strerror() and cv_err_name().
 * The misuse cases follow CPython's Python/context.c.
 */
#define CV_ERRNO_MAP(XX)                                                      \
    XX(ENOMEM, -1, "out of memory")                                           \
    XX(EINVAL, -2, "invalid argument")                                        \
    XX(ELOOKUP, -3, "variable has no value and no default")                   \
    XX(ETOKEN_USED, -4, "token has already been used")                        \
    XX(ETOKEN_VAR, -5, "token was created by a different variable")           \
    XX(ETOKEN_CTX, -6, "token was created in a different context")            \
    XX(EENTERED, -7, "context is already entered")                            \
    XX(ENOTENTERED, -8, "context is not the current context of this thread")  \
    XX(ENOBACKEND, -9, "no backend of that name")                           \
    XX(EACTIVE, -10, "execution state is in place on a thread")

typedef enum cv_errno {
#define CV_I_ERR_ENUM(name, val, msg) CV_##name = (val),
    CV_ERRNO_MAP(CV_I_ERR_ENUM)
#undef CV_I_ERR_ENUM
    CV_I_ERR_LAST = -11
} cv_errno;

/* A static string for every code; 0 is "success", and anything else that
 * is not a code "unknown error". */
CV_EXTERN const char *cv_strerror(int err);
/* "CV_ENOMEM", ...; 0 is "CV_OK"; not a code: "CV_UNKNOWN". */
CV_EXTERN const char *cv_err_name(int err);

/* Opaque objects. */
typedef struct cv_var cv_var;
typedef struct cv_token cv_token;
typedef struct cv_context cv_context;
typedef struct cv_backend cv_backend;
typedef struct cv_exec cv_exec;
typedef struct cv_bound cv_bound;

/* ------------------------------------------------------------------------
 * Allocation. Every allocation of the library goes through these hooks.
 * Set them before any other call (objects made with one allocator must be
 * freed by it); the calling thread's cached blocks are handed back to the
 * allocator being replaced. The hook must align like malloc. NULL restores
 * malloc/free.
 * ------------------------------------------------------------------------ */
typedef struct cv_allocator {
    void *(*malloc_cb)(size_t size, void *ud); /* NULL result: out of memory */
    void (*free_cb)(void *ptr, void *ud);      /* ptr is never NULL */
    void *ud;                                  /* passed to both */
} cv_allocator;
CV_EXTERN int cv_set_allocator(const cv_allocator *a); /* NULL: the default */

/* ------------------------------------------------------------------------
 * Backends (R15).
 * ------------------------------------------------------------------------ */
CV_EXTERN const cv_backend *cv_backend_get(const char *name); /* NULL: unknown */
CV_EXTERN const char *cv_backend_name(const cv_backend *b);
/* Writes up to cap backends to out (out may be NULL when cap is 0) and
 * returns how many exist. */
CV_EXTERN size_t cv_backend_list(const cv_backend **out, size_t cap);
/* For contexts made afterwards; NULL is CV_EINVAL. */
CV_EXTERN int cv_backend_set_default(const cv_backend *b);
/* The backend new contexts get: the one set above, else $CTXVAR_BACKEND,
 * else the recommended one. An unknown $CTXVAR_BACKEND makes this return
 * NULL and cv_context_new fail with CV_ENOBACKEND (never a silent fallback). */
CV_EXTERN const cv_backend *cv_backend_default(void);
/* Why cv_backend_default() is NULL: the value of $CTXVAR_BACKEND that names
 * no backend (borrowed from the environment: valid until it changes), or
 * NULL when the default is usable -- also when cv_backend_set_default has
 * made the environment irrelevant. Non-NULL exactly when
 * cv_backend_default() is NULL. cv_backend_list gives the names that exist. */
CV_EXTERN const char *cv_backend_env_refused(void);
/* One line for a human on how the default backend is chosen, e.g.
 *   backend "chainmap" (the recommended default)
 *   CTXVAR_BACKEND="hamtt" names no backend (known: dictcopy, hamt, ...)
 * written like snprintf: at most cap bytes including the NUL (buf may be
 * NULL when cap is 0); returns the length of the whole line. */
CV_EXTERN size_t cv_backend_describe(char *buf, size_t cap);

/* ------------------------------------------------------------------------
 * Variables (R1-R4, R14).
 * ------------------------------------------------------------------------ */
typedef struct cv_var_opts {
    const char *name;                        /* required; copied */
    int has_default;                         /* 0: no default */
    void *dflt;                              /* the default when has_default */
    void (*retain)(void *value, void *ud);   /* optional value hooks (R14) */
    void (*release)(void *value, void *ud);
    void *ud;                                /* passed to the hooks */
} cv_var_opts;

CV_EXTERN int cv_var_new(const char *name, cv_var **out);
CV_EXTERN int cv_var_new_default(const char *name, void *dflt, cv_var **out);
CV_EXTERN int cv_var_new_ex(const cv_var_opts *opts, cv_var **out);
CV_EXTERN const char *cv_var_name(const cv_var *v); /* borrowed; NULL for NULL */
/* Drops the caller's reference; contexts and tokens keep the var alive. */
CV_EXTERN void cv_var_release(cv_var *v);

/* 0 and *out set, or CV_ELOOKUP (out untouched), or CV_EINVAL. Never allocates. */
CV_EXTERN int cv_var_get(const cv_var *v, void **out);
/* The current context's value, else dflt (not the var's default: R4). */
CV_EXTERN void *cv_var_get_or(const cv_var *v, void *dflt);
/* Stores value in the current context; tok may be NULL (no token made). */
CV_EXTERN int cv_var_set(cv_var *v, void *value, cv_token **tok);
/* Restores the value recorded in tok (R6). */
CV_EXTERN int cv_var_reset(cv_var *v, cv_token *tok);

/* ------------------------------------------------------------------------
 * Tokens (R5-R7).
 * ------------------------------------------------------------------------ */
CV_EXTERN cv_var *cv_token_var(const cv_token *t);  /* borrowed */
/* 1 and *out set: had a value; 0: MISSING (out untouched); CV_EINVAL. */
CV_EXTERN int cv_token_old_value(const cv_token *t, void **out);
CV_EXTERN int cv_token_used(const cv_token *t);     /* 1, 0, or CV_EINVAL */
CV_EXTERN void cv_token_release(cv_token *t);

/* ------------------------------------------------------------------------
 * Contexts (R8-R13, R16).
 * ------------------------------------------------------------------------ */
CV_EXTERN int cv_context_new(cv_context **out);   /* empty, default backend */
CV_EXTERN int cv_context_new_on(const cv_backend *b, cv_context **out);
CV_EXTERN int cv_copy_context(cv_context **out);  /* copy of the current one */
CV_EXTERN int cv_context_copy(const cv_context *c, cv_context **out);
CV_EXTERN void cv_context_release(cv_context *c);
CV_EXTERN const cv_backend *cv_context_backend(const cv_context *c);

/* Runs fn(arg) with c as this thread's current context; returns fn's
 * result, or CV_EENTERED (fn not called) if c is entered anywhere. */
CV_EXTERN int cv_context_run(cv_context *c, int (*fn)(void *arg), void *arg);
CV_EXTERN int cv_context_enter(cv_context *c);
/* CV_ENOTENTERED unless c is this thread's current context and was entered
 * by cv_context_enter (a context entered by cv_context_run is exited by
 * that run; the thread's own base context is never exited). */
CV_EXTERN int cv_context_exit(cv_context *c);
/* This thread's current context (borrowed). The first call on a thread
 * (and the first after cv_thread_cleanup) makes the thread's base context,
 * empty, on the default backend; NULL is returned exactly when that fails:
 * the allocation failed (CV_ENOMEM), or cv_backend_default() is NULL
 * because $CTXVAR_BACKEND names no backend (CV_ENOBACKEND; see
 * cv_backend_env_refused). Once it has a context a thread never gets NULL. */
CV_EXTERN cv_context *cv_context_current(void);
/* Releases this thread's contexts now; threads also do it when they exit.
 * Contexts still entered by this thread are exited first. */
CV_EXTERN void cv_thread_cleanup(void);

/* 1 and *out set: found; 0: absent; CV_EINVAL. */
CV_EXTERN int cv_context_get(const cv_context *c, const cv_var *v, void **out);
CV_EXTERN size_t cv_context_len(const cv_context *c);
/* Calls cb once per pair (order unspecified) over a snapshot of c; stops
 * when cb returns non-zero and returns that value; 0 after a full walk. */
CV_EXTERN int cv_context_foreach(const cv_context *c,
                                 int (*cb)(cv_var *v, void *value, void *arg),
                                 void *arg);

/* ------------------------------------------------------------------------
 * Execution states, for stackful runtimes (R17-R22). What a thread holds
 * for ctxvar -- its stack of entered contexts and its base context -- in an
 * object a fiber scheduler switches on every fiber switch, so that each
 * fiber behaves as a thread does (R13 per fiber). The thread's own state is
 * implicit and named NULL.
 *
 *     cv_exec *prev;
 *     cv_exec_swap(fiber->exec, &prev);   before switching to the fiber
 *     swapcontext(&sched_uc, &fiber->uc);
 *     cv_exec_swap(prev, NULL);           back in the scheduler
 * ------------------------------------------------------------------------ */
/* A new state: no context entered; its base context is made empty on first
 * use, as a thread's is (the swap never allocates). */
CV_EXTERN int cv_exec_new(cv_exec **out);
/* Puts `to` (NULL: the calling thread's own state) in place of the one in
 * place, which *prev gets when prev is not NULL. O(1), never allocates,
 * never fails for NULL; CV_EACTIVE (nothing changed) if `to` is in place
 * on another thread. Swapping in the state already in place does nothing. */
CV_EXTERN int cv_exec_swap(cv_exec *to, cv_exec **prev);
/* The state in place on this thread; NULL: the thread's own. */
CV_EXTERN cv_exec *cv_exec_current(void);
/* Exits what the state has entered and releases its base. CV_EACTIVE
 * (nothing changed) if it is in place on any thread. NULL: 0. */
CV_EXTERN int cv_exec_release(cv_exec *x);

/* ------------------------------------------------------------------------
 * Bound callbacks, for callback runtimes (R23-R25): fn(arg), to be called
 * later in the context captured now (asyncio's call_soon(cb, context=)).
 * ------------------------------------------------------------------------ */
/* Binds fn(arg) to a copy of the current context, taken now. */
CV_EXTERN int cv_bound_new(int (*fn)(void *arg), void *arg, cv_bound **out);
/* Binds fn(arg) to c itself (retained): its sets stay in c. */
CV_EXTERN int cv_bound_new_in(cv_context *c, int (*fn)(void *arg), void *arg,
                              cv_bound **out);
/* Runs fn(arg) in the bound context: fn's result, or CV_EENTERED (fn not
 * called) if that context is entered anywhere. Never allocates. */
CV_EXTERN int cv_bound_call(cv_bound *b);
/* cv_bound_call for a void(void *) callback slot; b is a cv_bound *. */
CV_EXTERN void cv_bound_fire(void *b);
/* What the last cv_bound_call or cv_bound_fire returned; 0 before any. */
CV_EXTERN int cv_bound_result(const cv_bound *b);
CV_EXTERN cv_context *cv_bound_context(const cv_bound *b); /* borrowed */
CV_EXTERN void cv_bound_release(cv_bound *b);

/* ------------------------------------------------------------------------
 * The inline get. Not API: every cv_i_ / CV_I_ name below and this layout
 * may change with any version. Code built against one layout cannot run
 * against another: the thread-local cache's name carries the layout
 * version (cv_i_tcache_v1), and every symbol of the shared library is
 * versioned, so a mismatch fails at link or load time, never at run time.
 * Define CV_NO_INLINE_GET before including this header to call the
 * functions instead (an FFI that binds symbols); (cv_var_get)(v, out), with
 * the parentheses, calls the function in any build.
 *
 * Why: the library answers a get from a per-thread cache (core/context.c)
 * in a load, two compares and a load; through a call that is about 2 ns,
 * inline about half of that, and a get is the operation a tracing or
 * logging library does on every event. The cache is one thread-local
 * object: a generation, which moves when this thread's current context
 * changes, and 64 entries (var, value, generation). An entry whose var and
 * generation match answers the get; everything else -- a miss, an absent
 * var, a NULL argument -- takes the call. A never-written entry cannot
 * match, not even for v == NULL: its generation is 0 and the thread's
 * never is.
 * ------------------------------------------------------------------------ */
#define CV_I_CACHE_LG 6
#define CV_I_CACHE_SIZE (1u << CV_I_CACHE_LG)

struct cv_i_centry {
    const cv_var *var;           /* NULL: never written */
    void *val;                   /* the value, when gen has no ABSENT bit */
    uint64_t gen;                /* valid while (gen & ~ABSENT) == cv_i_tcache_v1.gen */
};
#define CV_I_GEN_ABSENT ((uint64_t)1 << 63) /* "not in the current context" */

/* One object, so that the generation and the entry are reached from one
 * thread-pointer load. */
struct cv_i_tcache {
    uint64_t gen;                /* this thread's; starts at 1, never 0 */
    struct cv_i_centry e[CV_I_CACHE_SIZE];
};

/* The entry of v: its address, mixed by a multiplicative (Fibonacci) hash,
 * so that the index costs a multiply and never a load from the var. */
static inline unsigned cv_i_cache_index(const cv_var *v)
{
    return (unsigned)(((uint64_t)(uintptr_t)v *
                       UINT64_C(0x9E3779B97F4A7C15)) >> (64 - CV_I_CACHE_LG));
}

/* The hit test, the one definition of it: v's entry if it answers a get
 * (right var, this thread's generation, so present), else NULL. */
static inline const struct cv_i_centry *cv_i_cache_hit(
    const struct cv_i_tcache *tc, const cv_var *v)
{
    const struct cv_i_centry *e = &tc->e[cv_i_cache_index(v)];
    return e->var == v && e->gen == tc->gen ? e : NULL;
}

/* The get after its hit test failed (a miss, an absent var, bad input). */
CV_EXTERN int cv_i_var_get_miss(const cv_var *v, void **out);
CV_EXTERN void *cv_i_var_get_or_miss(const cv_var *v, void *dflt);

#if defined(__GNUC__) && !defined(CV_NO_INLINE_GET)
/* The TLS model of the cache, by who includes this header (docs/design/
 * tls.md). An executable (PIE or not): initial-exec, one %fs-relative
 * load; the library it links is loaded at startup, so its TLS is in the
 * static block. Position-independent shared code (a plugin, a Python
 * extension module, the library itself): the default model, so that the
 * object can still be dlopened into any process, the TLS of a library
 * loaded later living outside the static block. */
#if !defined(__PIC__) || defined(__PIE__)
#define CV_I_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define CV_I_TLS_MODEL
#endif
CV_EXTERN extern __thread struct cv_i_tcache cv_i_tcache_v1 CV_I_TLS_MODEL;

static inline int cv_i_var_get_inline(const cv_var *v, void **out)
{
    const struct cv_i_centry *e = cv_i_cache_hit(&cv_i_tcache_v1, v);
    if (__builtin_expect(e != NULL && out != NULL, 1)) {
        *out = e->val;
        return 0;
    }
    return cv_i_var_get_miss(v, out);
}

static inline void *cv_i_var_get_or_inline(const cv_var *v, void *dflt)
{
    const struct cv_i_centry *e = cv_i_cache_hit(&cv_i_tcache_v1, v);
    if (__builtin_expect(e != NULL, 1))
        return e->val;
    return cv_i_var_get_or_miss(v, dflt);
}

#define cv_var_get(v, out) cv_i_var_get_inline((v), (out))
#define cv_var_get_or(v, dflt) cv_i_var_get_or_inline((v), (dflt))
#endif

#ifdef __cplusplus
}
#endif
#endif /* CTXVAR_H */
