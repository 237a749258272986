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
#include "trace_format.h" /* the op codes and flags of the hooks */

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
/* Every hook below: `call` when tracing may be on and cond holds (cond is
 * tested after the load, so it costs nothing when tracing is off). */
#define CV__TRACE_IF(cond, call)                                          \
    do {                                                                  \
        if (CV__TRACE_MAYBE() && (cond))                                  \
            call;                                                         \
    } while (0)
/* The first line of the two get-miss functions: while tracing, the get is
 * answered by traced_get (context.c), which records it. */
#define CV_TRACE_GET_MISS(v, out) CV__TRACE_IF(1, return traced_get((v), (out)))
#define CV_TRACE_GET_OR_MISS(v, dflt) CV__TRACE_IF(1, return traced_get_or((v), (dflt)))
#define CV_TRACE_GET(v, found, get_or)                                    \
    CV__TRACE_IF(1, cv__trace_get((v), ((found) ? CV_TF_FOUND : 0u) |    \
                                           ((get_or) ? CV_TF_GET_OR : 0u)))
#define CV_TRACE_VAR_NEW(v)                                               \
    CV__TRACE_IF(1, cv__trace_var(CV_TOP_VAR_NEW, (v),                    \
                                  ((v)->v_has_default ? CV_TF_DEFAULT : 0u) | \
                                      ((v)->v_retain ? CV_TF_HOOKS : 0u), \
                                  (v)->v_default))
#define CV_TRACE_VAR_RELEASE(v)                                           \
    CV__TRACE_IF((v) != NULL, cv__trace_var(CV_TOP_VAR_RELEASE, (v), 0u, NULL))
#define CV_TRACE_VAR_FREE(v) CV__TRACE_IF(1, cv__trace_var_free(v))
#define CV_TRACE_SET(v, value, tok) CV__TRACE_IF(1, cv__trace_set((v), (value), (tok)))
/* tctx: for TOKEN_RELEASE, the context the token holds (its release
 * inside cv_token_release is not the user's). */
#define CV_TRACE_TOKEN(op, v, t, tctx)                                    \
    CV__TRACE_IF((t) != NULL, cv__trace_token(CV_TOP_##op, (v), (t), (tctx)))
/* A context operation that succeeded (r >= 0) or cannot fail (r = 0). */
#define CV_TRACE_CTX(r, op, c, other)                                     \
    CV__TRACE_IF((r) >= 0, cv__trace_ctx(CV_TOP_##op, (c), (other), NULL, 0u))
#define CV_TRACE_CTX_GET(r, c, v)                                         \
    CV__TRACE_IF((r) >= 0, cv__trace_ctx(CV_TOP_CTX_GET, (c), NULL, (v), \
                                         (r) > 0 ? CV_TF_FOUND : 0u))
#define CV_TRACE_CTX_FREE(c) CV__TRACE_IF(1, cv__trace_ctx_free(c))

#endif /* CV_TRACE_H */
