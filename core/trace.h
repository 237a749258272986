/* SPDX-License-Identifier: MIT */
/*
 * trace.h -- the recorder's hooks (core/trace.c; format: docs/TRACE.md).
 * Private to core/: not installed.
 *
 * CTXVAR_TRACE=path makes the library write every operation to a binary
 * trace. The environment is read once, lazily, by the first hook that runs
 * (pthread_once). Each hook in context.c and var.c is one line, a macro of
 * this file: one relaxed load of cv__trace_mode and a predictable branch
 * when tracing is off, a call into trace.c when it is on (or not decided
 * yet). None of them ever changes what a library call does or returns: a
 * trace that cannot be written switches tracing off, with one line on
 * stderr.
 *
 * The inline get (ctxvar.h) cannot be hooked. While tracing, every cache
 * entry the library fills carries CV__GEN_TRACED in its generation: the
 * inline hit compares the generation whole and so never matches, every get
 * reaches cv_i_var_get_miss, and the library's own validity test (lookup in
 * context.c) masks the bit away, so the cache still answers there.
 */
#ifndef CV_TRACE_H
#define CV_TRACE_H

#include <stdatomic.h>

#include "internal.h"

/* cv__trace_mode: OFF after the lazy init found no CTXVAR_TRACE (or a
 * write failed), ON while recording, UNDECIDED before the first hook. */
enum { CV_TRACE_OFF = 0, CV_TRACE_UNDECIDED = 1, CV_TRACE_RECORDING = 2 };
CV_HIDDEN extern _Atomic int cv__trace_mode;

/* Marks cache entries filled while tracing (see the top). Bit 62: the
 * generation counter never reaches it; bit 63 is CV_I_GEN_ABSENT. */
#define CV__GEN_TRACED ((uint64_t)1 << 62)

/* What cache_fill ORs into an entry's generation: CV__GEN_TRACED while
 * recording or undecided, 0 once off -- an OR, not a branch, on the miss
 * and set paths. An entry filled in the undecided moment before the first
 * hook ran stays marked until its var is set again or the context changes
 * (its get takes the call meanwhile, with the same answer). */
CV_HIDDEN extern _Atomic uint64_t cv__trace_genbits;

#if defined(__GNUC__)
#define CV_TRACE_COLD __attribute__((noinline, cold))
#else
#define CV_TRACE_COLD
#endif

#define CV__TRACE_MAYBE()                                                 \
    CV_UNLIKELY(atomic_load_explicit(&cv__trace_mode, memory_order_relaxed) \
                != CV_TRACE_OFF)

/* Operation codes of the trace (docs/TRACE.md). */
enum cv_trace_op {
    CV_TOP_END = 0,        /* the trailer block's only record */
    CV_TOP_THREAD = 1,     /* a thread's first record: a = thread id */
    CV_TOP_VAR_NEW = 2,    /* a = var, b = default value; flags */
    CV_TOP_VAR_RELEASE = 3,
    CV_TOP_GET = 4,        /* a = var; flags: found, get_or */
    CV_TOP_SET = 5,        /* a = var, b = value, c = token or 0 */
    CV_TOP_RESET = 6,      /* a = var, b = token */
    CV_TOP_TOKEN_RELEASE = 7,
    CV_TOP_CTX_NEW = 8,    /* a = new context */
    CV_TOP_CTX_BASE = 9,   /* a = the thread's base context, made on first use */
    CV_TOP_COPY = 10,      /* a = source, b = the copy */
    CV_TOP_ENTER = 11,
    CV_TOP_EXIT = 12,
    CV_TOP_RUN = 13,       /* run began: a = context */
    CV_TOP_RUN_END = 14,   /* the run of a returned */
    CV_TOP_CTX_RELEASE = 15,
    CV_TOP_CLEANUP = 16,   /* cv_thread_cleanup (also at thread exit) */
    CV_TOP_CTX_GET = 17,   /* cv_context_get: a = context, b = var */
    CV_TOP_FOREACH = 18,   /* a = context */
    CV_TOP_CTX_RETAIN = 19, /* a = context: a holder inside the library
                             * (cv_bound_new_in), released by CTX_RELEASE */
    CV_TOP__COUNT
};
/* In the op byte: a short record (4 bytes: op, flags, u16 var; gets only). */
#define CV_TOP_SHORT 0x80u

/* Flags of a record. */
#define CV_TF_FOUND 1u      /* GET/CTX_GET: the var had a value */
#define CV_TF_GET_OR 2u     /* GET: through cv_var_get_or */
#define CV_TF_DEFAULT 1u    /* VAR_NEW: has a default (b) */
#define CV_TF_HOOKS 2u      /* VAR_NEW: has value hooks */
#define CV_TF_TOKEN 1u      /* SET: made a token (c) */

/* The recorder (trace.c). Each is called only when CV__TRACE_MAYBE(). */
CV_HIDDEN int cv__trace_active(void);      /* decides if undecided; 1: on */
CV_HIDDEN void cv__trace_var(int op, const cv_var *v, unsigned flags,
                             const void *value);
CV_HIDDEN void cv__trace_var_free(const cv_var *v);
CV_HIDDEN void cv__trace_get(const cv_var *v, unsigned flags);
CV_HIDDEN void cv__trace_set(const cv_var *v, const void *value,
                             const cv_token *tok);
CV_HIDDEN void cv__trace_token(int op, const cv_var *v, const cv_token *t,
                               const cv_context *tctx);
CV_HIDDEN void cv__trace_ctx(int op, const cv_context *c,
                             const cv_context *other, const cv_var *v,
                             unsigned flags);
CV_HIDDEN void cv__trace_ctx_free(const cv_context *c);

/* ---- the hooks: one line each where they are used ---- */

/* cache_fill: the bits every entry it writes carries (0 once off). */
#define CV_TRACE_GEN_BITS()                                               \
    atomic_load_explicit(&cv__trace_genbits, memory_order_relaxed)
/* The first line of the two get-miss functions: while tracing, the get is
 * answered by traced_get (context.c), which records it. */
#define CV_TRACE_GET_MISS(v, out)                                         \
    do {                                                                  \
        if (CV__TRACE_MAYBE())                                            \
            return traced_get((v), (out));                                \
    } while (0)
#define CV_TRACE_GET_OR_MISS(v, dflt)                                     \
    do {                                                                  \
        if (CV__TRACE_MAYBE())                                            \
            return traced_get_or((v), (dflt));                            \
    } while (0)
#define CV_TRACE_GET(v, found, get_or)                                    \
    do {                                                                  \
        if (CV__TRACE_MAYBE())                                            \
            cv__trace_get((v), ((found) ? CV_TF_FOUND : 0u) |             \
                                   ((get_or) ? CV_TF_GET_OR : 0u));       \
    } while (0)
#define CV_TRACE_VAR_NEW(v)                                               \
    do {                                                                  \
        if (CV__TRACE_MAYBE())                                            \
            cv__trace_var(CV_TOP_VAR_NEW, (v),                            \
                          ((v)->v_has_default ? CV_TF_DEFAULT : 0u) |     \
                              ((v)->v_retain ? CV_TF_HOOKS : 0u),         \
                          (v)->v_default);                                \
    } while (0)
#define CV_TRACE_VAR_RELEASE(v)                                           \
    do {                                                                  \
        if (CV__TRACE_MAYBE() && (v) != NULL)                             \
            cv__trace_var(CV_TOP_VAR_RELEASE, (v), 0u, NULL);             \
    } while (0)
#define CV_TRACE_VAR_FREE(v)                                              \
    do {                                                                  \
        if (CV__TRACE_MAYBE())                                            \
            cv__trace_var_free(v);                                        \
    } while (0)
#define CV_TRACE_SET(v, value, tok)                                       \
    do {                                                                  \
        if (CV__TRACE_MAYBE())                                            \
            cv__trace_set((v), (value), (tok));                           \
    } while (0)
/* tctx: for TOKEN_RELEASE, the context the token holds (its release
 * inside cv_token_release is not the user's). */
#define CV_TRACE_TOKEN(op, v, t, tctx)                                    \
    do {                                                                  \
        if (CV__TRACE_MAYBE() && (t) != NULL)                             \
            cv__trace_token(CV_TOP_##op, (v), (t), (tctx));               \
    } while (0)
/* A context operation that succeeded (r >= 0) or cannot fail (r = 0). */
#define CV_TRACE_CTX(r, op, c, other)                                     \
    do {                                                                  \
        if (CV__TRACE_MAYBE() && (r) >= 0)                                \
            cv__trace_ctx(CV_TOP_##op, (c), (other), NULL, 0u);           \
    } while (0)
#define CV_TRACE_CTX_GET(r, c, v)                                         \
    do {                                                                  \
        if (CV__TRACE_MAYBE() && (r) >= 0)                                \
            cv__trace_ctx(CV_TOP_CTX_GET, (c), NULL, (v),                 \
                          (r) > 0 ? CV_TF_FOUND : 0u);                    \
    } while (0)
#define CV_TRACE_CTX_FREE(c)                                              \
    do {                                                                  \
        if (CV__TRACE_MAYBE())                                            \
            cv__trace_ctx_free(c);                                        \
    } while (0)

#endif /* CV_TRACE_H */
