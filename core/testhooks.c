/* SPDX-License-Identifier: MIT */
/*
 * testhooks.c -- the test-only yield points of core/internal.h.
 *
 * The hook pointer always exists (one word, never called unless a test
 * installs it); the calls to it are compiled into the library only with
 * -DCV_TEST_HOOKS, which the unit tests' build of the library sets
 * (tests/tests.mk). cv__test_hooks_compiled tells a test which build it
 * runs against.
 */
#include "internal.h"

void (*_Atomic cv__test_yield_hook)(int point);

int cv__test_hooks_compiled(void)
{
#ifdef CV_TEST_HOOKS
    return 1;
#else
    return 0;
#endif
}
