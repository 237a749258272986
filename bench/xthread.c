/* SPDX-License-Identifier: MIT */
/*
 * xthread.c -- cross-thread costs of copy and enter/exit (issue #16).
 *
 *   xthread [ITERS]    prints one JSON object: ns per operation, medians
 *
 * The single-thread figures of the report measure a context copied,
 * entered and released by one thread. What a runtime also does is move
 * contexts between threads; those are the paths a biased or asymmetric
 * scheme would make dearer, so they are measured beside them:
 *
 *   copy_one       one thread copies a shared context (16 pairs), releases
 *                  the copy                                     ns per copy
 *   copy_two       two threads copy that one context at once (the map's
 *                  count bounces between them)          ns per copy, each
 *   copy_two_own   two threads at once, each its own context (no shared
 *                  line: the uncontended two-thread case)  ns per copy, each
 *   handoff        a thread copies its context and passes it through a
 *                  ring (64 slots, spinning) to a second, which enters it,
 *                  exits it and releases it            ns per hand-off
 *   fiber_migrate  an execution state with a copy entered is swapped out
 *                  on one thread and in on the other, which exits and
 *                  releases the copy and enters a new one: a fiber resumed
 *                  on another thread, ping-pong        ns per migration
 *
 * Each figure is the median of RUNS runs. Two threads on two cores: on a
 * loaded machine the ring figures include the waits for a core (a waiter
 * yields after 256 spins, so that it does not hold the core the other
 * side needs).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctxvar.h"

#define RUNS 5
#define NVARS 16
#define RING 64

static long ITERS = 200000L;

#define OK(x)                                                            \
    do {                                                                 \
        int rc_ = (x);                                                   \
        if (rc_ < 0) {                                                   \
            fprintf(stderr, "xthread: %s: %d\n", #x, rc_);               \
            exit(1);                                                     \
        }                                                                \
    } while (0)

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static cv_var *vars[NVARS];
static int vals[NVARS];

/* A context holding NVARS pairs (made in a fresh context of this thread). */
static cv_context *filled(void)
{
    cv_context *c;
    OK(cv_context_new(&c));
    OK(cv_context_enter(c));
    for (int i = 0; i < NVARS; i++)
        OK(cv_var_set(vars[i], &vals[i], NULL));
    OK(cv_context_exit(c));
    return c;
}

/* ---- copies of a given context, from one or two threads ---------------- */

typedef struct copier {
    cv_context *src;
    _Atomic int *go;
    double ns;
} copier;

static void *copy_loop(void *arg)
{
    copier *k = arg;
    while (!atomic_load(k->go))
        ;
    double t0 = now_ns();
    for (long i = 0; i < ITERS; i++) {
        cv_context *n;
        OK(cv_context_copy(k->src, &n));
        cv_context_release(n);
    }
    k->ns = (now_ns() - t0) / (double)ITERS;
    cv_thread_cleanup();
    return NULL;
}

static double copy_run(int threads, int shared)
{
    cv_context *a = filled(), *b = shared ? a : filled();
    _Atomic int go = 0;
    copier k[2] = {{a, &go, 0}, {b, &go, 0}};
    pthread_t t[2];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, copy_loop, &k[i]) != 0)
            exit(1);
    atomic_store(&go, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    cv_context_release(a);
    if (!shared)
        cv_context_release(b);
    return threads == 1 ? k[0].ns : (k[0].ns + k[1].ns) / 2;
}

/* ---- the hand-off through a ring --------------------------------------- */

typedef struct ring {
    _Atomic size_t head; /* written by the producer */
    char pad1[56];
    _Atomic size_t tail; /* written by the consumer */
    char pad2[56];
    void *slot[RING];
} ring;

static void ring_push(ring *r, void *p)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (unsigned n = 0;
         h - atomic_load_explicit(&r->tail, memory_order_acquire) == RING; n++)
        if (n % 256 == 255)
            sched_yield(); /* the other side may have no core */
    r->slot[h % RING] = p;
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

static void *ring_pop(ring *r)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (unsigned n = 0; atomic_load_explicit(&r->head, memory_order_acquire) == t;
         n++)
        if (n % 256 == 255)
            sched_yield();
    void *p = r->slot[t % RING];
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return p;
}

static ring hring;

static void *handoff_consumer(void *arg)
{
    (void)arg;
    for (long i = 0; i < ITERS; i++) {
        cv_context *c = ring_pop(&hring);
        OK(cv_context_enter(c));
        OK(cv_context_exit(c));
        cv_context_release(c);
    }
    cv_thread_cleanup();
    return NULL;
}

static double handoff_run(void)
{
    cv_context *src = filled();
    OK(cv_context_enter(src));
    memset(&hring, 0, sizeof hring);
    pthread_t t;
    if (pthread_create(&t, NULL, handoff_consumer, NULL) != 0)
        exit(1);
    double t0 = now_ns();
    for (long i = 0; i < ITERS; i++) {
        cv_context *c;
        OK(cv_copy_context(&c));
        ring_push(&hring, c);
    }
    pthread_join(t, NULL);
    double ns = (now_ns() - t0) / (double)ITERS;
    OK(cv_context_exit(src));
    cv_context_release(src);
    return ns;
}

/* ---- an execution state resumed on the other thread --------------------- */

static ring to_b, to_a;
static cv_context *fsrc;

/* The state arrives with a copy entered: exit it, release it, enter a
 * fresh copy of fsrc, send the state on. */
static void fiber_step(cv_exec *x)
{
    OK(cv_exec_swap(x, NULL));
    cv_context *c = cv_context_current();
    OK(cv_context_exit(c));
    cv_context_release(c);
    cv_context *n;
    OK(cv_context_copy(fsrc, &n));
    OK(cv_context_enter(n));
    OK(cv_exec_swap(NULL, NULL));
}

static void *fiber_b(void *arg)
{
    (void)arg;
    for (long i = 0; i < ITERS / 2; i++) {
        cv_exec *x = ring_pop(&to_b);
        fiber_step(x);
        ring_push(&to_a, x);
    }
    cv_thread_cleanup();
    return NULL;
}

static double fiber_run(void)
{
    fsrc = filled();
    memset(&to_a, 0, sizeof to_a);
    memset(&to_b, 0, sizeof to_b);
    cv_exec *x;
    OK(cv_exec_new(&x));
    OK(cv_exec_swap(x, NULL));
    cv_context *n;
    OK(cv_context_copy(fsrc, &n));
    OK(cv_context_enter(n));
    OK(cv_exec_swap(NULL, NULL));
    pthread_t t;
    if (pthread_create(&t, NULL, fiber_b, NULL) != 0)
        exit(1);
    double t0 = now_ns();
    for (long i = 0; i < ITERS / 2; i++) {
        ring_push(&to_b, x);
        x = ring_pop(&to_a);
        fiber_step(x);
    }
    pthread_join(t, NULL);
    double ns = (now_ns() - t0) / (double)(ITERS / 2 * 2);
    OK(cv_exec_release(x));
    cv_context_release(fsrc);
    return ns;
}

/* ---- main ---------------------------------------------------------------- */

typedef double (*run_fn)(void);
static double r_copy_one(void) { return copy_run(1, 1); }
static double r_copy_two(void) { return copy_run(2, 1); }
static double r_copy_two_own(void) { return copy_run(2, 0); }

int main(int argc, char **argv)
{
    if (argc > 1) {
        /* a count, or nothing: a backend is chosen by CTXVAR_BACKEND, and
         * a name here would have read as 0 iterations */
        char *end;
        ITERS = strtol(argv[1], &end, 10);
        if (argc > 2 || end == argv[1] || *end != '\0' || ITERS < 2) {
            fprintf(stderr, "usage: xthread [ITERS >= 2] (the backend: "
                            "CTXVAR_BACKEND=name)\n");
            return 2;
        }
    }
    for (int i = 0; i < NVARS; i++)
        OK(cv_var_new("x", &vars[i]));
    static const struct {
        const char *name;
        run_fn fn;
    } figs[] = {{"copy_one", r_copy_one},
                {"copy_two", r_copy_two},
                {"copy_two_own", r_copy_two_own},
                {"handoff", handoff_run},
                {"fiber_migrate", fiber_run}};
    const char *only = getenv("XTHREAD_ONLY");
    printf("{");
    const char *sep = "";
    for (size_t f = 0; f < sizeof figs / sizeof figs[0]; f++) {
        if (only != NULL && strstr(only, figs[f].name) == NULL)
            continue;
        double ns[RUNS];
        for (int r = 0; r < RUNS; r++)
            ns[r] = figs[f].fn();
        qsort(ns, RUNS, sizeof ns[0], cmp_d);
        printf("%s\"%s\": %.1f", sep, figs[f].name, ns[RUNS / 2]);
        sep = ", ";
        fflush(stdout);
    }
    printf("}\n");
    for (int i = 0; i < NVARS; i++)
        cv_var_release(vars[i]);
    cv_thread_cleanup();
    return 0;
}
