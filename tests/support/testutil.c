/*
 * testutil.c -- the test allocator, counted values and assert helpers.
 *
 * The allocator prefixes every block with its size so that live bytes can
 * be counted; the counters are atomic because the thread tests allocate from
 * many threads at once.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef union hdr {
    size_t size;
    max_align_t align; /* keeps the user block maximally aligned */
} hdr;

static atomic_long live_blocks, live_bytes, calls, fail_at, failures;
static atomic_int fail_forever;

static void *tu_malloc(size_t size, void *ud)
{
    (void)ud;
    long n = atomic_fetch_add(&calls, 1) + 1;
    long k = atomic_load(&fail_at);
    if (k > 0 && (n == k || (n > k && atomic_load(&fail_forever)))) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    hdr *h = malloc(sizeof *h + size);
    if (h == NULL)
        return NULL;
    h->size = size;
    atomic_fetch_add(&live_blocks, 1);
    atomic_fetch_add(&live_bytes, (long)size);
    return h + 1;
}

static void tu_free(void *p, void *ud)
{
    (void)ud;
    hdr *h = (hdr *)p - 1;
    atomic_fetch_sub(&live_blocks, 1);
    atomic_fetch_sub(&live_bytes, (long)h->size);
    free(h);
}

void tu_alloc_install(void)
{
    cv_allocator a = {.malloc_cb = tu_malloc, .free_cb = tu_free, .ud = NULL};
    if (cv_set_allocator(&a) != 0)
        abort();
}

long tu_alloc_live(void) { return atomic_load(&live_blocks); }
long tu_alloc_live_bytes(void) { return atomic_load(&live_bytes); }
long tu_alloc_calls(void) { return atomic_load(&calls); }
long tu_alloc_failures(void) { return atomic_load(&failures); }

void tu_alloc_fail_at(long k, int forever)
{
    atomic_store(&fail_forever, forever);
    atomic_store(&failures, 0);
    atomic_store(&fail_at, k > 0 ? atomic_load(&calls) + k : 0);
}

static atomic_long hook_balance;

void tu_hook_retain(void *value, void *ud)
{
    (void)ud;
    if (value != NULL)
        __atomic_fetch_add(&((tu_val *)value)->refs, 1, __ATOMIC_RELAXED);
    atomic_fetch_add(&hook_balance, 1);
}

void tu_hook_release(void *value, void *ud)
{
    (void)ud;
    if (value != NULL)
        __atomic_fetch_sub(&((tu_val *)value)->refs, 1, __ATOMIC_RELAXED);
    atomic_fetch_sub(&hook_balance, 1);
}

long tu_hook_balance(void) { return atomic_load(&hook_balance); }

cv_var *tu_var_hooked(const char *name, tu_val *dflt)
{
    cv_var_opts o = {
        .name = name,
        .has_default = dflt != NULL,
        .dflt = dflt,
        .retain = tu_hook_retain,
        .release = tu_hook_release,
    };
    cv_var *v = NULL;
    ASSERT_OK(cv_var_new_ex(&o, &v));
    return v;
}

void tu_fail_err(const char *expr, int got, int want, const char *file,
                 int line)
{
    print_error("%s:%d: %s\n  got  %d (%s)\n  want %d (%s)\n", file, line,
                expr, got, got <= 0 ? cv_err_name(got) : "positive", want,
                want <= 0 ? cv_err_name(want) : "positive");
    _fail(file, line);
}

const char *tu_get_str(const cv_var *v)
{
    void *out = NULL;
    int r = cv_var_get(v, &out);
    if (r == CV_ELOOKUP)
        return "<LookupError>";
    ASSERT_OK(r);
    return (const char *)out;
}

cv_var *tu_var(const char *name)
{
    cv_var *v = NULL;
    ASSERT_OK(cv_var_new(name, &v));
    return v;
}

cv_var *tu_var_default(const char *name, void *d)
{
    cv_var *v = NULL;
    ASSERT_OK(cv_var_new_default(name, d, &v));
    return v;
}

int tu_quick(void)
{
    const char *q = getenv("CV_TEST_QUICK");
    return q != NULL && q[0] != '\0' && q[0] != '0';
}

long tu_scale(long normal, long quick)
{
    return tu_quick() ? quick : normal;
}
