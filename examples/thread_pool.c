/*
 * thread_pool.c -- ctxvar on a thread pool: a job runs in a copy of the
 * submitter's context (Python's executor hand-off, S13), bound with
 * cv_bound_new when it is submitted and called on the worker with
 * cv_bound_call. Workers release their contexts when they exit. Exits 0
 * when every job saw its submitter's request_id and none leaked a set.
 */
#include <ctxvar.h>
#include <pthread.h>
#include <stdio.h>

enum { JOBS = 64, WORKERS = 4 };

static cv_var *request_id;
static cv_bound *queue[JOBS];
static int head, tail, closed;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long seen[JOBS];

static int submit(int (*fn)(void *), void *arg)
{
    cv_bound *b;
    int r = cv_bound_new(fn, arg, &b);  /* a copy of the context, now */
    if (r < 0)
        return r;
    pthread_mutex_lock(&mu);
    queue[tail++] = b;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    return 0;
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (head == tail && !closed)
            pthread_cond_wait(&cond, &mu);
        cv_bound *b = head < tail ? queue[head++] : NULL;
        pthread_mutex_unlock(&mu);
        if (b == NULL)
            return NULL;        /* the thread's contexts go at exit */
        cv_bound_call(b);       /* the job, in the submitter's copy */
        cv_bound_release(b);
    }
}

static int job(void *arg)
{
    long i = (long)arg;
    seen[i] = (long)cv_var_get_or(request_id, (void *)-1);
    cv_var_set(request_id, (void *)-2, NULL);   /* stays in the copy */
    return 0;
}

int main(void)
{
    if (cv_var_new("request_id", &request_id) != 0)
        return 1;
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (long i = 0; i < JOBS; i++) {
        cv_var_set(request_id, (void *)(1000 + i), NULL);  /* "request" i */
        if (submit(job, (void *)i) != 0)
            return 1;
    }
    pthread_mutex_lock(&mu);
    closed = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    int wrong = cv_var_get_or(request_id, NULL) != (void *)(1000 + JOBS - 1);
    for (int i = 0; i < JOBS; i++)
        wrong += seen[i] != 1000 + i;
    cv_var_release(request_id);
    cv_thread_cleanup();
    printf("thread_pool: %d jobs, %s\n", JOBS,
           wrong ? "WRONG VALUES" : "each ran in its submitter's context");
    return wrong != 0;
}
