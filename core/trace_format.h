/* SPDX-License-Identifier: MIT */
/*
 * trace_format.h -- the CTXVAR_TRACE file format, version 1 (docs/TRACE.md):
 * the one definition the recorder (core/trace.c, through trace.h) and the
 * replayer (bench/replay.c) both include. Plain C11, nothing of the
 * library's internals, so the replayer stays on the public API. Private:
 * not installed.
 */
#ifndef CV_TRACE_FORMAT_H
#define CV_TRACE_FORMAT_H

/* The file header (64 bytes): magic, u32 version, u32 byte-order mark, u8
 * pointer width, u8 record size, u8 header size, the backend's name. */
#define CV_TRACE_MAGIC "CVTRACE1"
#define CV_TRACE_VERSION 1u
#define CV_TRACE_BYTE_ORDER 0x01020304u
#define CV_TRACE_HEADER_BYTES 64u
#define CV_TRACE_HDR_PTR_BYTES 16     /* offsets in the header */
#define CV_TRACE_HDR_REC_BYTES 17
#define CV_TRACE_HDR_HEADER_BYTES 18
#define CV_TRACE_HDR_BACKEND 24
#define CV_TRACE_BACKEND_BYTES 32

/* A block: u32 magic, u32 thread, u32 bytes, u32 records, then the records;
 * the last block's thread is CV_TRACE_END_THREAD. */
#define CV_TRACE_BLOCK_MAGIC 0x4b4c4243u /* "CBLK" little-endian */
#define CV_TRACE_BLOCK_BYTES 16u
#define CV_TRACE_END_THREAD 0xffffffffu

/* A record: u8 op, u8 flags, u16 0, u32 a, u32 b, u32 c, then a u64 seq
 * when cv_trace_has_seq (and on END); a short record (op | CV_TOP_SHORT,
 * flags, u16 var) is a get. */
#define CV_TRACE_REC_BYTES 16u
#define CV_TRACE_SEQ_BYTES 8u
#define CV_TRACE_SHORT_BYTES 4u

/* Operation codes. */
enum cv_trace_op {
    CV_TOP_END = 0,        /* the trailer block's only record */
    CV_TOP_THREAD = 1,     /* a thread's first record: a = thread id */
    CV_TOP_VAR_NEW = 2,    /* a = var, b = default value; flags */
    CV_TOP_VAR_RELEASE = 3,
    CV_TOP_GET = 4,        /* a = var; flags: found, get_or */
    CV_TOP_SET = 5,        /* a = var, b = value, c = token or 0 */
    CV_TOP_RESET = 6,      /* a = var, b = token */
    CV_TOP_TOKEN_RELEASE = 7,
    CV_TOP_CTX_NEW = 8,    /* a = new context */
    CV_TOP_CTX_BASE = 9,   /* a = the thread's base context, made on first use */
    CV_TOP_COPY = 10,      /* a = source, b = the copy */
    CV_TOP_ENTER = 11,
    CV_TOP_EXIT = 12,
    CV_TOP_RUN = 13,       /* run began: a = context */
    CV_TOP_RUN_END = 14,   /* the run of a returned */
    CV_TOP_CTX_RELEASE = 15,
    CV_TOP_CLEANUP = 16,   /* cv_thread_cleanup (also at thread exit) */
    CV_TOP_CTX_GET = 17,   /* cv_context_get: a = context, b = var */
    CV_TOP_FOREACH = 18,   /* a = context */
    CV_TOP_CTX_RETAIN = 19, /* a = context: a holder inside the library
                             * (cv_bound_new_in), released by CTX_RELEASE */
    CV_TOP__COUNT
};
/* In the op byte: a short record (4 bytes: op, flags, u16 var; gets only). */
#define CV_TOP_SHORT 0x80u

/* Flags of a record. */
#define CV_TF_FOUND 1u      /* GET/CTX_GET: the var had a value */
#define CV_TF_GET_OR 2u     /* GET: through cv_var_get_or */
#define CV_TF_DEFAULT 1u    /* VAR_NEW: has a default (b) */
#define CV_TF_HOOKS 2u      /* VAR_NEW: has value hooks */
#define CV_TF_TOKEN 1u      /* SET: made a token (c) */

/* Whether a full record of op carries a seq: all but the ops on the
 * thread's own current context (gets, var creation and release, sets
 * without token), which take no lock. END carries one too, of its own
 * meaning (values, threads << 32). */
static inline int cv_trace_has_seq(int op, unsigned flags)
{
    switch (op) {
    case CV_TOP_GET:
    case CV_TOP_VAR_NEW:
    case CV_TOP_VAR_RELEASE:
        return 0;
    case CV_TOP_SET:
        return (flags & CV_TF_TOKEN) != 0;
    default:
        return 1;
    }
}

#endif /* CV_TRACE_FORMAT_H */
