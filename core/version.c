/*
 * version.c -- the library's own version (ctxvar.h: CTXVAR_VERSION*).
 *
 * The numbers are the header's, which a test (tests/abi/) checks against
 * the file VERSION, the one place the build takes every number from.
 */
#include "ctxvar.h"

int cv_version(void)
{
    return CTXVAR_VERSION;
}

const char *cv_version_string(void)
{
    return CTXVAR_VERSION_STRING;
}
