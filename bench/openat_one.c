/* openat+close of one regular file, N times: the sensor's openat probes run on every call, and
 * its per-process dedup window filters all but the first report in the kernel. This is the
 * common real-world pattern (a process re-reading the same config or data file).
 *
 * usage: openat_one FILE ITERATIONS */
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

static void open_close(const char *path)
{
    int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        DIE("openat %s", path);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        DIE("usage: %s FILE ITERATIONS", argv[0]);
    const char *path = argv[1];
    long n = parse_count(argv[2], "iterations");

    /* Warm the dentry cache and the probes' maps outside the timed loop. */
    for (long i = 0; i < n / 20 + 1; i++)
        open_close(path);

    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        open_close(path);
    report((uint64_t)n, now_ns() - t0);
    return 0;
}
