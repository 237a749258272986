/* SPDX-License-Identifier: MIT */
/*
 * scopes.c -- one long-lived context with many vars (a configuration-heavy
 * service: feature flags, tenants, limits), nested scopes that set and
 * reset a few vars around each call (set with a token, reset on the way
 * out, as a logging or tracing "with" block does), many reads, and now and
 * then a snapshot kept for later (copy_context into a ring of SNAPS, as an
 * error reporter or a deferred job captures its context). Large N, token
 * pairs, rare copies that outlive their writes: the first write after each
 * snapshot is where the backends differ.
 *
 *   wl_scopes [CALLS=200000] [VARS=2000] [DEPTH=6] [SNAP_EVERY=50]
 */
#include "workload.h"

#define SNAPS 64

typedef struct scopes {
    cv_var **v;
    long nvars, depth, snap_every, calls;
    cv_context *ring[SNAPS];
    long nsnap;
    unsigned long long sum;
} scopes;

static void call(scopes *s, long n, long level)
{
    cv_var *v = s->v[(n * 13 + level * 101) % s->nvars];
    cv_token *t;
    WL_OK(cv_var_set(v, wl_val((uintptr_t)(n + level)), &t));
    for (long i = 0; i < 3; i++)
        s->sum = wl_fold(s->sum, s->v[(n * 7 + i * 977 + level) % s->nvars]);
    if (level + 1 < s->depth)
        call(s, n, level + 1);
    WL_OK(cv_var_reset(v, t));
    cv_token_release(t);
}

int main(int argc, char **argv)
{
    scopes s;
    memset(&s, 0, sizeof s);
    wl_args(argc, argv, 4, (long *const[]){&s.calls, &s.nvars, &s.depth, &s.snap_every},
            (const long[]){200000, 2000, 6, 50});
    if (s.nvars < 1)
        s.nvars = 1;
    if (s.snap_every < 1)
        s.snap_every = 1;
    s.v = wl_vars("cfg", s.nvars);
    wl_vars_fill(s.v, s.nvars);
    for (long n = 0; n < s.calls; n++) {
        call(&s, n, 0);
        if (n % s.snap_every == 0) {
            cv_context **slot = &s.ring[s.nsnap++ % SNAPS];
            cv_context_release(*slot);
            WL_OK(cv_copy_context(slot));
        }
    }
    for (int i = 0; i < SNAPS; i++)
        cv_context_release(s.ring[i]);
    wl_end("scopes", s.sum, s.v, s.nvars);
    return 0;
}
