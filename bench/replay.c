/* SPDX-License-Identifier: MIT */
/*
 * replay.c -- replays a CTXVAR_TRACE trace (docs/TRACE.md) on every backend.
 *
 *   replay [--backends a,b] [--repeat R] [--json] [--digest] [--check] TRACE
 *
 * The trace is read and validated whole before anything runs: a bad magic,
 * version, byte order, a truncated block, an unknown operation, an id out of
 * range or never made, a RUN_END without its RUN, sequence numbers out of
 * order -- each is one line on stderr naming the offset, and exit status 2.
 * A replay never misuses the library even if the trace lies: the replayer
 * keeps its own account of which contexts and tokens are alive and owned,
 * and refuses (status 3) an operation on one that is not.
 *
 * Each recorded thread is replayed by a thread of its own, in its recorded
 * order. Operations naming a context or a token carry a sequence number; an
 * operation waits for the previous operation on the same object when that
 * was another thread's (a context copied on one thread and run on another).
 * Values are recreated as distinct addresses, one per recorded identity.
 * Vars are made before the clock starts and released after it stops.
 *
 * Per backend: R timed runs (median, min, max of the wall time of all
 * threads), one more under a counting allocator (peak bytes), and a
 * baseline run that walks the same records calling nothing (the
 * replayer's own cost, subtracted as "net").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CV_NO_INLINE_GET /* every get through the library, as traced */
#include "ctxvar.h"
#include "digest.h"
#include "trace_format.h" /* the format, as the recorder writes it */

static const char *const op_name[CV_TOP__COUNT] = {
    "end", "thread", "var_new", "var_release", "get", "set", "reset",
    "token_release", "ctx_new", "ctx_base", "copy", "enter", "exit", "run",
    "run_end", "ctx_release", "cleanup", "ctx_get", "foreach", "ctx_retain"};
#define MAX_THREADS 1024u
#define MAX_RUN_DEPTH 100000u
#define WAIT_LIMIT_NS (20ull * 1000000000ull)

typedef struct rec { /* 32 bytes: the replay walks millions of them */
    uint8_t op, flags;
    uint16_t thr;  /* the stream it belongs to */
    uint32_t a, b, c;
    int32_t dep;   /* index into the sync table of the op to wait for, or -1 */
    int32_t sidx;  /* this record's index in the sync table, or -1 */
    uint64_t seq;
} rec;

typedef struct stream {
    rec *r;
    size_t n, cap;
} stream;

/* ------------------------------------------------------------------------
 * Loading and validation
 * ------------------------------------------------------------------------ */
static const char *trace_path;

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "replay: %s: ", trace_path ? trace_path : "?");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static stream *streams;
static uint32_t n_streams;
static uint32_t n_vars, n_ctxs, n_toks, n_vals; /* largest ids */
static int have_end;
static char rec_backend[32];
static unsigned ptr_bytes;
/* from the records: what each var was made with */
static uint8_t *var_flags;    /* [id]: 0x80 made, CV_TF_DEFAULT, CV_TF_HOOKS */
static uint32_t *var_default; /* [id]: value id of the default */
static rec **sync_tab;        /* every record with a seq, by seq */
static size_t n_sync;

static void push(stream *s, const rec *r)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->r = realloc(s->r, s->cap * sizeof *s->r);
        if (s->r == NULL)
            die(4, "out of memory");
    }
    s->r[s->n++] = *r;
}

static int cmp_seq(const void *x, const void *y)
{
    const rec *a = *(rec *const *)x, *b = *(rec *const *)y;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die(2, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            die(4, "out of memory");
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f))
        die(2, "read error");
    fclose(f);
    if (len < CV_TRACE_HEADER_BYTES)
        die(2, "not a ctxvar trace: %zu bytes, shorter than the %u-byte header", len,
            CV_TRACE_HEADER_BYTES);
    /* the magic's last character is the version's */
    if (memcmp(buf, CV_TRACE_MAGIC, 7) != 0)
        die(2, "not a ctxvar trace: bad magic (want \"" CV_TRACE_MAGIC "\")");
    uint32_t version = get32(buf + 8);
    if (buf[7] != CV_TRACE_MAGIC[7] || version != CV_TRACE_VERSION)
        die(2, "trace format version %u, this replayer reads version %u", version,
            CV_TRACE_VERSION);
    if (get32(buf + 12) != CV_TRACE_BYTE_ORDER)
        die(2, "trace written with another byte order (0x%08x)", get32(buf + 12));
    ptr_bytes = buf[CV_TRACE_HDR_PTR_BYTES];
    if (buf[CV_TRACE_HDR_REC_BYTES] != CV_TRACE_REC_BYTES ||
        buf[CV_TRACE_HDR_HEADER_BYTES] != CV_TRACE_HEADER_BYTES)
        die(2, "bad header: record size %u, header size %u", buf[CV_TRACE_HDR_REC_BYTES],
            buf[CV_TRACE_HDR_HEADER_BYTES]);
    memcpy(rec_backend, buf + CV_TRACE_HDR_BACKEND, CV_TRACE_BACKEND_BYTES - 1);
    rec_backend[CV_TRACE_BACKEND_BYTES - 1] = '\0';

    uint32_t *tid_map = NULL; /* trace tid -> stream index + 1 */
    size_t tid_cap = 0;
    size_t off = CV_TRACE_HEADER_BYTES;
    uint32_t max_var = 0, max_ctx = 0, max_tok = 0, max_val = 0;
    uint32_t end_counts[4] = {0};
    uint32_t end_threads = 0;
    while (off < len) {
        if (len - off < CV_TRACE_BLOCK_BYTES)
            die(2, "truncated block header at offset %zu", off);
        if (have_end)
            die(2, "data after the end block at offset %zu", off);
        uint32_t magic = get32(buf + off), tid = get32(buf + off + 4);
        uint32_t nbytes = get32(buf + off + 8), nrec = get32(buf + off + 12);
        if (magic != CV_TRACE_BLOCK_MAGIC)
            die(2, "bad block magic at offset %zu", off);
        off += CV_TRACE_BLOCK_BYTES;
        if (nbytes > len - off)
            die(2, "truncated block at offset %zu: %u bytes announced, %zu left",
                off - CV_TRACE_BLOCK_BYTES, nbytes, len - off);
        stream *s = NULL;
        if (tid != CV_TRACE_END_THREAD) {
            if (tid >= MAX_THREADS)
                die(2, "thread id %u at offset %zu: more than %u threads", tid,
                    off - CV_TRACE_BLOCK_BYTES, MAX_THREADS);
            if (tid >= tid_cap) {
                size_t nc = tid + 1;
                tid_map = realloc(tid_map, nc * sizeof *tid_map);
                memset(tid_map + tid_cap, 0, (nc - tid_cap) * sizeof *tid_map);
                tid_cap = nc;
            }
            if (tid_map[tid] == 0) {
                streams = realloc(streams, (n_streams + 1) * sizeof *streams);
                memset(&streams[n_streams], 0, sizeof *streams);
                tid_map[tid] = ++n_streams;
            }
            s = &streams[tid_map[tid] - 1];
        }
        size_t end = off + nbytes;
        uint32_t count = 0;
        while (off < end) {
            rec r = {0};
            if (buf[off] & CV_TOP_SHORT) { /* short: a get, 4 bytes */
                if (s == NULL)
                    die(2, "short record in the end block at offset %zu", off);
                if (end - off < CV_TRACE_SHORT_BYTES)
                    die(2, "truncated record at offset %zu", off);
                r.op = buf[off] & (CV_TOP_SHORT - 1u);
                r.flags = buf[off + 1];
                uint16_t id;
                memcpy(&id, buf + off + 2, 2);
                r.a = id;
                r.dep = r.sidx = -1;
                if (r.op != CV_TOP_GET)
                    die(2, "short record of %s at offset %zu (only gets are short)",
                        r.op < CV_TOP__COUNT ? op_name[r.op] : "an unknown operation", off);
                if (r.flags & ~3u)
                    die(2, "bad flags 0x%x on get at offset %zu", r.flags, off);
                if (s->n == 0)
                    die(2, "thread %u does not start with a thread record (offset %zu)", tid,
                        off);
                push(s, &r);
                off += CV_TRACE_SHORT_BYTES;
                count++;
                continue;
            }
            if (end - off < CV_TRACE_REC_BYTES)
                die(2, "truncated record at offset %zu", off);
            r.op = buf[off];
            r.flags = buf[off + 1];
            r.a = get32(buf + off + 4);
            r.b = get32(buf + off + 8);
            r.c = get32(buf + off + 12);
            r.dep = r.sidx = -1;
            if (r.op >= CV_TOP__COUNT)
                die(2, "unknown operation %u at offset %zu", r.op, off);
            if ((r.op == CV_TOP_END) != (s == NULL))
                die(2, "%s record in a %s block at offset %zu", op_name[r.op],
                    s ? "thread" : "end", off);
            size_t rl = CV_TRACE_REC_BYTES +
                        (cv_trace_has_seq(r.op, r.flags) || r.op == CV_TOP_END ? CV_TRACE_SEQ_BYTES
                                                                               : 0);
            if (end - off < rl)
                die(2, "truncated record at offset %zu", off);
            if (rl > CV_TRACE_REC_BYTES)
                memcpy(&r.seq, buf + off + CV_TRACE_REC_BYTES, CV_TRACE_SEQ_BYTES);
            if (r.op == CV_TOP_END) {
                end_counts[0] = r.a;
                end_counts[1] = r.b;
                end_counts[2] = r.c;
                end_counts[3] = (uint32_t)r.seq;
                end_threads = (uint32_t)(r.seq >> 32);
                have_end = 1;
            } else {
                if (r.flags & ~3u)
                    die(2, "bad flags 0x%x on %s at offset %zu", r.flags, op_name[r.op], off);
                if (s->n == 0 && r.op != CV_TOP_THREAD)
                    die(2, "thread %u does not start with a thread record (offset %zu)", tid,
                        off);
                if (r.op == CV_TOP_THREAD && (s->n != 0 || r.a != tid))
                    die(2, "stray thread record at offset %zu", off);
                push(s, &r);
            }
            off += rl;
            count++;
        }
        if (count != nrec)
            die(2, "block at offset %zu holds %u records, announced %u",
                end - nbytes - CV_TRACE_BLOCK_BYTES, count, nrec);
    }
    free(buf);
    free(tid_map);
    if (n_streams == 0)
        die(2, "the trace holds no operations");

    /* Ids: the ranges, what made each, and the sync order. */
    for (uint32_t t = 0; t < n_streams; t++) {
        for (size_t i = 0; i < streams[t].n; i++) {
            rec *r = &streams[t].r[i];
            uint32_t v = 0, c1 = 0, c2 = 0, tk = 0, val = 0;
            switch (r->op) {
            case CV_TOP_VAR_NEW: v = r->a; val = r->b; break;
            case CV_TOP_VAR_RELEASE: case CV_TOP_GET: v = r->a; break;
            case CV_TOP_SET: v = r->a; val = r->b; tk = r->c; break;
            case CV_TOP_RESET: v = r->a; tk = r->b; break;
            case CV_TOP_TOKEN_RELEASE: tk = r->a; break;
            case CV_TOP_CTX_NEW: case CV_TOP_CTX_BASE: case CV_TOP_ENTER: case CV_TOP_EXIT: case CV_TOP_RUN:
            case CV_TOP_CTX_RELEASE: case CV_TOP_FOREACH: case CV_TOP_CTX_RETAIN: c1 = r->a; break;
            case CV_TOP_COPY: c1 = r->a; c2 = r->b; break;
            case CV_TOP_CTX_GET: c1 = r->a; v = r->b; break;
            default: break;
            }
            if (v > max_var) max_var = v;
            if (c1 > max_ctx) max_ctx = c1;
            if (c2 > max_ctx) max_ctx = c2;
            if (tk > max_tok) max_tok = tk;
            if (val > max_val) max_val = val;
            if (cv_trace_has_seq(r->op, r->flags))
                n_sync++;
        }
    }
    if (have_end) {
        if (max_var > end_counts[0] || max_ctx > end_counts[1] || max_tok > end_counts[2] ||
            max_val > end_counts[3])
            die(2, "an id is out of range (vars %u/%u, contexts %u/%u, tokens %u/%u, "
                   "values %u/%u)", max_var, end_counts[0], max_ctx, end_counts[1], max_tok,
                end_counts[2], max_val, end_counts[3]);
        if (end_threads != n_streams)
            die(2, "the end block counts %u threads, the trace holds %u", end_threads,
                n_streams);
    } else {
        fprintf(stderr, "replay: %s: warning: no end block (the program did not exit "
                        "through exit/return from main?); replaying what is there\n", path);
    }
    if (max_var > (1u << 24) || max_ctx > (1u << 28) || max_tok > (1u << 28) ||
        max_val > (1u << 28))
        die(2, "an id is implausibly large (var %u, context %u, token %u, value %u)",
            max_var, max_ctx, max_tok, max_val);
    n_vars = max_var;
    n_ctxs = max_ctx;
    n_toks = max_tok;
    n_vals = max_val;
    var_flags = calloc(n_vars + 1, 1);
    var_default = calloc(n_vars + 1, sizeof *var_default);
    uint8_t *ctx_made = calloc(n_ctxs + 1, 1), *tok_made = calloc(n_toks + 1, 1);
    sync_tab = malloc((n_sync + 1) * sizeof *sync_tab);
    if (!var_flags || !var_default || !ctx_made || !tok_made || !sync_tab)
        die(4, "out of memory");
    size_t k = 0;
    for (uint32_t t = 0; t < n_streams; t++) {
        uint32_t *runs = NULL;
        size_t nruns = 0, capruns = 0;
        uint64_t last_seq = 0;
        for (size_t i = 0; i < streams[t].n; i++) {
            rec *r = &streams[t].r[i];
            if (r->op == CV_TOP_VAR_NEW) {
                if (r->a == 0 || (var_flags[r->a] & 0x80))
                    die(2, "var %u made twice (thread %u, record %zu)", r->a, t, i);
                var_flags[r->a] = (uint8_t)(0x80 | r->flags);
                var_default[r->a] = r->b;
            }
            if (r->op == CV_TOP_CTX_NEW || r->op == CV_TOP_CTX_BASE || r->op == CV_TOP_COPY) {
                uint32_t c = r->op == CV_TOP_COPY ? r->b : r->a;
                if (c == 0 || ctx_made[c])
                    die(2, "context %u made twice (thread %u, record %zu)", c, t, i);
                ctx_made[c] = 1;
            }
            if (r->op == CV_TOP_SET && (r->flags & CV_TF_TOKEN)) {
                if (r->c == 0 || tok_made[r->c])
                    die(2, "token %u made twice (thread %u, record %zu)", r->c, t, i);
                tok_made[r->c] = 1;
            }
            if (r->op == CV_TOP_RUN) {
                if (nruns == capruns) {
                    capruns = capruns ? capruns * 2 : 64;
                    runs = realloc(runs, capruns * sizeof *runs);
                    if (runs == NULL)
                        die(4, "out of memory");
                }
                runs[nruns++] = r->a;
                if (nruns > MAX_RUN_DEPTH)
                    die(2, "runs nested deeper than %u (thread %u)", MAX_RUN_DEPTH, t);
            }
            if (r->op == CV_TOP_RUN_END) {
                if (nruns == 0)
                    die(2, "run_end without its run (thread %u, record %zu)", t, i);
                r->a = runs[--nruns]; /* the context the run leaves */
            }
            r->thr = (uint16_t)t;
            if (cv_trace_has_seq(r->op, r->flags)) {
                if (r->seq <= last_seq)
                    die(2, "sequence numbers out of order in thread %u (record %zu)", t, i);
                last_seq = r->seq;
                sync_tab[k++] = r;
            }
        }
        free(runs);
    }
    if (n_sync > INT32_MAX)
        die(2, "more than 2^31 ordered operations");
    qsort(sync_tab, n_sync, sizeof *sync_tab, cmp_seq);
    for (size_t i = 1; i < n_sync; i++)
        if (sync_tab[i]->seq == sync_tab[i - 1]->seq)
            die(2, "sequence number %" PRIu64 " used twice", sync_tab[i]->seq);
    /* Every id used was made somewhere. */
    for (uint32_t t = 0; t < n_streams; t++) {
        for (size_t i = 0; i < streams[t].n; i++) {
            rec *r = &streams[t].r[i];
            uint32_t v = 0, c = 0, tk = 0;
            switch (r->op) {
            case CV_TOP_VAR_RELEASE: case CV_TOP_GET: case CV_TOP_SET: case CV_TOP_RESET: v = r->a; break;
            case CV_TOP_CTX_GET: v = r->b; c = r->a; break;
            case CV_TOP_ENTER: case CV_TOP_EXIT: case CV_TOP_RUN: case CV_TOP_CTX_RELEASE: case CV_TOP_FOREACH:
            case CV_TOP_COPY: case CV_TOP_CTX_RETAIN: c = r->a; break;
            default: break;
            }
            if (r->op == CV_TOP_RESET) tk = r->b;
            if (r->op == CV_TOP_TOKEN_RELEASE) tk = r->a;
            if (r->op != CV_TOP_VAR_NEW && r->op != CV_TOP_THREAD && v == 0 &&
                (r->op == CV_TOP_GET || r->op == CV_TOP_SET || r->op == CV_TOP_RESET ||
                 r->op == CV_TOP_VAR_RELEASE || r->op == CV_TOP_CTX_GET))
                die(2, "%s of var 0 (thread %u, record %zu)", op_name[r->op], t, i);
            if (v && !(var_flags[v] & 0x80))
                die(2, "var %u used but never made (thread %u, record %zu)", v, t, i);
            if (c && !ctx_made[c])
                die(2, "context %u used but never made (thread %u, record %zu)", c, t, i);
            if ((r->op == CV_TOP_ENTER || r->op == CV_TOP_EXIT || r->op == CV_TOP_RUN ||
                 r->op == CV_TOP_CTX_RELEASE || r->op == CV_TOP_FOREACH || r->op == CV_TOP_COPY ||
                 r->op == CV_TOP_CTX_GET || r->op == CV_TOP_CTX_RETAIN) && c == 0)
                die(2, "%s of context 0 (thread %u, record %zu)", op_name[r->op], t, i);
            if ((r->op == CV_TOP_RESET || r->op == CV_TOP_TOKEN_RELEASE) && (tk == 0 || !tok_made[tk]))
                die(2, "token %u used but never made (thread %u, record %zu)", tk, t, i);
        }
    }
    /* Dependencies: the previous sync op on the same object, if another
     * thread's. Objects: contexts 1..n_ctxs, tokens after them. */
    size_t nobj = (size_t)n_ctxs + n_toks + 2;
    int64_t *last = malloc(nobj * sizeof *last);
    const rec **last_rec = calloc(nobj, sizeof *last_rec);
    uint32_t *last_thr = calloc(nobj, sizeof *last_thr);
    if (!last || !last_rec || !last_thr)
        die(4, "out of memory");
    for (size_t i = 0; i < nobj; i++)
        last[i] = -1;
    /* thread of each record: found by address range */
    for (size_t i = 0; i < n_sync; i++)
        sync_tab[i]->sidx = (int32_t)i;
    for (size_t i = 0; i < n_sync; i++) {
        rec *r = sync_tab[i];
        uint32_t thr = r->thr;
        size_t objs[2];
        int no = 0;
        switch (r->op) {
        case CV_TOP_COPY: objs[no++] = r->a; objs[no++] = r->b; break;
        case CV_TOP_SET: objs[no++] = (size_t)n_ctxs + 1 + r->c; break;
        case CV_TOP_RESET: objs[no++] = (size_t)n_ctxs + 1 + r->b; break;
        case CV_TOP_TOKEN_RELEASE: objs[no++] = (size_t)n_ctxs + 1 + r->a; break;
        case CV_TOP_THREAD: case CV_TOP_CLEANUP: break;
        default: objs[no++] = r->a; break;
        }
        for (int j = 0; j < no; j++) {
            size_t o = objs[j];
            if (last[o] >= 0 && last_thr[o] != thr && last[o] > r->dep)
                r->dep = (int32_t)last[o];
            last[o] = (int64_t)i;
            last_thr[o] = thr;
        }
    }
    free(last);
    free(last_rec);
    free(last_thr);
    free(ctx_made);
    free(tok_made);
}

/* ------------------------------------------------------------------------
 * The summary (one pass over the records, no library)
 * ------------------------------------------------------------------------ */
static void print_summary_json(FILE *o)
{
    uint64_t per_op[CV_TOP__COUNT] = {0};
    uint64_t gets_found = 0, sets_tok = 0, total = 0;
    for (uint32_t t = 0; t < n_streams; t++)
        for (size_t i = 0; i < streams[t].n; i++) {
            rec *r = &streams[t].r[i];
            per_op[r->op]++;
            total++;
            if (r->op == CV_TOP_GET && (r->flags & CV_TF_FOUND))
                gets_found++;
            if (r->op == CV_TOP_SET && (r->flags & CV_TF_TOKEN))
                sets_tok++;
        }
    fprintf(o, "{\"threads\":%u,\"records\":%" PRIu64 ",\"vars\":%u,\"contexts\":%u,"
               "\"tokens\":%u,\"values\":%u,\"recorded_backend\":\"%s\",\"pointer_bytes\":%u,"
               "\"complete\":%s,\"gets_found\":%" PRIu64 ",\"sets_with_token\":%" PRIu64
               ",\"ops\":{",
            n_streams, total, n_vars, n_ctxs, n_toks, n_vals, rec_backend, ptr_bytes,
            have_end ? "true" : "false", gets_found, sets_tok);
    int first = 1;
    for (int op = 1; op < CV_TOP__COUNT; op++) {
        if (!per_op[op])
            continue;
        fprintf(o, "%s\"%s\":%" PRIu64, first ? "" : ",", op_name[op], per_op[op]);
        first = 0;
    }
    fprintf(o, "},\"per_thread\":[");
    for (uint32_t t = 0; t < n_streams; t++)
        fprintf(o, "%s%zu", t ? "," : "", streams[t].n);
    fprintf(o, "]}");
}

/* ------------------------------------------------------------------------
 * Replaying
 * ------------------------------------------------------------------------ */
typedef struct ctx_slot {
    cv_context *p;
    _Atomic int owned;   /* references the program holds (new/copy: 1, each
                          * retain one more); the library's one is dropped
                          * when the last goes */
    _Atomic int entered; /* entered by some replay thread */
    _Atomic int alive;   /* made and not yet freed (as far as we know) */
    int is_base;
} ctx_slot;

typedef struct tok_slot {
    cv_token *p;
    _Atomic int alive;
} tok_slot;

static cv_var **vars;
static char *val_base;           /* value id i is val_base + i; 0 is NULL */
static ctx_slot *ctxs;
static tok_slot *toks;
static _Atomic uint8_t *done;    /* [sidx]: executed */
static _Atomic int abort_all;
static _Atomic int start_flag;
static int mode_null;            /* baseline: walk, call nothing */
static int mode_digest;
static int mode_profile;         /* sample the context's size at gets and sets */

typedef struct entered {
    uint32_t c;
    int by_run;
    uint64_t gen_below; /* profile: the cache generation this level covers */
} entered;

typedef struct rthread {
    uint32_t t;
    size_t i;
    entered *stack;
    size_t depth, cap;
    unsigned cleanups;
    uint32_t base;          /* ctx id of this thread's base, or 0 */
    uint64_t end_ns;
    char err[256];
    uint64_t sum_len, n_len, max_len; /* profile: context sizes at gets/sets */
    uint64_t *len_hist;     /* profile: mean size per tenth of the stream */
    uint64_t *len_cnt;
    uint64_t depth_sum, depth_n, depth_max; /* copy-chain depth at gets */
    /* profile: a model of the library's per-thread cache (64 slots,
     * generations, exit restoring the level below) and of shared maps */
    uint64_t gen, gen_seq;
    uint32_t slot_var[64];
    uint64_t slot_gen[64];
    uint64_t gets, misses, sets, first_writes;
    uint64_t hist_sum, hist_max, hist_parent_sum, parent_first_writes, snap_writes;
    pthread_t th;
} rthread;

static uint32_t *chain_depth; /* profile: [ctx id] copies since a new/base */
static uint8_t *ctx_shared;   /* profile: [ctx id] map shared since its last write */
static uint32_t *hist_depth;  /* profile: [ctx id] copy+write levels in its history */
static uint32_t *hist_parent; /* profile: [ctx id] of them, written on the side that
                               * was copied (a snapshot kept, the context goes on) */
static uint32_t *own_snaps;   /* profile: [ctx id] such levels of its own (not
                               * inherited by its copies) */

static uint32_t cur_ctx(const rthread *rt)
{
    return rt->depth ? rt->stack[rt->depth - 1].c : rt->base;
}

static void prof_get(rthread *rt, uint32_t v)
{
    unsigned k = v & 63;
    rt->gets++;
    if (rt->slot_var[k] != v || rt->slot_gen[k] != rt->gen) {
        rt->misses++;
        rt->slot_var[k] = v;
        rt->slot_gen[k] = rt->gen;
    }
}

static void prof_set(rthread *rt, uint32_t v)
{
    unsigned k = v & 63;
    rt->sets++;
    {
        uint32_t cc = cur_ctx(rt);
        if (cc && own_snaps && own_snaps[cc])
            rt->snap_writes++; /* a write in a context that keeps being snapshotted */
    }
    rt->slot_var[k] = v;
    rt->slot_gen[k] = rt->gen;
    uint32_t c = cur_ctx(rt);
    if (c && ctx_shared && ctx_shared[c]) {
        rt->first_writes++;
        if (ctx_shared[c] == 2) { /* the source of a copy writes again */
            rt->parent_first_writes++;
            hist_parent[c]++;
            own_snaps[c]++;
        }
        ctx_shared[c] = 0;
        hist_depth[c]++; /* a level: shared, then written */
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fail(rthread *rt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(rt->err, sizeof rt->err, "thread %u, record %zu: ", rt->t, rt->i - 1);
    vsnprintf(rt->err + n, sizeof rt->err - (size_t)n, fmt, ap);
    va_end(ap);
    atomic_store(&abort_all, 1);
    return -1;
}

static int wait_dep(rthread *rt, const rec *r)
{
    if (r->dep < 0 || atomic_load_explicit(&done[r->dep], memory_order_acquire))
        return 0;
    uint64_t t0 = now_ns();
    for (unsigned spin = 0; !atomic_load_explicit(&done[r->dep], memory_order_acquire); spin++) {
        if (atomic_load_explicit(&abort_all, memory_order_relaxed))
            return -1;
        if (spin > 64)
            sched_yield();
        if ((spin & 1023) == 1023 && now_ns() - t0 > WAIT_LIMIT_NS)
            return fail(rt, "waited 20 s for another thread's operation: the trace's "
                            "order cannot be replayed");
    }
    return 0;
}

static void mark(const rec *r)
{
    if (r->sidx >= 0)
        atomic_store_explicit(&done[r->sidx], 1, memory_order_release);
}

static int ctx_usable(const ctx_slot *s)
{
    return s->p != NULL && atomic_load(&s->alive) &&
           (atomic_load(&s->owned) || atomic_load(&s->entered) || s->is_base);
}

static int push_entered(rthread *rt, uint32_t c, int by_run)
{
    if (rt->depth == rt->cap) {
        rt->cap = rt->cap ? rt->cap * 2 : 64;
        entered *n = realloc(rt->stack, rt->cap * sizeof *n);
        if (n == NULL)
            return fail(rt, "out of memory");
        rt->stack = n;
    }
    rt->stack[rt->depth].c = c;
    rt->stack[rt->depth].by_run = by_run;
    rt->stack[rt->depth].gen_below = rt->gen;
    rt->gen = ++rt->gen_seq;
    rt->depth++;
    atomic_store(&ctxs[c].entered, 1);
    return 0;
}

static void pop_entered(rthread *rt)
{
    uint32_t c = rt->stack[--rt->depth].c;
    rt->gen = rt->stack[rt->depth].gen_below;
    atomic_store(&ctxs[c].entered, 0);
    if (!atomic_load(&ctxs[c].owned) && !ctxs[c].is_base)
        atomic_store(&ctxs[c].alive, 0); /* freed by the library */
}

static void drop_base(rthread *rt)
{
    if (rt->base) {
        atomic_store(&ctxs[rt->base].alive, 0);
        rt->base = 0;
    }
}

static int digest_cb(cv_var *v, void *value, void *arg)
{
    digest *d = arg;
    uint64_t vid = strtoull(cv_var_name(v) + 1, NULL, 10);
    uint64_t xid = value ? (uint64_t)((char *)value - val_base) : 0;
    digest_add(d, vid, xid);
    return 0;
}

static int count_cb(cv_var *v, void *value, void *arg)
{
    (void)v;
    (void)value;
    (*(size_t *)arg)++;
    return 0;
}

static void hook_noop(void *value, void *ud)
{
    (void)value;
    (void)ud;
}

static int exec(rthread *rt, int in_run);

static int run_fn(void *arg)
{
    return exec(arg, 1);
}

static void profile_sample(rthread *rt)
{
    cv_context *cur = cv_context_current();
    size_t n = cv_context_len(cur);
    rt->sum_len += n;
    rt->n_len++;
    if (n > rt->max_len)
        rt->max_len = n;
    size_t tenth = streams[rt->t].n ? rt->i * 10 / (streams[rt->t].n + 1) : 0;
    rt->len_hist[tenth] += n;
    rt->len_cnt[tenth]++;
    uint32_t c = rt->depth ? rt->stack[rt->depth - 1].c : rt->base;
    uint32_t d = c && chain_depth ? chain_depth[c] : 0;
    uint32_t h = c && hist_depth ? hist_depth[c] : 0;
    rt->hist_sum += h;
    rt->hist_parent_sum += c && hist_parent ? hist_parent[c] : 0;
    if (h > rt->hist_max)
        rt->hist_max = h;
    rt->depth_sum += d;
    rt->depth_n++;
    if (d > rt->depth_max)
        rt->depth_max = d;
}

/* Runs records until the stream ends or (in_run) the RUN_END of the run
 * that called it. 0, or -1 with rt->err set. */
static int exec(rthread *rt, int in_run)
{
    stream *s = &streams[rt->t];
    while (rt->i < s->n) {
        if (atomic_load_explicit(&abort_all, memory_order_relaxed))
            return -1;
        const rec *r = &s->r[rt->i++];
        if (wait_dep(rt, r) < 0)
            return -1;
        if (mode_null && r->op != CV_TOP_RUN_END) {
            /* the baseline: the walk alone, each run still a nested walk */
            mark(r);
            if (r->op == CV_TOP_RUN) {
                if (exec(rt, 1) < 0)
                    return -1;
                mark(&s->r[rt->i - 1]); /* its RUN_END, consumed inside */
            }
            continue;
        }
        void *out;
        int rc;
        switch (r->op) {
        case CV_TOP_THREAD:
        case CV_TOP_VAR_NEW:
        case CV_TOP_VAR_RELEASE: /* vars live for the whole replay */
            break;
        case CV_TOP_GET:
            if (mode_profile) {
                profile_sample(rt);
                prof_get(rt, r->a);
            }
            if (r->flags & CV_TF_GET_OR)
                out = cv_var_get_or(vars[r->a], NULL);
            else
                (void)cv_var_get(vars[r->a], &out);
            break;
        case CV_TOP_SET: {
            if (mode_profile) {
                profile_sample(rt);
                prof_set(rt, r->a);
            }
            void *val = r->b ? val_base + r->b : NULL;
            if (r->flags & CV_TF_TOKEN) {
                cv_token *t;
                rc = cv_var_set(vars[r->a], val, &t);
                if (rc == 0) {
                    toks[r->c].p = t;
                    atomic_store(&toks[r->c].alive, 1);
                }
            } else {
                rc = cv_var_set(vars[r->a], val, NULL);
            }
            if (rc < 0)
                return fail(rt, "set failed: %s", cv_err_name(rc));
            if (rt->base == 0 && rt->depth == 0)
                return fail(rt, "set before the thread's base context was made");
            break;
        }
        case CV_TOP_RESET:
            if (mode_profile)
                prof_set(rt, r->a);
            if (!atomic_load(&toks[r->b].alive))
                return fail(rt, "reset with token %u, which is not alive", r->b);
            rc = cv_var_reset(vars[r->a], toks[r->b].p);
            if (rc < 0)
                return fail(rt, "reset failed: %s", cv_err_name(rc));
            break;
        case CV_TOP_TOKEN_RELEASE:
            if (!atomic_load(&toks[r->a].alive))
                return fail(rt, "token %u released twice or never made", r->a);
            atomic_store(&toks[r->a].alive, 0);
            cv_token_release(toks[r->a].p);
            toks[r->a].p = NULL;
            break;
        case CV_TOP_CTX_NEW:
        case CV_TOP_CTX_BASE:
        case CV_TOP_COPY: {
            uint32_t id = r->op == CV_TOP_COPY ? r->b : r->a;
            cv_context *c = NULL;
            if (r->op == CV_TOP_CTX_NEW) {
                rc = cv_context_new(&c);
            } else if (r->op == CV_TOP_CTX_BASE) {
                if (rt->base)
                    return fail(rt, "a second base context while the first is alive");
                c = cv_context_current();
                rc = c ? 0 : CV_ENOMEM;
            } else {
                if (!ctx_usable(&ctxs[r->a]))
                    return fail(rt, "copy of context %u, which is not alive", r->a);
                rc = cv_context_copy(ctxs[r->a].p, &c);
            }
            if (rc < 0)
                return fail(rt, "%s failed: %s", op_name[r->op], cv_err_name(rc));
            ctxs[id].p = c;
            ctxs[id].is_base = r->op == CV_TOP_CTX_BASE;
            atomic_store(&ctxs[id].owned, r->op != CV_TOP_CTX_BASE);
            atomic_store(&ctxs[id].entered, r->op == CV_TOP_CTX_BASE);
            atomic_store(&ctxs[id].alive, 1);
            if (r->op == CV_TOP_CTX_BASE) {
                rt->base = id;
                rt->gen = ++rt->gen_seq;
            }
            if (hist_depth) {
                hist_depth[id] = r->op == CV_TOP_COPY ? hist_depth[r->a] : 0;
                hist_parent[id] = r->op == CV_TOP_COPY ? hist_parent[r->a] : 0;
                own_snaps[id] = 0;
            }
            if (ctx_shared) {
                ctx_shared[id] = r->op == CV_TOP_COPY; /* 1: the copy's side */
                if (r->op == CV_TOP_COPY)
                    ctx_shared[r->a] = 2;          /* 2: the source's side */
            }
            if (chain_depth)
                chain_depth[id] = r->op == CV_TOP_COPY ? chain_depth[r->a] + 1 : 0;
            break;
        }
        case CV_TOP_ENTER:
        case CV_TOP_RUN: {
            ctx_slot *cs = &ctxs[r->a];
            if (!ctx_usable(cs) || cs->is_base)
                return fail(rt, "%s of context %u, which is not alive (or a base)",
                            op_name[r->op], r->a);
            if (r->op == CV_TOP_ENTER) {
                uint64_t t0 = 0;
                while ((rc = cv_context_enter(cs->p)) == CV_EENTERED) {
                    /* entered by another replay thread that the recorded
                     * order says has left it: wait for it */
                    if (t0 == 0)
                        t0 = now_ns();
                    if (now_ns() - t0 > WAIT_LIMIT_NS || atomic_load(&abort_all))
                        break;
                    sched_yield();
                }
                if (rc < 0)
                    return fail(rt, "enter failed: %s", cv_err_name(rc));
                if (push_entered(rt, r->a, 0) < 0)
                    return -1;
                break;
            }
            /* RUN: the records up to its RUN_END run inside it */
            size_t level = rt->depth + 1;
            unsigned cleanups = rt->cleanups;
            if (push_entered(rt, r->a, 1) < 0)
                return -1;
            mark(r);
            rc = cv_context_run(cs->p, run_fn, rt);
            if (rc == CV_EENTERED)
                return fail(rt, "run: context %u is entered elsewhere", r->a);
            if (rc < 0 && rt->err[0] == '\0')
                return fail(rt, "run failed: %s", cv_err_name(rc));
            if (rc < 0)
                return -1;
            size_t keep = rt->cleanups == cleanups ? level - 1 : 0;
            while (rt->depth > keep)
                pop_entered(rt);
            /* the RUN_END record was consumed by the inner exec */
            mark(&s->r[rt->i - 1]);
            continue;
        }
        case CV_TOP_RUN_END:
            if (!in_run)
                return fail(rt, "run_end outside a run");
            return 0; /* the caller marks it after the run returned */
        case CV_TOP_EXIT:
            if (rt->depth == 0 || rt->stack[rt->depth - 1].c != r->a ||
                rt->stack[rt->depth - 1].by_run)
                return fail(rt, "exit of context %u, which this thread has not entered last",
                            r->a);
            rc = cv_context_exit(ctxs[r->a].p);
            if (rc < 0)
                return fail(rt, "exit failed: %s", cv_err_name(rc));
            pop_entered(rt);
            break;
        case CV_TOP_CTX_RELEASE: {
            ctx_slot *cs = &ctxs[r->a];
            if (cs->is_base || atomic_load(&cs->owned) <= 0 || !atomic_load(&cs->alive))
                return fail(rt, "release of context %u, which the program did not own",
                            r->a);
            if (atomic_fetch_sub(&cs->owned, 1) > 1)
                break; /* another holder remains (a retain) */
            if (!atomic_load(&cs->entered))
                atomic_store(&cs->alive, 0);
            cv_context_release(cs->p);
            break;
        }
        case CV_TOP_CTX_RETAIN: {
            ctx_slot *cs = &ctxs[r->a];
            if (!ctx_usable(cs) || cs->is_base)
                return fail(rt, "retain of context %u, which is not alive (or a base)", r->a);
            if (atomic_load(&cs->owned) == 0) /* the public API cannot take it back */
                return fail(rt, "retain of context %u, which only its entering holds", r->a);
            atomic_fetch_add(&cs->owned, 1);
            break;
        }
        case CV_TOP_CLEANUP:
            rt->cleanups++;
            while (rt->depth > 0)
                pop_entered(rt);
            drop_base(rt);
            rt->gen = ++rt->gen_seq;
            cv_thread_cleanup();
            break;
        case CV_TOP_CTX_GET:
            if (!ctx_usable(&ctxs[r->a]))
                return fail(rt, "context_get on context %u, which is not alive", r->a);
            (void)cv_context_get(ctxs[r->a].p, vars[r->b], &out);
            break;
        case CV_TOP_FOREACH:
            if (!ctx_usable(&ctxs[r->a]))
                return fail(rt, "foreach on context %u, which is not alive", r->a);
            if (mode_digest) {
                digest d = {0, 0};
                cv_context_foreach(ctxs[r->a].p, digest_cb, &d);
                printf("foreach thread %u context %u pairs %zu digest %016" PRIx64 "\n",
                       rt->t, r->a, d.n, d.sum);
            } else {
                size_t n = 0;
                cv_context_foreach(ctxs[r->a].p, count_cb, &n);
            }
            break;
        default:
            return fail(rt, "operation %u cannot be replayed", r->op);
        }
        mark(r);
    }
    return 0;
}

static void *thread_main(void *arg)
{
    rthread *rt = arg;
    while (!atomic_load_explicit(&start_flag, memory_order_acquire))
        sched_yield();
    if (exec(rt, 0) < 0 && rt->err[0] == '\0')
        snprintf(rt->err, sizeof rt->err, "thread %u: stopped", rt->t);
    rt->end_ns = now_ns();
    /* what the thread left entered is unwound as the library does at exit */
    if (!mode_null) {
        while (rt->depth > 0)
            pop_entered(rt);
        drop_base(rt);
        cv_thread_cleanup();
    }
    return NULL;
}

/* One replay on backend b. Returns wall ns; *err set on failure. */
static uint64_t replay_once(const cv_backend *b, int *bad)
{
    *bad = 0;
    if (b)
        cv_backend_set_default(b);
    vars = calloc(n_vars + 1, sizeof *vars);
    ctxs = calloc(n_ctxs + 1, sizeof *ctxs);
    toks = calloc(n_toks + 1, sizeof *toks);
    done = calloc(n_sync + 1, sizeof *done);
    rthread *rts = calloc(n_streams, sizeof *rts);
    if (!vars || !ctxs || !toks || !done || !rts)
        die(4, "out of memory");
    for (uint32_t v = 1; v <= n_vars; v++) {
        if (!(var_flags[v] & 0x80))
            continue;
        char name[24];
        snprintf(name, sizeof name, "v%u", v);
        cv_var_opts o = {.name = name};
        if (var_flags[v] & CV_TF_DEFAULT) {
            o.has_default = 1;
            o.dflt = var_default[v] ? val_base + var_default[v] : NULL;
        }
        if (var_flags[v] & CV_TF_HOOKS) {
            o.retain = hook_noop;
            o.release = hook_noop;
        }
        int rc = cv_var_new_ex(&o, &vars[v]);
        if (rc < 0)
            die(4, "cannot make var %u: %s", v, cv_err_name(rc));
    }
    atomic_store(&abort_all, 0);
    atomic_store(&start_flag, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256u << 20); /* deep runs recurse */
    for (uint32_t t = 0; t < n_streams; t++) {
        rts[t].t = t;
        if (mode_profile) {
            rts[t].len_hist = calloc(11, sizeof(uint64_t));
            rts[t].len_cnt = calloc(11, sizeof(uint64_t));
        }
        if (pthread_create(&rts[t].th, &attr, thread_main, &rts[t]) != 0)
            die(4, "cannot start thread %u", t);
    }
    pthread_attr_destroy(&attr);
    uint64_t t0 = now_ns();
    atomic_store_explicit(&start_flag, 1, memory_order_release);
    uint64_t t1 = t0;
    for (uint32_t t = 0; t < n_streams; t++) {
        pthread_join(rts[t].th, NULL);
        if (rts[t].end_ns > t1)
            t1 = rts[t].end_ns;
        if (rts[t].err[0]) {
            if (!*bad)
                fprintf(stderr, "replay: %s: %s%s%s\n", trace_path, rts[t].err,
                        b ? " on " : "", b ? cv_backend_name(b) : "");
            *bad = 1;
        }
    }
    if (mode_profile) {
        uint64_t sl = 0, nl = 0, ml = 0, ds = 0, dn = 0, dm = 0;
        uint64_t pg = 0, pm = 0, ps = 0, pf = 0, hs = 0, hm = 0, hp = 0, pp = 0, sw = 0;
        uint64_t hist[11] = {0}, cnt[11] = {0};
        for (uint32_t t = 0; t < n_streams; t++) {
            sl += rts[t].sum_len;
            nl += rts[t].n_len;
            ml = rts[t].max_len > ml ? rts[t].max_len : ml;
            ds += rts[t].depth_sum;
            dn += rts[t].depth_n;
            dm = rts[t].depth_max > dm ? rts[t].depth_max : dm;
            pg += rts[t].gets;
            pm += rts[t].misses;
            ps += rts[t].sets;
            pf += rts[t].first_writes;
            hs += rts[t].hist_sum;
            hp += rts[t].hist_parent_sum;
            pp += rts[t].parent_first_writes;
            sw += rts[t].snap_writes;
            hm = rts[t].hist_max > hm ? rts[t].hist_max : hm;
            for (int k = 0; k < 11; k++) {
                hist[k] += rts[t].len_hist[k];
                cnt[k] += rts[t].len_cnt[k];
            }
            free(rts[t].len_hist);
            free(rts[t].len_cnt);
        }
        printf(",\"profile\":{\"mean_n\":%.3f,\"max_n\":%" PRIu64 ",\"mean_copy_depth\":%.3f,"
               "\"max_copy_depth\":%" PRIu64 ",\"gets\":%" PRIu64 ",\"get_misses\":%" PRIu64
               ",\"writes\":%" PRIu64 ",\"first_writes\":%" PRIu64
               ",\"mean_history_depth\":%.3f,\"max_history_depth\":%" PRIu64
               ",\"parent_first_writes\":%" PRIu64 ",\"mean_parent_history\":%.3f"
               ",\"snapshotted_writes\":%" PRIu64 ",\"n_over_time\":[",
               nl ? (double)sl / (double)nl : 0.0, ml, dn ? (double)ds / (double)dn : 0.0, dm,
               pg, pm, ps, pf, dn ? (double)hs / (double)dn : 0.0, hm, pp,
               dn ? (double)hp / (double)dn : 0.0, sw);
        int first = 1;
        for (int k = 0; k < 10; k++) {
            printf("%s%.2f", first ? "" : ",", cnt[k] ? (double)hist[k] / (double)cnt[k] : 0.0);
            first = 0;
        }
        printf("]}");
    }
    /* what the program still held at its end, released off the clock */
    for (uint32_t k = 1; k <= n_toks; k++)
        if (atomic_load(&toks[k].alive))
            cv_token_release(toks[k].p);
    for (uint32_t c = 1; c <= n_ctxs; c++)
        if (ctxs[c].p && atomic_load(&ctxs[c].owned) && !ctxs[c].is_base)
            cv_context_release(ctxs[c].p);
    for (uint32_t v = 1; v <= n_vars; v++)
        cv_var_release(vars[v]);
    cv_thread_cleanup();
    free(vars);
    free(ctxs);
    free(toks);
    free((void *)done);
    for (uint32_t t = 0; t < n_streams; t++)
        free(rts[t].stack);
    free(rts);
    return t1 - t0;
}

/* The counting allocator: a size header before each block. */
static _Atomic size_t cur_bytes, peak_bytes;

static void *count_malloc(size_t size, void *ud)
{
    (void)ud;
    size_t *p = malloc(size + 16);
    if (p == NULL)
        return NULL;
    p[0] = size;
    size_t now = atomic_fetch_add_explicit(&cur_bytes, size, memory_order_relaxed) + size;
    size_t pk = atomic_load_explicit(&peak_bytes, memory_order_relaxed);
    while (now > pk &&
           !atomic_compare_exchange_weak_explicit(&peak_bytes, &pk, now, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return (char *)p + 16;
}

static void count_free(void *ptr, void *ud)
{
    (void)ud;
    size_t *p = (size_t *)((char *)ptr - 16);
    atomic_fetch_sub_explicit(&cur_bytes, p[0], memory_order_relaxed);
    free(p);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: replay [--backends a,b,...] [--repeat R] [--check] [--digest] TRACE\n"
            "  prints JSON: the trace summary, then per backend the wall times of R\n"
            "  replays (ns), their median, min and max, the peak bytes and the\n"
            "  baseline (the replayer walking the records alone).\n"
            "  --check   validate and summarise only\n"
            "  --digest  one replay on the first backend; prints a digest of the pairs\n"
            "            of every foreach the program did\n"
            "  --profile the summary and the profile pass only (no timing)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *want = NULL;
    int repeat = 5, check = 0, profile_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backends") == 0 && i + 1 < argc)
            want = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            char *end;
            long r = strtol(argv[++i], &end, 10);
            if (*end || r < 1 || r > 1000) {
                fprintf(stderr, "replay: --repeat wants 1..1000, not %s\n", argv[i]);
                return 2;
            }
            repeat = (int)r;
        } else if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else if (strcmp(argv[i], "--digest") == 0)
            mode_digest = 1;
        else if (strcmp(argv[i], "--profile") == 0)
            profile_only = 1;
        else if (argv[i][0] == '-')
            usage();
        else if (trace_path == NULL)
            trace_path = argv[i];
        else
            usage();
    }
    if (trace_path == NULL)
        usage();
    const cv_backend *all[16];
    size_t nb = cv_backend_list(all, 16);
    if (nb > 16)
        nb = 16;
    const cv_backend *use[16];
    size_t nu = 0;
    if (want) {
        char *dup = strdup(want), *save = NULL;
        for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            const cv_backend *b = cv_backend_get(tok);
            if (b == NULL) {
                fprintf(stderr, "replay: no backend named %s\n", tok);
                return 2;
            }
            if (nu < 16)
                use[nu++] = b;
        }
        free(dup);
    } else {
        for (size_t i = 0; i < nb; i++)
            use[nu++] = all[i];
    }
    if (nu == 0) {
        fprintf(stderr, "replay: no backend to replay on\n");
        return 2;
    }
    load(trace_path);
    val_base = malloc((size_t)n_vals + 1);
    if (val_base == NULL)
        die(4, "out of memory");
    if (mode_digest) {
        int bad;
        replay_once(use[0], &bad);
        return bad ? 3 : 0;
    }
    printf("{\"trace\":\"%s\",\"summary\":", trace_path);
    print_summary_json(stdout);
    if (check) {
        printf("}\n");
        return 0;
    }
    /* profile pass: sizes over time, copy depth (not timed) */
    chain_depth = calloc(n_ctxs + 1, sizeof *chain_depth);
    ctx_shared = calloc(n_ctxs + 1, 1);
    hist_depth = calloc(n_ctxs + 1, sizeof *hist_depth);
    hist_parent = calloc(n_ctxs + 1, sizeof *hist_parent);
    own_snaps = calloc(n_ctxs + 1, sizeof *own_snaps);
    mode_profile = 1;
    int bad;
    replay_once(use[0], &bad);
    mode_profile = 0;
    free(chain_depth);
    chain_depth = NULL;
    free(ctx_shared);
    ctx_shared = NULL;
    free(hist_depth);
    hist_depth = NULL;
    free(hist_parent);
    hist_parent = NULL;
    free(own_snaps);
    own_snaps = NULL;
    if (bad)
        return 3;
    if (profile_only) {
        printf("}\n");
        return 0;
    }
    /* baseline: the walk alone */
    mode_null = 1;
    uint64_t base[9];
    int nbase = repeat < 9 ? repeat : 9;
    for (int k = 0; k < nbase; k++)
        base[k] = replay_once(NULL, &bad);
    mode_null = 0;
    qsort(base, (size_t)nbase, sizeof base[0], cmp_u64);
    printf(",\"baseline_ns\":%" PRIu64 ",\"repeat\":%d,\"results\":[", base[nbase / 2], repeat);
    uint64_t *times = malloc((size_t)repeat * (size_t)nu * sizeof *times);
    /* interleaved rounds: drift on a shared machine hits every backend alike */
    replay_once(use[0], &bad); /* warm */
    if (bad)
        return 3;
    for (int k = 0; k < repeat; k++)
        for (size_t j = 0; j < nu; j++) {
            times[j * (size_t)repeat + (size_t)k] = replay_once(use[j], &bad);
            if (bad)
                return 3;
        }
    for (size_t j = 0; j < nu; j++) {
        uint64_t *t = times + j * (size_t)repeat;
        uint64_t raw[1000];
        memcpy(raw, t, (size_t)repeat * sizeof *t);
        qsort(t, (size_t)repeat, sizeof *t, cmp_u64);
        cv_allocator a = {count_malloc, count_free, NULL};
        cv_set_allocator(&a);
        atomic_store(&cur_bytes, 0);
        atomic_store(&peak_bytes, 0);
        replay_once(use[j], &bad);
        size_t leaked = atomic_load(&cur_bytes);
        cv_set_allocator(NULL);
        if (bad)
            return 3;
        printf("%s{\"backend\":\"%s\",\"median_ns\":%" PRIu64 ",\"min_ns\":%" PRIu64
               ",\"max_ns\":%" PRIu64 ",\"peak_bytes\":%zu,\"leaked_bytes\":%zu,\"times_ns\":[",
               j ? "," : "", cv_backend_name(use[j]), t[repeat / 2], t[0], t[repeat - 1],
               atomic_load(&peak_bytes), leaked);
        for (int k = 0; k < repeat; k++)
            printf("%s%" PRIu64, k ? "," : "", raw[k]);
        printf("]}");
    }
    printf("]}\n");
    free(times);
    free(val_base);
    return 0;
}
