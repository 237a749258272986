/*
 * plugin.c -- a shared object that uses ctxvar the way a plugin or a Python
 * extension module does: compiled -fPIC with ctxvar.h's inline get (so the
 * cache is reached through the default TLS model, see ctxvar.h) and linked
 * to libctxvar.so. plugin_host.c dlopens it.
 */
#include <stddef.h>

#include "ctxvar.h"

#if !defined(__PIC__) || defined(__PIE__)
#error "plugin.c must be compiled as position-independent shared code (-fPIC)"
#endif

/* The inline get, as a plugin's code would have it. */
int plugin_get(const cv_var *v, void **out)
{
    return cv_var_get(v, out);
}

void *plugin_get_or(const cv_var *v, void *dflt)
{
    return cv_var_get_or(v, dflt);
}

int plugin_set(cv_var *v, void *value)
{
    return cv_var_set(v, value, NULL);
}

cv_context *plugin_current(void)
{
    return cv_context_current();
}

/* One inline get, not inlined into its caller: what a get costs in a
 * function of a plugin (plugin_host.c --roads calls it k times). */
__attribute__((noinline)) void *plugin_get_one(const cv_var *v)
{
    void *x = NULL;
    int rc = cv_var_get(v, &x);
    __asm__ volatile("" : : "r"(rc), "r"(x) : "memory");
    return x;
}
