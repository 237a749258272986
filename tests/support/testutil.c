/* SPDX-License-Identifier: MIT */
/*
 * testutil.c -- counted values and assert helpers. The test allocator is
 * in testalloc.c (no cmocka there, so that the fuzz targets link it too).
 *
 * The hook balance is atomic because the thread tests set values from many
 * threads at once.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

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

int tu_oom_done(int r, long live, const char *file, int line)
{
    if (tu_alloc_fail_off() == 0) {
        if (r != 0)
            tu_fail_err("the call, no allocation failed", r, 0, file, line);
        return 1;
    }
    if (r != CV_ENOMEM)
        tu_fail_err("the call, an allocation failed", r, CV_ENOMEM, file,
                    line);
    long left = tu_alloc_live() - live;
    if (left != 0) {
        print_error("%s:%d: the failed call left %ld blocks\n", file, line,
                    left);
        _fail(file, line);
    }
    return 0;
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

/* What a call inside tu_*_in's run gets and gives back. */
typedef struct in_call {
    const cv_var *v;
    void *value;
    cv_token **tok;
    const char *got;
} in_call;

static int set_cb(void *arg)
{
    in_call *a = arg;
    return cv_var_set((cv_var *)a->v, a->value, a->tok);
}

static int reset_cb(void *arg)
{
    in_call *a = arg;
    return cv_var_reset((cv_var *)a->v, *a->tok);
}

static int get_cb(void *arg)
{
    in_call *a = arg;
    void *out = NULL;
    int r = cv_var_get(a->v, &out);
    a->got = r == CV_ELOOKUP ? "<LookupError>"
             : r == 0        ? (const char *)out
                             : "<error>";
    return 0;
}

int tu_set_in(cv_context *c, cv_var *v, void *value, cv_token **tok)
{
    in_call a = {.v = v, .value = value, .tok = tok};
    return cv_context_run(c, set_cb, &a);
}

int tu_reset_in(cv_context *c, cv_var *v, cv_token *tok)
{
    in_call a = {.v = v, .tok = &tok};
    return cv_context_run(c, reset_cb, &a);
}

const char *tu_get_str_in(cv_context *c, const cv_var *v)
{
    in_call a = {.v = v, .got = "<run failed>"};
    int r = cv_context_run(c, get_cb, &a);
    return r == 0 ? a.got : "<run failed>";
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
