/*
 * backend.c -- the registry of map backends and the default choice (R15).
 *
 * The library's backends are the lines of CV_BACKEND_LIST in registry.h.
 * The default is, in order: the one set by cv_backend_set_default, else the
 * backend named by $CTXVAR_BACKEND, else CV_BACKEND_RECOMMENDED. An unknown
 * name in the environment is an error (cv_backend_default returns NULL and
 * context creation fails with CV_ENOBACKEND), never a silent fallback.
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
