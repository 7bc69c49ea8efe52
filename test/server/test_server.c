/* Tests of hl_server that need a real socket: the before_send hook runs before any byte of a
 * response reaches the client (what keeps the ledger's group commit honest: a client never
 * holds an answer whose line is not in the file), and the responses held to the end of a loop
 * turn go out whole, in order, on pipelined requests; the connection's timeouts (idle, reading
 * a request, none while one is served), which are re-armed lazily. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "hl_config.h"
#include "hl_server.h"
#include "hl_test.h"

/* The test's client socket: the hook looks into it. */
static int client_fd = -1;
static atomic_int hooks_run, early_bytes, answered;

/* Before the worker sends: nothing of any response may have reached the client yet (loopback
 * delivers a send into the peer's queue before the send returns). */
static void before_send(void *data) {
    (void)data;
    char b[64];
    ssize_t n = recv(client_fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    int seen = atomic_load(&answered);
    /* Bytes already there must belong to responses answered before this turn's lines. */
    if (n > 0 && seen == 0) atomic_fetch_add(&early_bytes, 1);
    atomic_fetch_add(&hooks_run, 1);
}

static void *worker_start(hl_worker *w, void *ud) {
    (void)ud;
    return w;
}

/* A request for /slow is answered SLOW_MS later (longer than the read and idle timeouts of
 * the timeout test): the connection must wait for it. */
enum { SLOW_MS = 700 };

static void slow_answer(uv_timer_t *t) {
    hl_conn *c = t->data;
    hl_conn_respond(c, 200, NULL, "application/json", "{\"ok\":true}", 11);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

/* Each request is a "ledger line" due before its answer, answered at once (/slow: later). */
static void on_request(hl_conn *c, const hl_http_req *req, const char *body, size_t body_len) {
    (void)body, (void)body_len;
    if (req->path.n == 5 && !memcmp(req->path.p, "/slow", 5)) {
        uv_timer_t *t = malloc(sizeof *t);
        if (!t) abort();
        uv_timer_init(hl_worker_loop(hl_conn_worker(c)), t);
        t->data = c;
        uv_timer_start(t, slow_answer, SLOW_MS, 0);
        return;
    }
    hl_worker_before_send(hl_conn_worker(c));
    hl_conn_respond(c, 200, NULL, "application/json", "{\"ok\":true}", 11);
}

static void on_abort(hl_conn *c) { (void)c; }

static void render_error(hl_worker *w, int status, const char *path, const char *message, char *headers,
                         size_t headers_len, char *body, size_t body_len) {
    (void)w, (void)path, (void)headers_len;
    headers[0] = '\0';
    snprintf(body, body_len, "{\"status\":%d,\"message\":\"%s\"}", status, message);
}

static const hl_server_hooks hooks = {.worker_start = worker_start, .on_request = on_request,
                                      .on_abort = on_abort, .render_error = render_error,
                                      .before_send = before_send};

static void *run(void *srv) {
    hl_server_run(srv);
    return NULL;
}

/* A port nobody listens on now (the kernel's pick for a socket closed at once). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0
                   ? ntohs(a.sin_port)
                   : 0;
    close(fd);
    return port;
}

/* server_extra: more lines of the server section. */
static hl_config *config_with(const char *server_extra) {
    char text[1024];
    snprintf(text, sizeof text,
                               "server:\n"
                               "  listen: \"127.0.0.1:%d\"\n"
                               "  threads: 1\n"
                               "%s"
                               "backends:\n"
                               "  - name: a\n"
                               "    kind: openai\n"
                               "    location: local\n"
                               "    base_url: http://127.0.0.1:8000/v1\n"
                               "    model: m\n"
                               "routes:\n"
                               "  - name: r\n"
                               "    to: a\n", free_port(), server_extra);
    hl_config *cfg = NULL;
    char err[512];
    if (hl_config_parse("t.yaml", text, strlen(text), &cfg, err, sizeof err) != HL_OK)
        fprintf(stderr, "  config: %s\n", err);
    return cfg;
}

static hl_config *config(void) { return config_with(""); }

/* Reads until n complete responses (each ends with the 11-byte body) arrived, or 5 s. */
static int read_responses(int fd, int n, char *buf, size_t cap) {
    size_t len = 0;
    int got = 0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (got < n && len + 1 < cap) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) break;
        len += (size_t)r;
        buf[len] = '\0';
        got = 0;
        for (const char *p = buf; (p = strstr(p, "{\"ok\":true}")); p += 11) got++;
    }
    return got;
}

HL_TEST(before_send_runs_before_any_byte_of_a_held_response) {
    hl_config *cfg = config();
    HL_REQUIRE(cfg != NULL);
    hl_server *srv = NULL;
    char err[256];
    HL_REQUIRE(hl_server_init(&srv, cfg, &hooks, err, sizeof err) == HL_OK);
    pthread_t th;
    HL_REQUIRE(pthread_create(&th, NULL, run, srv) == 0);

    client_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hl_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    HL_REQUIRE(connect(client_fd, (struct sockaddr *)&a, sizeof a) == 0);
    /* Eight pipelined requests in one segment: answered in one loop turn, held together. */
    char reqs[8 * 64];
    size_t n = 0;
    for (int i = 0; i < 8; i++)
        n += (size_t)snprintf(reqs + n, sizeof reqs - n, "GET /x%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    HL_REQUIRE(send(client_fd, reqs, n, 0) == (ssize_t)n);
    char buf[8192];
    int got = read_responses(client_fd, 8, buf, sizeof buf);
    atomic_store(&answered, 1);
    HL_CHECK_INT_EQ(got, 8);
    HL_CHECK(atomic_load(&hooks_run) >= 1);
    HL_CHECK_INT_EQ(atomic_load(&early_bytes), 0);
    HL_CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);

    /* A second turn on the same connection: the hook again runs first. */
    atomic_store(&answered, 0);
    int before = atomic_load(&hooks_run);
    HL_REQUIRE(send(client_fd, reqs, n, 0) == (ssize_t)n);
    got = read_responses(client_fd, 8, buf, sizeof buf);
    atomic_store(&answered, 1);
    HL_CHECK_INT_EQ(got, 8);
    HL_CHECK(atomic_load(&hooks_run) > before);
    HL_CHECK_INT_EQ(atomic_load(&early_bytes), 0);

    close(client_fd);
    hl_server_stop(srv);
    pthread_join(th, NULL);
    hl_server_free(srv);
    hl_config_free(cfg);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int connect_to(const hl_server *srv) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hl_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits (at most 5 s) for the server to close fd, reading what it sends into buf; returns the
 * milliseconds it took, -1 when it did not close. */
static double wait_closed(int fd, char *buf, size_t cap) {
    double t0 = now_ms();
    size_t len = 0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    buf[0] = '\0';
    for (;;) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r == 0) return now_ms() - t0;
        if (r < 0) return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (len + 1 >= cap) return -1;
    }
}

/* Timeouts of 200 ms (reading a request) and 400 ms (idle between requests). A timer that
 * fires before a connection's deadline (it was armed for an earlier one) waits for the rest:
 * none may close a connection early, and none may leave it open past its deadline. The bounds
 * after a deadline are loose (a busy machine); before it, none is allowed. */
HL_TEST(connection_timeouts_idle_reading_and_none_while_served) {
    hl_config *cfg = config_with("  read_timeout_ms: 200\n  idle_timeout_ms: 400\n");
    HL_REQUIRE(cfg != NULL);
    hl_server *srv = NULL;
    char err[256], buf[4096];
    HL_REQUIRE(hl_server_init(&srv, cfg, &hooks, err, sizeof err) == HL_OK);
    pthread_t th;
    HL_REQUIRE(pthread_create(&th, NULL, run, srv) == 0);
    const char get[] = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";

    /* A connection that sends nothing is closed after the idle timeout, without a response. */
    int fd = connect_to(srv);
    HL_REQUIRE(fd >= 0);
    double ms = wait_closed(fd, buf, sizeof buf);
    HL_CHECK(ms >= 390 && ms < 4000);
    HL_CHECK_STR_EQ(buf, "");
    close(fd);

    /* Half a request head: 408 after the read timeout, then closed. */
    fd = connect_to(srv);
    HL_REQUIRE(fd >= 0);
    HL_REQUIRE(send(fd, "GET /x HTTP/1.1\r\n", 17, 0) == 17);
    ms = wait_closed(fd, buf, sizeof buf);
    HL_CHECK(ms >= 190 && ms < 4000);
    HL_CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
    close(fd);

    /* Keep-alive requests every 150 ms for 1.5 s (each gap under the idle timeout, their sum
     * far over both): the connection stays; after the last, it is closed an idle timeout
     * later, not before. */
    fd = connect_to(srv);
    HL_REQUIRE(fd >= 0);
    for (int i = 0; i < 10; i++) {
        HL_REQUIRE(send(fd, get, sizeof get - 1, 0) == (ssize_t)(sizeof get - 1));
        HL_CHECK_INT_EQ(read_responses(fd, 1, buf, sizeof buf), 1);
        usleep(150 * 1000);
    }
    ms = wait_closed(fd, buf, sizeof buf);
    HL_CHECK(ms >= 390 - 150 && ms < 4000); /* 150 ms of the idle time passed in the last sleep */
    close(fd);

    /* A request served for 700 ms (over both timeouts) is not cut; the connection then idles
     * out as usual. */
    fd = connect_to(srv);
    HL_REQUIRE(fd >= 0);
    const char slow[] = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    double t0 = now_ms();
    HL_REQUIRE(send(fd, slow, sizeof slow - 1, 0) == (ssize_t)(sizeof slow - 1));
    HL_CHECK_INT_EQ(read_responses(fd, 1, buf, sizeof buf), 1);
    HL_CHECK(now_ms() - t0 >= SLOW_MS - 10);
    ms = wait_closed(fd, buf, sizeof buf);
    HL_CHECK(ms >= 390 && ms < 4000);
    close(fd);

    hl_server_stop(srv);
    pthread_join(th, NULL);
    hl_server_free(srv);
    hl_config_free(cfg);
}

HL_TEST_MAIN()
