/*
 * test_list.h -- every test, named once.
 *
 * CV_CONFORMANCE_TESTS run once per backend (the list of backends grows
 * without this file changing) with TEST_BACKEND set and made the default;
 * CV_UNIT_TESTS run once. A name says which rule (rN) or scenario (sN) of
 * ../shared/SPEC.md it checks, or which backend's internals it exercises.
 * Each section belongs to one test file; add a line `X(name) \` to it.
 */
#ifndef CV_TEST_LIST_H
#define CV_TEST_LIST_H

/* ---- per backend ------------------------------------------------------ */

/* tests/test_rules.c: R1-R16 */
#define CV_RULE_TESTS(X)                     \
    X(r1_var_new_rejects_null)               \

/* tests/test_scenarios.c: S1-S16 */
#define CV_SCENARIO_TESTS(X)                 \

/* tests/test_maps.c: the backend interface against a model */
#define CV_MAP_TESTS(X)                      \

/* ---- once ------------------------------------------------------------- */

/* tests/test_api.c: errors, bad input, backends registry, allocator */
#define CV_API_TESTS(X)                      \
    X(errors_have_names)                     \

/* tests/test_threads.c */
#define CV_THREAD_TESTS(X)                   \

/* tests/test_oom.c */
#define CV_OOM_TESTS(X)                      \

/* tests/test_hamt.c */
#define CV_HAMT_TESTS(X)                     \

/* tests/test_chainmap.c */
#define CV_CHAINMAP_TESTS(X)                 \

#define CV_CONFORMANCE_TESTS(X) \
    CV_RULE_TESTS(X) CV_SCENARIO_TESTS(X) CV_MAP_TESTS(X)
#define CV_UNIT_TESTS(X) \
    CV_API_TESTS(X) CV_THREAD_TESTS(X) CV_OOM_TESTS(X) \
    CV_HAMT_TESTS(X) CV_CHAINMAP_TESTS(X)

#endif
