/*
 * alloc.c -- the allocation hook (cv_set_allocator) and the error strings.
 *
 * Every allocation of the library goes through cv__malloc/cv__free so that
 * tests can fail the k-th one and benchmarks can count bytes. The hook is
 * one of the two process-wide mutable globals the library has (the other is
 * the default backend). It is a plain global, read on every allocation:
 * ctxvar.h asks for it to be set before any other call, so that every
 * thread started afterwards sees it through the thread start's ordering,
 * and an atomic load would only cost the hot paths.
 */
#include <stdlib.h>

#include "internal.h"

static void *default_malloc(size_t size, void *ud)
{
    (void)ud;
    return malloc(size);
}

static void default_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

static const cv_allocator default_allocator = {
    .malloc_cb = default_malloc,
    .free_cb = default_free,
    .ud = NULL,
};

/* The copy in use; replaced as a whole by cv_set_allocator. */
static cv_allocator current = {
    .malloc_cb = default_malloc,
    .free_cb = default_free,
    .ud = NULL,
};

int cv_set_allocator(const cv_allocator *a)
{
    if (a != NULL && (a->malloc_cb == NULL || a->free_cb == NULL))
        return CV_EINVAL;
    /* The calling thread's cached blocks (core/context.c) came from the
     * hook in place: they go back to it, not to the next one. That makes a
     * single-threaded swap (a test framework installing an allocator per
     * test, after cv_thread_cleanup) safe; other threads' caches and live
     * objects are still the caller's business, as ctxvar.h says. */
    cv__thread_drop_caches();
    current = a != NULL ? *a : default_allocator;
    return 0;
}

void *cv__malloc(size_t size)
{
    return current.malloc_cb(size, current.ud);
}

void cv__free(void *p)
{
    if (p != NULL)
        current.free_cb(p, current.ud);
}

/* ------------------------------------------------------------------------
 * Error strings, generated from the one list in ctxvar.h.
 * ------------------------------------------------------------------------ */
const char *cv_strerror(int err)
{
    switch (err) {
#define CV__ERR_STR(name, val, msg) case CV_##name: return msg;
        CV_ERRNO_MAP(CV__ERR_STR)
#undef CV__ERR_STR
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

const char *cv_err_name(int err)
{
    switch (err) {
#define CV__ERR_NAME(name, val, msg) case CV_##name: return "CV_" #name;
        CV_ERRNO_MAP(CV__ERR_NAME)
#undef CV__ERR_NAME
    case 0:
        return "CV_OK";
    default:
        return "CV_UNKNOWN";
    }
}

#ifdef CV_DEBUG
#include <stdio.h>

/* CV_ASSERT's failure (maps/map.h): debug builds only. */
void cv__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "%s:%d: ctxvar invariant violated: %s\n", file, line,
            expr);
    abort();
}
#endif
