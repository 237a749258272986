/*
 * textbuf.h -- the printed-text buffer shared by the two test schedulers
 * (sched.c and fsched.c): tests compare what their tasks print.
 */
#ifndef CV_TEXTBUF_H
#define CV_TEXTBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Appends the formatted text to buf (cap bytes, *len used, without the
 * NUL). When full, keeps what fit: the tests compare the text, so a cut
 * shows. */
static inline void textbuf_vappend(char *buf, size_t cap, size_t *len,
                                   const char *fmt, va_list ap)
{
    size_t room = cap - *len;
    int n = vsnprintf(buf + *len, room, fmt, ap);
    if (n > 0)
        *len += (size_t)n < room ? (size_t)n : room - 1;
}

#endif
