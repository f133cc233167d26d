/* LD_PRELOAD shim for bench/wire/run: makes the wall clocks of a program read
 * its process CPU time instead, so that `lz4 -b` and `zstd -b` report
 * throughput per core of CPU actually used, like bench_codec's CPU-time
 * figures, however busy the shared machine is. Only for single-threaded
 * benchmark runs (zstd --single-thread, lz4 -b). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec*);

static int cpu_now(struct timespec* ts) {
    static clock_gettime_fn real;
    if (!real) real = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real(CLOCK_PROCESS_CPUTIME_ID, ts);
}

int clock_gettime(clockid_t id, struct timespec* ts) {
    (void)id;
    return cpu_now(ts);
}

/* zstd's and lz4's timers use C11 timespec_get when available. */
int timespec_get(struct timespec* ts, int base) {
    if (base != TIME_UTC) return 0;
    return cpu_now(ts) == 0 ? base : 0;
}
