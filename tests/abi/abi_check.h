/*
 * abi_check.h -- CHECK for the ABI test programs (no test framework): on a
 * false condition, print where and what, prefixed with ABI_CHECK_WHO (the
 * program's name, defined before including this), and exit(1).
 */
#ifndef CV_ABI_CHECK_H
#define CV_ABI_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, ABI_CHECK_WHO ": %s:%d: check failed: %s\n",     \
                    __FILE__, __LINE__, #cond);                              \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#endif
