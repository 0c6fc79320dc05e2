/*
 * A returning-client TLS load generator for bench/workers.py: one process,
 * one epoll loop, CONCURRENCY connections in flight at once.  Each slot
 * connects, resumes the session it kept from its previous connection (the
 * first one is a full handshake), sends "GET PATH HTTP/1.0", reads the
 * answer to the end and closes the way `openssl s_time` does (no
 * close_notify of its own, the session kept resumable), then connects
 * again.  It makes the same connections as CONCURRENCY `s_time -reuse`
 * processes, without one process and one blocking round trip each, so
 * less of the machine's CPU goes to the load and more to the servers.
 *
 *     cc -O2 -o loadgen bench/loadgen.c -lssl -lcrypto
 *     ./loadgen 127.0.0.1 8443 6 16 1.2 /ok.txt          # returning clients
 *     ./loadgen 127.0.0.1 8443 6 16 1.2 /ok.txt new      # full handshakes
 *
 * Prints one line: "CONNECTIONS connections REUSED reused FAILED failed
 * SECONDS seconds".  Loopback only: HOST must be 127.0.0.1 or ::1.  It
 * stops by itself: no new connection after SECONDS, and the ones in
 * flight get 5 more seconds.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum step { IDLE, CONNECTING, HANDSHAKE, WRITING, READING };

struct slot {
    int fd;
    enum step step;
    SSL *ssl;
    SSL_SESSION *session; /* from this slot's previous connection */
    size_t written;
    size_t got; /* bytes of the answer read */
};

static SSL_CTX *ctx;
static struct sockaddr_storage address;
static socklen_t address_len;
static int epfd;
static char request[512];
static size_t request_len;
static long connections, reused, failed;
static int fresh; /* "new": never resume, every handshake a full one */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void watch(struct slot *s, unsigned events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(epfd, op, s->fd, &ev) != 0) {
        perror("epoll_ctl");
        exit(2);
    }
}

/* End this slot's connection; keep its session when it was a good one. */
static void finish(struct slot *s, int ok)
{
    if (s->ssl != NULL) {
        if (ok) {
            SSL_SESSION *session = SSL_get1_session(s->ssl);
            if (session != NULL) {
                SSL_SESSION_free(s->session);
                s->session = session;
            }
            /* As s_time does: closed without a close_notify of ours, and
             * marked shut down so OpenSSL keeps the session resumable. */
            SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        }
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd); /* also leaves the epoll set */
        s->fd = -1;
    }
    if (ok)
        connections++;
    else
        failed++;
    s->step = IDLE;
}

static void start(struct slot *s)
{
    s->fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        perror("socket");
        exit(2);
    }
    /* As browsers do: the Finished and the request that follows it go
     * out at once, not held back by Nagle for the server's delayed ACK. */
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->written = 0;
    s->got = 0;
    s->step = CONNECTING;
    if (connect(s->fd, (struct sockaddr *)&address, address_len) == 0 ||
        errno == EINPROGRESS) {
        watch(s, EPOLLOUT, EPOLL_CTL_ADD);
        return;
    }
    finish(s, 0);
}

/* Wait for what OpenSSL asked for; 0 when the error is not a wait. */
static int wait_for(struct slot *s, int ret)
{
    switch (SSL_get_error(s->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        watch(s, EPOLLIN, EPOLL_CTL_MOD);
        return 1;
    case SSL_ERROR_WANT_WRITE:
        watch(s, EPOLLOUT, EPOLL_CTL_MOD);
        return 1;
    default:
        ERR_clear_error();
        return 0;
    }
}

static void advance(struct slot *s)
{
    int ret;
    char buf[4096];

    if (s->step == CONNECTING) {
        int error = 0;
        socklen_t len = sizeof error;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error) {
            finish(s, 0);
            return;
        }
        s->ssl = SSL_new(ctx);
        SSL_set_fd(s->ssl, s->fd);
        if (s->session != NULL && !fresh)
            SSL_set_session(s->ssl, s->session);
        SSL_set_connect_state(s->ssl);
        s->step = HANDSHAKE;
    }
    if (s->step == HANDSHAKE) {
        ret = SSL_do_handshake(s->ssl);
        if (ret != 1) {
            if (!wait_for(s, ret))
                finish(s, 0);
            return;
        }
        reused += SSL_session_reused(s->ssl);
        s->step = WRITING;
    }
    if (s->step == WRITING) {
        ret = SSL_write(s->ssl, request + s->written, request_len - s->written);
        if (ret <= 0) {
            if (!wait_for(s, ret))
                finish(s, 0);
            return;
        }
        s->written += ret;
        if (s->written < request_len)
            return;
        s->step = READING;
    }
    for (;;) {
        ret = SSL_read(s->ssl, buf, sizeof buf);
        if (ret > 0) {
            s->got += ret;
            continue;
        }
        if (SSL_get_error(s->ssl, ret) == SSL_ERROR_ZERO_RETURN) {
            finish(s, 1); /* the server's close_notify: the answer is whole */
            return;
        }
        if (!wait_for(s, ret)) {
            /* The server closed without close_notify: whole if it said
             * anything, as s_time counts it. */
            finish(s, s->got > 0);
        }
        return;
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s HOST PORT SECONDS CONCURRENCY [1.2|1.3] [PATH] [new]\n",
                argv[0]);
        return 64;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    double seconds = atof(argv[3]);
    int concurrency = atoi(argv[4]);
    const char *version = argc > 5 ? argv[5] : "1.2";
    const char *path = argc > 6 ? argv[6] : "/";
    fresh = argc > 7 && strcmp(argv[7], "new") == 0;

    memset(&address, 0, sizeof address);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
    if (strcmp(host, "127.0.0.1") == 0 && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        address_len = sizeof *v4;
    } else if (strcmp(host, "::1") == 0 && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        address_len = sizeof *v6;
    } else {
        fprintf(stderr, "loadgen: loopback only (127.0.0.1 or ::1), not %s\n", host);
        return 64;
    }
    if (concurrency < 1 || concurrency > 1000 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "loadgen: CONCURRENCY 1-1000, SECONDS 0-600\n");
        return 64;
    }
    request_len = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\n\r\n", path);

    ctx = SSL_CTX_new(TLS_client_method());
    int v = strcmp(version, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, v);
    SSL_CTX_set_max_proto_version(ctx, v);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* slots keep them */

    epfd = epoll_create1(0);
    struct slot *slots = calloc(concurrency, sizeof *slots);
    for (int i = 0; i < concurrency; i++) {
        slots[i].fd = -1;
        start(&slots[i]);
    }

    double began = now(), stop = began + seconds, give_up = stop + 5;
    struct epoll_event events[256];
    for (;;) {
        double t = now();
        int active = 0;
        for (int i = 0; i < concurrency; i++) {
            if (slots[i].step == IDLE && t < stop)
                start(&slots[i]);
            active += slots[i].step != IDLE;
        }
        if (active == 0 || t >= give_up)
            break;
        int n = epoll_wait(epfd, events, 256, 100);
        for (int i = 0; i < n; i++)
            advance(events[i].data.ptr);
    }
    double took = now() - began;
    long abandoned = 0;
    for (int i = 0; i < concurrency; i++)
        if (slots[i].step != IDLE) {
            abandoned++;
            finish(&slots[i], 0);
        }
    printf("%ld connections %ld reused %ld failed %.3f seconds\n", connections, reused,
           failed, took);
    return abandoned ? 1 : 0;
}
