/*
 * scenarios.h -- the data of the scenarios (SPEC.md) that run on both test
 * schedulers: test_scenarios.c on the step scheduler (sched.h) and
 * test_fibers.c on fibers (fsched.h). One definition, so the two versions
 * of a scenario are given the same requests, levels, children and
 * callbacks, and must print the same.
 */
#ifndef CV_TEST_SCENARIOS_H
#define CV_TEST_SCENARIOS_H

#include <stddef.h>

#include "ctxvar.h"

/* Values are string literals; the casts drop only their const. */
#define STR(s) ((void *)(s))

/* S5: a request, with the id its handler sets. */
typedef struct s5_req {
    cv_var *request_id;
    const char *id;
} s5_req;

/* What S5's three requests print, on either scheduler. */
#define S5_OUTPUT                                                          \
    "Start 0\nStart 1\nStart 2\n"                                          \
    "Nested 0\nEnd 0\n"                                                    \
    "Nested 1\nEnd 1\n"                                                    \
    "Nested 2\nEnd 2\n"

/* S7: the value each level sets. */
static const char *const LEVEL[] = {"0", "1", "2"};

typedef struct s7_level {
    cv_var *v;
    int level;
    struct s7_level *below;  /* the argument of level - 1 */
} s7_level;

/* What S7's three levels print: each level set, then each read back. */
#define S7_OUTPUT "2\n1\n0\n0\n1\n2\n"

/* S9: a child sets its name, sleeps ticks, reads its name back. */
typedef struct s9_child {
    cv_var *v;
    const char *name;
    long ticks;
} s9_child;

/* What S9 prints: the children, then the parent's own value. */
#define S9_OUTPUT                                                          \
    "task1 set, sleeps 1\n"                                                \
    "task2 set, sleeps 2\n"                                                \
    "tick 1: task1 reads task1\n"                                          \
    "tick 2: task2 reads task2\n"                                          \
    "tick 2: parent reads hello\n"

/* S14: a callback (or the task) prints "label: value", sets `set` and
 * schedules `later`. */
typedef struct s14_cb {
    cv_var *v;
    const char *label;
    const char *set;         /* NULL: only read */
    struct s14_cb *later;    /* a callback this one schedules (NULL: none) */
} s14_cb;

/* S14's cast: the task (which schedules from_task), cb1 (which sets) and
 * cb2 (which reads cb1's set in the context they share), and soon. */
typedef struct s14_cbs {
    s14_cb from_task, task, cb1, cb2, soon;
} s14_cbs;

static inline void s14_cbs_init(s14_cbs *c, cv_var *v)
{
    c->from_task = (s14_cb){v, "from task", NULL, NULL};
    c->task = (s14_cb){v, "task", NULL, &c->from_task};
    c->cb1 = (s14_cb){v, "cb1", "set by cb1", NULL};
    c->cb2 = (s14_cb){v, "cb2", NULL, NULL};
    c->soon = (s14_cb){v, "soon", NULL, NULL};
}

/* Run in S14's given context before the callbacks are scheduled. */
static inline int s14_set_in_ctx(void *arg)
{
    return cv_var_set(arg, STR("in ctx"), NULL);
}

#endif
