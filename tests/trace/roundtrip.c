/* SPDX-License-Identifier: MIT */
/*
 * roundtrip.c -- a program that uses the public API the way a runtime
 * does (vars with and without defaults and hooks, tokens, copies run on
 * worker threads, enter/exit, nested runs, foreach) and prints, for every
 * context it inspects at the end, the number of pairs and a digest of
 * them in the trace's own ids. tests/trace/trace.mk records it with
 * CTXVAR_TRACE and checks that bench/replay --digest prints the same lines
 * on every backend.
 *
 * Ids: the recorder numbers vars and values on first sight. All vars are
 * made here, on the main thread, before any worker starts, and every value
 * is first used by the warm-up below, in pool order; so var k has id k + 1
 * and pool[k] has id k + 1, which is what digest() uses.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctxvar.h"
#include "../../bench/digest.h"

#define NPOOL 64
#define NVARS 9
#define NWORKERS 3

static char pool[NPOOL];
static cv_var *vars[NVARS];
static long hook_balance;
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "roundtrip: %s: %s\n", what, cv_err_name(rc));
        exit(1);
    }
}
#define OK(call) check((call), #call)

static void *val(int k) { return &pool[k % NPOOL]; }

static void retain(void *v, void *ud)
{
    (void)v;
    (void)ud;
    pthread_mutex_lock(&hook_lock);
    hook_balance++;
    pthread_mutex_unlock(&hook_lock);
}
static void release(void *v, void *ud)
{
    (void)v;
    (void)ud;
    pthread_mutex_lock(&hook_lock);
    hook_balance--;
    pthread_mutex_unlock(&hook_lock);
}

static int digest_cb(cv_var *v, void *value, void *arg)
{
    digest *d = arg;
    uint64_t vid = 0, xid = value ? (uint64_t)((char *)value - pool) + 1 : 0;
    for (int i = 0; i < NVARS; i++)
        if (vars[i] == v)
            vid = (uint64_t)i + 1;
    digest_add(d, vid, xid);
    return 0;
}

static void print_digest(const cv_context *c)
{
    digest d = {0, 0};
    OK(cv_context_foreach(c, digest_cb, &d));
    printf("foreach pairs %zu digest %016llx\n", d.n, (unsigned long long)d.sum);
}

typedef struct job {
    cv_context *ctx;
    int id;
} job;

static int nested(void *arg)
{
    int *depth = arg;
    OK(cv_var_set(vars[7], val(40 + *depth), NULL));
    if (*depth < 4) {
        cv_context *c;
        OK(cv_copy_context(&c));
        (*depth)++;
        OK(cv_context_run(c, nested, depth));
        cv_context_release(c);
    }
    return 0;
}

static int worker_fn(void *arg)
{
    job *j = arg;
    void *out;
    for (int i = 0; i < 200; i++) {
        OK(cv_var_set(vars[4 + (i % 3)], val(10 + j->id * 8 + i % 8), NULL));
        (void)cv_var_get_or(vars[1], NULL);
        (void)cv_var_get(vars[5], &out);
        cv_token *t;
        OK(cv_var_set(vars[8], val(i % 5), &t));
        if (i % 2 == 0)
            OK(cv_var_reset(vars[8], t));
        cv_token_release(t);
    }
    /* a task of its own, entered and left like an event loop's step */
    cv_context *task;
    OK(cv_copy_context(&task));
    for (int step = 0; step < 20; step++) {
        OK(cv_context_enter(task));
        OK(cv_var_set(vars[3], val(50 + step % 4), NULL));
        OK(cv_context_exit(task));
    }
    int depth = 0;
    OK(cv_context_run(task, nested, &depth));
    cv_context_release(task);
    return 0;
}

static void *worker(void *arg)
{
    job *j = arg;
    OK(cv_var_set(vars[2], val(30 + j->id), NULL)); /* its own base */
    int r = cv_context_run(j->ctx, worker_fn, j);
    check(r, "run in the worker");
    return NULL; /* the thread's exit cleans its contexts up */
}

int main(void)
{
    /* var 1: the warm-up var; every value first seen here, in order */
    OK(cv_var_new("warm", &vars[0]));
    cv_context *scratch;
    OK(cv_context_new(&scratch));
    OK(cv_context_enter(scratch));
    for (int k = 0; k < NPOOL; k++)
        OK(cv_var_set(vars[0], val(k), NULL));
    OK(cv_context_exit(scratch));
    cv_context_release(scratch);

    OK(cv_var_new_default("d1", val(1), &vars[1]));
    OK(cv_var_new_default("d2", val(2), &vars[2]));
    OK(cv_var_new_default("d3", val(3), &vars[3]));
    OK(cv_var_new("p4", &vars[4]));
    OK(cv_var_new("p5", &vars[5]));
    OK(cv_var_new("p6", &vars[6]));
    OK(cv_var_new("p7", &vars[7]));
    cv_var_opts o = {.name = "hooked", .retain = retain, .release = release};
    OK(cv_var_new_ex(&o, &vars[8]));

    void *out;
    OK(cv_var_set(vars[1], val(11), NULL));
    OK(cv_var_set(vars[4], val(14), NULL));
    cv_token *t5, *t6;
    OK(cv_var_set(vars[5], val(15), &t5));
    OK(cv_var_set(vars[5], val(16), NULL));
    OK(cv_var_reset(vars[5], t5));
    OK(cv_var_set(vars[6], val(17), &t6));
    (void)cv_var_get(vars[2], &out);               /* its default */
    if (cv_var_get(vars[7], &out) != CV_ELOOKUP)    /* absent, no default */
        return 1;
    (void)cv_var_get_or(vars[1], NULL);

    cv_context *base = cv_context_current();
    cv_context *c1;
    OK(cv_copy_context(&c1));
    int depth = 0;
    OK(cv_context_run(c1, nested, &depth));
    OK(cv_context_get(c1, vars[7], &out));

    job jobs[NWORKERS];
    pthread_t th[NWORKERS];
    for (int i = 0; i < NWORKERS; i++) {
        OK(cv_var_set(vars[6], val(20 + i), NULL));
        jobs[i].id = i;
        OK(cv_copy_context(&jobs[i].ctx)); /* made here, run there (S13) */
    }
    for (int i = 0; i < NWORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, &jobs[i]) != 0)
            return 1;
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(th[i], NULL);

    print_digest(base);
    print_digest(c1);
    for (int i = 0; i < NWORKERS; i++)
        print_digest(jobs[i].ctx);

    for (int i = 0; i < NWORKERS; i++)
        cv_context_release(jobs[i].ctx);
    cv_context_release(c1);
    cv_token_release(t5);
    cv_token_release(t6);
    for (int i = 0; i < NVARS; i++)
        cv_var_release(vars[i]);
    cv_thread_cleanup();
    if (hook_balance != 0) {
        fprintf(stderr, "roundtrip: value hooks unbalanced: %ld\n", hook_balance);
        return 1;
    }
    return 0;
}
