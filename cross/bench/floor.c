/* The least a cycle of the `peers` workload can cost on a machine: what tocsin's three
 * rules and one POST per cycle need from the kernel, and nothing else.
 *
 *   floor PORT [wake]
 *
 * Every 2 s a periodic timerfd in an epoll set wakes the process; it reads /proc/stat,
 * /proc/meminfo, /proc/uptime and /proc/mounts with pread on descriptors kept open,
 * takes statfs("/"), draws 10 random bytes (an event id) and writes one 520-byte POST on
 * a kept-alive connection to 127.0.0.1:PORT; the answer wakes it a second time and is
 * read. No parsing, no evaluation, no rendering: a lower bound, not a competitor.
 * With `wake`, only the timer wake-ups (no reads, no POST): the price of waking at all.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/timerfd.h>
#include <unistd.h>

static char buf[65536];

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor PORT [wake]\n");
        return 2;
    }
    int wake_only = argc > 2 && strcmp(argv[2], "wake") == 0;
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec period = {{2, 0}, {2, 0}};
    timerfd_settime(timer, 0, &period, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &ev);

    int conn = -1;
    char req[1024];
    int req_len = 0;
    int files[4];
    if (!wake_only) {
        conn = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(conn, (struct sockaddr *)&to, sizeof to) != 0) {
            perror("floor: connect");
            return 1;
        }
        fcntl(conn, F_SETFL, O_NONBLOCK);
        ev.data.u32 = 1;
        epoll_ctl(ep, EPOLL_CTL_ADD, conn, &ev);
        const char *names[4] = {"/proc/stat", "/proc/meminfo", "/proc/uptime", "/proc/mounts"};
        for (int i = 0; i < 4; i++) files[i] = open(names[i], O_RDONLY | O_CLOEXEC);
        char body[520];
        memset(body, 'x', sizeof body);
        req_len = snprintf(req, sizeof req,
                           "POST /floor/disk HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                           "content-type: application/json\r\ncontent-length: %zu\r\n\r\n%.*s",
                           sizeof body, (int)sizeof body, body);
    }
    for (;;) {
        struct epoll_event got;
        if (epoll_wait(ep, &got, 1, -1) != 1) continue;
        if (got.data.u32 == 0) {
            uint64_t ticks;
            if (read(timer, &ticks, sizeof ticks) < 0) continue;
            if (wake_only) continue;
            for (int i = 0; i < 4; i++) (void)!pread(files[i], buf, sizeof buf, 0);
            struct statfs fs;
            statfs("/", &fs);
            (void)!getrandom(buf, 10, 0);
            (void)!send(conn, req, req_len, MSG_NOSIGNAL);
        } else if (recv(conn, buf, sizeof buf, 0) == 0) {
            return 0; /* the receiver went away */
        }
    }
}
