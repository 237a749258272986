/*
 * rcval.h -- values with a real reference count, for the hook tests.
 *
 * A binding's value is an object the user also holds: Py_INCREF/DECREF, a
 * C refcount whose last release frees and may run a destructor. tu_rc
 * models exactly that. It starts with the user's own reference (1); the
 * library's retain and release hooks move the same count; at zero the
 * value is dead and its destructor runs (which may call back into
 * ctxvar). A dead value is never freed while the test runs, so that every
 * misuse is seen and reported instead of being a silent use-after-free:
 *
 *   - a retain or a release of a dead value (the count passed through zero
 *     while something still held it: R14b),
 *   - a get that returns a dead value (rc_check_live).
 *
 * rc_violations() counts them; every test asserts it is 0.
 */
#ifndef CV_RCVAL_H
#define CV_RCVAL_H

#include "ctxvar.h"

typedef struct tu_rc tu_rc;
typedef void (*tu_rc_dtor)(tu_rc *self, void *arg);

struct tu_rc {
    long refs;                   /* the user's reference + the library's */
    int dead;                    /* the count reached zero */
    const char *tag;             /* what the test recognises it by */
    tu_rc_dtor on_free;          /* run once, at zero; may call ctxvar */
    void *arg;                   /* passed to on_free */
    tu_rc *next;                 /* every value made, for rc_reset */
};

/* A value with the user's reference, tag, and an optional destructor. */
tu_rc *rc_new(const char *tag, tu_rc_dtor on_free, void *arg);
/* The user drops its own reference. */
void rc_unref(tu_rc *x);
/* A var whose hooks move the count (and whose default, if any, is dflt,
 * retained once by the var). */
cv_var *rc_var(const char *name, tu_rc *dflt);
/* Records a violation if x is dead or not a tu_rc of this run. */
void rc_check_live(const void *x);
long rc_violations(void);
/* Values still holding references (a leak when the test ends). */
long rc_live(void);
/* Frees every value made so far and zeroes the counters. */
void rc_reset(void);

#endif
