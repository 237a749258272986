/* SPDX-License-Identifier: MIT */
/*
 * test_api.c -- error codes, bad input, the backend registry, the allocator.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "map.h"
#include "registry.h"

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
    assert_string_equal(cv_strerror(0), "success");  /* 0 is success */
    assert_string_equal(cv_err_name(0), "CV_OK");
}

/* ---- bad input: every NULL argument gets CV_EINVAL or a NULL answer ---- */

TEST(bad_input_nulls)
{
    (void)state;
    void *out = (void *)0x1;
    cv_context *c = NULL;
    ASSERT_ERR(cv_var_get(NULL, &out), CV_EINVAL);
    cv_var *v = tu_var("v");
    ASSERT_ERR(cv_var_get(v, NULL), CV_EINVAL);
    ASSERT_ERR(cv_var_set(NULL, "x", NULL), CV_EINVAL);
    ASSERT_ERR(cv_var_reset(NULL, NULL), CV_EINVAL);
    assert_null(cv_token_var(NULL));
    ASSERT_ERR(cv_token_old_value(NULL, &out), CV_EINVAL);
    ASSERT_ERR(cv_token_used(NULL), CV_EINVAL);
    cv_token *t;
    ASSERT_OK(cv_var_set(v, "x", &t));
    ASSERT_ERR(cv_token_old_value(t, NULL), CV_EINVAL);
    ASSERT_ERR(cv_context_new(NULL), CV_EINVAL);
    ASSERT_ERR(cv_context_new_on(NULL, &c), CV_EINVAL);
    ASSERT_ERR(cv_context_new_on(cv_backend_get("dictcopy"), NULL), CV_EINVAL);
    ASSERT_ERR(cv_copy_context(NULL), CV_EINVAL);
    ASSERT_ERR(cv_context_copy(NULL, &c), CV_EINVAL);
    ASSERT_ERR(cv_context_copy(cv_context_current(), NULL), CV_EINVAL);
    assert_null(c);
    ASSERT_ERR(cv_context_get(NULL, v, &out), CV_EINVAL);
    ASSERT_ERR(cv_context_get(cv_context_current(), NULL, &out), CV_EINVAL);
    ASSERT_ERR(cv_context_get(cv_context_current(), v, NULL), CV_EINVAL);
    assert_int_equal(cv_context_len(NULL), 0);
    assert_null(cv_context_backend(NULL));
    assert_ptr_equal(out, (void *)0x1);
    /* releases of NULL are no-ops, as free(NULL) is */
    cv_var_release(NULL);
    cv_token_release(NULL);
    cv_context_release(NULL);
    cv_token_release(t);
    cv_var_release(v);
}

/* ---- the backend registry (R15) --------------------------------------- */

TEST(backends_registry)
{
    (void)state;
    const cv_backend *all[16];
    size_t n = cv_backend_list(all, 16);
    assert_true(n >= 1);
    assert_int_equal(cv_backend_list(NULL, 0), n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(cv_backend_get(cv_backend_name(all[i])), all[i]);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(cv_backend_name(all[i]),
                                    cv_backend_name(all[j]));
    }
    assert_non_null(cv_backend_get("dictcopy"));
    assert_null(cv_backend_get("nonsense"));
    assert_null(cv_backend_get(""));
    assert_null(cv_backend_get(NULL));
    assert_null(cv_backend_name(NULL));
    assert_null(cv_backend_get("canary")); /* test-only, never registered */
    ASSERT_ERR(cv_backend_set_default(NULL), CV_EINVAL);
    /* only part of the list when cap is short */
    const cv_backend *one[1] = {NULL};
    assert_int_equal(cv_backend_list(one, 1), n);
    assert_ptr_equal(one[0], all[0]);
}

/* R15 needs a fresh process: the choice made by cv_backend_set_default is
 * process-wide and sticky. tests/main.c runs r15_probe() instead of the
 * suite when CV_R15_PROBE is set; it prints what a new context got. */
int r15_probe(const char *mode)
{
    if (strcmp(mode, "api") == 0)
        cv_backend_set_default(cv_backend_get("dictcopy"));
    cv_context *c = NULL;
    int r = cv_context_new(&c);
    if (r < 0) {
        cv_var *v = NULL;
        int s = cv_var_new("v", &v) == 0 ? cv_var_set(v, "x", NULL) : -99;
        printf("%s %s %s\n", cv_err_name(r), cv_err_name(s),
               cv_context_current() == NULL ? "nocurrent" : "current");
        cv_var_release(v);
        return 0;
    }
    printf("%s\n", cv_backend_name(cv_context_backend(c)));
    cv_context_release(c);
    cv_thread_cleanup();
    return 0;
}

extern const char *tu_self_path; /* main.c */

static void probe(const char *env, const char *mode, char *out, size_t cap)
{
    char cmd[512];
    if (env != NULL)
        snprintf(cmd, sizeof cmd, "CTXVAR_BACKEND=%s CV_R15_PROBE=%s '%s'",
                 env, mode, tu_self_path);
    else
        snprintf(cmd, sizeof cmd, "env -u CTXVAR_BACKEND CV_R15_PROBE=%s '%s'",
                 mode, tu_self_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (fgets(out, (int)cap, p) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    assert_int_equal(pclose(p), 0);
}

#define STR2(x) #x
#define STR(x) STR2(x)

TEST(r15_default_backend_order)
{
    (void)state;
    char got[128];
    probe(NULL, "env", got, sizeof got);
    assert_string_equal(got, STR(CV_BACKEND_RECOMMENDED));
    const cv_backend *all[16];
    size_t n = cv_backend_list(all, 16);
    for (size_t i = 0; i < n; i++) {
        probe(cv_backend_name(all[i]), "env", got, sizeof got);
        assert_string_equal(got, cv_backend_name(all[i]));
    }
    /* the API beats the environment */
    probe("nonsense", "api", got, sizeof got);
    assert_string_equal(got, "dictcopy");
    /* an unknown name is an error, not a silent fallback */
    probe("nonsense", "env", got, sizeof got);
    assert_string_equal(got, "CV_ENOBACKEND CV_ENOBACKEND nocurrent");
}

/* ---- the allocator hook ------------------------------------------------ */

TEST(allocator_hook_sees_every_allocation)
{
    (void)state;
    cv_allocator half = {.malloc_cb = NULL};
    ASSERT_ERR(cv_set_allocator(&half), CV_EINVAL);
    long live = tu_alloc_live();
    cv_var *v = tu_var("v");
    ASSERT_OK(cv_var_set(v, "x", NULL));
    cv_context *c;
    ASSERT_OK(cv_copy_context(&c));
    assert_true(tu_alloc_live() > live);
    cv_context_release(c);
    cv_thread_cleanup();
    cv_var_release(v);
    assert_int_equal(tu_alloc_live(), live);
}

/* Swapping allocators gives the calling thread's cached token and context
 * blocks back to the allocator they came from. Before the fix they stayed
 * on the thread's free list and the next allocator freed them (or handed
 * them out): the side count stayed above zero and the test allocator freed
 * blocks it never made. */
TEST(allocator_swap_returns_cached_blocks)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_thread_cleanup();                    /* nothing cached */
    ASSERT_OK(cv_var_set(v, "x", NULL));    /* the base and its map: tu's */
    tu_side_alloc side = {0};               /* tests/support/testalloc.h */
    cv_allocator a = tu_side_allocator(&side);
    ASSERT_OK(cv_set_allocator(&a));
    cv_token *t[8];
    for (int i = 0; i < 8; i++)             /* in place: only tokens */
        ASSERT_OK(cv_var_set(v, "y", &t[i]));
    for (int i = 0; i < 8; i++)
        cv_token_release(t[i]);             /* cached, not freed */
    assert_int_equal(side.live, 8);
    tu_alloc_install();                     /* swap back */
    assert_int_equal(side.live, 0);
    long live = tu_alloc_live();
    ASSERT_OK(cv_var_set(v, "z", &t[0]));   /* fresh blocks from tu */
    assert_true(tu_alloc_live() > live);
    cv_token_release(t[0]);
    cv_thread_cleanup();
    assert_int_equal(side.live, 0);
    cv_var_release(v);
}

/* Every code of CV_ERRNO_MAP has its own name and message. */
TEST(errors_every_code_named)
{
    (void)state;
#define CHECK_CODE(name, val, msg)                                        \
    assert_string_equal(cv_err_name(CV_##name), "CV_" #name);             \
    assert_string_equal(cv_strerror(CV_##name), msg);
    CV_ERRNO_MAP(CHECK_CODE)
#undef CHECK_CODE
}

/* cv_set_allocator(NULL) restores malloc/free; a half-filled allocator is
 * refused and changes nothing. */
TEST(allocator_reset_and_refusal)
{
    (void)state;
    cv_thread_cleanup();                   /* nothing of ours is live */
    long live = tu_alloc_live();
    cv_allocator half = {.malloc_cb = NULL, .free_cb = NULL};
    ASSERT_ERR(cv_set_allocator(&half), CV_EINVAL);
    ASSERT_OK(cv_set_allocator(NULL));     /* plain malloc from here */
    cv_var *v = NULL;
    ASSERT_OK(cv_var_new("plain", &v));
    ASSERT_OK(cv_var_set(v, "x", NULL));
    assert_int_equal(tu_alloc_live(), live); /* the test hook saw nothing */
    cv_thread_cleanup();
    cv_var_release(v);
    tu_alloc_install();                    /* back to the test allocator */
    ASSERT_OK(cv_var_new("counted", &v));
    assert_int_equal(tu_alloc_live(), live + 1);
    cv_var_release(v);
}
