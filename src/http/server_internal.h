/* Internal to the server module (src/http/server*.c): its structures and the functions its parts share. */
#ifndef STRATOS_HTTP_SERVER_INTERNAL_H
#define STRATOS_HTTP_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "stratos/limits.h"
#include "stratos/metrics.h"
#include "stratos/server.h"

/* TLS 1.2 and 1.3 only: 1.0 and 1.1 are refused in the handshake. */
#define SERVER__TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"
#define SERVER__WATCHDOG_TICK_MS 250
#define SERVER__LISTEN_BACKLOG 511

/* The readiness checks of /readyz (server_ready.c). */
struct server__check {
	char *name;
	server_ready_fn fn;
	void *ctx;
};

struct server_ready {
	atomic_bool stopping;           /* a server using this set is shutting down */
	pthread_mutex_t lock;
	struct server__check checks[LIMITS_HTTP_READY_CHECKS];
	size_t n;
};

struct server__route {
	char *method;
	char *path;
	unsigned flags;
	server_handler_fn fn;
	void *ctx;
};

/* A serving certificate chain and its key, shared by the handshakes that chose it. */
struct server__cred {
	atomic_uint refs;
	gnutls_pcert_st pcert[LIMITS_TLS_CHAIN];
	unsigned npcert;
	gnutls_privkey_t key;
	char serial[80];
	int64_t not_after;              /* Unix seconds */
};

/* What stat() said about a file, to notice a replacement. */
struct server__filesig {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

/* One TCP connection, from accept to close. */
struct server__conn {
	struct server__conn *prev, *next;
	struct server *server;
	int fd;
	atomic_llong since_ms;          /* start of the request being received (or of the idle wait) */
	atomic_bool responding;         /* request received; handler or sending runs */
	bool timed_out;                 /* the watchdog shut it down */
	struct server__cred *cred;      /* pair given to this connection's handshake */
	int cert_state;                 /* 0 not checked, 1 verified, -1 refused */
	char cert_error[160];
};

/* One request, from its headers to the completion callback. */
struct server__req {
	struct server__conn *conn;
	const struct server__route *route;
	struct buf body;
	size_t drained;
	bool too_large;
	int pending;                    /* error decided on the headers, sent after the (empty) body */
	char pending_allow[128];
	int status;
	size_t resp_bytes;
	int64_t start_us;
	char method[16];
	char path[160];
	/* SERVER_ROUTE_BLOCKING: the suspended connection and what the worker made of it. */
	struct MHD_Connection *mc;
	atomic_int blocking;            /* enum server__blocking */
	bool deferred;                  /* the event-loop call asked for a worker */
	bool client_cert_verified;
	long long received_us;
	int res_status;
	const char *res_type;
	struct buf res_body;
};

enum server__blocking {
	SERVER__BLOCKING_NONE,
	SERVER__BLOCKING_RUNNING,       /* queued or on a worker; the connection is suspended */
	SERVER__BLOCKING_DONE,          /* res_* filled; the connection was resumed */
};

/* The workers of SERVER_ROUTE_BLOCKING handlers (server_blocking.c). */
struct server__blocking_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct server__req *queue[LIMITS_HTTP_BLOCKING_QUEUE];
	size_t head, len;
	pthread_t *threads;
	unsigned nthreads;
	bool stop;
};

struct server {
	struct server_options opts;     /* strings owned */
	struct server__route routes[LIMITS_HTTP_ROUTES];
	size_t nroutes;

	struct MHD_Daemon *daemon;
	int listen_fd;
	int port;
	char address[INET6_ADDRSTRLEN + 16];
	atomic_bool started;
	atomic_bool stopping;
	atomic_int inflight;
	atomic_uint nconns;

	/* TLS: the current pair and client CA, swapped on reload. */
	bool tls;
	pthread_mutex_t cred_lock;
	struct server__cred *cred;
	pthread_rwlock_t ca_lock;
	gnutls_x509_trust_list_t ca;
	pthread_mutex_t reload_lock;
	struct server__filesig sig_cert, sig_key, sig_ca;

	/* Connections, for the watchdog. */
	pthread_mutex_t conns_lock;
	struct server__conn *conns;

	struct server__blocking_pool blocking;

	pthread_t watchdog;
	bool watchdog_running;
	pthread_mutex_t wd_lock;
	pthread_cond_t wd_cond;
	bool wd_stop;
};

/* server.c: the metric families every part counts in (registered once by server_new). */
extern struct metrics_family *server__m_requests;
extern struct metrics_family *server__m_seconds;
extern struct metrics_family *server__m_connections;
extern struct metrics_family *server__m_timeouts;
extern struct metrics_family *server__m_tls_reloads;
extern struct metrics_family *server__m_tls_not_after;

/* server_tls.c */
void server__sig_read(const char *path, struct server__filesig *sig);
void server__cred_unref(struct server__cred *c);
int server__cred_load(const char *cert_path, const char *key_path, struct server__cred **out,
    char *err, size_t errlen);
int server__ca_load(const char *path, gnutls_x509_trust_list_t *out, char *err, size_t errlen);
int server__tls_reload(struct server *s, bool force);
int server__cert_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
    unsigned int *pcert_length, gnutls_privkey_t *privkey);
bool server__client_verified(struct server *s, struct server__conn *conn, struct MHD_Connection *mc);

/* server.c: runs r's handler and keeps its answer in r->res_* (any thread). */
void server__run_handler(struct server *s, struct server__req *r);

/* server_blocking.c */
int server__blocking_start(struct server *s);
/* Suspends r's connection (r->mc) and queues r; -EBUSY (nothing done) when the queue is full. */
int server__blocking_submit(struct server *s, struct server__req *r);
/* Runs what is queued, joins the workers: every suspended connection is resumed. */
void server__blocking_stop(struct server *s);

/* server_conn.c */
struct server__conn *server__conn_of(struct MHD_Connection *mc);
enum MHD_Result server__accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void server__notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
    enum MHD_ConnectionNotificationCode code);
void *server__watchdog_main(void *arg);

#endif
