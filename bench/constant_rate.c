/* Constant-rate HTTPS load (wrk2-style): latency from each request's scheduled send time, so a stall is counted, not hidden. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/*
 * usage: bench_constant_rate --port N [--host 127.0.0.1] [--path /p] [--body FILE]
 *            --rate REQ_PER_S [--duration S] [--warmup S] [--connections C]
 *
 * Request i is due at start + i/rate on connection i mod C (keep-alive, one
 * request in flight per connection, as the API server calls a webhook). A
 * request that is due while its connection is still busy waits, and its
 * latency counts from when it was due. Prints one line:
 *   RESULT rate achieved_rps requests errors p50_us p90_us p99_us p999_us max_us tls_version cipher
 * The server's certificate is not verified (a local benchmark).
 */

#define CR_MAX_CONNS 256
#define CR_RESPONSE_MAX (1u << 20)

struct cr_conn {
	int fd;
	SSL *ssl;
	bool busy;
	uint64_t due_ns;                /* when the request in flight was due */
	char *rbuf;
	size_t rlen;
	uint64_t next;                  /* index of this connection's next request */
};

static uint64_t
cr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static char *
cr_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0) {
		fprintf(stderr, "bench_constant_rate: cannot read %s\n", path);
		exit(2);
	}
	rewind(f);
	data = malloc((size_t)n + 1);
	if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "bench_constant_rate: cannot read %s\n", path);
		exit(2);
	}
	fclose(f);
	*len = (size_t)n;
	return data;
}

static int
cr_compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Connects and handshakes (blocking), then makes the socket non-blocking. */
static int
cr_connect(struct cr_conn *c, SSL_CTX *ctx, const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1)
		return -1;
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	c->rbuf = malloc(CR_RESPONSE_MAX);
	return c->rbuf != NULL ? 0 : -1;
}

/* Writes the whole request; waits for room when the socket is full. */
static int
cr_send(struct cr_conn *c, const char *req, size_t len)
{
	size_t off = 0;

	while (off < len) {
		int n = SSL_write(c->ssl, req + off, (int)(len - off));
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		int e = SSL_get_error(c->ssl, n);
		struct pollfd p = { .fd = c->fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT };
		if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
			return -1;
		poll(&p, 1, 1000);
	}
	return 0;
}

/*
 * Reads what is there. Returns 1 when a whole response is in (status in
 * *status), 0 when more is needed, -1 on error or close.
 */
static int
cr_receive(struct cr_conn *c, int *status)
{
	for (;;) {
		int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(CR_RESPONSE_MAX - 1 - c->rlen));
		if (n <= 0) {
			int e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			return -1;
		}
		c->rlen += (size_t)n;
		if (c->rlen >= CR_RESPONSE_MAX - 1)
			return -1;
	}
	c->rbuf[c->rlen] = '\0';
	char *hend = strstr(c->rbuf, "\r\n\r\n");
	if (hend == NULL)
		return 0;
	char *cl = strcasestr(c->rbuf, "\r\ncontent-length:");
	if (cl == NULL || cl > hend)
		return -1;      /* both servers send a length: no chunked parsing here */
	size_t body = strtoul(cl + 17, NULL, 10), have = c->rlen - (size_t)(hend + 4 - c->rbuf);
	if (have < body)
		return 0;
	if (have > body)
		return -1;      /* no pipelining: nothing may follow */
	*status = atoi(c->rbuf + 9);
	c->rlen = 0;
	return 1;
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *path = "/", *body_file = NULL;
	int port = 0, conns = 16;
	double rate = 0, duration = 10, warmup = 2;
	struct cr_conn c[CR_MAX_CONNS];
	char *body = NULL, *req;
	size_t body_len = 0, req_len, nlat = 0, cap;
	uint64_t *lat, errors = 0, done = 0, start, end_sched, period_ns, total;
	int ep;
	SSL_CTX *ctx;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
		else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--path") == 0) path = argv[i + 1];
		else if (strcmp(argv[i], "--body") == 0) body_file = argv[i + 1];
		else if (strcmp(argv[i], "--rate") == 0) rate = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--duration") == 0) duration = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--warmup") == 0) warmup = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--connections") == 0) conns = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "bench_constant_rate: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (port <= 0 || rate <= 0 || conns < 1 || conns > CR_MAX_CONNS || duration <= 0) {
		fprintf(stderr, "usage: bench_constant_rate --port N --rate R [--duration S] "
		    "[--warmup S] [--connections C<=%d] [--path P] [--body FILE] [--host IPv4]\n",
		    CR_MAX_CONNS);
		return 2;
	}
	if (body_file != NULL)
		body = cr_read_file(body_file, &body_len);
	req = malloc(body_len + 512);
	req_len = (size_t)sprintf(req, body != NULL ?
	    "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n" :
	    "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host, port, body_len);
	if (body != NULL) {
		memcpy(req + req_len, body, body_len);
		req_len += body_len;
	}

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < conns; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		if (cr_connect(&c[i], ctx, host, port) < 0) {
			fprintf(stderr, "bench_constant_rate: connection %d to %s:%d failed\n", i, host, port);
			ERR_print_errors_fp(stderr);
			return 1;
		}
		c[i].next = (uint64_t)i;
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
	}

	period_ns = (uint64_t)(1e9 / rate);
	total = (uint64_t)((warmup + duration) * rate);
	cap = (size_t)total + 1;
	lat = malloc(cap * sizeof(*lat));
	start = cr_now_ns() + 1000000;
	end_sched = start + total * period_ns;
	uint64_t warm_end = start + (uint64_t)(warmup * 1e9), measured_first = 0, measured_last = 0;

	for (;;) {
		uint64_t now = cr_now_ns(), wake = UINT64_MAX;
		bool pending = false;

		/* Send every request that is due on an idle connection. */
		for (int i = 0; i < conns; i++) {
			if (c[i].next >= total)
				continue;
			pending = true;
			uint64_t due = start + c[i].next * period_ns;
			if (c[i].busy)
				continue;
			if (due <= now) {
				c[i].busy = true;
				c[i].due_ns = due;
				if (cr_send(&c[i], req, req_len) < 0) {
					fprintf(stderr, "bench_constant_rate: send failed\n");
					return 1;
				}
			} else if (due < wake) {
				wake = due;
			}
		}
		bool busy = false;
		for (int i = 0; i < conns; i++)
			busy = busy || c[i].busy;
		if (!pending && !busy)
			break;

		int timeout = wake == UINT64_MAX ? 1000 :
		    (int)((wake > now ? wake - now : 0) / 1000000);
		struct epoll_event evs[CR_MAX_CONNS];
		int n = epoll_wait(ep, evs, CR_MAX_CONNS, timeout);
		for (int k = 0; k < n; k++) {
			struct cr_conn *cc = &c[evs[k].data.u32];
			int status = 0, rc;

			if (!cc->busy)
				continue;
			rc = cr_receive(cc, &status);
			if (rc < 0) {
				fprintf(stderr, "bench_constant_rate: connection failed or bad response\n");
				return 1;
			}
			if (rc == 0)
				continue;
			uint64_t t = cr_now_ns();
			if (cc->due_ns >= warm_end) {
				if (measured_first == 0)
					measured_first = cc->due_ns;
				measured_last = t;
				lat[nlat++] = t - cc->due_ns;
				done++;
				if (status != 200)
					errors++;
			}
			cc->busy = false;
			cc->next += (uint64_t)conns;
		}
		if (cr_now_ns() > end_sched + 30ull * 1000000000ull) {
			fprintf(stderr, "bench_constant_rate: responses still missing 30 s after the end\n");
			return 1;
		}
	}
	qsort(lat, nlat, sizeof(*lat), cr_compare);
#define CR_PCT(q) (nlat ? lat[(size_t)((double)(nlat - 1) * (q))] / 1000 : 0)
	printf("RESULT %.0f %.1f %llu %llu %llu %llu %llu %llu %llu %s %s\n", rate,
	    measured_last > measured_first ? (double)done * 1e9 / (double)(measured_last - measured_first) : 0.0,
	    (unsigned long long)done, (unsigned long long)errors,
	    (unsigned long long)CR_PCT(0.50), (unsigned long long)CR_PCT(0.90),
	    (unsigned long long)CR_PCT(0.99), (unsigned long long)CR_PCT(0.999),
	    (unsigned long long)(nlat ? lat[nlat - 1] / 1000 : 0),
	    SSL_get_version(c[0].ssl), SSL_get_cipher_name(c[0].ssl));
	for (int i = 0; i < conns; i++) {
		SSL_free(c[i].ssl);
		close(c[i].fd);
		free(c[i].rbuf);
	}
	SSL_CTX_free(ctx);
	free(lat);
	free(req);
	free(body);
	close(ep);
	return 0;
}
