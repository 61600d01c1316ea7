/* Exec storm: WORKERS parallel workers each run fork + execve(PROGRAM) + waitpid in a loop,
 * TOTAL execs in all. Measures the exec/fork/exit probes (the sensor's busiest path: exec
 * events are sent to userspace with an immediate wakeup) and whether the ring buffer keeps up.
 *
 * usage: exec_storm PROGRAM TOTAL WORKERS */
#include "common.h"

#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void wait_ok(pid_t pid, const char *what)
{
    int status = 0;
    pid_t got;
    do {
        got = waitpid(pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    if (got != pid)
        DIE("waitpid %s", what);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        DIE("%s failed (status 0x%x)", what, status);
}

static void worker(const char *program, long n)
{
    char *const args[] = {(char *)program, NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            DIE("fork");
        if (pid == 0) {
            execve(program, args, environ);
            _exit(127);
        }
        wait_ok(pid, program);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4)
        DIE("usage: %s PROGRAM TOTAL WORKERS", argv[0]);
    const char *program = argv[1];
    long workers = parse_count(argv[3], "workers");
    long per_worker = parse_count(argv[2], "total") / workers;
    pid_t pids[64];
    if (workers > 64)
        DIE("at most 64 workers");
    fflush(stdout);

    uint64_t t0 = now_ns();
    for (long w = 0; w < workers; w++) {
        pids[w] = fork();
        if (pids[w] < 0)
            DIE("fork worker");
        if (pids[w] == 0) {
            worker(program, per_worker);
            _exit(0);
        }
    }
    for (long w = 0; w < workers; w++)
        wait_ok(pids[w], "worker");
    report((uint64_t)(per_worker * workers), now_ns() - t0);
    return 0;
}
