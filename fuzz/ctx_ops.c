/*
 * ctx_ops.c -- the public API under a command language (fuzz.h), on every
 * backend, against the model (model.c).
 *
 * The input runs once per backend (the thread's base context made on that
 * backend), each run compared step by step with the model, and the digests
 * of all runs (every value, error, len and foreach content observed) must
 * be equal. Any difference abort()s with the step and command.
 *
 * Environment:
 *   CTXVAR_FUZZ_BACKENDS=a,b  only these backends; the canary build
 *                             (ctx_ops_canary) also knows "canary"
 *   CTXVAR_FUZZ_SKIP_KNOWN=1  do not generate the pattern of bug B1 (exit
 *                             of a run's own context inside its fn; fixed
 *                             in c2faae3, regress-run-exit-own-context):
 *                             the switch for keeping a known, open bug out
 *                             of the way of new findings
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#ifdef FZ_CANARY
#include "extra_backends.h"
#endif

static const cv_backend *backends[16];
static size_t nbackends;
static void *model;
static int skip_known;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void setup(void)
{
#ifdef FZ_CANARY
    fz_backend_lookup = tu_backend_lookup;
#endif
    nbackends = fz_backends(backends, 16);
    model = fz_model_new();
    const char *e = getenv("CTXVAR_FUZZ_SKIP_KNOWN");
    skip_known = e != NULL && e[0] == '1';
}

FZ_TARGET("ctx_ops", setup)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_INPUT)
        return 0;
    fz_init("ctx_ops", setup);
    fz_exec_count++;
    uint64_t digest0 = 0;
    int any_hook_writes = 0;
    for (size_t i = 0; i < nbackends; i++) {
        fz_opts o = {
            .backend = backends[i],
            .ref = &fz_model_ops,
            .ref_self = model,
            .skip_run_frame_exit = skip_known,
            .lazy_base = 1,
        };
        fz_result res;
        fz_ctx_run(data, size, &o, &res);
        if (res.hook_writes > 0)
            any_hook_writes = 1;
        if (i == 0)
            digest0 = res.digest;
        else if (!any_hook_writes && res.digest != digest0)
            fz_die("backends %s and %s observed different results",
                   cv_backend_name(backends[0]), cv_backend_name(backends[i]));
    }
    return 0;
}
