/* openat+close cycling through NFILES distinct files (f00000, f00001, ... in DIR), so that the
 * opens are not deduplicated and every one reaches the agent in userspace.
 *
 * The sensor deduplicates identical opens per process for a window (1 s by default), and one
 * pass over a few thousand files takes only milliseconds, so cycling in one process would
 * be deduplicated from the second pass on. Each pass therefore runs in a fresh child process
 * (a new dedup key), which times its own loop; fork and exit are outside the timed region.
 *
 * usage: openat_many DIR NFILES ITERATIONS   (ITERATIONS is rounded up to whole passes) */
#include "common.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

static char **make_paths(const char *dir, long nfiles)
{
    char **paths = calloc((size_t)nfiles, sizeof(*paths));
    if (paths == NULL)
        DIE("calloc");
    for (long i = 0; i < nfiles; i++) {
        if (asprintf(&paths[i], "%s/f%05ld", dir, i) < 0)
            DIE("asprintf");
    }
    return paths;
}

static void open_close(const char *path)
{
    int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        DIE("openat %s", path);
    close(fd);
}

/* One timed pass in a child; returns its loop time in ns (read back through a pipe). */
static uint64_t timed_pass(char **paths, long nfiles)
{
    int fds[2];
    if (pipe(fds) != 0)
        DIE("pipe");
    pid_t pid = fork();
    if (pid < 0)
        DIE("fork");
    if (pid == 0) {
        close(fds[0]);
        uint64_t t0 = now_ns();
        for (long i = 0; i < nfiles; i++)
            open_close(paths[i]);
        uint64_t ns = now_ns() - t0;
        if (write(fds[1], &ns, sizeof(ns)) != (ssize_t)sizeof(ns))
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    uint64_t ns = 0;
    ssize_t got = read(fds[0], &ns, sizeof(ns));
    close(fds[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        DIE("waitpid");
    if (got != (ssize_t)sizeof(ns) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        DIE("pass child failed (status 0x%x)", status);
    return ns;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        DIE("usage: %s DIR NFILES ITERATIONS", argv[0]);
    long nfiles = parse_count(argv[2], "file count");
    long iters = parse_count(argv[3], "iterations");
    char **paths = make_paths(argv[1], nfiles);
    long passes = (iters + nfiles - 1) / nfiles;

    /* Warm the dentry cache (this process's opens do not dedup-collide with the children's). */
    for (long i = 0; i < nfiles; i++)
        open_close(paths[i]);

    uint64_t total = 0;
    for (long p = 0; p < passes; p++)
        total += timed_pass(paths, nfiles);
    report((uint64_t)(passes * nfiles), total);
    return 0;
}
