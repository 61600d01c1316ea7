/* Shared helpers for the sensor microbenchmarks (compiled by `cargo xtask bench`).
 *
 * Each benchmark times only its measured loop and prints one line on stdout:
 *     BENCH ops=<operations> ns=<elapsed nanoseconds>
 * which xtask parses. Any failure prints to stderr and exits non-zero, so a broken run is an
 * error rather than a fast-looking number. */
#ifndef SENSOR_BENCH_COMMON_H
#define SENSOR_BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIE(...)                                                                             \
    do {                                                                                     \
        fprintf(stderr, __VA_ARGS__);                                                        \
        fprintf(stderr, " (errno %d: %s)\n", errno, strerror(errno));                        \
        exit(1);                                                                             \
    } while (0)

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        DIE("clock_gettime");
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A positive count from argv; anything else is a usage error. */
static inline long parse_count(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0)
        DIE("bad %s: %s", what, s);
    return v;
}

static inline void report(uint64_t ops, uint64_t ns)
{
    printf("BENCH ops=%llu ns=%llu\n", (unsigned long long)ops, (unsigned long long)ns);
}

#endif
