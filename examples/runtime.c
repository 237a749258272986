/*
 * runtime.c -- wiring ctxvar into a runtime (README "Wiring it into a
 * runtime"): every task gets its own context, copied when the task is
 * created and entered around each of its steps. A two-task round-robin
 * loop shows that each task keeps its own request id across steps while
 * the loop's own value stays put.
 */
#include <ctxvar.h>
#include <stdio.h>

/* [task] */
typedef struct task {
    int (*step)(struct task *t);  /* resumable: switches on t->pc */
    int pc;
    cv_context *ctx;              /* the task's own context */
} task;

int task_init(task *t, int (*step)(task *))
{
    t->step = step;
    t->pc = 0;
    return cv_copy_context(&t->ctx);   /* taken now, not at first run */
}

int task_run_step(task *t)             /* the loop calls this per step */
{
    int r = cv_context_enter(t->ctx);  /* CV_EENTERED: running elsewhere */
    if (r < 0)
        return r;
    int next = t->step(t);             /* cv_var_get/set act on t->ctx */
    r = cv_context_exit(t->ctx);       /* the loop's context is back */
    return next < 0 ? next : (r < 0 ? r : next);
}

void task_free(task *t) { cv_context_release(t->ctx); }
/* [/task] */

static cv_var *request_id;
static const char *names[] = {"A", "B"};

static task tasks[2];

/* Step 0 sets the task's request id; every step reads it back. 1 while
 * steps are left, 0 when done. */
static int step(task *t)
{
    const char *name = names[t - tasks];
    if (t->pc == 0 && cv_var_set(request_id, (void *)name, NULL) < 0)
        return -1;
    printf("task %s step %d: request_id=%s\n", name, t->pc,
           (char *)cv_var_get_or(request_id, "?"));
    return ++t->pc < 3;
}

int main(void)
{
    if (cv_var_new_default("request_id", "loop", &request_id) < 0)
        return 1;
    for (int i = 0; i < 2; i++)
        if (task_init(&tasks[i], step) < 0)
            return 1;
    int live = 2;
    while (live > 0) {                 /* round robin until both are done */
        live = 0;
        for (int i = 0; i < 2; i++) {
            if (tasks[i].step == NULL)
                continue;
            int r = task_run_step(&tasks[i]);
            if (r < 0)
                return 2;
            if (r == 0)
                tasks[i].step = NULL;  /* done */
            else
                live++;
        }
    }
    void *v;
    if (cv_var_get(request_id, &v) < 0)   /* the var's default: never set here */
        return 3;
    printf("loop: request_id=%s\n", (char *)v);
    for (int i = 0; i < 2; i++)
        task_free(&tasks[i]);
    cv_var_release(request_id);
    cv_thread_cleanup();
    return 0;
}
