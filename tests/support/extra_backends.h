/* SPDX-License-Identifier: MIT */
/*
 * extra_backends.h -- backends that exist only in the tests (never in the
 * library build): the ChainMap canary with naive new_child semantics, which
 * the harnesses must catch (tests/support/canary.c).
 */
#ifndef CV_EXTRA_BACKENDS_H
#define CV_EXTRA_BACKENDS_H
#include "ctxvar.h"

/* The naive ChainMap (canary.c): its copies see the original's writes. */
extern const struct cv_backend tu_canary_backend;

/* NULL-terminated. */
extern const cv_backend *const tu_extra_backends[];

/* A library backend or a test-only one, by name; NULL if neither. */
const cv_backend *tu_backend_lookup(const char *name);

#endif
