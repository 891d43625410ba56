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

struct req {
	char method[16];
	char path[2048];
	char auth[256];
	char ctype[128];
	char body[65536];
	size_t body_len;
};

/* The test's handler writes a whole response on fd (it may stream, or close). */
typedef void (*handler_fn)(int fd, const struct req *r);

static int server_fd, server_port;
static handler_fn handler;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct req last;                 /* last request seen */
static char paths_log[16384];           /* "METHOD path\n" of every request */

static inline void
send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

static inline void
reply(int fd, int status, const char *extra, const char *body)
{
	char head[512];

	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n%s\r\n", status, strlen(body), extra != NULL ? extra : "");
	send_all(fd, head, strlen(head));
	send_all(fd, body, strlen(body));
}

static inline void
chunk(int fd, const char *data)
{
	char head[32];

	snprintf(head, sizeof(head), "%zx\r\n", strlen(data));
	send_all(fd, head, strlen(head));
	send_all(fd, data, strlen(data));
	send_all(fd, "\r\n", 2);
}

static inline void
stream_start(int fd)
{
	const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	send_all(fd, h, strlen(h));
}

static inline void
stream_end(int fd)
{
	send_all(fd, "0\r\n\r\n", 5);
}

static inline void
header_value(const char *head, const char *name, char *out, size_t len)
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
serve(int fd)
{
	static char buf[262144];
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
		*end = '\0';
		header_value(buf, "Content-Length:", cl, sizeof(cl));
		size_t clen = strtoul(cl, NULL, 10);
		memset(&r, 0, sizeof(r));
		sscanf(buf, "%15s %2047s", r.method, r.path);
		header_value(buf, "Authorization:", r.auth, sizeof(r.auth));
		header_value(buf, "Content-Type:", r.ctype, sizeof(r.ctype));
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
conn_main(void *arg)
{
	int fd = (int)(long)arg;

	serve(fd);
	close(fd);
	return NULL;
}

static inline void *
server_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(server_fd, NULL, NULL);
		pthread_t t;
		if (fd < 0)
			return NULL;
		pthread_create(&t, NULL, conn_main, (void *)(long)fd);
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
	pthread_create(&t, NULL, server_main, NULL);
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
