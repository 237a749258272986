/*
 * example.c -- ctxvar on a libuv callback loop with libctxvar-uv: three
 * "requests", each in its own context, each with a pool step and a timer
 * step; every callback logs the request_id it finds in the var. Exits 0
 * when every line carried its own request's id.
 */
#include <stdio.h>

#include "ctxvar_uv.h"

static cv_var *request_id;
static int wrong;

typedef struct req {
    long id;
    cv_uv_work_req work;
    cv_uv_timer timer;
} req;

static void log_line(req *r, const char *what)
{
    long id = (long)cv_var_get_or(request_id, (void *)-1);
    printf("[request %ld] %s\n", id, what);
    wrong += id != r->id;
}

static void on_timer(uv_timer_t *t)
{
    req *r = t->data;
    log_line(r, "timer step, done");
    cv_uv_close((uv_handle_t *)t, NULL);
}

static void on_work(uv_work_t *w) { log_line(w->data, "pool step"); }

static void after_work(uv_work_t *w, int status)
{
    req *r = w->data;
    (void)status;
    log_line(r, "back on the loop");
    r->timer.handle.data = r;
    cv_uv_timer_start(&r->timer, on_timer, 10 * (uint64_t)r->id, 0);
}

static int start(void *arg)          /* runs in the request's context */
{
    req *r = arg;
    cv_var_set(request_id, (void *)r->id, NULL);
    log_line(r, "start");
    r->work.req.data = r;
    return cv_uv_queue_work(uv_default_loop(), &r->work, on_work, after_work);
}

int main(void)
{
    uv_loop_t *loop = uv_default_loop();
    req reqs[3];
    if (cv_var_new("request_id", &request_id) != 0)
        return 1;
    for (int i = 0; i < 3; i++) {
        reqs[i].id = i + 1;
        cv_uv_timer_init(loop, &reqs[i].timer);
        cv_context *c;                   /* a context per request */
        if (cv_context_new(&c) != 0 || cv_context_run(c, start, &reqs[i]) != 0)
            return 1;
        cv_context_release(c);           /* the callbacks hold it now */
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    cv_var_release(request_id);
    cv_thread_cleanup();
    printf("libuv example: %s\n", wrong ? "WRONG VALUES" : "every line had its own id");
    return wrong != 0;
}
