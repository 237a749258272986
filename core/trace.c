/* SPDX-License-Identifier: MIT */
/*
 * trace.c -- the recorder behind CTXVAR_TRACE=path (core/trace.h; the
 * format is docs/TRACE.md, the reader bench/replay.c).
 *
 * Every operation a thread performs is appended to that thread's buffer
 * (TBUF_BYTES, plain stores, no lock), which is written to the file as one
 * block under the recorder's lock when it is full, when the thread exits and
 * at exit (atexit). Objects are named by small integers given on first
 * sight: vars, contexts and tokens by a table from address to id (an entry
 * leaves the table when its object is freed, so an address reused later
 * gets a new id), values by a table that never forgets (a value is an
 * identity, not an object the library owns). A thread resolves vars and
 * values through a small cache of its own first, so a get or a set without
 * token takes no lock; the operations that name a context or a token take
 * the lock for the table and get a sequence number there, which orders them
 * across threads (a context made on one thread and entered on another).
 *
 * Nothing here may change what the library does: all memory is malloc's
 * (never the cv_set_allocator hook, whose counts tests and benchmarks
 * read), and any failure -- a write, an allocation -- switches tracing off
 * with one message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../maps/map.h"
#include "trace.h"

_Atomic int cv__trace_mode = CV_TRACE_UNDECIDED;
_Atomic uint64_t cv__trace_genbits = CV__GEN_TRACED;

/* The format's numbers: trace_format.h (through trace.h). */
#define TBUF_BYTES (64u * 1024u)

/* ------------------------------------------------------------------------
 * Address -> id tables (open addressing, linear probing, backward-shift
 * deletion), under `lock`.
 * ------------------------------------------------------------------------ */
typedef struct idtab {
    uintptr_t *keys; /* 0: empty */
    uint32_t *ids;
    size_t cap, len;
    uint32_t next; /* the next id to give; ids start at 1 */
} idtab;

static size_t tab_hash(uintptr_t k, size_t cap)
{
    return (size_t)(((uint64_t)k * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (cap - 1);
}

static int tab_grow(idtab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    uintptr_t *nk = calloc(ncap, sizeof *nk);
    uint32_t *ni = calloc(ncap, sizeof *ni);
    if (nk == NULL || ni == NULL) {
        free(nk);
        free(ni);
        return -1;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->keys[i] == 0)
            continue;
        size_t j = tab_hash(t->keys[i], ncap);
        while (nk[j] != 0)
            j = (j + 1) & (ncap - 1);
        nk[j] = t->keys[i];
        ni[j] = t->ids[i];
    }
    free(t->keys);
    free(t->ids);
    t->keys = nk;
    t->ids = ni;
    t->cap = ncap;
    return 0;
}

/* The id of k, 0 if none. */
static uint32_t tab_find(const idtab *t, uintptr_t k)
{
    if (t->cap == 0)
        return 0;
    for (size_t j = tab_hash(k, t->cap);; j = (j + 1) & (t->cap - 1)) {
        if (t->keys[j] == k)
            return t->ids[j];
        if (t->keys[j] == 0)
            return 0;
    }
}

/* A fresh id for k (replacing any it had); 0 when out of memory. */
static uint32_t tab_assign(idtab *t, uintptr_t k)
{
    if ((t->len + 1) * 2 > t->cap && tab_grow(t) < 0)
        return 0;
    if (t->next == 0)
        t->next = 1;
    if (t->next == UINT32_MAX)
        return 0;
    size_t j = tab_hash(k, t->cap);
    while (t->keys[j] != 0 && t->keys[j] != k)
        j = (j + 1) & (t->cap - 1);
    if (t->keys[j] == 0)
        t->len++;
    t->keys[j] = k;
    t->ids[j] = t->next++;
    return t->ids[j];
}

static uint32_t tab_get(idtab *t, uintptr_t k)
{
    uint32_t id = tab_find(t, k);
    return id ? id : tab_assign(t, k);
}

static void tab_remove(idtab *t, uintptr_t k)
{
    if (t->cap == 0)
        return;
    size_t j = tab_hash(k, t->cap);
    while (t->keys[j] != k) {
        if (t->keys[j] == 0)
            return;
        j = (j + 1) & (t->cap - 1);
    }
    /* backward shift: later members of the run move into the hole */
    size_t hole = j;
    for (size_t i = (j + 1) & (t->cap - 1); t->keys[i] != 0; i = (i + 1) & (t->cap - 1)) {
        size_t home = tab_hash(t->keys[i], t->cap);
        /* i may move to hole unless its home lies cyclically in (hole, i] */
        int stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            t->keys[hole] = t->keys[i];
            t->ids[hole] = t->ids[i];
            hole = i;
        }
    }
    t->keys[hole] = 0;
    t->len--;
}

static void tab_free(idtab *t)
{
    free(t->keys);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------
 * Global state
 * ------------------------------------------------------------------------ */
/* The recorder's lock: a test-and-set spinlock that yields, held for a table
 * lookup or a block write; a pthread mutex cost 2.5x its instructions. */
static atomic_flag lock = ATOMIC_FLAG_INIT;

static void lock_take(void)
{
    while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
        sched_yield();
}

static void lock_give(void)
{
    atomic_flag_clear_explicit(&lock, memory_order_release);
}
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t tb_key;
static int out = -1;                 /* the trace's descriptor; -1 once closed or failed */
static idtab t_vars, t_ctxs, t_toks, t_vals;
static uint64_t seq;                 /* under lock */
static uint32_t n_threads;           /* under lock */
static _Atomic uint64_t var_epoch;   /* moves when a var is freed */
static int warned;                   /* under lock */

/* Per thread: the buffer and the caches of var and value ids. */
#define VCACHE 256
typedef struct tbuf {
    uint32_t tid;
    uint32_t used;       /* bytes in buf */
    uint32_t last;       /* offset of the last record, for RUN */
    uint32_t nrec;       /* records in buf */
    int rounds;          /* destructor rounds seen */
    const cv_context *skip_release; /* the context cv_token_release drops */
    struct { uintptr_t p; uint32_t id; uint64_t epoch; } vars[VCACHE];
    struct { uintptr_t p; uint32_t id; } vals[VCACHE];
    unsigned char buf[TBUF_BYTES];
} tbuf;

/* The build's TLS model, as for the rest of the library: initial-exec in
 * the archive, descriptors in the shared library, which must stay
 * dlopen-able (docs/design/tls.md; tests/abi checks for STATIC_TLS). */
#define TRACE_TLS
static _Thread_local tbuf *tb TRACE_TLS;

/* Slots of the per-thread caches: a var by its own hash (computed at its
 * creation, well mixed), a value by a xor-shift-multiply of its address
 * (a multiply alone sent vars 144 bytes apart to one slot). */
static inline unsigned vcache_index(uintptr_t p)
{
    uint64_t x = (uint64_t)p;
    x ^= x >> 29;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 32;
    return (unsigned)x & (VCACHE - 1);
}

static inline unsigned var_slot(const cv_var *v)
{
    return cv__var_hash(v) & (VCACHE - 1);
}
/* This thread's id + 1 once it has one: a buffer made again after the exit
 * destructor freed the first (another destructor recording later) keeps it. */
static _Thread_local uint32_t my_tid1 TRACE_TLS;

/* Switches tracing off for good (lock held). */
static void trace_fail(const char *why)
{
    atomic_store_explicit(&cv__trace_mode, CV_TRACE_OFF, memory_order_relaxed);
    if (out >= 0) {
        close(out);
        out = -1;
    }
    if (!warned) {
        warned = 1;
        fprintf(stderr, "ctxvar: CTXVAR_TRACE: %s; tracing is off\n", why);
    }
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

/* write(2) until done: no stdio buffer, so that a forked child has nothing
 * of ours to flush twice. */
static int write_all(const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(out, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes tb's records as one block (lock held). */
static void flush_locked(tbuf *b)
{
    if (b->used == 0)
        return;
    if (out >= 0) {
        unsigned char h[CV_TRACE_BLOCK_BYTES];
        put32(h, CV_TRACE_BLOCK_MAGIC);
        put32(h + 4, b->tid);
        put32(h + 8, b->used);
        put32(h + 12, b->nrec);
        if (write_all(h, sizeof h) < 0 || write_all(b->buf, b->used) < 0)
            trace_fail("cannot write the trace");
    }
    b->used = 0;
    b->nrec = 0;
}

static void write_end_locked(void)
{
    if (out < 0)
        return;
    unsigned char h[CV_TRACE_BLOCK_BYTES], r[CV_TRACE_REC_BYTES + CV_TRACE_SEQ_BYTES];
    put32(h, CV_TRACE_BLOCK_MAGIC);
    put32(h + 4, CV_TRACE_END_THREAD);
    put32(h + 8, (uint32_t)sizeof r);
    put32(h + 12, 1);
    memset(r, 0, sizeof r);
    r[0] = CV_TOP_END;
    put32(r + 4, t_vars.next ? t_vars.next - 1 : 0);
    put32(r + 8, t_ctxs.next ? t_ctxs.next - 1 : 0);
    put32(r + 12, t_toks.next ? t_toks.next - 1 : 0);
    uint64_t tail = ((uint64_t)n_threads << 32) | (t_vals.next ? t_vals.next - 1 : 0);
    memcpy(r + CV_TRACE_REC_BYTES, &tail, CV_TRACE_SEQ_BYTES);
    if (write_all(h, sizeof h) < 0 || write_all(r, sizeof r) < 0) {
        trace_fail("cannot write the trace");
        return;
    }
}

/* At exit: the calling thread's records, the trailer, close. Threads still
 * running lose what they have not flushed (docs/TRACE.md). */
static pid_t owner; /* the process that opened the trace */

static void trace_atexit(void)
{
    if (getpid() != owner)
        return; /* a forked child calling exit: the trace is its parent's */
    lock_take();
    if (tb != NULL) {
        flush_locked(tb);
        free(tb);
        tb = NULL;
    }
    write_end_locked();
    if (out >= 0) {
        if (close(out) != 0 && !warned) {
            warned = 1;
            fprintf(stderr, "ctxvar: CTXVAR_TRACE: cannot close the trace\n");
        }
        out = -1;
    }
    atomic_store_explicit(&cv__trace_mode, CV_TRACE_OFF, memory_order_relaxed);
    tab_free(&t_vars);
    tab_free(&t_ctxs);
    tab_free(&t_toks);
    tab_free(&t_vals);
    lock_give();
}

/* Thread exit: flush; stay for the next destructor rounds (glibc runs up
 * to 4), so that the library's own exit destructor (cv_thread_cleanup,
 * which may run in several rounds) is recorded whichever runs first. */
static void tb_destroy(void *arg)
{
    tbuf *b = arg;
    lock_take();
    flush_locked(b);
    lock_give();
    if (b->rounds++ < 3 && pthread_setspecific(tb_key, b) == 0)
        return;
    if (tb == b)
        tb = NULL;
    free(b);
}

/* A forked child records nothing: the trace and its buffers are the
 * parent's (its descriptor is closed here; the parent's lock stays). */
static void trace_child(void)
{
    atomic_store_explicit(&cv__trace_mode, CV_TRACE_OFF, memory_order_relaxed);
    atomic_store_explicit(&cv__trace_genbits, 0, memory_order_relaxed);
    if (out >= 0)
        close(out);
    out = -1;
    atomic_flag_clear(&lock);
}

/* The path with %p replaced by the process id (%% is a %), so that a
 * program whose children inherit CTXVAR_TRACE can trace each of them. */
static int expand_path(const char *in, char *buf, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char num[24];
        const char *add = num;
        if (p[0] == '%' && p[1] == 'p') {
            snprintf(num, sizeof num, "%ld", (long)getpid());
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            num[0] = '%', num[1] = '\0';
            p++;
        } else {
            num[0] = *p, num[1] = '\0';
        }
        size_t k = strlen(add);
        if (n + k + 1 > cap)
            return -1;
        memcpy(buf + n, add, k);
        n += k;
    }
    buf[n] = '\0';
    return 0;
}

static void trace_init(void)
{
    const char *env = getenv("CTXVAR_TRACE");
    char path[4096];
    int mode = CV_TRACE_OFF;
    if (env != NULL && env[0] != '\0') {
        struct flock lk;
        memset(&lk, 0, sizeof lk);
        lk.l_type = F_WRLCK;
        lk.l_whence = SEEK_SET;
        if (expand_path(env, path, sizeof path) < 0) {
            fprintf(stderr, "ctxvar: CTXVAR_TRACE: path too long; tracing is off\n");
        } else if (pthread_key_create(&tb_key, tb_destroy) != 0) {
            fprintf(stderr, "ctxvar: CTXVAR_TRACE: no thread key; tracing is off\n");
        } else if ((out = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
            fprintf(stderr, "ctxvar: CTXVAR_TRACE: cannot open %s (%s); tracing is off\n", path,
                    strerror(errno));
        } else if (fcntl(out, F_SETLK, &lk) < 0) {
            /* another process (a child that inherited the variable, say)
             * is writing this file: leave it alone */
            fprintf(stderr, "ctxvar: CTXVAR_TRACE: %s is being written by another process; "
                            "tracing is off in this one (put %%p in the path for a trace per "
                            "process)\n", path);
            close(out);
            out = -1;
        } else {
            unsigned char h[CV_TRACE_HEADER_BYTES];
            memset(h, 0, sizeof h);
            memcpy(h, CV_TRACE_MAGIC, 8);
            put32(h + 8, CV_TRACE_VERSION);
            put32(h + 12, CV_TRACE_BYTE_ORDER);
            h[CV_TRACE_HDR_PTR_BYTES] = (unsigned char)sizeof(void *);
            h[CV_TRACE_HDR_REC_BYTES] = CV_TRACE_REC_BYTES;
            h[CV_TRACE_HDR_HEADER_BYTES] = CV_TRACE_HEADER_BYTES;
            const cv_backend *b = cv_backend_default();
            const char *name = b ? cv_backend_name(b) : "?";
            strncpy((char *)h + CV_TRACE_HDR_BACKEND, name, CV_TRACE_BACKEND_BYTES - 1);
            owner = getpid();
            if (ftruncate(out, 0) != 0 || write_all(h, sizeof h) < 0 ||
                atexit(trace_atexit) != 0 || pthread_atfork(NULL, NULL, trace_child) != 0) {
                fprintf(stderr, "ctxvar: CTXVAR_TRACE: cannot write %s; tracing is off\n", path);
                close(out);
                out = -1;
            } else {
                mode = CV_TRACE_RECORDING;
            }
        }
    }
    /* Relaxed: a thread that reads it stale marks an entry, which costs
     * that get a call and nothing else. */
    if (mode == CV_TRACE_OFF)
        atomic_store_explicit(&cv__trace_genbits, 0, memory_order_relaxed);
    atomic_store_explicit(&cv__trace_mode, mode, memory_order_relaxed);
}

int cv__trace_active(void)
{
    int m = atomic_load_explicit(&cv__trace_mode, memory_order_relaxed);
    if (m == CV_TRACE_UNDECIDED) {
        pthread_once(&init_once, trace_init);
        m = atomic_load_explicit(&cv__trace_mode, memory_order_relaxed);
    }
    return m == CV_TRACE_RECORDING;
}

/* ------------------------------------------------------------------------
 * Appending
 * ------------------------------------------------------------------------ */
static inline void emit(tbuf *b, int op, unsigned flags, uint32_t a, uint32_t x,
                        uint32_t c, uint64_t s);

/* This thread's buffer, made (and announced by a THREAD record) on first
 * use; NULL when out of memory (tracing goes off). */
static tbuf *my_buf(void)
{
    if (CV_LIKELY(tb != NULL))
        return tb;
    tbuf *b = calloc(1, sizeof *b);
    lock_take();
    if (b == NULL || pthread_setspecific(tb_key, b) != 0) {
        trace_fail("out of memory");
        lock_give();
        free(b);
        return NULL;
    }
    int known = my_tid1 != 0;
    b->tid = known ? my_tid1 - 1 : n_threads++;
    my_tid1 = b->tid + 1;
    uint64_t s = ++seq;
    lock_give();
    tb = b;
    if (!known)
        emit(b, CV_TOP_THREAD, 0, b->tid, 0, 0, s);
    return b;
}

static inline void emit(tbuf *b, int op, unsigned flags, uint32_t a, uint32_t x,
                        uint32_t c, uint64_t s)
{
    uint32_t len = CV_TRACE_REC_BYTES + (cv_trace_has_seq(op, flags) ? CV_TRACE_SEQ_BYTES : 0);
    if (b->used + len > TBUF_BYTES) {
        lock_take();
        flush_locked(b);
        lock_give();
    }
    unsigned char *p = b->buf + b->used;
    p[0] = (unsigned char)op;
    p[1] = (unsigned char)flags;
    p[2] = p[3] = 0;
    put32(p + 4, a);
    put32(p + 8, x);
    put32(p + 12, c);
    if (len > CV_TRACE_REC_BYTES)
        memcpy(p + CV_TRACE_REC_BYTES, &s, CV_TRACE_SEQ_BYTES);
    b->last = b->used;
    b->used += len;
    b->nrec++;
}

/* Ids that came back 0: a table ran out of memory. */
static int ids_ok_locked(uint32_t a, int need_a)
{
    if (need_a && a == 0) {
        trace_fail("out of memory");
        return 0;
    }
    return 1;
}

static uint32_t value_id(tbuf *b, const void *value)
{
    if (value == NULL)
        return 0;
    uintptr_t p = (uintptr_t)value;
    unsigned i = vcache_index(p);
    if (b->vals[i].p == p)
        return b->vals[i].id;
    lock_take();
    uint32_t id = tab_get(&t_vals, p);
    if (id == 0)
        trace_fail("out of memory");
    lock_give();
    if (id) {
        b->vals[i].p = p;
        b->vals[i].id = id;
    }
    return id;
}

/* The id of v, announcing it by a VAR_NEW if it is new to the trace. */
static uint32_t var_id(tbuf *b, const cv_var *v, int creating)
{
    uintptr_t p = (uintptr_t)v;
    unsigned i = var_slot(v);
    uint64_t ep = atomic_load_explicit(&var_epoch, memory_order_acquire);
    if (!creating && b->vars[i].p == p && b->vars[i].epoch == ep)
        return b->vars[i].id;
    lock_take();
    uint32_t id = creating ? 0 : tab_find(&t_vars, p);
    int fresh = id == 0;
    if (fresh)
        id = tab_assign(&t_vars, p);
    if (id == 0)
        trace_fail("out of memory");
    lock_give();
    if (id == 0)
        return 0;
    b->vars[i].p = p;
    b->vars[i].id = id;
    b->vars[i].epoch = ep;
    if (fresh && !creating) /* made before tracing could see it */
        emit(b, CV_TOP_VAR_NEW, (v->v_has_default ? CV_TF_DEFAULT : 0u) |
                                (v->v_retain ? CV_TF_HOOKS : 0u),
             id, value_id(b, v->v_default), 0, 0);
    return id;
}

void cv__trace_var(int op, const cv_var *v, unsigned flags, const void *value)
{
    if (!cv__trace_active())
        return;
    tbuf *b = my_buf();
    if (b == NULL)
        return;
    uint32_t id = var_id(b, v, op == CV_TOP_VAR_NEW);
    if (id == 0)
        return;
    uint32_t val = op == CV_TOP_VAR_NEW && (flags & CV_TF_DEFAULT) ? value_id(b, value) : 0;
    emit(b, op, flags, id, val, 0, 0);
}

/* The get, the most frequent record: a short one (4 bytes: op | SHORT,
 * flags, u16 var) when the var's id is cached and fits, else the long form. */
void cv__trace_get(const cv_var *v, unsigned flags)
{
    tbuf *b = tb;
    if (CV_LIKELY(b != NULL &&
                  atomic_load_explicit(&cv__trace_mode, memory_order_relaxed) ==
                      CV_TRACE_RECORDING)) {
        uintptr_t p = (uintptr_t)v;
        unsigned i = var_slot(v);
        if (CV_LIKELY(b->vars[i].p == p &&
                      b->vars[i].epoch ==
                          atomic_load_explicit(&var_epoch, memory_order_relaxed) &&
                      b->vars[i].id <= 0xffff && b->used + CV_TRACE_SHORT_BYTES <= TBUF_BYTES)) {
            unsigned char *q = b->buf + b->used;
            uint16_t id = (uint16_t)b->vars[i].id;
            q[0] = (unsigned char)(CV_TOP_GET | CV_TOP_SHORT);
            q[1] = (unsigned char)flags;
            memcpy(q + 2, &id, 2);
            b->last = b->used;
            b->used += CV_TRACE_SHORT_BYTES;
            b->nrec++;
            return;
        }
    }
    cv__trace_var(CV_TOP_GET, v, flags, NULL);
}

void cv__trace_var_free(const cv_var *v)
{
    if (!cv__trace_active())
        return;
    lock_take();
    tab_remove(&t_vars, (uintptr_t)v);
    atomic_fetch_add_explicit(&var_epoch, 1, memory_order_release);
    lock_give();
}

void cv__trace_set(const cv_var *v, const void *value, const cv_token *tok)
{
    if (!cv__trace_active())
        return;
    tbuf *b = my_buf();
    if (b == NULL)
        return;
    uint32_t id = var_id(b, v, 0), val = value_id(b, value);
    if (id == 0 || (value != NULL && val == 0))
        return;
    if (tok == NULL) {
        emit(b, CV_TOP_SET, 0, id, val, 0, 0);
        return;
    }
    lock_take();
    uint32_t t = tab_assign(&t_toks, (uintptr_t)tok);
    uint64_t s = ++seq;
    int ok = ids_ok_locked(t, 1);
    lock_give();
    if (ok)
        emit(b, CV_TOP_SET, CV_TF_TOKEN, id, val, t, s);
}

void cv__trace_token(int op, const cv_var *v, const cv_token *t,
                     const cv_context *tctx)
{
    if (!cv__trace_active())
        return;
    tbuf *b = my_buf();
    if (b == NULL)
        return;
    uint32_t id = op == CV_TOP_RESET ? var_id(b, v, 0) : 0;
    if (op == CV_TOP_RESET && id == 0)
        return;
    lock_take();
    uint32_t tid = tab_get(&t_toks, (uintptr_t)t);
    if (op == CV_TOP_TOKEN_RELEASE) {
        tab_remove(&t_toks, (uintptr_t)t);
        b->skip_release = tctx;
    }
    uint64_t s = ++seq;
    int ok = ids_ok_locked(tid, 1);
    lock_give();
    if (ok)
        emit(b, op, 0, op == CV_TOP_RESET ? id : tid, op == CV_TOP_RESET ? tid : 0, 0, s);
}

void cv__trace_ctx(int op, const cv_context *c, const cv_context *other,
                   const cv_var *v, unsigned flags)
{
    if (!cv__trace_active())
        return;
    tbuf *b = my_buf();
    if (b == NULL)
        return;
    if (op == CV_TOP_CTX_RELEASE && b->skip_release != NULL && b->skip_release == c) {
        b->skip_release = NULL; /* cv_token_release dropping its context */
        return;
    }
    uint32_t vid = 0;
    if (op == CV_TOP_CTX_GET && (vid = var_id(b, v, 0)) == 0)
        return;
    if (op == CV_TOP_RUN && b->used > 0 && b->buf[b->last] == CV_TOP_ENTER) {
        /* cv_context_run entered c through cv_context_enter: that record
         * becomes the RUN. */
        b->buf[b->last] = CV_TOP_RUN;
        return;
    }
    lock_take();
    uint32_t a = 0, x = 0;
    int ok = 1;
    switch (op) {
    case CV_TOP_CTX_NEW:
    case CV_TOP_CTX_BASE:
        a = tab_assign(&t_ctxs, (uintptr_t)c);
        ok = ids_ok_locked(a, 1);
        break;
    case CV_TOP_COPY:
        a = tab_get(&t_ctxs, (uintptr_t)c);
        x = tab_assign(&t_ctxs, (uintptr_t)other);
        ok = ids_ok_locked(a, 1) && ids_ok_locked(x, 1);
        break;
    case CV_TOP_RUN_END:
    case CV_TOP_CLEANUP:
        break;
    case CV_TOP_CTX_GET:
        x = vid;
        /* fall through */
    default:
        a = tab_get(&t_ctxs, (uintptr_t)c);
        ok = ids_ok_locked(a, 1);
        break;
    }
    uint64_t s = ++seq;
    lock_give();
    if (ok)
        emit(b, op, flags, a, x, 0, s);
}

void cv__trace_ctx_free(const cv_context *c)
{
    if (!cv__trace_active())
        return;
    lock_take();
    tab_remove(&t_ctxs, (uintptr_t)c);
    lock_give();
}
