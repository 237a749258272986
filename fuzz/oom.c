/*
 * oom.c -- allocation failure anywhere in a ctx-language program (fuzz.h).
 *
 * Input: byte 0 picks the backend and the mode (bit 7: fail "forever",
 * i.e. every allocation from the k-th on fails until the call that hit
 * the first one returns); bytes 1-2 are k, the allocation of the world
 * that fails; the rest is the program, at most 128 commands.
 * The harness asserts (fuzz.c, after_real): the call that hit the failure
 * returned CV_ENOMEM (and no call returns CV_ENOMEM otherwise); the whole
 * observable state (every context's pairs and len, every get, every
 * token) equals the model's state from before the call; and after
 * releasing everything the live allocation count is back to its baseline
 * and the value hooks are balanced.
 */
#include <stdlib.h>

#include "fuzz.h"

static const cv_backend *backends[16];
static size_t nbackends;
static void *model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void setup(void)
{
    nbackends = fz_backends(backends, 16);
    model = fz_model_new();
}

FZ_TARGET("oom", setup)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > FZ_MAX_INPUT)
        return 0;
    fz_init("oom", setup);
    fz_exec_count++;
    fz_opts o = {
        .backend = backends[(data[0] & 0x7f) % nbackends],
        .ref = &fz_model_ops,
        .ref_self = model,
        .oom = 1,
        .lazy_base = 1,
        .skip_run_frame_exit = 0,
        .fail_at = 1 + (long)(data[1] | data[2] << 8) % 1024,
        .fail_forever = data[0] >> 7,
        .max_cmds = 128,
    };
    fz_ctx_run(data + 3, size - 3, &o, NULL);
    return 0;
}
