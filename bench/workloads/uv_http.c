/*
 * uv_http.c -- a request-scoped HTTP/1.1 server on libuv and
 * libctxvar-uv: the Flask `g` / request-id pattern, measured.
 *
 * Every request gets a context of its own and sets request_id from the
 * request line (GET /r/<id>); every step logs through log_line(), which
 * reads request_id from the var -- a request step, a step on libuv's
 * thread pool, the step after it back on the loop thread, a timer step and
 * the write callback. log_line() is also handed the id by hand and counts
 * every line whose var disagrees: a mismatch is a line that would have
 * carried another request's id.
 *
 *   uv_http [--hand | --broken] [--port N] [--max-seconds S]
 *   uv_http --list-backends
 *
 * --hand: the same server with the id passed by hand and no ctxvar call at
 * all (plain libuv calls): the baseline. --broken: the timer step is
 * started with plain libuv, so it logs in the loop's context; the checker
 * must count those lines (bench/workloads/uv_http_run.py asserts it). The server prints "port N" once it
 * listens, stops on SIGTERM or SIGINT (or after --max-seconds), and prints
 * one JSON line of counters. Loopback only.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxvar_uv.h"

static int hand;                        /* 1: the baseline */
static int broken;                      /* 1: the timer step started with
                                         * plain libuv in ctxvar mode, so it
                                         * runs in the loop's context: the
                                         * check must see it */
static uv_loop_t *loop;
static cv_var *request_id;
static const cv_backend *request_backend;  /* the default, looked up once */
static atomic_ulong log_lines, mismatches, requests, work_steps;
static uint64_t next_id = 1;            /* ids for requests without one */

/* ---- the logger: what a request-scoped logging library does ---------- */

static _Thread_local char log_ring[1 << 16];
static _Thread_local size_t log_pos;
static _Thread_local unsigned long local_lines, local_bad;

static void log_flush_counts(void)
{
    atomic_fetch_add_explicit(&log_lines, local_lines, memory_order_relaxed);
    atomic_fetch_add_explicit(&mismatches, local_bad, memory_order_relaxed);
    local_lines = local_bad = 0;
}

/* One log line, "req=<id> <msg>", into this thread's ring (a stand-in for
 * a log sink that costs what formatting costs). The id is the var's; the
 * line is checked against the id the caller passed by hand. */
static void log_line(uint64_t hand_id, const char *msg)
{
    uint64_t id = hand ? hand_id : (uint64_t)(uintptr_t)cv_var_get_or(request_id, NULL);
    char line[96];
    int n = snprintf(line, sizeof line, "req=%llu %s\n", (unsigned long long)id, msg);
    if (n > 0 && (size_t)n < sizeof line) {
        if (log_pos + (size_t)n > sizeof log_ring)
            log_pos = 0;
        memcpy(log_ring + log_pos, line, (size_t)n);
        log_pos += (size_t)n;
    }
    local_lines++;
    if (id != hand_id)
        local_bad++;
    if (local_lines >= 256)
        log_flush_counts();
}

/* ---- connections ------------------------------------------------------- */

typedef struct conn {
    cv_uv_stream s;
    cv_uv_timer timer;
    cv_uv_work_req work;
    cv_uv_write_req wr;
    int refs;                   /* the two handles, and a request in flight */
    int busy, eof, closing;
    uint64_t id;                /* the request in flight, passed by hand */
    uint64_t digest;            /* what the pool step computed */
    size_t len;                 /* bytes in buf */
    char buf[8192];
    char out[256];
    struct conn *next, *prev;   /* every open connection */
} conn;

static conn *conns;
static int stopping;
static void try_next(conn *c);

static void conn_unref(conn *c)
{
    if (--c->refs > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    conn_unref(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (hand) {
        uv_close((uv_handle_t *)&c->s.handle, on_handle_closed);
        uv_close((uv_handle_t *)&c->timer.handle, on_handle_closed);
    } else {
        cv_uv_close((uv_handle_t *)&c->s.handle, on_handle_closed);
        cv_uv_close((uv_handle_t *)&c->timer.handle, on_handle_closed);
    }
}

/* ---- one request: start, pool step, after, timer step, write ---------- */

static void request_done(conn *c)
{
    log_line(c->id, "done");
    atomic_fetch_add_explicit(&requests, 1, memory_order_relaxed);
    c->busy = 0;
    if (c->eof || stopping)
        conn_close(c);
    else
        try_next(c);
    conn_unref(c);
}

static void on_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    (void)status;
    request_done(c);
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    log_line(c->id, "timer step");
    char body[64];
    int bn = snprintf(body, sizeof body, "request %llu digest %llx\n",
                      (unsigned long long)c->id, (unsigned long long)c->digest);
    int n = snprintf(c->out, sizeof c->out,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\n\r\n%s", bn, body);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)n);
    c->wr.req.data = c;
    int r = hand ? uv_write(&c->wr.req, &c->s.handle.stream, &b, 1, on_written)
                 : cv_uv_write(&c->wr, &c->s.handle.stream, &b, 1, on_written);
    if (r < 0)
        request_done(c);
}

static void on_work(uv_work_t *w)
{
    conn *c = w->data;
    uint64_t h = c->id * 0x9E3779B97F4A7C15ull;     /* a little CPU work */
    for (int i = 0; i < 64; i++)
        h = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull;
    c->digest = h;
    log_line(c->id, "pool step");
    log_flush_counts();                              /* pool threads: now */
    atomic_fetch_add_explicit(&work_steps, 1, memory_order_relaxed);
}

static void on_after_work(uv_work_t *w, int status)
{
    conn *c = w->data;
    (void)status;
    log_line(c->id, "after pool step");
    c->timer.handle.data = c;
    int r = hand || broken ? uv_timer_start(&c->timer.handle, on_timer, 0, 0)
                           : cv_uv_timer_start(&c->timer, on_timer, 0, 0);
    if (r < 0)
        request_done(c);
}

/* The request's first step, in its own context (ctx mode). */
static int request_start(void *p)
{
    conn *c = p;
    if (!hand) {
        int r = cv_var_set(request_id, (void *)(uintptr_t)c->id, NULL);
        if (r < 0)
            return r;
    }
    log_line(c->id, "start");
    c->work.req.data = c;
    return hand ? uv_queue_work(loop, &c->work.req, on_work, on_after_work)
                : cv_uv_queue_work(loop, &c->work, on_work, on_after_work);
}

/* A complete request in c->buf: take it off and start it. */
static void try_next(conn *c)
{
    if (c->busy || c->closing)
        return;
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (c->len == sizeof c->buf)
            conn_close(c);      /* a header larger than we take */
        return;
    }
    size_t used = (size_t)(end + 4 - c->buf);
    uint64_t id = 0;
    if (c->len > 7 && memcmp(c->buf, "GET /r/", 7) == 0)
        id = strtoull(c->buf + 7, NULL, 10);
    if (id == 0)
        id = next_id++;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    c->id = id;
    c->busy = 1;
    c->refs++;
    int r;
    if (hand) {
        r = request_start(c);
    } else {
        cv_context *rc;           /* (new_on: cv_context_new would read
                                   * $CTXVAR_BACKEND per request, R15) */
        r = cv_context_new_on(request_backend, &rc);
        if (r == 0) {
            r = cv_context_run(rc, request_start, c);
            cv_context_release(rc);  /* the work and its after keep it */
        }
    }
    if (r < 0) {
        fprintf(stderr, "uv_http: request start failed: %d\n", r);
        c->busy = 0;
        conn_close(c);
        conn_unref(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    conn *c = h->data;
    (void)size;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;
    (void)buf;
    if (n < 0) {
        c->eof = 1;
        if (!c->busy)
            conn_close(c);
        return;
    }
    c->len += (size_t)n;
    try_next(c);
}

static cv_uv_stream server;

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    cv_uv_tcp_init(loop, &c->s);
    cv_uv_timer_init(loop, &c->timer);
    c->s.handle.stream.data = c;
    c->timer.handle.data = c;
    c->refs = 2;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    if (uv_accept(srv, &c->s.handle.stream) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->s.handle.tcp, 1);
    int r = hand ? uv_read_start(&c->s.handle.stream, on_alloc, on_read)
                 : cv_uv_read_start(&c->s, on_alloc, on_read);
    if (r < 0)
        conn_close(c);
}

/* ---- stopping --------------------------------------------------------- */

static uv_signal_t sigterm, sigint;
static uv_timer_t deadline;

static void stop(void)
{
    if (stopping)
        return;
    stopping = 1;
    uv_close((uv_handle_t *)&server.handle, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    for (conn *c = conns; c != NULL; c = c->next)
        if (!c->busy)
            conn_close(c);
}

static void on_signal(uv_signal_t *s, int sig)
{
    (void)s;
    (void)sig;
    stop();
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "uv_http: --max-seconds reached\n");
    stop();
}

int main(int argc, char **argv)
{
    int port = 0;
    long max_seconds = 600;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hand") == 0)
            hand = 1;
        else if (strcmp(argv[i], "--broken") == 0)
            broken = 1;
        else if (strcmp(argv[i], "--list-backends") == 0) {
            const cv_backend *bs[16];
            size_t n = cv_backend_list(bs, 16);
            for (size_t k = 0; k < n && k < 16; k++)
                printf("%s\n", cv_backend_name(bs[k]));
            return 0;
        }
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
            max_seconds = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: uv_http [--hand|--broken] [--port N] [--max-seconds S]\n");
            return 2;
        }
    }
    loop = uv_default_loop();
    if (!hand && (cv_var_new("request_id", &request_id) != 0 ||
                  (request_backend = cv_backend_default()) == NULL))
        return 1;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    cv_uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server.handle.tcp, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen(&server.handle.stream, 1024, on_connection) != 0) {
        fprintf(stderr, "uv_http: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    struct sockaddr_in bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&server.handle.tcp, (struct sockaddr *)&bound, &blen);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, on_deadline, (uint64_t)max_seconds * 1000, 0);
    printf("port %d\n", ntohs(bound.sin_port));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    log_flush_counts();
    const cv_backend *b = cv_backend_default();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);       /* every thread: loop and pool */
    double user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
    double sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    printf("{\"mode\": \"%s\", \"backend\": \"%s\", \"requests\": %lu, "
           "\"pool_steps\": %lu, \"log_lines\": %lu, \"mismatches\": %lu, "
           "\"fallbacks\": %ld, \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f}\n",
           hand ? "hand" : broken ? "broken" : "ctxvar", hand ? "none" : cv_backend_name(b),
           atomic_load(&requests), atomic_load(&work_steps),
           atomic_load(&log_lines), atomic_load(&mismatches),
           cv_uv_fallbacks(), user, sys);
    uv_loop_close(loop);
    if (!hand)
        cv_var_release(request_id);
    cv_thread_cleanup();
    return 0;
}
