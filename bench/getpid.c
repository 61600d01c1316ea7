/* getpid through syscall(2), N times (glibc no longer caches getpid, but the raw syscall makes
 * sure we enter the kernel). The sensor has no probe on getpid, so this checks that attaching
 * syscall tracepoints elsewhere adds nothing measurable to unrelated syscalls.
 *
 * usage: getpid ITERATIONS */
#include "common.h"

#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        DIE("usage: %s ITERATIONS", argv[0]);
    long n = parse_count(argv[1], "iterations");
    long expect = syscall(SYS_getpid);

    for (long i = 0; i < n / 20 + 1; i++)
        syscall(SYS_getpid);

    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        /* Compared so the compiler cannot drop the call; the branch is always predicted. */
        if (syscall(SYS_getpid) != expect)
            DIE("getpid changed");
    }
    report((uint64_t)n, now_ns() - t0);
    return 0;
}
