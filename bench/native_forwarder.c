/* Native TCP forwarders, the reference the built-in proxy is measured against (bench/native.py).
 *
 *   native_forwarder threads LISTEN_PORT UPSTREAM_PORT
 *       a thread per direction, blocking splice(2): the shape of Toxiproxy (a goroutine per
 *       direction) and of most native proxies.
 *   native_forwarder spin LISTEN_PORT UPSTREAM_PORT
 *       one connection at a time, busy-polling both sockets with recv/send and never sleeping:
 *       no wake-up and no event loop, the least a user-space hop can add on this machine.
 *
 * Loopback only. Runs until killed; the benchmark stops it. Not part of pytest-chaos itself. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)

struct conn { int fds[2]; int halves_left; };
struct half { int src, dst; struct conn *conn; };

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    return a;
}

static void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int dial(int port) {
    struct sockaddr_in a = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    no_delay(fd);
    return fd;
}

static void *pump(void *arg) {
    struct half h = *(struct half *)arg;
    free(arg);
    int p[2];
    if (pipe(p) < 0) return NULL;
    fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
    for (;;) {
        ssize_t n = splice(h.src, NULL, p[1], NULL, PIPE_BYTES, SPLICE_F_MOVE);
        if (n <= 0) break;
        while (n > 0) {
            ssize_t m = splice(p[0], NULL, h.dst, NULL, (size_t)n, SPLICE_F_MOVE);
            if (m <= 0) goto done;
            n -= m;
        }
    }
done:
    shutdown(h.dst, SHUT_WR);
    shutdown(h.src, SHUT_RD);
    close(p[0]);
    close(p[1]);
    if (__atomic_sub_fetch(&h.conn->halves_left, 1, __ATOMIC_SEQ_CST) == 0) {
        close(h.conn->fds[0]);
        close(h.conn->fds[1]);
        free(h.conn);
    }
    return NULL;
}

static void start_halves(int client, int upstream) {
    struct conn *c = malloc(sizeof *c);
    c->fds[0] = client;
    c->fds[1] = upstream;
    c->halves_left = 2;
    for (int i = 0; i < 2; i++) {
        struct half *h = malloc(sizeof *h);
        pthread_t t;
        h->src = c->fds[i];
        h->dst = c->fds[1 - i];
        h->conn = c;
        if (pthread_create(&t, NULL, pump, h) != 0) abort(); /* the benchmark reports the exit */
        pthread_detach(t);
    }
}

static void serve_spin(int client, int upstream) {
    static char buf[65536];
    fcntl(client, F_SETFL, O_NONBLOCK);
    fcntl(upstream, F_SETFL, O_NONBLOCK);
    for (;;) {
        ssize_t n = recv(client, buf, sizeof buf, 0);
        if (n == 0) break;
        if (n > 0 && send(upstream, buf, (size_t)n, 0) != n) break;
        n = recv(upstream, buf, sizeof buf, 0);
        if (n == 0) break;
        if (n > 0 && send(client, buf, (size_t)n, 0) != n) break;
    }
    close(client);
    close(upstream);
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "threads") && strcmp(argv[1], "spin"))) {
        fprintf(stderr, "usage: %s threads|spin LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
        return 2;
    }
    int spin = !strcmp(argv[1], "spin"), upstream_port = atoi(argv[3]), one = 1;
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in a = loopback(atoi(argv[2]));
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 128) < 0) {
        perror("listen");
        return 1;
    }
    for (;;) {
        int client = accept(ls, NULL, NULL);
        if (client < 0) continue;
        int upstream = dial(upstream_port);
        if (upstream < 0) {
            close(client);
            continue;
        }
        no_delay(client);
        if (spin) {
            serve_spin(client, upstream);
        } else {
            start_halves(client, upstream);
        }
    }
}
