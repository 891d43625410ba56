/* A scripted HTTP/1.1 server for unit tests of HTTP clients (one thread per connection). */
#ifndef STRATOS_TEST_FAKE_HTTP_H
#define STRATOS_TEST_FAKE_HTTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

struct req {
	char method[16];
	char path[2048];
	char auth[256];
	char ctype[128];
	char head[8192];                /* request line and headers as sent, with the blank line */
	char body[65536];
	size_t body_len;
};

/*
 * The test's handler writes a whole response on fd (it may stream), or
 * ends the connection without one (fake_http_drop).
 */
typedef void (*handler_fn)(int fd, const struct req *r);

static int server_fd, server_port;
static handler_fn handler;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct req last;                 /* last request seen */
static char paths_log[16384];           /* "METHOD path\n" of every request */
static int fake_http_connections;       /* accepted so far (atomic; a test may reset it) */

/* A response with a Content-Length body; ctype NULL sends no Content-Type; extra: "Name: v\r\n" lines or NULL. */
static inline void
fake_http_reply(int fd, int status, const char *ctype, const char *extra, const char *body)
{
	char head[1024];

	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\n%s%s%sContent-Length: %zu\r\n%s\r\n",
	    status, ctype != NULL ? "Content-Type: " : "", ctype != NULL ? ctype : "",
	    ctype != NULL ? "\r\n" : "", strlen(body), extra != NULL ? extra : "");
	test_send_all(fd, head, strlen(head));
	test_send_all(fd, body, strlen(body));
}

/* A JSON response (the API server's kind). */
static inline void
reply(int fd, int status, const char *extra, const char *body)
{
	fake_http_reply(fd, status, "application/json", extra, body);
}

/* Ends the connection without a reply: the client sees it closed after its request. */
static inline void
fake_http_drop(int fd)
{
	shutdown(fd, SHUT_RDWR);
}

static inline void
chunk(int fd, const char *data)
{
	char head[32];

	snprintf(head, sizeof(head), "%zx\r\n", strlen(data));
	test_send_all(fd, head, strlen(head));
	test_send_all(fd, data, strlen(data));
	test_send_all(fd, "\r\n", 2);
}

static inline void
stream_start(int fd)
{
	const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	test_send_all(fd, h, strlen(h));
}

static inline void
stream_end(int fd)
{
	test_send_all(fd, "0\r\n\r\n", 5);
}

static inline void
fake_http__header(const char *head, const char *name, char *out, size_t len)
{
	const char *p = strcasestr(head, name);

	out[0] = '\0';
	if (p == NULL)
		return;
	p += strlen(name);
	while (*p == ' ')
		p++;
	size_t n = strcspn(p, "\r\n");
	snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

static inline void
fake_http__serve(int fd)
{
	static _Thread_local char buf[262144];      /* one per connection thread */
	size_t have = 0;

	for (;;) {
		char *end;
		ssize_t n;
		struct req r;

		while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
			n = recv(fd, buf + have, sizeof(buf) - have - 1, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		buf[have] = '\0';
		size_t head_len = (size_t)(end - buf) + 4;
		char cl[32];
		memset(&r, 0, sizeof(r));
		snprintf(r.head, sizeof(r.head), "%.*s", (int)head_len, buf);
		*end = '\0';
		fake_http__header(buf, "Content-Length:", cl, sizeof(cl));
		size_t clen = strtoul(cl, NULL, 10);
		sscanf(buf, "%15s %2047s", r.method, r.path);
		fake_http__header(buf, "Authorization:", r.auth, sizeof(r.auth));
		fake_http__header(buf, "Content-Type:", r.ctype, sizeof(r.ctype));
		while (have < head_len + clen) {
			n = recv(fd, buf + have, sizeof(buf) - have - 1, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		memcpy(r.body, buf + head_len, clen < sizeof(r.body) - 1 ? clen : sizeof(r.body) - 1);
		r.body_len = clen;
		pthread_mutex_lock(&log_lock);
		last = r;
		strncat(paths_log, r.method, sizeof(paths_log) - strlen(paths_log) - 1);
		strncat(paths_log, " ", sizeof(paths_log) - strlen(paths_log) - 1);
		strncat(paths_log, r.path, sizeof(paths_log) - strlen(paths_log) - 1);
		strncat(paths_log, "\n", sizeof(paths_log) - strlen(paths_log) - 1);
		pthread_mutex_unlock(&log_lock);
		handler(fd, &r);
		memmove(buf, buf + head_len + clen, have - head_len - clen);
		have -= head_len + clen;
	}
}

static inline void *
fake_http__conn(void *arg)
{
	int fd = (int)(long)arg;

	fake_http__serve(fd);
	close(fd);
	return NULL;
}

static inline void *
fake_http__accept(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(server_fd, NULL, NULL);
		pthread_t t;
		if (fd < 0)
			return NULL;
		__atomic_add_fetch(&fake_http_connections, 1, __ATOMIC_SEQ_CST);
		pthread_create(&t, NULL, fake_http__conn, (void *)(long)fd);
		pthread_detach(t);
	}
}

/* Listens on a free loopback port; fake_http_port says which. Returns 0 or -1. */
static inline int
fake_http_start(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	pthread_t t;

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(server_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(server_fd, 64) < 0)
		return -1;
	getsockname(server_fd, (struct sockaddr *)&addr, &len);
	server_port = ntohs(addr.sin_port);
	pthread_create(&t, NULL, fake_http__accept, NULL);
	pthread_detach(t);
	return 0;
}

/*
 * How much slower than native this test runs: valgrind (its preload library
 * is in LD_PRELOAD) stretches every step, so timing bounds scale with this.
 */
static inline int
fake_http_slowdown(void)
{
	const char *pre = getenv("LD_PRELOAD");

	return pre != NULL && strstr(pre, "vgpreload") != NULL ? 10 : 1;
}

#endif
