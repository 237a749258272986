/*
 * internal.h -- what core/ shares with maps/, tests and fuzzers, and no one
 * else. Not installed. C only (it uses C11 atomics).
 */
#ifndef CV_INTERNAL_H
#define CV_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

#include "ctxvar.h"
#include "../maps/map.h"

_Static_assert(CV_MAP_ENOMEM == CV_ENOMEM, "maps/map.h's CV_MAP_ENOMEM");

#if defined(__GNUC__)
#define CV_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define CV_ALWAYS_INLINE inline
#endif

/* ------------------------------------------------------------------------
 * Test-only yield points (core/testhooks.c). Built with -DCV_TEST_HOOKS
 * (the unit tests' library), CV_TEST_YIELD_POINT(p) calls the hook a test
 * installed, so that a test can park one thread at point p while another
 * acts: a race is then forced on every run instead of hoped for. Without
 * CV_TEST_HOOKS it is nothing.
 *   CV_YIELD_ENTER  cv_context_enter, after the entered bit was tested and
 *                   claimed, before the context is pushed (where an enter
 *                   that tests and sets in two steps has its window)
 * ------------------------------------------------------------------------ */
enum { CV_YIELD_ENTER = 1 };
CV_HIDDEN extern void (*_Atomic cv__test_yield_hook)(int point);
CV_HIDDEN int cv__test_hooks_compiled(void);
#ifdef CV_TEST_HOOKS
#define CV_TEST_YIELD_POINT(p)                                            \
    do {                                                                  \
        void (*cv_h_)(int) = atomic_load(&cv__test_yield_hook);           \
        if (cv_h_ != NULL)                                                \
            cv_h_(p);                                                     \
    } while (0)
#else
#define CV_TEST_YIELD_POINT(p) ((void)0)
#endif

/* ------------------------------------------------------------------------
 * Allocation: every byte the library holds comes from here (alloc.c;
 * cv__malloc and cv__free are declared in maps/map.h).
 * ------------------------------------------------------------------------ */
/* Gives the calling thread's cached blocks back to the hook (context.c). */
CV_HIDDEN void cv__thread_drop_caches(void);
/* Takes a reference to c (context.c; bound.c binds a context it is given). */
CV_HIDDEN void cv__context_retain(cv_context *c);

/* ------------------------------------------------------------------------
 * Variables. A var is the key of every map; identity is its address and its
 * hash is computed once, at creation, so no backend ever calls a hash
 * function on the hot path.
 * ------------------------------------------------------------------------ */
struct cv_var {
    struct cv_key v_key;                    /* first: what maps read (key.h) */
    _Atomic size_t v_refs;                  /* user + every map slot + tokens */
    int v_has_default;                      /* 0: no default */
    void *v_default;                        /* retained through v_retain */
    void (*v_retain)(void *value, void *ud);  /* NULL: values need no hooks */
    void (*v_release)(void *value, void *ud);
    void *v_ud;                             /* passed to the hooks */
    char v_name[];                          /* NUL-terminated copy */
};

static inline uint32_t cv__var_hash(const cv_var *v) { return cv__key_hash(v); }

/* Increments need no ordering (the caller already holds a reference). */
static inline void cv__var_incref(cv_var *v)
{
    atomic_fetch_add_explicit(&v->v_refs, 1, memory_order_relaxed);
}
CV_HIDDEN void cv__var_decref(cv_var *v);

static inline void cv__value_retain(const cv_var *v, void *value)
{
    if (v->v_retain)
        v->v_retain(value, v->v_ud);
}
static inline void cv__value_release(const cv_var *v, void *value)
{
    if (v->v_release)
        v->v_release(value, v->v_ud);
}

/* Tests and fuzzers: a var whose hash is forced, to build collisions and
 * shared prefixes of any length. Same contract as cv_var_new_ex. */
CV_HIDDEN int cv__var_new_hashed(const cv_var_opts *opts, uint32_t hash,
                                 cv_var **out);
/* The hash the library gives a var made at address p (a 64->32 bit mix). */
CV_HIDDEN uint32_t cv__hash_ptr(const void *p);

#endif /* CV_INTERNAL_H */
