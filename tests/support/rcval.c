/*
 * rcval.c -- values with a real reference count (rcval.h). Single-threaded:
 * the hook tests run on one thread, or hand values between threads at
 * joins.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rcval.h"

static tu_rc *all;
static long violations;

static void violation(const char *what, const tu_rc *x)
{
    violations++;
    fprintf(stderr, "rcval: %s (value \"%s\", count %ld)\n", what,
            x ? x->tag : "?", x ? x->refs : 0L);
}

tu_rc *rc_new(const char *tag, tu_rc_dtor on_free, void *arg)
{
    tu_rc *x = calloc(1, sizeof *x);
    if (x == NULL)
        abort();
    x->refs = 1;
    x->tag = tag;
    x->on_free = on_free;
    x->arg = arg;
    x->next = all;
    all = x;
    return x;
}

static void rc_drop(tu_rc *x)
{
    if (x->dead) {
        violation("released after its count reached zero", x);
        return;
    }
    if (--x->refs > 0)
        return;
    x->dead = 1;
    if (x->on_free != NULL)
        x->on_free(x, x->arg);
}

void rc_unref(tu_rc *x)
{
    rc_drop(x);
}

static void hook_retain(void *value, void *ud)
{
    (void)ud;
    tu_rc *x = value;
    if (x == NULL)
        return; /* NULL is a value too; it holds nothing */
    if (x->dead)
        violation("retained after its count reached zero", x);
    else
        x->refs++;
}

static void hook_release(void *value, void *ud)
{
    (void)ud;
    if (value != NULL)
        rc_drop(value);
}

cv_var *rc_var(const char *name, tu_rc *dflt)
{
    cv_var_opts o = {.name = name,
                     .has_default = dflt != NULL,
                     .dflt = dflt,
                     .retain = hook_retain,
                     .release = hook_release};
    cv_var *v;
    if (cv_var_new_ex(&o, &v) != 0)
        abort();
    return v;
}

void rc_check_live(const void *p)
{
    for (tu_rc *x = all; x != NULL; x = x->next)
        if (x == p) {
            if (x->dead)
                violation("returned by a get after its count reached zero",
                          x);
            return;
        }
    violations++;
    fprintf(stderr, "rcval: %p is not a value of this test\n", p);
}

long rc_violations(void)
{
    return violations;
}

long rc_live(void)
{
    long n = 0;
    for (tu_rc *x = all; x != NULL; x = x->next)
        n += !x->dead;
    return n;
}

void rc_reset(void)
{
    while (all != NULL) {
        tu_rc *x = all;
        all = x->next;
        free(x);
    }
    violations = 0;
}
