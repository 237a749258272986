/*
 * test_api.c -- error codes, bad input, the backend registry, the allocator.
 */
#include <string.h>

#include "testutil.h"

TEST(errors_have_names)
{
    (void)state;
    assert_string_equal(cv_err_name(CV_ENOMEM), "CV_ENOMEM");
    assert_string_equal(cv_err_name(CV_ENOTENTERED), "CV_ENOTENTERED");
    assert_string_equal(cv_err_name(12345), "CV_UNKNOWN");
    assert_string_equal(cv_strerror(CV_ELOOKUP),
                        "variable has no value and no default");
    assert_string_equal(cv_strerror(-999), "unknown error");
    assert_string_equal(cv_strerror(0), "unknown error");
}
