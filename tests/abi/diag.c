/*
 * diag.c -- misuse a program can diagnose (ctxvar.h): a refused
 * $CTXVAR_BACKEND is named by cv_backend_env_refused and explained by
 * cv_backend_describe, cv_context_current() is NULL exactly then (or on
 * allocation failure), 0 is named as success, and the library's version
 * is the header's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxvar.h"

#define ABI_CHECK_WHO "diag"
#include "abi_check.h"

static char line[512];

static const char *describe(void)
{
    size_t n = cv_backend_describe(line, sizeof line);
    CHECK(n == strlen(line) && n < sizeof line);
    return line;
}

int main(void)
{
    /* Error names. */
    CHECK(strcmp(cv_strerror(0), "success") == 0);
    CHECK(strcmp(cv_err_name(0), "CV_OK") == 0);
    CHECK(strcmp(cv_err_name(CV_ENOBACKEND), "CV_ENOBACKEND") == 0);
    CHECK(strcmp(cv_strerror(1), "unknown error") == 0);
    CHECK(strcmp(cv_err_name(CV_I_ERR_LAST), "CV_UNKNOWN") == 0);
    CHECK(strcmp(cv_err_name(CV_EACTIVE), "CV_EACTIVE") == 0);

    /* Versions: the library's are the header's. */
    CHECK(cv_version() == CTXVAR_VERSION);
    CHECK(strcmp(cv_version_string(), CTXVAR_VERSION_STRING) == 0);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", CTXVAR_VERSION_MAJOR, CTXVAR_VERSION_MINOR,
             CTXVAR_VERSION_PATCH);
    CHECK(strcmp(v, CTXVAR_VERSION_STRING) == 0);
    CHECK(CTXVAR_VERSION == CTXVAR_VERSION_MAJOR * 10000 +
                                CTXVAR_VERSION_MINOR * 100 + CTXVAR_VERSION_PATCH);

    /* Nothing chosen, no environment: the recommended default. */
    unsetenv("CTXVAR_BACKEND");
    CHECK(cv_backend_env_refused() == NULL);
    CHECK(cv_backend_default() != NULL);
    CHECK(strstr(describe(), "(the recommended default)") != NULL);
    CHECK(strstr(line, cv_backend_name(cv_backend_default())) != NULL);
    setenv("CTXVAR_BACKEND", "", 1);          /* empty is unset */
    CHECK(cv_backend_env_refused() == NULL && cv_backend_default() != NULL);

    /* A refused name: found out through the API, with the names that exist. */
    setenv("CTXVAR_BACKEND", "hamtt", 1);
    CHECK(cv_backend_default() == NULL);
    const char *refused = cv_backend_env_refused();
    CHECK(refused != NULL && strcmp(refused, "hamtt") == 0);
    printf("diag: %s\n", describe());
    CHECK(strstr(line, "CTXVAR_BACKEND=\"hamtt\" names no backend") != NULL);
    const cv_backend *all[16];
    size_t n = cv_backend_list(all, 16);
    CHECK(n >= 1 && n <= 16);
    for (size_t i = 0; i < n; i++)
        CHECK(strstr(line, cv_backend_name(all[i])) != NULL);
    /* ... and what it does: no base context, every set and new context fails. */
    cv_var *var;
    CHECK(cv_var_new("diag", &var) == 0);
    CHECK(cv_context_current() == NULL);
    CHECK(cv_var_set(var, "x", NULL) == CV_ENOBACKEND);
    cv_context *ctx = NULL;
    CHECK(cv_context_new(&ctx) == CV_ENOBACKEND && ctx == NULL);
    CHECK(strcmp(cv_var_get_or(var, "none"), "none") == 0);

    /* describe is snprintf-like. */
    size_t full = strlen(line);
    CHECK(cv_backend_describe(NULL, 0) == full);
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(cv_backend_describe(small, sizeof small) == full);
    CHECK(small[7] == '\0' && strncmp(small, line, 7) == 0);
    small[0] = 'x';
    CHECK(cv_backend_describe(small, 1) == full && small[0] == '\0');

    /* A valid name in the environment. */
    setenv("CTXVAR_BACKEND", "hamt", 1);
    CHECK(cv_backend_env_refused() == NULL);
    CHECK(strstr(describe(), "backend \"hamt\" (from CTXVAR_BACKEND)") != NULL);
    cv_context *cur = cv_context_current();
    CHECK(cur != NULL && cv_context_backend(cur) == cv_backend_get("hamt"));
    CHECK(cv_context_current() == cur);

    /* A choice made by the program makes the environment irrelevant. */
    setenv("CTXVAR_BACKEND", "hamtt", 1);
    CHECK(cv_backend_set_default(cv_backend_get("dictcopy")) == 0);
    CHECK(cv_backend_env_refused() == NULL);
    CHECK(strstr(describe(), "backend \"dictcopy\" (set by cv_backend_set_default)") != NULL);
    CHECK(cv_var_set(var, "x", NULL) == 0);

    cv_var_release(var);
    cv_thread_cleanup();
    printf("diag: ok\n");
    return 0;
}
