/* SPDX-License-Identifier: MIT */
/*
 * testutil.h -- what every test file of tests/ uses: the TEST macro, the
 * counting and failing allocator (from testalloc.h), value hooks that
 * count, and asserts that print error names.
 */
#ifndef CV_TESTUTIL_H
#define CV_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

#include "ctxvar.h"
/* The test allocator, tu_alloc_*: in a file of its own with no cmocka, so
 * that the fuzz targets share it. tests/main.c installs it before anything
 * else runs. */
#include "testalloc.h"

/* A test is `TEST(name) { ... }` in some tests/test_*.c and one line in
 * tests/test_list.h. Conformance tests get the backend under test as
 * TEST_BACKEND; it is also the default backend while they run. */
#define TEST(name) void test_##name(void **state)
#define TEST_BACKEND ((const cv_backend *)*state)

/* ------------------------------------------------------------------------
 * Counted values for the value hooks (R14). Each tu_val has a retain count
 * the hooks move; tu_hook_balance() is retains minus releases over all.
 * ------------------------------------------------------------------------ */
typedef struct tu_val {
    long refs;      /* retains minus releases through the hooks */
    int tag;        /* what the test wants to recognise it by */
} tu_val;
void tu_hook_retain(void *value, void *ud);
void tu_hook_release(void *value, void *ud);
long tu_hook_balance(void);
/* A var with the counting hooks (and optional default). */
cv_var *tu_var_hooked(const char *name, tu_val *dflt);

/* ------------------------------------------------------------------------
 * Asserts
 * ------------------------------------------------------------------------ */
void tu_fail_err(const char *expr, int got, int want, const char *file,
                 int line);
#define ASSERT_ERR(expr, want)                                             \
    do {                                                                   \
        int tu_got_ = (expr);                                              \
        if (tu_got_ != (want))                                             \
            tu_fail_err(#expr, tu_got_, (want), __FILE__, __LINE__);      \
    } while (0)
#define ASSERT_OK(expr) ASSERT_ERR(expr, 0)

/* The check of one round of an OOM loop (SQLite's: fail the k-th
 * allocation, make the call, k + 1 the next round), right after the call:
 * turns failing off (tu_alloc_fail_off) and returns 1 when no allocation
 * failed -- the call must then have returned 0, and the loop is done -- or
 * asserts that the call failed cleanly, with CV_ENOMEM and the live blocks
 * back at `live` (counted before the call), and returns 0. */
#define TU_OOM_DONE(r, live) tu_oom_done((r), (live), __FILE__, __LINE__)
int tu_oom_done(int r, long live, const char *file, int line);

/* The value of v in the current context, as a string (values in these
 * tests are string literals), or "<LookupError>". */
const char *tu_get_str(const cv_var *v);
cv_var *tu_var(const char *name);                  /* cv_var_new or fail */
cv_var *tu_var_default(const char *name, void *d); /* cv_var_new_default */

/* The same calls made inside cv_context_run(c, ...), so that they act on c
 * (a context not entered anywhere): a set (and its token) or a reset lands
 * in c. They return what the call returned, through run (or run's own
 * error). tu_get_str_in is tu_get_str in c, "<error>" for any other error:
 * it asserts nothing inside the run. */
int tu_set_in(cv_context *c, cv_var *v, void *value, cv_token **tok);
int tu_reset_in(cv_context *c, cv_var *v, cv_token *tok);
const char *tu_get_str_in(cv_context *c, const cv_var *v);

/* Iteration counts shrink under valgrind (CV_TEST_QUICK=1). */
int tu_quick(void);
long tu_scale(long normal, long quick);

#endif
