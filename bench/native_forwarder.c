/* Native TCP forwarders, the reference the built-in proxy is measured against (bench/proxy.py).
 *
 *   native_forwarder threads LISTEN_PORT UPSTREAM_PORT
 *       a thread per direction, blocking splice(2): the shape of Toxiproxy (a goroutine per
 *       direction) and of most native proxies.
 *   native_forwarder epoll LISTEN_PORT UPSTREAM_PORT
 *       one thread, one level-triggered epoll for every connection, recv into a buffer and send:
 *       the built-in proxy's own shape (its copy gear) without Python, so the gap between the two
 *       is what Python costs and the rest is what the kernel costs.
 *   native_forwarder spin LISTEN_PORT UPSTREAM_PORT
 *       one connection at a time, busy-polling both sockets with recv/send and never sleeping:
 *       no wake-up and no event loop, the least a user-space hop can add on this machine.
 *
 * Loopback only. Runs until killed; the benchmark stops it. Not part of pytest-chaos itself. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)

static int upstream_port_g;

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

/* -- epoll: one thread for every connection ------------------------------------------------ */
#define BUF_BYTES 65536

struct way { int src, dst, eof, shut; char *pending; size_t off, len; };
struct link;
struct end { struct link *link; int i; };  /* epoll data: fds[i] of link */
struct link { int fds[2]; struct way way[2]; struct end ends[2]; int masks[2]; };

static int ep;
static char buf[BUF_BYTES];

static void link_close(struct link *l) {
    for (int i = 0; i < 2; i++) {
        epoll_ctl(ep, EPOLL_CTL_DEL, l->fds[i], NULL);
        close(l->fds[i]);
        free(l->way[i].pending);
    }
    free(l);
}

/* way[i] reads fds[i] and writes fds[1-i]: fds[i] wants IN for way[i], OUT for way[1-i] */
static void link_interest(struct link *l) {
    for (int i = 0; i < 2; i++) {
        struct way *r = &l->way[i], *w = &l->way[1 - i];
        int mask = (!r->eof && !r->len ? EPOLLIN : 0) | (w->len ? EPOLLOUT : 0);
        if (mask != l->masks[i]) {
            struct epoll_event ev = {.events = (uint32_t)mask, .data.ptr = &l->ends[i]};
            epoll_ctl(ep, l->masks[i] ? (mask ? EPOLL_CTL_MOD : EPOLL_CTL_DEL) : EPOLL_CTL_ADD,
                      l->fds[i], &ev);
            l->masks[i] = mask;
        }
    }
}

static int way_flush(struct way *w) {  /* -1: error; else bytes still pending */
    while (w->len) {
        ssize_t m = send(w->dst, w->pending + w->off, w->len, MSG_NOSIGNAL);
        if (m < 0) return errno == EAGAIN ? (int)w->len : -1;
        w->off += (size_t)m;
        w->len -= (size_t)m;
    }
    if (w->eof && !w->shut) {
        shutdown(w->dst, SHUT_WR);
        w->shut = 1;
    }
    return 0;
}

static int way_read(struct way *w) {  /* -1: error */
    ssize_t n = recv(w->src, buf, sizeof buf, 0);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n == 0) {
        w->eof = 1;
        return way_flush(w) < 0 ? -1 : 0;
    }
    ssize_t m = send(w->dst, buf, (size_t)n, MSG_NOSIGNAL);
    if (m < 0 && errno != EAGAIN) return -1;
    if (m < 0) m = 0;
    if (m < n) {
        w->pending = realloc(w->pending, (size_t)(n - m));
        memcpy(w->pending, buf + m, (size_t)(n - m));
        w->off = 0;
        w->len = (size_t)(n - m);
    }
    return 0;
}

static void serve_epoll(int ls) {
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, ready[512];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, ready, 512, -1);
        for (int k = 0; k < n; k++) {
            struct end *e = ready[k].data.ptr;
            if (e == NULL) {
                int client = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                int upstream = client < 0 ? -1 : dial(upstream_port_g);
                if (upstream < 0) {
                    if (client >= 0) close(client);
                    continue;
                }
                no_delay(client);
                fcntl(upstream, F_SETFL, O_NONBLOCK);
                struct link *l = calloc(1, sizeof *l);
                l->fds[0] = client;
                l->fds[1] = upstream;
                for (int i = 0; i < 2; i++) {
                    l->way[i].src = l->fds[i];
                    l->way[i].dst = l->fds[1 - i];
                    l->ends[i] = (struct end){l, i};
                }
                link_interest(l);
                continue;
            }
            struct link *l = e->link;
            struct way *r = &l->way[e->i], *w = &l->way[1 - e->i];
            uint32_t got = ready[k].events;
            int bad = 0;
            if (w->len && (got & (EPOLLOUT | EPOLLERR | EPOLLHUP))) bad = way_flush(w) < 0;
            if (!bad && !r->eof && !r->len && (got & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                bad = way_read(r) < 0;
            if (bad || (l->way[0].shut && l->way[1].shut)) {
                link_close(l);
                continue;
            }
            link_interest(l);
        }
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
    if (argc != 4 || (strcmp(argv[1], "threads") && strcmp(argv[1], "spin") &&
                      strcmp(argv[1], "epoll"))) {
        fprintf(stderr, "usage: %s threads|epoll|spin LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
        return 2;
    }
    int spin = !strcmp(argv[1], "spin"), upstream_port = atoi(argv[3]), one = 1;
    upstream_port_g = upstream_port;
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in a = loopback(atoi(argv[2]));
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 128) < 0) {
        perror("listen");
        return 1;
    }
    if (!strcmp(argv[1], "epoll")) serve_epoll(ls);
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
