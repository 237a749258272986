/*
 * test_debug.c -- the test build is a debug build: CV_ASSERT is compiled
 * into the library the suite links, and the core runs the backend's
 * check() after every write. A backend whose check() fails at the second
 * pair must stop a child process at that write, with the message.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "map.h"
#include "registry.h"
#include "testutil.h"

/* dictcopy, except that check() calls a map of two pairs or more broken. */
static const char *liar_check(const cv_map *m)
{
    return cv__backend_dictcopy.len(m) >= 2 ? "liar: two pairs" : NULL;
}

static cv_backend liar;

/* Run by main.c instead of the suite when CV_DEBUG_PROBE is set: two
 * sets in a context of the liar backend; the second must not return. */
int debug_probe(void)
{
    liar = cv__backend_dictcopy;
    liar.name = "liar";
    liar.check = liar_check;
    cv_backend_set_default(&liar);
    cv_var *a = NULL, *b = NULL;
    if (cv_var_new("a", &a) != 0 || cv_var_new("b", &b) != 0)
        return 3;
    if (cv_var_set(a, "1", NULL) != 0)
        return 4;
    printf("first write passed\n");
    fflush(stdout);
    cv_var_set(b, "2", NULL);
    printf("second write passed\n");
    return 0;
}

extern const char *tu_self_path; /* main.c */

TEST(debug_check_runs_after_every_write)
{
    (void)state;
    char cmd[600], out[512];
    snprintf(cmd, sizeof cmd, "CV_DEBUG_PROBE=1 '%s' 2>&1", tu_self_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    assert_int_not_equal(status, 0); /* aborted */
    assert_non_null(strstr(out, "first write passed"));
    assert_null(strstr(out, "second write passed"));
    assert_non_null(strstr(out, "ctxvar invariant violated: liar: two pairs"));
}
