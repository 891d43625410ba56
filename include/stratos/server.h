/* HTTPS server (libmicrohttpd + GnuTLS) for the extender and webhooks, and the plain-HTTP metrics server. */
#ifndef STRATOS_SERVER_H
#define STRATOS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "stratos/buf.h"
#include "stratos/jsonscan.h"

/* One HTTP request as a handler sees it. Everything is borrowed for the call. */
struct server_request {
	const char *method;
	const char *path;               /* without the query string */
	const char *body;               /* NUL-terminated; body_len bytes */
	size_t body_len;
	bool client_cert_verified;      /* a client certificate signed by --client-ca was presented */
	long long received_us;          /* time_mono_us() when the request was complete */
	struct jsonscan_value json_root; /* SERVER_ROUTE_JSON: the body's top-level object, checked
	                                   in full by jsonscan_validate() with its containers
	                                   recorded, for jsonscan lookups (valid for the call);
	                                   type JSONSCAN_ABSENT on other routes */
	json_t *json;                   /* the parsed body when the route has SERVER_ROUTE_JSON_TREE
	                                   (always a JSON object), else NULL; borrowed: json_incref
	                                   to keep it past the call */
	bool on_worker;                 /* SERVER_ROUTE_BLOCKING: this is the call on a blocking
	                                   worker, after the handler deferred; it may wait */
};

/* What a handler fills in. The server sends it and frees body. */
struct server_response {
	int status;                     /* HTTP status; the server presets 200 */
	struct buf body;                /* handler appends the body; capped by the server */
	const char *content_type;       /* static string; preset "application/json" */
	bool defer;                     /* SERVER_ROUTE_BLOCKING, event-loop call only: set it (and
	                                   nothing else) to be called again on a blocking worker */
};

/*
 * A route handler. Called on a server worker thread, concurrently with other
 * calls: it must be thread-safe and must not block on anything slower than
 * the work it exists for (no network for admission; the extender's inline
 * start is the one bounded exception).
 */
typedef void (*server_handler_fn)(void *ctx, const struct server_request *req,
    struct server_response *resp);

/* Route flags. */
#define SERVER_ROUTE_CLIENT_CERT 0x1u   /* refuse with 403 unless client_cert_verified (when --client-ca is set) */
#define SERVER_ROUTE_JSON        0x2u   /* body must be a JSON object, checked in full by jsonscan:
                                           400 with a reason otherwise; req->json_root set.
                                           No tree is built: read fields with jsonscan */
#define SERVER_ROUTE_JSON_TREE   0x4u   /* with SERVER_ROUTE_JSON: also parse the body into req->json */
/*
 * The handler may have to wait (the extender's StartInstances, up to its
 * EC2 budget). It is called first on the event loop (req->on_worker false)
 * and answers there when it can (a pod that needs no start). Otherwise it
 * sets resp->defer and returns: the connection is suspended, the handler is
 * called again on a blocking worker (req->on_worker true) where it may
 * wait, and the event-loop threads go on answering every other connection
 * (admission webhooks, health). When every blocking worker is busy and the
 * queue is full, the request gets 503 at once.
 */
#define SERVER_ROUTE_BLOCKING    0x8u

/* ---- The server itself ------------------------------------------------ */

/*
 * How often the certificate, key and client CA files are checked for a change
 * (mtime, ctime, inode, size, so a Kubernetes Secret's symlink swap counts).
 */
#define SERVER_TLS_CHECK_INTERVAL_MS 2000

/* How long server_stop() waits for requests in flight by default. */
#define SERVER_STOP_GRACE_MS 10000

/*
 * Readiness: checks registered by the modules that must be ready before the
 * daemon takes traffic ("caches synced", "pools loaded"). One set is shared
 * by every server that answers /readyz. A check returns true when ready, or
 * false with a short reason written to why (NUL-terminated, may be left
 * empty). Checks run on server worker threads, concurrently: they must be
 * thread-safe and fast (read a flag, do not do I/O).
 */
typedef bool (*server_ready_fn)(void *ctx, char *why, size_t why_len);

struct server_ready;

/* A new, empty set (ready until a check says otherwise). NULL on ENOMEM. */
struct server_ready *server_ready_new(void);

/* Frees the set. Call only after every server using it is freed. NULL-safe. */
void server_ready_free(struct server_ready *r);

/*
 * Adds a check; name is copied and appears in the /readyz body. Thread-safe.
 * Returns 0, -EEXIST (name taken), -ENOSPC (LIMITS_HTTP_READY_CHECKS) or -ENOMEM.
 */
int server_ready_add(struct server_ready *r, const char *name, server_ready_fn fn, void *ctx);

/* Removes a check by name. Returns 0 or -ENOENT. Thread-safe. */
int server_ready_remove(struct server_ready *r, const char *name);

/*
 * Runs every check. Returns true when all pass. When out is non-NULL, appends
 * {"ready":bool,"checks":[{"name":..,"ok":..,"reason":..}]} to it.
 * Thread-safe.
 */
bool server_ready_evaluate(struct server_ready *r, struct buf *out);

/* What a server is started with. Strings are copied by server_new(). */
struct server_options {
	const char *name;               /* "https", "metrics": in logs and the connections gauge */
	const char *listen;             /* ":8443", "0.0.0.0:8443", "127.0.0.1:0", "[::1]:8443" */
	const char *listen_flag;        /* names listen in errors ("--listen"); NULL = "listen address" */
	const char *tls_cert;           /* PEM chain; with tls_key, or both NULL for plain HTTP */
	const char *tls_key;            /* PEM private key */
	const char *client_ca;          /* PEM CAs for client certificates; NULL = none asked for */
	size_t max_body_bytes;          /* 413 beyond; 0 = LIMITS_HTTP_BODY_DEFAULT */
	unsigned max_connections;       /* 0 = LIMITS_HTTP_CONNECTIONS_DEFAULT */
	int64_t idle_timeout_ms;        /* idle connections, and requests not fully received in this
	                                   time, are closed; 0 = never (not for production) */
	unsigned threads;               /* event-loop threads; 0 = 1 */
	unsigned blocking_threads;      /* workers of SERVER_ROUTE_BLOCKING handlers, started only when
	                                   such a route exists; 0 = LIMITS_HTTP_BLOCKING_THREADS */
	unsigned tls_check_interval_ms; /* 0 = SERVER_TLS_CHECK_INTERVAL_MS */
	struct server_ready *ready;     /* checks behind /readyz; NULL = ready when running */
};

/* Why server_start() failed, naming the option. */
struct server_error {
	char message[512];
};

struct server;

/*
 * A server that is not listening yet. /healthz and /readyz (GET) are
 * registered already. Returns NULL on ENOMEM or when opts has no listen
 * address, or only one of tls_cert/tls_key, or client_ca without TLS.
 * Not thread-safe.
 */
struct server *server_new(const struct server_options *opts);

/*
 * Registers a handler for an exact path (query string ignored) and a method
 * ("GET" routes also answer HEAD). flags: SERVER_ROUTE_*. Only before
 * server_start(). Returns 0, -EEXIST, -ENOSPC (LIMITS_HTTP_ROUTES), -EINVAL
 * (path not starting with '/', or already started) or -ENOMEM.
 */
int server_route(struct server *s, const char *method, const char *path, unsigned flags,
    server_handler_fn fn, void *ctx);

/*
 * Binds the address, loads the certificate (and client CA) and starts the
 * worker threads and the watchdog (idle requests, certificate reload).
 * Returns 0 or a negative errno code with err naming the cause ("--listen
 * :8443: Address already in use", "--tls-cert /x: ...").
 */
int server_start(struct server *s, struct server_error *err);

/* The bound TCP port (useful with port 0), 0 when not started. Thread-safe. */
int server_port(const struct server *s);

/* The bound address as "host:port" / "[v6]:port" for logs. Thread-safe. */
const char *server_address(const struct server *s);

/*
 * Re-reads the certificate, key and client CA now (SIGHUP). Live connections
 * keep the pair they handshook with; new ones get the new pair. If the new
 * files are invalid or do not match, the old pair stays and an error is
 * logged. Returns 0 (reloaded or unchanged), or the negative error of the
 * failed load. Thread-safe.
 */
int server_reload_tls(struct server *s);

/*
 * Graceful stop: stops accepting, makes /readyz answer 503 (here and on every
 * server sharing its ready set, so the metrics port reports the drain too),
 * asks clients to close ("Connection: close"), waits up to grace_ms for requests in
 * flight, then closes every connection and joins the threads. Not
 * thread-safe against itself; safe while requests run. Idempotent.
 */
void server_stop(struct server *s, int64_t grace_ms);

/* Stops (grace 0) if running, and frees. NULL-safe. */
void server_free(struct server *s);

/* Open connections right now. Thread-safe. */
unsigned server_connections(const struct server *s);

/* ---- Helpers for handlers --------------------------------------------- */

/*
 * Sets status and replaces the body with {"error":"<formatted message>"}
 * (JSON-escaped; invalid UTF-8 in the message is replaced).
 */
void server_json_error(struct server_response *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Handler for GET /metrics: the Prometheus text format of the process registry. ctx unused. */
void server_handle_metrics(void *ctx, const struct server_request *req,
    struct server_response *resp);

#endif
