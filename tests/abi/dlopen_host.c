/*
 * dlopen_host.c -- a process that was not linked to ctxvar loads
 * libctxvar.so with dlopen(RTLD_NOW | RTLD_LOCAL), binds the API with
 * dlsym, and runs scenarios S1 and S3 (docs/SPEC.md section 4) through it.
 * That is what a plugin host, Python's ctypes or cffi does; it needs the
 * library's TLS to fit a process that has already started
 * (docs/design/tls.md).
 *
 *   dlopen_host path/to/libctxvar.so
 */
#define CV_NO_INLINE_GET /* no link-time reference: everything via dlsym */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxvar.h"

#define ABI_CHECK_WHO "dlopen_host"
#include "abi_check.h"

/* One pointer per function, typed from the header's own declaration. */
#define API(X)                                                               \
    X(cv_var_new) X(cv_var_new_default) X(cv_var_release) X(cv_var_get)      \
    X(cv_var_get_or) X(cv_var_set) X(cv_var_reset) X(cv_token_old_value)     \
    X(cv_token_release) X(cv_copy_context) X(cv_context_run)                 \
    X(cv_context_get) X(cv_context_release) X(cv_thread_cleanup)             \
    X(cv_version_string) X(cv_context_current)
#define PTR(name) static __typeof__(name) *p_##name;
API(PTR)
#undef PTR

static cv_var *c1, *c2;
static cv_context *ctx;

static void s1(void)
{
    cv_var *v;
    cv_token *t1, *t2;
    void *out = NULL;
    CHECK(p_cv_var_new("ctx", &v) == 0);
    CHECK(p_cv_var_set(v, "hello", &t1) == 0);
    CHECK(p_cv_var_set(v, "world", &t2) == 0);
    CHECK(p_cv_var_get(v, &out) == 0 && strcmp(out, "world") == 0);
    CHECK(p_cv_token_old_value(t2, &out) == 1 && strcmp(out, "hello") == 0);
    CHECK(p_cv_var_reset(v, t2) == 0);
    CHECK(p_cv_var_get(v, &out) == 0 && strcmp(out, "hello") == 0);
    CHECK(p_cv_token_old_value(t1, &out) == 0);                 /* MISSING */
    CHECK(p_cv_var_reset(v, t1) == 0);
    out = NULL;
    CHECK(p_cv_var_get(v, &out) == CV_ELOOKUP && out == NULL);
    CHECK(strcmp(p_cv_var_get_or(v, "tom"), "tom") == 0);
    p_cv_token_release(t1);
    p_cv_token_release(t2);
    p_cv_var_release(v);
    printf("S1: world, hello, hello, MISSING, CV_ELOOKUP, tom\n");
}

static char line1[64], line2[64];

static int s3_fn(void *arg)
{
    (void)arg;
    void *a = NULL, *b = NULL;
    CHECK(p_cv_var_set(c1, "VAL1", NULL) == 0);
    CHECK(p_cv_var_set(c2, "VAL2", NULL) == 0);
    CHECK(p_cv_var_get(c1, &a) == 0 && p_cv_context_get(ctx, c1, &b) == 1);
    snprintf(line1, sizeof line1, "%s %s", (char *)a, (char *)b);
    CHECK(p_cv_var_get(c2, &a) == 0 && p_cv_context_get(ctx, c2, &b) == 1);
    snprintf(line2, sizeof line2, "%s %s", (char *)a, (char *)b);
    return 0;
}

static void s3(void)
{
    void *a = NULL, *b = NULL;
    CHECK(p_cv_var_new("c1", &c1) == 0 && p_cv_var_new("c2", &c2) == 0);
    CHECK(p_cv_var_set(c1, "val1", NULL) == 0);
    CHECK(p_cv_var_set(c2, "val2", NULL) == 0);
    CHECK(p_cv_copy_context(&ctx) == 0);
    CHECK(p_cv_context_run(ctx, s3_fn, NULL) == 0);
    CHECK(strcmp(line1, "VAL1 VAL1") == 0 && strcmp(line2, "VAL2 VAL2") == 0);
    printf("S3 inside: %s, %s\n", line1, line2);
    CHECK(p_cv_var_get(c1, &a) == 0 && p_cv_context_get(ctx, c1, &b) == 1);
    CHECK(strcmp(a, "val1") == 0 && strcmp(b, "VAL1") == 0);
    printf("S3 after: %s %s, ", (char *)a, (char *)b);
    CHECK(p_cv_var_get(c2, &a) == 0 && p_cv_context_get(ctx, c2, &b) == 1);
    CHECK(strcmp(a, "val2") == 0 && strcmp(b, "VAL2") == 0);
    printf("%s %s\n", (char *)a, (char *)b);
    p_cv_context_release(ctx);
    p_cv_var_release(c1);
    p_cv_var_release(c2);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s path/to/libctxvar.so\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen_host: dlopen failed: %s\n", dlerror());
        return 1;
    }
#define BIND(name) CHECK((*(void **)&p_##name = dlsym(h, #name)) != NULL);
    API(BIND)
#undef BIND
    printf("dlopen(%s, RTLD_NOW | RTLD_LOCAL): ok, ctxvar %s\n", argv[1],
           p_cv_version_string());
    CHECK(p_cv_context_current() != NULL);
    s1();
    s3();
    p_cv_thread_cleanup();
    CHECK(dlclose(h) == 0);
    printf("dlopen host: ok\n");
    return 0;
}
