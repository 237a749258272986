/*
 * server.c -- a request server on the cooperative scheduler.
 *
 *   wl_server [REQUESTS=100000] [SUBTASKS=3] [BATCH=16]
 *
 * The base context holds 8 process-wide vars (service, region, ...). Each
 * request is a task (sched_spawn copies the context) that sets request id,
 * user, trace id and span id, logs, spawns SUBTASKS sub-tasks (each copies
 * again, sets its own span id, logs, yields, logs) and awaits them, then
 * logs once more. Every log line reads all 12 vars. Requests arrive in
 * batches of BATCH concurrent tasks (the test scheduler's bookkeeping is
 * linear in its task count, so batches keep it out of the profile).
 */
#include "sched.h"
#include "workload.h"

enum { V_REQ, V_USER, V_TRACE, V_SPAN, V_GLOBAL, NVARS = V_GLOBAL + 8 };

typedef struct server {
    cv_var *v[NVARS];
    long subtasks;
    unsigned long long sum;  /* what the log lines read */
    unsigned long long next_span;
} server;

typedef struct request {
    server *srv;
    long id;
    sched_task *subs[8];
    long waited;
} request;

static void log_line(server *s)
{
    for (int i = 0; i < NVARS; i++)
        s->sum = wl_fold(s->sum, s->v[i]);
}

static int sub_step(sched_task *t, void *arg)
{
    server *s = arg;
    switch (t->pc) {
    case 0:
        WL_OK(cv_var_set(s->v[V_SPAN], wl_val(++s->next_span), NULL));
        log_line(s);
        t->pc = 1;
        return SCHED_YIELD;
    default:
        log_line(s);
        return SCHED_DONE;
    }
}

static int request_step(sched_task *t, void *arg)
{
    request *r = arg;
    server *s = r->srv;
    switch (t->pc) {
    case 0:
        WL_OK(cv_var_set(s->v[V_REQ], wl_val((uintptr_t)r->id), NULL));
        WL_OK(cv_var_set(s->v[V_USER], wl_val((uintptr_t)(r->id % 97)), NULL));
        WL_OK(cv_var_set(s->v[V_TRACE], wl_val((uintptr_t)r->id * 7), NULL));
        WL_OK(cv_var_set(s->v[V_SPAN], wl_val(++s->next_span), NULL));
        log_line(s);
        for (long i = 0; i < s->subtasks; i++)
            WL_OK(sched_spawn(t->loop, sub_step, s, &r->subs[i]));
        r->waited = 0;
        t->pc = 1;
        /* fall through */
    case 1:
        if (r->waited < s->subtasks)
            return sched_await(t, r->subs[r->waited++]);
        log_line(s);
        return SCHED_DONE;
    }
    return SCHED_DONE;
}

int main(int argc, char **argv)
{
    long requests = wl_arg(argc, argv, 1, 100000);
    server s = {0};
    s.subtasks = wl_arg(argc, argv, 2, 3);
    long batch = wl_arg(argc, argv, 3, 16);
    if (s.subtasks > 8)
        s.subtasks = 8;
    const char *names[NVARS] = {"request_id", "user", "trace_id", "span_id", "service",
                                "region", "version", "host", "pid", "log_level",
                                "tenant", "feature_flags"};
    for (int i = 0; i < NVARS; i++)
        s.v[i] = wl_var(names[i]);
    for (int i = V_GLOBAL; i < NVARS; i++)
        WL_OK(cv_var_set(s.v[i], wl_val((uintptr_t)i), NULL));
    request *reqs = calloc((size_t)batch, sizeof *reqs);
    for (long done = 0; done < requests; done += batch) {
        sched *loop;
        WL_OK(sched_new(&loop));
        for (long i = 0; i < batch && done + i < requests; i++) {
            reqs[i].srv = &s;
            reqs[i].id = done + i;
            WL_OK(sched_spawn(loop, request_step, &reqs[i], NULL));
        }
        WL_OK(sched_run(loop));
        sched_free(loop);
    }
    free(reqs);
    for (int i = 0; i < NVARS; i++)
        cv_var_release(s.v[i]);
    wl_finish("server", s.sum);
    cv_thread_cleanup();
    return 0;
}
