/*
 * fibers.c -- ctxvar on stackful fibers (ucontext): each fiber gets an
 * execution state, and the scheduler swaps it in on every switch. Fibers
 * yield anywhere -- here inside cv_context_run -- and each still reads its
 * own request_id, as a thread would. Exits 0 when every read was right.
 */
#include <ctxvar.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

enum { N = 3, STACK = 64 * 1024 };

typedef struct fiber {
    ucontext_t uc;
    cv_exec *exec;              /* the fiber's stack of entered contexts */
    cv_context *ctx;            /* a copy of the spawner's, taken at spawn */
    long id;
    int done;
} fiber;

static ucontext_t sched_uc;
static fiber fibers[N];
static fiber *running;
static cv_var *request_id;
static int wrong;

static void yield(void)
{
    swapcontext(&running->uc, &sched_uc);
}

/* The switch: the fiber's execution state in, the scheduler's back. */
static void resume(fiber *f)
{
    cv_exec *prev;
    cv_exec_swap(f->exec, &prev);
    running = f;
    swapcontext(&sched_uc, &f->uc);
    cv_exec_swap(prev, NULL);
}

static void log_line(const char *what)
{
    printf("[request %ld] %s\n", (long)cv_var_get_or(request_id, (void *)-1), what);
}

static int handle(void *arg)
{
    fiber *f = arg;
    cv_var_set(request_id, (void *)f->id, NULL);
    log_line("start");
    yield();                    /* inside cv_context_run */
    log_line("middle");
    yield();
    log_line("end");
    wrong += cv_var_get_or(request_id, NULL) != (void *)f->id;
    return 0;
}

static void entry(int i)
{
    fiber *f = &fibers[i];
    cv_context_run(f->ctx, handle, f);
    f->done = 1;
    swapcontext(&f->uc, &sched_uc);
}

int main(void)
{
    if (cv_var_new("request_id", &request_id) != 0)
        return 1;
    cv_var_set(request_id, (void *)0, NULL);      /* the scheduler's own */
    for (int i = 0; i < N; i++) {
        fiber *f = &fibers[i];
        f->id = 100 + i;
        if (cv_exec_new(&f->exec) != 0 || cv_copy_context(&f->ctx) != 0)
            return 1;
        getcontext(&f->uc);
        f->uc.uc_stack.ss_sp = malloc(STACK);
        f->uc.uc_stack.ss_size = STACK;
        makecontext(&f->uc, (void (*)(void))entry, 1, i);
    }
    for (int live = N; live > 0;) {               /* round robin */
        live = 0;
        for (int i = 0; i < N; i++)
            if (!fibers[i].done) {
                resume(&fibers[i]);
                wrong += cv_var_get_or(request_id, NULL) != (void *)0;
                live += !fibers[i].done;
            }
    }
    for (int i = 0; i < N; i++) {
        cv_exec_release(fibers[i].exec);
        cv_context_release(fibers[i].ctx);
        free(fibers[i].uc.uc_stack.ss_sp);
    }
    cv_var_release(request_id);
    cv_thread_cleanup();
    printf("fibers: %s\n", wrong ? "WRONG VALUES" : "every fiber read its own id");
    return wrong != 0;
}
