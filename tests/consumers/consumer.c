/*
 * consumer.c -- a program built against an installed (or embedded) ctxvar
 * the way a user builds one: `#include <ctxvar.h>`, the inline get, a
 * copy and a run. consumers.mk builds it through every road (pkg-config
 * shared and static, CMake find_package and add_subdirectory, Meson) and
 * checks what it prints and what it is linked to.
 */
#include <ctxvar.h>
#include <stdio.h>
#include <string.h>

static cv_var *who;

static int task(void *arg)
{
    if (cv_var_set(who, arg, NULL) != 0)
        return -1;
    return strcmp(cv_var_get_or(who, "?"), arg) == 0 ? 0 : -2;
}

int main(int argc, char **argv)
{
    const char *road = argc > 1 ? argv[1] : "?";
    cv_context *ctx;
    void *v = NULL;
    if (cv_var_new_default("who", "main", &who) != 0 || cv_copy_context(&ctx) != 0)
        return 1;
    if (cv_context_run(ctx, task, "task") != 0)
        return 2;
    if (cv_var_get(who, &v) != 0 || strcmp(v, "main") != 0)
        return 3;
    if (cv_version() != CTXVAR_VERSION)
        return 4;
    cv_context_release(ctx);
    cv_var_release(who);
    cv_thread_cleanup();
    printf("consumer %s: ok, ctxvar %s\n", road, cv_version_string());
    return 0;
}
