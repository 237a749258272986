/*
 * bound.c -- bound callbacks (R23-R25): fn(arg) and a context, captured
 * when the callback is scheduled and entered when it runs, as asyncio's
 * loop.call_soon(cb, context=ctx) does. The invocation is cv_context_run,
 * which never allocates.
 */
#include "internal.h"

struct cv_bound {
    cv_context *b_ctx;           /* owned reference */
    int (*b_fn)(void *arg);
    void *b_arg;
    _Atomic int b_last;          /* the last call's result */
};

static int bound_alloc(int (*fn)(void *), void *arg, cv_bound **b)
{
    if (fn == NULL)
        return CV_EINVAL;
    *b = cv__malloc(sizeof **b);
    if (*b == NULL)
        return CV_ENOMEM;
    (*b)->b_fn = fn;
    (*b)->b_arg = arg;
    atomic_init(&(*b)->b_last, 0);
    return 0;
}

int cv_bound_new(int (*fn)(void *arg), void *arg, cv_bound **out)
{
    if (out == NULL)
        return CV_EINVAL;
    cv_bound *b;
    int r = bound_alloc(fn, arg, &b);
    if (r < 0)
        return r;
    r = cv_copy_context(&b->b_ctx);
    if (r < 0) {
        cv__free(b);
        return r;
    }
    *out = b;
    return 0;
}

int cv_bound_new_in(cv_context *c, int (*fn)(void *arg), void *arg,
                    cv_bound **out)
{
    if (c == NULL || out == NULL)
        return CV_EINVAL;
    cv_bound *b;
    int r = bound_alloc(fn, arg, &b);
    if (r < 0)
        return r;
    cv__context_retain(c);
    b->b_ctx = c;
    *out = b;
    return 0;
}

int cv_bound_call(cv_bound *b)
{
    if (b == NULL)
        return CV_EINVAL;
    int r = cv_context_run(b->b_ctx, b->b_fn, b->b_arg);
    atomic_store_explicit(&b->b_last, r, memory_order_relaxed);
    return r;
}

void cv_bound_fire(void *b)
{
    (void)cv_bound_call(b);
}

int cv_bound_result(const cv_bound *b)
{
    return b != NULL ? atomic_load_explicit(&b->b_last, memory_order_relaxed)
                     : CV_EINVAL;
}

cv_context *cv_bound_context(const cv_bound *b)
{
    return b != NULL ? b->b_ctx : NULL;
}

void cv_bound_release(cv_bound *b)
{
    if (b == NULL)
        return;
    cv_context_release(b->b_ctx);
    cv__free(b);
}
