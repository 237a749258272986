/*
 * backend.c -- the registry of map backends and the default choice (R15).
 *
 * The library's backends are the lines of CV_BACKEND_LIST in registry.h.
 * The default is, in order: the one set by cv_backend_set_default, else the
 * backend named by $CTXVAR_BACKEND, else CV_BACKEND_RECOMMENDED. An unknown
 * name in the environment is an error (cv_backend_default returns NULL and
 * context creation fails with CV_ENOBACKEND), never a silent fallback;
 * cv_backend_env_refused and cv_backend_describe tell a program which name
 * was refused and which exist.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "registry.h"

#define CV__BACKEND_PTR(name) &cv__backend_##name,
static const cv_backend *const registry[] = {CV_BACKEND_LIST(CV__BACKEND_PTR)};
#undef CV__BACKEND_PTR

#define REGISTRY_LEN (sizeof registry / sizeof registry[0])

#define CV__STR2(x) #x
#define CV__STR(x) CV__STR2(x)

/* Set by cv_backend_set_default; NULL: not set. */
static _Atomic(const cv_backend *) chosen;

const cv_backend *cv_backend_get(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < REGISTRY_LEN; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

const char *cv_backend_name(const cv_backend *b)
{
    return b ? b->name : NULL;
}

size_t cv_backend_list(const cv_backend **out, size_t cap)
{
    for (size_t i = 0; i < REGISTRY_LEN && i < cap && out; i++)
        out[i] = registry[i];
    return REGISTRY_LEN;
}

int cv_backend_set_default(const cv_backend *b)
{
    if (b == NULL)
        return CV_EINVAL;
    atomic_store_explicit(&chosen, b, memory_order_release);
    return 0;
}

const cv_backend *cv_backend_default(void)
{
    const cv_backend *b = atomic_load_explicit(&chosen, memory_order_acquire);
    if (b != NULL)
        return b;
    /* getenv each time rather than caching: caching would be a second
     * mutable global, and this runs once per context creation at most. */
    const char *env = getenv("CTXVAR_BACKEND");
    if (env != NULL && env[0] != '\0')
        return cv_backend_get(env);
    return cv_backend_get(CV__STR(CV_BACKEND_RECOMMENDED));
}

/* $CTXVAR_BACKEND when it decides the default (nothing chosen), else NULL. */
static const char *env_choice(void)
{
    if (atomic_load_explicit(&chosen, memory_order_acquire) != NULL)
        return NULL;
    const char *env = getenv("CTXVAR_BACKEND");
    return env != NULL && env[0] != '\0' ? env : NULL;
}

const char *cv_backend_env_refused(void)
{
    const char *env = env_choice();
    return env != NULL && cv_backend_get(env) == NULL ? env : NULL;
}

/* Appends like snprintf into buf[*len ...] (cap bytes in all); *len counts
 * the whole line even past cap. */
static void put(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len < cap) {
        size_t room = cap - *len - 1;
        size_t k = n < room ? n : room;
        memcpy(buf + *len, s, k);
        buf[*len + k] = '\0';
    }
    *len += n;
}

size_t cv_backend_describe(char *buf, size_t cap)
{
    size_t len = 0;
    if (buf == NULL)
        cap = 0;
    if (cap > 0)
        buf[0] = '\0';
    const cv_backend *set = atomic_load_explicit(&chosen, memory_order_acquire);
    const char *env = env_choice();
    const cv_backend *b = set ? set : env ? cv_backend_get(env) : NULL;
    if (env != NULL && b == NULL) {
        put(buf, cap, &len, "CTXVAR_BACKEND=\"");
        put(buf, cap, &len, env);
        put(buf, cap, &len, "\" names no backend (known:");
        for (size_t i = 0; i < REGISTRY_LEN; i++) {
            put(buf, cap, &len, i ? ", " : " ");
            put(buf, cap, &len, registry[i]->name);
        }
        put(buf, cap, &len, "); contexts cannot be made (CV_ENOBACKEND)");
        return len;
    }
    if (b == NULL)
        b = cv_backend_get(CV__STR(CV_BACKEND_RECOMMENDED));
    put(buf, cap, &len, "backend \"");
    put(buf, cap, &len, b ? b->name : "?");
    put(buf, cap, &len, set   ? "\" (set by cv_backend_set_default)"
                        : env ? "\" (from CTXVAR_BACKEND)"
                              : "\" (the recommended default)");
    return len;
}
