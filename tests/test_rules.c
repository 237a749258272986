/*
 * test_rules.c -- the rules R1-R16 of SPEC.md, on every backend.
 */
#include <string.h>

#include "testutil.h"

TEST(r1_var_new_rejects_null)
{
    (void)state;
    cv_var *v = (cv_var *)0x1;
    ASSERT_ERR(cv_var_new(NULL, &v), CV_EINVAL);
    assert_ptr_equal(v, (cv_var *)0x1);
    ASSERT_ERR(cv_var_new("x", NULL), CV_EINVAL);
}
