/* TCP connect loop over loopback: a listener on 127.0.0.1 (ephemeral port) in this process,
 * then N times socket + connect + accept + close of both ends. Exercises the connect/accept
 * probes, whose events always reach userspace (network events are not deduplicated).
 *
 * The accepted end is closed first, so TIME_WAIT sits on the listener's side and the client
 * never runs out of ephemeral ports however many rounds run back to back.
 *
 * usage: connect_loop ITERATIONS */
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        DIE("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        DIE("SO_REUSEADDR");
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = 0;
    if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) != 0)
        DIE("bind");
    if (listen(fd, 128) != 0)
        DIE("listen");
    socklen_t len = sizeof(*addr);
    if (getsockname(fd, (struct sockaddr *)addr, &len) != 0)
        DIE("getsockname");
    return fd;
}

/* One connection: the loopback handshake completes in connect(), so no second thread is
 * needed to accept. */
static void one_connection(int lfd, const struct sockaddr_in *addr)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0)
        DIE("socket");
    if (connect(c, (const struct sockaddr *)addr, sizeof(*addr)) != 0)
        DIE("connect");
    int a = accept(lfd, NULL, NULL);
    if (a < 0)
        DIE("accept");
    close(a);
    close(c);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        DIE("usage: %s ITERATIONS", argv[0]);
    long n = parse_count(argv[1], "iterations");
    struct sockaddr_in addr;
    int lfd = listener(&addr);

    for (long i = 0; i < n / 20 + 1; i++)
        one_connection(lfd, &addr);

    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        one_connection(lfd, &addr);
    report((uint64_t)n, now_ns() - t0);
    close(lfd);
    return 0;
}
