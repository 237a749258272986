/*
 * main.c -- runs the test lists of tests/test_list.h with cmocka.
 *
 * Conformance tests run once per backend, in a group named
 * "conformance/<backend>", with that backend as the default. Unit tests run
 * once, in the group "unit". Every test is bracketed by a leak check: after
 * cv_thread_cleanup() the test allocator must hold no more blocks than
 * before the test, and the value hooks must be balanced (R14).
 *
 * Environment:
 *   CV_TEST_BACKEND=a,b   conformance on these backends only; test-only
 *                         backends (the canary) are reachable only this way
 *   CV_TEST_FILTER=glob   cmocka's test filter
 *   CV_TEST_ONLY=conformance|unit   run one kind of group
 *   CV_TEST_QUICK=1       fewer iterations (used under valgrind)
 * `unit --help` prints these; any other argument is an error (exit 2).
 */
#include <stdlib.h>
#include <string.h>

#include "extra_backends.h"
#include "test_list.h"
#include "testutil.h"

#define DECLARE(name) void test_##name(void **state);
CV_CONFORMANCE_TESTS(DECLARE)
CV_UNIT_TESTS(DECLARE)
#undef DECLARE

static long live_before;
static long hooks_before;

static int setup(void **state)
{
    const cv_backend *b = *state;
    if (b != NULL && cv_backend_set_default(b) != 0)
        return -1;
    live_before = tu_alloc_live();
    hooks_before = tu_hook_balance();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_alloc_fail_at(0, 0);
    cv_thread_cleanup();
    long leaked = tu_alloc_live() - live_before;
    long hooks = tu_hook_balance() - hooks_before;
    if (leaked != 0 || hooks != 0) {
        print_error("leak check: %ld blocks (%ld bytes live in all) and %ld "
                    "value retains not released\n",
                    leaked, tu_alloc_live_bytes(), hooks);
        return -1;
    }
    return 0;
}

#define CONF_ENTRY(name)                                                   \
    {#name, test_##name, setup, teardown, NULL},
static const struct CMUnitTest conformance_template[] = {
    CV_CONFORMANCE_TESTS(CONF_ENTRY)};
static const struct CMUnitTest unit_tests[] = {CV_UNIT_TESTS(CONF_ENTRY)};
#undef CONF_ENTRY

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int run_conformance(const cv_backend *b)
{
    struct CMUnitTest tests[COUNT(conformance_template)];
    memcpy(tests, conformance_template, sizeof tests);
    for (size_t i = 0; i < COUNT(tests); i++)
        tests[i].initial_state = (void *)b;
    char group[96];
    snprintf(group, sizeof group, "conformance/%s", cv_backend_name(b));
    printf("\n=== %s\n", group);
    fflush(stdout);
    return _cmocka_run_group_tests(group, tests, COUNT(tests), NULL, NULL);
}

static int run_named(const char *list)
{
    int failed = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *name = strtok_r(buf, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        const cv_backend *b = tu_backend_lookup(name);
        if (b == NULL) {
            fprintf(stderr, "CV_TEST_BACKEND: no backend named '%s'\n", name);
            return 1;
        }
        failed += run_conformance(b);
    }
    return failed;
}

int r15_probe(const char *mode); /* test_api.c */
int debug_probe(void);           /* test_debug.c */
const char *tu_self_path;        /* this binary, for tests that re-run it */

static const char usage[] =
    "usage: %s [--help]\n"
    "\n"
    "Runs the conformance suite once per backend (groups conformance/<name>)\n"
    "and the unit tests once (group unit), with a leak and hook-balance check\n"
    "after every test. Tests are named after the rule (rN) or scenario (sN)\n"
    "of docs/SPEC.md they check, or the feature (map_, oom_, hamt_, ...);\n"
    "tests/test_list.h lists them all. Selection is by environment:\n"
    "\n"
    "  CV_TEST_BACKEND=a,b   conformance on these backends only (test-only\n"
    "                        backends, such as canary, only this way)\n"
    "  CV_TEST_FILTER=glob   run only the tests whose name matches\n"
    "  CV_TEST_ONLY=conformance|unit   run one kind of group\n"
    "  CV_TEST_QUICK=1       fewer iterations (used under valgrind)\n"
    "  CV_TEST_VERBOSE=1     print per-case details of the OOM loops\n"
    "\n"
    "example: CV_TEST_BACKEND=hamt CV_TEST_FILTER='r9_*' %s\n";

int main(int argc, char **argv)
{
    if (argc > 1) {
        int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        fprintf(help ? stdout : stderr, usage, argv[0], argv[0]);
        return help ? 0 : 2;
    }
    /* argv[0], not /proc/self/exe: under valgrind that is valgrind. */
    static char self[4096];
    tu_self_path = realpath(argv[0], self) ? self : argv[0];
    if (getenv("CV_R15_PROBE") != NULL)
        return r15_probe(getenv("CV_R15_PROBE"));
    if (getenv("CV_DEBUG_PROBE") != NULL)
        return debug_probe();
    tu_alloc_install();
    const char *filter = getenv("CV_TEST_FILTER");
    if (filter != NULL)
        cmocka_set_test_filter(filter);
    const char *only = getenv("CV_TEST_ONLY");
    const char *names = getenv("CV_TEST_BACKEND");
    int failed = 0;

    if (only == NULL || strcmp(only, "conformance") == 0) {
        if (names != NULL && names[0] != '\0') {
            failed += run_named(names);
        } else {
            const cv_backend *all[16];
            size_t n = cv_backend_list(all, COUNT(all));
            for (size_t i = 0; i < n && i < COUNT(all); i++)
                failed += run_conformance(all[i]);
        }
    }
    if (only == NULL || strcmp(only, "unit") == 0) {
        cv_backend_set_default(cv_backend_get("dictcopy"));
        printf("\n=== unit\n");
        fflush(stdout);
        failed += _cmocka_run_group_tests("unit", unit_tests,
                                          COUNT(unit_tests), NULL, NULL);
    }
    cv_thread_cleanup();
    return failed == 0 ? 0 : 1;
}
