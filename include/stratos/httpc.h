/* Outgoing HTTP(S) over libcurl: one handle per worker, capped responses, typed transport errors. */
#ifndef STRATOS_HTTPC_H
#define STRATOS_HTTPC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "stratos/buf.h"

/*
 * TLS settings of a handle. Strings are copied by httpc_new(); PEM data may
 * be given inline (kubeconfig "-data" fields, already base64-decoded) or as
 * file paths. All fields are optional.
 */
struct httpc_tls {
	const char *ca_file;
	const char *ca_pem;          /* NUL-terminated PEM */
	const char *cert_file;
	const char *key_file;
	const char *cert_pem;
	const char *key_pem;
	bool insecure_skip_verify;
};

/*
 * Called with each chunk of a streamed body (watch streams). Return 0 to go
 * on, negative to abort the transfer (httpc_perform then returns -ECANCELED).
 */
typedef int (*httpc_data_fn)(void *ctx, const char *data, size_t len);

struct httpc_request {
	const char *method;             /* "GET", "POST", ... */
	const char *url;
	const char *const *headers;     /* NULL-terminated "Name: value" lines, may be NULL */
	const void *body;
	size_t body_len;
	long timeout_ms;                /* whole transfer; 0 = none (streams) */
	long connect_timeout_ms;        /* 0 = 5000 */
	long idle_timeout_ms;           /* abort when no byte arrives for this long; 0 = none */
	size_t max_response;            /* cap on the buffered body; 0 = LIMITS_HTTPC_RESPONSE_DEFAULT */
	httpc_data_fn on_data;          /* when set, the body is streamed here instead of buffered */
	void *on_data_ctx;
	const atomic_bool *cancel;      /* when it becomes true (from any thread) the call ends
	                                   within about a second with -ECANCELED; may be NULL */
	bool fresh_connection;          /* open a new connection and close it after (benchmarks) */
};

struct httpc_response {
	long status;                    /* HTTP status, 0 when none was received; set as soon
	                                   as the status line arrives (on_data may read it) */
	struct buf body;                /* buffered body (empty when streamed) */
	char content_type[128];
	long retry_after_s;             /* Retry-After in seconds, -1 when absent */
	double total_s;                 /* time spent in the call */
	bool reused_connection;         /* no new connection was opened */
	bool request_sent;              /* request bytes went out: the server may have acted on it */
	double connect_s;               /* time to connect incl. TLS handshake (0 when reused) */
	char error[256];                /* transport error text when httpc_perform < 0 */
};

struct httpc;

/* Initialises libcurl once per process; call from main before threads start. Returns 0 or -EIO. */
int httpc_global_init(void);

/*
 * New handle with its own connection cache (keep-alive). A handle is used by
 * one thread at a time; make one per worker. Returns NULL on ENOMEM.
 */
struct httpc *httpc_new(const struct httpc_tls *tls);

/* Frees the handle and closes its connections. NULL-safe. */
void httpc_free(struct httpc *h);

/*
 * Performs one request. Returns 0 when an HTTP response arrived (whatever its
 * status: check resp->status), or a negative code when none did: -ETIMEDOUT,
 * -ECONNREFUSED, -ECONNRESET (dropped, incl. empty reply), -EHOSTUNREACH
 * (DNS or route), -EPROTO (TLS), -EMSGSIZE (body over the cap), -ECANCELED
 * (on_data aborted or req->cancel set), -EIO (other); resp->error says more. resp must be
 * initialised with httpc_response_init() and is reset by this call.
 */
int httpc_perform(struct httpc *h, const struct httpc_request *req, struct httpc_response *resp);

void httpc_response_init(struct httpc_response *resp);

/* Frees the buffered body. NULL-safe. */
void httpc_response_free(struct httpc_response *resp);

/* Parts of an absolute http(s) URL. */
struct httpc_url {
	char scheme[8];                 /* "http" or "https" */
	char host[256];                 /* IPv6 literals keep their brackets */
	int port;                       /* explicit or the scheme's default */
	bool default_port;              /* no port given, or the scheme's default */
	char path[512];                 /* "/" when empty; no query */
};

/*
 * Parses url (http or https only, no user info). Returns 0, -EINVAL or
 * -E2BIG (a part does not fit). The Host header of a request to it is
 * host, plus ":port" unless default_port. Thread-safe.
 */
int httpc_url_parse(const char *url, struct httpc_url *out);

/* Percent-encodes s as RFC 3986 unreserved (for query strings and form bodies); caller frees. */
char *httpc_escape(const char *s);

#endif
