/* SPDX-License-Identifier: MIT */
/*
 * pool.c -- a thread pool: the main thread accepts jobs, each in a copy of
 * its context (with the job's own request vars set), and hands the copy to
 * WORKERS threads through a queue; a worker runs the job in that copy
 * (cv_context_run, the executor hand-off of S13), opens and closes a few
 * scopes in it (set with a token ... reset), logs (gets) and releases the
 * copy. Many threads, contexts crossing threads, tokens, small N.
 *
 *   wl_pool [JOBS=50000] [WORKERS=2] [SCOPES=4]
 */
#include <pthread.h>

#include "workload.h"

enum { V_REQ, V_USER, V_SPAN, V_SCOPE, V_GLOBAL, NVARS = V_GLOBAL + 12 };

typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cv_context **ring;
    long cap, head, tail;
    int closed;
} queue;

typedef struct pool {
    cv_var *v[NVARS];
    long scopes;
    queue q;
    pthread_mutex_t sum_mu;
    unsigned long long sum;
} pool;

static void q_push(queue *q, cv_context *c)
{
    pthread_mutex_lock(&q->mu);
    while (q->tail - q->head == q->cap)
        pthread_cond_wait(&q->cv, &q->mu);
    q->ring[q->tail++ % q->cap] = c;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static cv_context *q_pop(queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->tail == q->head && !q->closed)
        pthread_cond_wait(&q->cv, &q->mu);
    cv_context *c = q->tail == q->head ? NULL : q->ring[q->head++ % q->cap];
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return c;
}

typedef struct jobarg {
    pool *p;
    unsigned long long sum;
} jobarg;

static void log_line(jobarg *j, unsigned long long *h)
{
    for (int i = 0; i < NVARS; i++)
        *h = wl_fold(*h, j->p->v[i]);
}

static int job_fn(void *arg)
{
    jobarg *j = arg;
    pool *p = j->p;
    unsigned long long h = 0; /* per job: the checksum is their sum */
    log_line(j, &h);
    for (long s = 0; s < p->scopes; s++) {
        cv_token *t;
        WL_OK(cv_var_set(p->v[V_SCOPE], wl_val((uintptr_t)s + 1), &t));
        WL_OK(cv_var_set(p->v[V_SPAN], wl_val((uintptr_t)(s * 7 + 3)), NULL));
        log_line(j, &h);
        WL_OK(cv_var_reset(p->v[V_SCOPE], t));
        cv_token_release(t);
    }
    log_line(j, &h);
    j->sum += h;
    return 0;
}

static void *worker(void *arg)
{
    pool *p = arg;
    jobarg j = {p, 0};
    cv_context *c;
    while ((c = q_pop(&p->q)) != NULL) {
        WL_OK(cv_context_run(c, job_fn, &j));
        cv_context_release(c);
    }
    pthread_mutex_lock(&p->sum_mu);
    p->sum += j.sum; /* a sum: the order the workers took jobs in does not matter */
    pthread_mutex_unlock(&p->sum_mu);
    return NULL;
}

int main(int argc, char **argv)
{
    long jobs = wl_arg(argc, argv, 1, 50000);
    long workers = wl_arg(argc, argv, 2, 2);
    pool p;
    memset(&p, 0, sizeof p);
    p.scopes = wl_arg(argc, argv, 3, 4);
    if (workers < 1)
        workers = 1;
    if (workers > 64)
        workers = 64;
    pthread_mutex_init(&p.q.mu, NULL);
    pthread_cond_init(&p.q.cv, NULL);
    pthread_mutex_init(&p.sum_mu, NULL);
    p.q.cap = 64;
    p.q.ring = calloc((size_t)p.q.cap, sizeof *p.q.ring);
    for (int i = 0; i < NVARS; i++) {
        char name[32];
        snprintf(name, sizeof name, "pool%d", i);
        p.v[i] = wl_var(name);
    }
    for (int i = V_GLOBAL; i < NVARS; i++)
        WL_OK(cv_var_set(p.v[i], wl_val((uintptr_t)i), NULL));
    pthread_t th[64];
    for (long i = 0; i < workers; i++)
        if (pthread_create(&th[i], NULL, worker, &p) != 0)
            return 1;
    for (long n = 0; n < jobs; n++) {
        cv_token *t1, *t2;
        WL_OK(cv_var_set(p.v[V_REQ], wl_val((uintptr_t)n), &t1));
        WL_OK(cv_var_set(p.v[V_USER], wl_val((uintptr_t)(n % 101)), &t2));
        cv_context *c;
        WL_OK(cv_copy_context(&c));
        WL_OK(cv_var_reset(p.v[V_USER], t2));
        WL_OK(cv_var_reset(p.v[V_REQ], t1));
        cv_token_release(t2);
        cv_token_release(t1);
        q_push(&p.q, c);
    }
    pthread_mutex_lock(&p.q.mu);
    p.q.closed = 1;
    pthread_cond_broadcast(&p.q.cv);
    pthread_mutex_unlock(&p.q.mu);
    for (long i = 0; i < workers; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NVARS; i++)
        cv_var_release(p.v[i]);
    free(p.q.ring);
    wl_finish("pool", p.sum);
    cv_thread_cleanup();
    return 0;
}
