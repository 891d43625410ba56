/* HTTPS server (libmicrohttpd + GnuTLS) for the extender and webhooks, and the plain-HTTP metrics server. */
#ifndef STRATOS_SERVER_H
#define STRATOS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "stratos/buf.h"

/* One HTTP request as a handler sees it. Everything is borrowed for the call. */
struct server_request {
	const char *method;
	const char *path;               /* without the query string */
	const char *body;               /* NUL-terminated; body_len bytes */
	size_t body_len;
	bool client_cert_verified;      /* a client certificate signed by --client-ca was presented */
	long long received_us;          /* time_mono_us() when the request was complete */
};

/* What a handler fills in. The server sends it and frees body. */
struct server_response {
	int status;                     /* HTTP status; the server presets 200 */
	struct buf body;                /* handler appends the body; capped by the server */
	const char *content_type;       /* static string; preset "application/json" */
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

#endif
