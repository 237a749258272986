/* SPDX-License-Identifier: MIT */
/*
 * replay_main.c -- runs files (or every file of directories) through
 * LLVMFuzzerTestOneInput without libFuzzer, as libxml2's testFuzzer.c
 * does, so the corpus replays with any C compiler (make fuzz-replay builds
 * it with gcc). Linked in place of $LIB_FUZZING_ENGINE.
 *
 *   replay_<target> FILE|DIR...     exit 0: every input ran to the end
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static long ran;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t k;
    while (buf != NULL && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf == NULL)
        return 1;
    /* An exact-size copy, so that reads past the end are caught. */
    uint8_t *data = malloc(n ? n : 1);
    memcpy(data, buf, n);
    free(buf);
    fprintf(stderr, "replay: %s\n", path);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    ran++;
    return 0;
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return 1;
    }
    int err = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        err |= run_path(sub);
    }
    closedir(d);
    return err;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    int err = 0;
    for (int i = 1; i < argc; i++)
        err |= run_path(argv[i]);
    printf("%s: %ld inputs replayed\n", argv[0], ran);
    return err;
}
