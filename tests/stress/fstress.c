/*
 * fstress.c -- fibers under threads, for TSan and ASan (make tsan,
 * make asan-stress): R17-R22 under contention.
 *
 * Each round: F fibers on one fiber scheduler (tests/support/fsched.c) that
 * T threads run at once, so fibers migrate between threads at every yield.
 * Every fiber sets, enters nested contexts, runs a copy, makes and resets
 * tokens, and yields between each step and its undo -- inside run, inside
 * enters, between a set and its reset -- checking after every yield that
 * it reads its own values and never another fiber's. Values carry counting
 * hooks; contexts are handed between fibers and released on whichever
 * thread runs the receiver. Then T threads race to swap in one cv_exec:
 * exactly one wins each time (CV_EACTIVE for the others).
 *
 * The get goes through the function (CV_NO_INLINE_GET): R21.
 * At the end every allocation is freed and every retain released.
 * Usage: fstress [rounds] [threads] [fibers]
 */
#define CV_NO_INLINE_GET
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctxvar.h"
#include "fsched.h"
#include "testalloc.h" /* counts every allocation */

static atomic_long failures, retains, releases;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            atomic_fetch_add(&failures, 1);                                \
            fprintf(stderr, "fstress: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                  \
    } while (0)

#define MAXF 64
#define STEPS 6
static char vals[MAXF][STEPS];
static atomic_long refs[MAXF][STEPS];

static void hook_retain(void *v, void *ud)
{
    (void)ud;
    atomic_fetch_add(&refs[0][0] + ((char *)v - &vals[0][0]), 1);
    atomic_fetch_add(&retains, 1);
}

static void hook_release(void *v, void *ud)
{
    (void)ud;
    atomic_fetch_sub(&refs[0][0] + ((char *)v - &vals[0][0]), 1);
    atomic_fetch_add(&releases, 1);
}

static cv_var *var, *plain;
static int nfibers, iters = 60;
static _Atomic(cv_context *) mailbox[MAXF];  /* handed to the next fiber */

typedef struct fib {
    int id;
} fib;

static void *V(int f, int k) { return &vals[f][k]; }

static int in_copy(void *arg)
{
    fib *me = arg;
    CHECK(cv_var_get_or(var, NULL) == V(me->id, 1));
    cv_var_set(var, V(me->id, 2), NULL);
    fsched_yield();                              /* inside run */
    CHECK(cv_var_get_or(var, NULL) == V(me->id, 2));
    return 0;
}

static int body(void *arg)
{
    fib *me = arg;
    int f = me->id;
    for (int it = 0; it < iters; it++) {
        CHECK(cv_var_set(var, V(f, 0), NULL) == 0);
        CHECK(cv_var_set(plain, V(f, 5), NULL) == 0);
        fsched_yield();
        CHECK(cv_var_get_or(var, NULL) == V(f, 0));
        CHECK(cv_var_get_or(plain, NULL) == V(f, 5));
        cv_context *c;
        CHECK(cv_copy_context(&c) == 0);
        CHECK(cv_context_enter(c) == 0);
        cv_token *t;
        CHECK(cv_var_set(var, V(f, 1), &t) == 0);
        fsched_yield();                          /* inside an enter */
        CHECK(cv_var_get_or(var, NULL) == V(f, 1));
        cv_context *cc;
        CHECK(cv_copy_context(&cc) == 0);
        CHECK(cv_context_run(cc, in_copy, me) == 0);
        CHECK(cv_var_get_or(var, NULL) == V(f, 1));
        fsched_yield();
        CHECK(cv_var_reset(var, t) == 0);        /* set ... yields ... reset */
        cv_token_release(t);
        CHECK(cv_var_get_or(var, NULL) == V(f, 0));
        CHECK(cv_context_exit(c) == 0);
        CHECK(cv_var_get_or(var, NULL) == V(f, 0));
        /* hand cc to the next fiber, release what the previous one left */
        cv_context *old = atomic_exchange(&mailbox[(f + 1) % nfibers], cc);
        cv_context_release(old);
        cv_context_release(c);
        fsched_yield();
        CHECK(cv_var_get_or(plain, NULL) == V(f, 5));
    }
    return 0;
}

/* ---- threads racing to swap one state in ------------------------------- */

static cv_exec *contested;
static pthread_barrier_t bar;
static atomic_int winners;
static int nthreads;

static void *racer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        pthread_barrier_wait(&bar);
        int r = cv_exec_swap(contested, NULL);
        CHECK(r == 0 || r == CV_EACTIVE);
        if (r == 0) {
            atomic_fetch_add(&winners, 1);
            cv_var_set(plain, V(0, 4), NULL);    /* the state's own base */
        }
        pthread_barrier_wait(&bar);
        if (r == 0)
            CHECK(cv_exec_swap(NULL, NULL) == 0);
        pthread_barrier_wait(&bar);
    }
    cv_thread_cleanup();
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    nthreads = argc > 2 ? atoi(argv[2]) : 4;
    nfibers = argc > 3 ? atoi(argv[3]) : 16;
    if (getenv("FSTRESS_ITERS") != NULL)
        iters = atoi(getenv("FSTRESS_ITERS"));
    if (rounds < 1 || nthreads < 2 || nthreads > 32 || nfibers < 2 ||
        nfibers > MAXF)
        return 2;
    tu_alloc_install();
    cv_var_opts o = {.name = "v", .retain = hook_retain, .release = hook_release};
    if (cv_var_new_ex(&o, &var) != 0 || cv_var_new("plain", &plain) != 0)
        return 2;
    long moved = 0;
    for (int r = 0; r < rounds; r++) {
        fsched *s;
        if (fsched_new(&s) != 0)
            return 2;
        fib fs[MAXF];
        for (int i = 0; i < nfibers; i++) {
            fs[i].id = i;
            CHECK(fsched_spawn(s, body, &fs[i], NULL) == 0);
        }
        fsched_runner ra[32];
        pthread_t th[32];
        for (int i = 0; i < nthreads; i++) {
            ra[i] = (fsched_runner){s, -100};
            pthread_create(&th[i], NULL, fsched_run_thread, &ra[i]);
        }
        for (int i = 0; i < nthreads; i++) {
            pthread_join(th[i], NULL);
            CHECK(ra[i].r == 0);
        }
        moved += fsched_migrations(s);
        fsched_free(s);
        for (int i = 0; i < nfibers; i++)
            cv_context_release(atomic_exchange(&mailbox[i], NULL));
    }
    CHECK(moved > 0);

    CHECK(cv_exec_new(&contested) == 0);
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    pthread_t th[32];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, racer, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    CHECK(atomic_load(&winners) == 50);
    CHECK(cv_exec_release(contested) == 0);

    cv_var_release(var);
    cv_var_release(plain);
    cv_thread_cleanup();
    CHECK(tu_alloc_live() == 0);
    CHECK(atomic_load(&retains) == atomic_load(&releases));
    for (int f = 0; f < MAXF; f++)
        for (int k = 0; k < STEPS; k++)
            CHECK(atomic_load(&refs[f][k]) == 0);
    long fails = atomic_load(&failures);
    printf("fstress: %d rounds x %d threads x %d fibers, %ld migrations, "
           "%ld allocations, %ld failed checks\n",
           rounds, nthreads, nfibers, moved, tu_alloc_calls(), fails);
    return fails == 0 ? 0 : 1;
}
