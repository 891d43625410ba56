/* HTTPS and plain-HTTP servers over libmicrohttpd: routing, capped bodies, TLS reload, client certificates, health. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "stratos/jsonscan.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/server.h"
#include "stratos/timeutil.h"

/* TLS 1.2 and 1.3 only: 1.0 and 1.1 are refused in the handshake. */
#define SERVER__TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"
#define SERVER__WATCHDOG_TICK_MS 250
#define SERVER__LISTEN_BACKLOG 511

/* ---- Readiness checks ---------------------------------------------------- */

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

struct server_ready *
server_ready_new(void)
{
	struct server_ready *r = calloc(1, sizeof(*r));

	if (r != NULL)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
server_ready_free(struct server_ready *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->checks[i].name);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int
server_ready_add(struct server_ready *r, const char *name, server_ready_fn fn, void *ctx)
{
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->checks[i].name, name) == 0) {
			rc = -EEXIST;
			goto out;
		}
	}
	if (r->n == LIMITS_HTTP_READY_CHECKS) {
		rc = -ENOSPC;
		goto out;
	}
	r->checks[r->n].name = strdup(name);
	if (r->checks[r->n].name == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	r->checks[r->n].fn = fn;
	r->checks[r->n].ctx = ctx;
	r->n++;
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int
server_ready_remove(struct server_ready *r, const char *name)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->checks[i].name, name) == 0) {
			free(r->checks[i].name);
			memmove(&r->checks[i], &r->checks[i + 1], (r->n - i - 1) * sizeof(r->checks[0]));
			r->n--;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Adds one {"name","ok","reason"} entry; reason may be NULL. */
static void
server__ready_entry(json_t *list, const char *name, bool ok, const char *reason)
{
	json_t *e = json_object();

	json_object_set_new(e, "name", json_string(name));
	json_object_set_new(e, "ok", json_boolean(ok));
	if (reason != NULL && reason[0] != '\0') {
		json_t *why = json_string(reason);
		json_object_set_new(e, "reason", why != NULL ? why : json_string("(not UTF-8)"));
	}
	json_array_append_new(list, e);
}

bool
server_ready_evaluate(struct server_ready *r, struct buf *out)
{
	json_t *list = out != NULL ? json_array() : NULL;
	bool all = true;

	if (r != NULL && atomic_load(&r->stopping)) {
		all = false;
		if (list != NULL)
			server__ready_entry(list, "shutdown", false, "shutting down");
	}
	if (r != NULL) {
		pthread_mutex_lock(&r->lock);
		for (size_t i = 0; i < r->n; i++) {
			char why[256] = "";
			bool ok = r->checks[i].fn(r->checks[i].ctx, why, sizeof(why));

			why[sizeof(why) - 1] = '\0';
			all = all && ok;
			if (list != NULL)
				server__ready_entry(list, r->checks[i].name, ok, ok ? NULL : why);
		}
		pthread_mutex_unlock(&r->lock);
	}
	if (out != NULL) {
		json_t *doc = json_object();
		char *text;

		json_object_set_new(doc, "ready", json_boolean(all));
		json_object_set_new(doc, "checks", list);
		text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (text != NULL)
			buf_append_str(out, text);
		free(text);
		json_decref(doc);
	}
	return all;
}

/* ---- Server state --------------------------------------------------------- */

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

	pthread_t watchdog;
	bool watchdog_running;
	pthread_mutex_t wd_lock;
	pthread_cond_t wd_cond;
	bool wd_stop;
};

static struct metrics_family *server_m_requests;
static struct metrics_family *server_m_seconds;
static struct metrics_family *server_m_connections;
static struct metrics_family *server_m_timeouts;
static struct metrics_family *server_m_tls_reloads;
static struct metrics_family *server_m_tls_not_after;

static void
server__metrics_init(void)
{
	static const char *const handler_code[] = { "handler", "code", NULL };
	static const char *const handler[] = { "handler", NULL };
	static const char *const srv[] = { "server", NULL };
	static const char *const srv_result[] = { "server", "result", NULL };

	server_m_requests = metrics_register(METRICS_COUNTER, "stratos_http_requests_total",
	    "HTTP requests answered, by route and status code", handler_code, NULL, 0);
	server_m_seconds = metrics_register(METRICS_HISTOGRAM, "stratos_http_request_seconds",
	    "Time from request headers to the last response byte", handler,
	    METRICS_BUCKETS_LATENCY, METRICS_BUCKETS_LATENCY_COUNT);
	server_m_connections = metrics_register(METRICS_GAUGE, "stratos_http_connections",
	    "Open connections", srv, NULL, 0);
	server_m_timeouts = metrics_register(METRICS_COUNTER,
	    "stratos_http_connections_timed_out_total",
	    "Connections closed because a request was not received within the idle timeout",
	    srv, NULL, 0);
	server_m_tls_reloads = metrics_register(METRICS_COUNTER, "stratos_tls_reloads_total",
	    "Certificate, key or client CA reloads, by result", srv_result, NULL, 0);
	server_m_tls_not_after = metrics_register(METRICS_GAUGE,
	    "stratos_tls_certificate_not_after_seconds",
	    "Expiry (Unix time) of the serving certificate in use", srv, NULL, 0);
}

/* ---- Small helpers ------------------------------------------------------- */

void
server_json_error(struct server_response *resp, int status, const char *fmt, ...)
{
	char msg[512];
	json_t *doc, *str;
	char *text;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	str = json_string(msg);
	if (str == NULL) {
		/* Not UTF-8 (a message quoting the client's bytes): keep ASCII only. */
		for (char *p = msg; *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		str = json_string(msg);
	}
	doc = json_object();
	json_object_set_new(doc, "error", str);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	resp->status = status;
	resp->content_type = "application/json";
	buf_reset(&resp->body);
	if (text != NULL)
		buf_append_str(&resp->body, text);
	free(text);
}

void
server_handle_metrics(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	(void)req;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	if (metrics_render(&resp->body) < 0)
		server_json_error(resp, 500, "metrics did not fit the response buffer");
}

static bool
server__sig_equal(const struct server__filesig *a, const struct server__filesig *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	    a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	    a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void
server__sig_read(const char *path, struct server__filesig *sig)
{
	struct stat st;

	memset(sig, 0, sizeof(*sig));
	if (path == NULL || stat(path, &st) < 0)
		return;
	sig->exists = true;
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->size = st.st_size;
	sig->mtime = st.st_mtim;
	sig->ctime = st.st_ctim;
}

/* Reads a whole small file. Returns 0, -errno, or -EFBIG beyond LIMITS_TLS_FILE. */
static int
server__read_file(const char *path, struct buf *out)
{
	char chunk[8192];
	FILE *f = fopen(path, "rbe");
	int rc = 0;

	buf_init(out, LIMITS_TLS_FILE);
	if (f == NULL)
		return -errno;
	for (;;) {
		size_t n = fread(chunk, 1, sizeof(chunk), f);
		if (n > 0 && (rc = buf_append(out, chunk, n)) < 0) {
			rc = rc == -E2BIG ? -EFBIG : rc;
			break;
		}
		if (n < sizeof(chunk)) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	fclose(f);
	if (rc < 0)
		buf_free_secure(out);
	return rc;
}

/* ---- TLS: serving pair, client CA ---------------------------------------- */

static void
server__cred_unref(struct server__cred *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	for (unsigned i = 0; i < c->npcert; i++)
		gnutls_pcert_deinit(&c->pcert[i]);
	if (c->key != NULL)
		gnutls_privkey_deinit(c->key);
	free(c);
}

/* Hex serial and expiry of the leaf certificate. */
static void
server__cred_describe(struct server__cred *c)
{
	gnutls_x509_crt_t crt;
	unsigned char serial[40];
	size_t len = sizeof(serial);

	snprintf(c->serial, sizeof(c->serial), "?");
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &c->pcert[0].cert, GNUTLS_X509_FMT_DER) == 0) {
		if (gnutls_x509_crt_get_serial(crt, serial, &len) == 0) {
			size_t o = 0;
			for (size_t i = 0; i < len && o + 3 < sizeof(c->serial); i++)
				o += (size_t)snprintf(c->serial + o, sizeof(c->serial) - o, "%02x",
				    serial[i]);
		}
		c->not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crt);
	}
	gnutls_x509_crt_deinit(crt);
}

/*
 * Loads a certificate chain and its key. The key must belong to the first
 * certificate: a pair caught half-way through a rotation is refused.
 */
static int
server__cred_load(const char *cert_path, const char *key_path, struct server__cred **out,
    char *err, size_t errlen)
{
	struct server__cred *c = calloc(1, sizeof(*c));
	struct buf certs, key;
	gnutls_datum_t d;
	gnutls_pubkey_t pub = NULL;
	unsigned char id1[64], id2[64];
	size_t l1 = sizeof(id1), l2 = sizeof(id2);
	int rc;

	buf_init(&certs, 0);
	buf_init(&key, 0);
	if (c == NULL)
		return -ENOMEM;
	atomic_init(&c->refs, 1);
	if ((rc = server__read_file(cert_path, &certs)) < 0) {
		snprintf(err, errlen, "--tls-cert %s: %s", cert_path, strerror(-rc));
		goto fail;
	}
	if ((rc = server__read_file(key_path, &key)) < 0) {
		snprintf(err, errlen, "--tls-key %s: %s", key_path, strerror(-rc));
		goto fail;
	}
	d.data = (unsigned char *)certs.data;
	d.size = (unsigned)certs.len;
	c->npcert = LIMITS_TLS_CHAIN;
	rc = certs.len == 0 ? GNUTLS_E_BASE64_DECODING_ERROR :
	    gnutls_pcert_list_import_x509_raw(c->pcert, &c->npcert, &d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || c->npcert == 0) {
		c->npcert = 0;
		snprintf(err, errlen, "--tls-cert %s: not a PEM certificate chain: %s", cert_path,
		    gnutls_strerror(rc));
		rc = -EINVAL;
		goto fail;
	}
	d.data = (unsigned char *)key.data;
	d.size = (unsigned)key.len;
	if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(c->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		snprintf(err, errlen, "--tls-key %s: not a PEM private key: %s", key_path,
		    gnutls_strerror(rc));
		rc = -EINVAL;
		goto fail;
	}
	if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_privkey(pub, c->key, 0, 0) < 0 ||
	    gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id1, &l1) < 0 ||
	    gnutls_pubkey_get_key_id(c->pcert[0].pubkey, GNUTLS_KEYID_USE_SHA256, id2, &l2) < 0 ||
	    l1 != l2 || memcmp(id1, id2, l1) != 0) {
		snprintf(err, errlen, "--tls-key %s does not match the certificate in --tls-cert %s",
		    key_path, cert_path);
		rc = -EINVAL;
		goto fail;
	}
	gnutls_pubkey_deinit(pub);
	buf_free(&certs);
	buf_free_secure(&key);
	server__cred_describe(c);
	*out = c;
	return 0;
fail:
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	buf_free(&certs);
	buf_free_secure(&key);
	server__cred_unref(c);
	return rc < 0 ? rc : -EINVAL;
}

static int
server__ca_load(const char *path, gnutls_x509_trust_list_t *out, char *err, size_t errlen)
{
	gnutls_x509_trust_list_t tl = NULL;
	struct buf pem;
	gnutls_datum_t d;
	int rc;

	if ((rc = server__read_file(path, &pem)) < 0) {
		snprintf(err, errlen, "--client-ca %s: %s", path, strerror(-rc));
		return rc;
	}
	d.data = (unsigned char *)pem.data;
	d.size = (unsigned)pem.len;
	rc = gnutls_x509_trust_list_init(&tl, 0);
	if (rc == 0)
		rc = pem.len == 0 ? 0 :
		    gnutls_x509_trust_list_add_trust_mem(tl, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
	buf_free(&pem);
	if (rc <= 0) {
		snprintf(err, errlen, "--client-ca %s: no PEM certificate found%s%s", path,
		    rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror(rc) : "");
		if (tl != NULL)
			gnutls_x509_trust_list_deinit(tl, 1);
		return -EINVAL;
	}
	*out = tl;
	return 0;
}

/*
 * Re-reads what changed (everything when force). A pair or CA that fails to
 * load leaves the one in use in place; the file signature is remembered so
 * the error is logged once per change, not every interval.
 */
static int
server__tls_reload(struct server *s, bool force)
{
	struct server__filesig cert, key, ca;
	char err[512];
	int rc = 0;

	if (!s->tls)
		return 0;
	pthread_mutex_lock(&s->reload_lock);
	server__sig_read(s->opts.tls_cert, &cert);
	server__sig_read(s->opts.tls_key, &key);
	server__sig_read(s->opts.client_ca, &ca);

	if (force || !server__sig_equal(&cert, &s->sig_cert) || !server__sig_equal(&key, &s->sig_key)) {
		struct server__cred *c = NULL, *old;
		int lrc = server__cred_load(s->opts.tls_cert, s->opts.tls_key, &c, err, sizeof(err));

		if (lrc == 0) {
			pthread_mutex_lock(&s->cred_lock);
			old = s->cred;
			s->cred = c;
			pthread_mutex_unlock(&s->cred_lock);
			server__cred_unref(old);
			metrics_counter_add(server_m_tls_reloads, 1, s->opts.name, "ok");
			metrics_gauge_set(server_m_tls_not_after, (double)c->not_after, s->opts.name);
			log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:I}", "server", s->opts.name,
			    "serial", c->serial, "not_after", (json_int_t)c->not_after),
			    "serving certificate loaded from %s", s->opts.tls_cert);
			if (c->not_after > 0 && c->not_after * 1000 < time_real_ms())
				log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "server", s->opts.name,
				    "serial", c->serial), "serving certificate has expired");
		} else {
			rc = lrc;
			metrics_counter_add(server_m_tls_reloads, 1, s->opts.name, "error");
			log_msg(LOG_LEVEL_ERROR, json_pack("{s:s}", "server", s->opts.name),
			    "certificate reload failed, still serving the previous one: %s", err);
		}
		s->sig_cert = cert;
		s->sig_key = key;
	}
	if (s->opts.client_ca != NULL && (force || !server__sig_equal(&ca, &s->sig_ca))) {
		gnutls_x509_trust_list_t tl = NULL, old;
		int lrc = server__ca_load(s->opts.client_ca, &tl, err, sizeof(err));

		if (lrc == 0) {
			pthread_rwlock_wrlock(&s->ca_lock);
			old = s->ca;
			s->ca = tl;
			pthread_rwlock_unlock(&s->ca_lock);
			if (old != NULL)
				gnutls_x509_trust_list_deinit(old, 1);
			metrics_counter_add(server_m_tls_reloads, 1, s->opts.name, "ok");
			log_msg(LOG_LEVEL_INFO, json_pack("{s:s}", "server", s->opts.name),
			    "client CA loaded from %s", s->opts.client_ca);
		} else {
			rc = rc < 0 ? rc : lrc;
			metrics_counter_add(server_m_tls_reloads, 1, s->opts.name, "error");
			log_msg(LOG_LEVEL_ERROR, json_pack("{s:s}", "server", s->opts.name),
			    "client CA reload failed, still using the previous one: %s", err);
		}
		s->sig_ca = ca;
	}
	pthread_mutex_unlock(&s->reload_lock);
	return rc;
}

int
server_reload_tls(struct server *s)
{
	return server__tls_reload(s, true);
}

static struct server__conn *
server__conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

/*
 * GnuTLS asks which certificate to present. Each handshake takes a reference
 * on the current pair and keeps it until the connection closes, so a reload
 * never frees a pair a live session still points at.
 */
static int
server__cert_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
    unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
	struct MHD_Connection *mc = gnutls_session_get_ptr(session);
	struct server__conn *conn = mc != NULL ? server__conn_of(mc) : NULL;
	struct server__cred *c;

	(void)req_ca_rdn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (conn == NULL)
		return -1;
	pthread_mutex_lock(&conn->server->cred_lock);
	c = conn->server->cred;
	if (c != NULL)
		atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&conn->server->cred_lock);
	if (c == NULL)
		return -1;
	server__cred_unref(conn->cred);
	conn->cred = c;
	*pcert = c->pcert;
	*pcert_length = c->npcert;
	*privkey = c->key;
	return 0;
}

/* Verifies the client's chain against --client-ca once per connection. */
static bool
server__client_verified(struct server *s, struct server__conn *conn, struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *peers;
	gnutls_x509_crt_t crts[LIMITS_TLS_CHAIN];
	unsigned n = 0, nimported = 0, status = 0;
	gnutls_typed_vdata_st purpose = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	int rc;

	if (conn == NULL)
		return false;
	if (conn->cert_state != 0)
		return conn->cert_state > 0;
	conn->cert_state = -1;
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL) {
		snprintf(conn->cert_error, sizeof(conn->cert_error), "not a TLS connection");
		return false;
	}
	peers = gnutls_certificate_get_peers(ci->tls_session, &n);
	if (peers == NULL || n == 0) {
		snprintf(conn->cert_error, sizeof(conn->cert_error), "no client certificate presented");
		return false;
	}
	if (n > LIMITS_TLS_CHAIN)
		n = LIMITS_TLS_CHAIN;
	for (; nimported < n; nimported++) {
		if (gnutls_x509_crt_init(&crts[nimported]) < 0)
			break;
		if (gnutls_x509_crt_import(crts[nimported], &peers[nimported], GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(crts[nimported]);
			break;
		}
	}
	if (nimported == 0) {
		snprintf(conn->cert_error, sizeof(conn->cert_error), "client certificate unreadable");
		return false;
	}
	pthread_rwlock_rdlock(&s->ca_lock);
	rc = s->ca == NULL ? GNUTLS_E_NO_CERTIFICATE_FOUND :
	    gnutls_x509_trust_list_verify_crt2(s->ca, crts, nimported, &purpose, 1, 0, &status, NULL);
	pthread_rwlock_unlock(&s->ca_lock);
	for (unsigned i = 0; i < nimported; i++)
		gnutls_x509_crt_deinit(crts[i]);
	if (rc < 0) {
		snprintf(conn->cert_error, sizeof(conn->cert_error), "client certificate check failed: %s",
		    gnutls_strerror(rc));
		return false;
	}
	if (status != 0) {
		gnutls_datum_t why = { NULL, 0 };
		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
		snprintf(conn->cert_error, sizeof(conn->cert_error), "client certificate not trusted: %s",
		    why.data != NULL ? (const char *)why.data : "invalid");
		gnutls_free(why.data);
		return false;
	}
	conn->cert_state = 1;
	return true;
}

/* ---- Connections and the watchdog ---------------------------------------- */

/* While stopping, a new connection is closed at once: the client tries another replica. */
static enum MHD_Result
server__accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct server *s = cls;

	(void)addr;
	(void)addrlen;
	return atomic_load(&s->stopping) ? MHD_NO : MHD_YES;
}

static void
server__notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	struct server *s = cls;
	struct server__conn *conn = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci;

		conn = calloc(1, sizeof(*conn));
		*socket_context = conn;
		if (conn == NULL)
			return;
		conn->server = s;
		ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		conn->fd = ci != NULL ? ci->connect_fd : -1;
		atomic_init(&conn->since_ms, time_mono_ms());
		atomic_init(&conn->responding, false);
		if (s->tls && conn->fd >= 0) {
			ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
			if (ci != NULL && ci->tls_session != NULL) {
				/* Ask for (not require) a certificate: only some routes need one. */
				if (s->opts.client_ca != NULL)
					gnutls_certificate_server_set_request(ci->tls_session,
					    GNUTLS_CERT_REQUEST);
			}
		}
		pthread_mutex_lock(&s->conns_lock);
		conn->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = conn;
		s->conns = conn;
		pthread_mutex_unlock(&s->conns_lock);
		atomic_fetch_add(&s->nconns, 1);
		metrics_gauge_add(server_m_connections, 1, s->opts.name);
		return;
	}
	if (conn == NULL)
		return;
	/* MHD closes the socket only after this returns, so the watchdog (which
	 * holds conns_lock while it shuts sockets down) never touches a reused fd. */
	pthread_mutex_lock(&s->conns_lock);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		s->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	pthread_mutex_unlock(&s->conns_lock);
	atomic_fetch_sub(&s->nconns, 1);
	metrics_gauge_add(server_m_connections, -1, s->opts.name);
	server__cred_unref(conn->cred);
	free(conn);
	*socket_context = NULL;
}

/*
 * libmicrohttpd's timeout counts from the last byte, so a client sending a
 * byte a second would hold a connection forever. The watchdog also bounds
 * the time to receive a whole request (and the TLS handshake before it).
 */
static void
server__watchdog_sweep(struct server *s, int64_t now)
{
	int64_t limit = s->opts.idle_timeout_ms;
	unsigned cut = 0;

	if (limit <= 0)
		return;
	pthread_mutex_lock(&s->conns_lock);
	for (struct server__conn *c = s->conns; c != NULL; c = c->next) {
		if (c->timed_out || atomic_load(&c->responding) || c->fd < 0)
			continue;
		if (now - atomic_load(&c->since_ms) > limit) {
			c->timed_out = true;
			shutdown(c->fd, SHUT_RDWR);
			cut++;
		}
	}
	pthread_mutex_unlock(&s->conns_lock);
	if (cut > 0) {
		metrics_counter_add(server_m_timeouts, cut, s->opts.name);
		log_msg(LOG_LEVEL_DEBUG, json_pack("{s:s,s:i}", "server", s->opts.name, "count", cut),
		    "closed connections that did not send a request within the idle timeout");
	}
}

static void *
server__watchdog_main(void *arg)
{
	struct server *s = arg;
	unsigned interval = s->opts.tls_check_interval_ms ? s->opts.tls_check_interval_ms :
	    SERVER_TLS_CHECK_INTERVAL_MS;
	int64_t next_tls = time_mono_ms() + interval;

	pthread_mutex_lock(&s->wd_lock);
	while (!s->wd_stop) {
		int64_t now;

		time_cond_wait_until(&s->wd_cond, &s->wd_lock, time_mono_ms() + SERVER__WATCHDOG_TICK_MS);
		if (s->wd_stop)
			break;
		pthread_mutex_unlock(&s->wd_lock);
		now = time_mono_ms();
		server__watchdog_sweep(s, now);
		if (s->tls && now >= next_tls) {
			server__tls_reload(s, false);
			next_tls = now + interval;
		}
		pthread_mutex_lock(&s->wd_lock);
	}
	pthread_mutex_unlock(&s->wd_lock);
	return NULL;
}

/* ---- Requests ------------------------------------------------------------- */

static const struct server__route *
server__route_find(const struct server *s, const char *method, const char *path,
    bool *path_known)
{
	*path_known = false;
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct server__route *r = &s->routes[i];
		if (strcmp(r->path, path) != 0)
			continue;
		*path_known = true;
		if (strcmp(r->method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
			return r;
	}
	return NULL;
}

static void
server__allow(const struct server *s, const char *path, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct server__route *r = &s->routes[i];
		if (strcmp(r->path, path) != 0)
			continue;
		o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s%s", o ? ", " : "",
		    r->method, strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
		if (o >= len)
			break;
	}
}

/* Queues a response; takes ownership of body (malloc'd, may be NULL when len is 0). */
static enum MHD_Result
server__reply(struct server *s, struct MHD_Connection *mc, struct server__req *r, int status,
    const char *content_type, char *body, size_t len, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (atomic_load(&s->stopping))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(mc, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->resp_bytes = len;
	if (r->conn != NULL)
		atomic_store(&r->conn->responding, true);
	return ret;
}

static enum MHD_Result
server__reply_error(struct server *s, struct MHD_Connection *mc, struct server__req *r,
    int status, const char *allow, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static enum MHD_Result
server__reply_error(struct server *s, struct MHD_Connection *mc, struct server__req *r,
    int status, const char *allow, const char *fmt, ...)
{
	struct server_response resp;
	char msg[512];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_init(&resp.body, 4096);
	server_json_error(&resp, status, "%s", msg);
	len = resp.body.len;
	return server__reply(s, mc, r, status, "application/json", buf_take(&resp.body), len, allow);
}

/*
 * Checks the body of a SERVER_ROUTE_JSON request in full (jsonscan, one
 * pass, no tree; container ends recorded in doc) and, with
 * SERVER_ROUTE_JSON_TREE, parses it into *tree. Returns 0, or -1 with the
 * 400 text in why. Free doc in every case.
 */
static int
server__check_json(const struct server__req *r, bool want_tree, struct jsonscan_doc *doc,
    struct jsonscan_value *root, json_t **tree, char *why, size_t whylen)
{
	struct jsonscan_error err;
	json_error_t jerr;
	int rc;

	*tree = NULL;
	rc = jsonscan_validate(r->body.data, r->body.len, doc, root, &err);
	if (r->body.len == 0) {
		snprintf(why, whylen, "request body is empty; a JSON object is expected");
		return -1;
	}
	if (rc < 0) {
		snprintf(why, whylen, "request body is not valid JSON (line %d, column %d): %s",
		    err.line, err.column, err.text);
		return -1;
	}
	if (root->type != JSONSCAN_OBJECT) {
		snprintf(why, whylen, "request body must be a JSON object");
		return -1;
	}
	if (want_tree && (*tree = json_loadb(r->body.data, r->body.len, 0, &jerr)) == NULL) {
		/* Only memory can fail here: the text was checked. */
		snprintf(why, whylen, "request body could not be parsed: %s", jerr.text);
		return -1;
	}
	return 0;
}

static enum MHD_Result
server__dispatch(struct server *s, struct MHD_Connection *mc, struct server__req *r,
    const char *method)
{
	const struct server__route *route = r->route;
	struct server_request req;
	struct server_response resp;
	size_t cap, len;
	char why[400];
	json_t *doc = NULL;
	struct jsonscan_doc jdoc = { 0 };

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.path = route->path;
	req.body = r->body.data != NULL ? r->body.data : "";
	req.body_len = r->body.len;
	/* Checked once per connection, for every route, so any handler can tell. */
	req.client_cert_verified = s->opts.client_ca != NULL && server__client_verified(s, r->conn, mc);
	req.received_us = time_mono_us();
	if (route->flags & (SERVER_ROUTE_JSON | SERVER_ROUTE_JSON_TREE)) {
		if (server__check_json(r, route->flags & SERVER_ROUTE_JSON_TREE, &jdoc,
		    &req.json_root, &doc, why, sizeof(why)) < 0) {
			jsonscan_doc_free(&jdoc);
			return server__reply_error(s, mc, r, 400, NULL, "%s", why);
		}
		req.json = doc;
	}
	cap = s->opts.max_body_bytes * 2 > LIMITS_HTTP_RESPONSE_MIN ? s->opts.max_body_bytes * 2 :
	    LIMITS_HTTP_RESPONSE_MIN;
	resp.status = 200;
	resp.content_type = "application/json";
	buf_init(&resp.body, cap);
	route->fn(route->ctx, &req, &resp);
	json_decref(doc);
	jsonscan_doc_free(&jdoc);
	/* The body is not needed any more: give the memory back before sending. */
	buf_free(&r->body);
	if (resp.status < 200 || resp.status > 599) {
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:i}", "path", route->path, "status",
		    resp.status), "handler returned an invalid HTTP status");
		buf_free(&resp.body);
		return server__reply_error(s, mc, r, 500, NULL, "internal error: invalid status");
	}
	len = resp.body.len;
	return server__reply(s, mc, r, resp.status,
	    resp.content_type != NULL ? resp.content_type : "application/json",
	    buf_take(&resp.body), len, NULL);
}

/* Sends the 404 or 405 decided on the headers. */
static enum MHD_Result
server__reply_pending(struct server *s, struct MHD_Connection *mc, struct server__req *r)
{
	if (r->pending == 404)
		return server__reply_error(s, mc, r, 404, NULL, "no such path: %s", r->path);
	return server__reply_error(s, mc, r, 405, r->pending_allow,
	    "method %s not allowed on %s (allowed: %s)", r->method, r->path, r->pending_allow);
}

/*
 * First call for a request: route, method, client certificate, declared size.
 * An error queued now closes the connection after it (libmicrohttpd will not
 * read a body it was not asked for), so a refusal of a request without a
 * body waits for the final call and keeps the connection alive.
 */
static enum MHD_Result
server__begin(struct server *s, struct MHD_Connection *mc, struct server__req *r,
    const char *url, const char *method)
{
	const char *clen, *te;
	bool path_known, has_body;

	clen = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	has_body = te != NULL || (clen != NULL && strcmp(clen, "0") != 0);
	r->route = server__route_find(s, method, url, &path_known);
	if (r->route == NULL) {
		r->pending = path_known ? 405 : 404;
		if (path_known)
			server__allow(s, url, r->pending_allow, sizeof(r->pending_allow));
		return has_body ? server__reply_pending(s, mc, r) : MHD_YES;
	}
	if ((r->route->flags & SERVER_ROUTE_CLIENT_CERT) && s->opts.client_ca != NULL &&
	    !server__client_verified(s, r->conn, mc))
		return server__reply_error(s, mc, r, 403, NULL, "%s requires a client certificate signed by the configured client CA: %s",
		    r->route->path, r->conn != NULL ? r->conn->cert_error : "no connection state");
	if (clen != NULL) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(clen, &end, 10);
		if (errno == 0 && end != clen && n > s->opts.max_body_bytes)
			return server__reply_error(s, mc, r, 413, NULL,
			    "request body of %llu bytes is larger than the limit of %zu bytes (--max-body-bytes)",
			    n, s->opts.max_body_bytes);
	}
	buf_init(&r->body, s->opts.max_body_bytes);
	return MHD_YES;
}

static enum MHD_Result
server__access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct server__req *r = *con_cls;

	(void)version;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		r->start_us = time_mono_us();
		r->conn = server__conn_of(mc);
		buf_init(&r->body, 0);
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", url);
		atomic_fetch_add(&s->inflight, 1);
		return server__begin(s, mc, r, url, method);
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (!r->too_large && buf_append(&r->body, upload_data, n) == 0)
			return MHD_YES;
		if (!r->too_large) {
			r->too_large = true;
			buf_free(&r->body);
		}
		/* A chunked body has no declared size: a 413 can be sent only once it
		 * ends, so read on without keeping it, within a bound. */
		r->drained += n;
		return r->drained > LIMITS_HTTP_BODY_DRAIN ? MHD_NO : MHD_YES;
	}
	if (r->status != 0)
		return MHD_YES;
	if (r->pending != 0)
		return server__reply_pending(s, mc, r);
	if (r->too_large)
		return server__reply_error(s, mc, r, 413, NULL,
		    "request body is larger than the limit of %zu bytes (--max-body-bytes)",
		    s->opts.max_body_bytes);
	if (r->conn != NULL)
		atomic_store(&r->conn->responding, true);
	return server__dispatch(s, mc, r, method);
}

static void
server__completed(void *cls, struct MHD_Connection *mc, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct server__req *r = *con_cls;
	int64_t us;

	(void)mc;
	if (r == NULL)
		return;
	*con_cls = NULL;
	us = time_mono_us() - r->start_us;
	if (r->conn != NULL) {
		atomic_store(&r->conn->since_ms, time_mono_ms());
		atomic_store(&r->conn->responding, false);
	}
	if (r->status != 0) {
		const char *handler = r->route != NULL ? r->route->path : "unmatched";
		char code[8];

		snprintf(code, sizeof(code), "%d", r->status);
		metrics_counter_add(server_m_requests, 1, handler, code);
		metrics_histogram_observe(server_m_seconds, (double)us / 1e6, handler);
	}
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		log_msg(LOG_LEVEL_DEBUG, json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:b}", "server", s->opts.name, "method",
		    r->method, "path", r->path, "status", r->status, "bytes", (json_int_t)r->resp_bytes,
		    "duration_us", (json_int_t)us, "completed",
		    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK), "request");
	}
	/* A 503 from /readyz is a probe doing its job (start-up, drain), not a failure. */
	if (r->status >= 500 && !(r->status == 503 && strcmp(r->path, "/readyz") == 0))
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:s,s:i}", "server", s->opts.name,
		    "method", r->method, "path", r->path, "status", r->status), "request failed");
	buf_free(&r->body);
	free(r);
	atomic_fetch_sub(&s->inflight, 1);
}

/* ---- Built-in routes ------------------------------------------------------ */

static void
server__handle_healthz(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	(void)req;
	buf_append_str(&resp->body, "{\"status\":\"ok\"}");
}

static bool
server__not_stopping(void *ctx, char *why, size_t len)
{
	struct server *s = ctx;

	if (!atomic_load(&s->stopping))
		return true;
	snprintf(why, len, "shutting down");
	return false;
}

static void
server__handle_readyz(void *ctx, const struct server_request *req, struct server_response *resp)
{
	struct server *s = ctx;
	char why[64] = "";
	bool ok;

	(void)req;
	ok = server__not_stopping(s, why, sizeof(why));
	if (!ok) {
		buf_printf(&resp->body, "{\"ready\":false,\"checks\":[{\"name\":\"server\",\"ok\":false,"
		    "\"reason\":\"%s\"}]}", why);
	} else {
		ok = server_ready_evaluate(s->opts.ready, &resp->body);
	}
	resp->status = ok ? 200 : 503;
}

/* ---- Address and lifecycle ------------------------------------------------ */

/* Splits "[v6]:port", "host:port" or ":port". host is "" for any address. */
static int
server__split_address(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	size_t hl;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - addr - 1);
		if (hl == 0 || hl >= hostlen)
			return -EINVAL;
		memcpy(host, addr + 1, hl);
		host[hl] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		hl = (size_t)(colon - addr);
		if (hl >= hostlen || memchr(addr, ':', hl) != NULL)
			return -EINVAL;
		memcpy(host, addr, hl);
		host[hl] = '\0';
	}
	if (colon[1] == '\0' || strlen(colon + 1) >= portlen)
		return -EINVAL;
	for (const char *p = colon + 1; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	if (atoi(colon + 1) > 65535)
		return -EINVAL;
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

static int
server__listen_on(const struct sockaddr *sa, socklen_t salen, bool dual)
{
	int one = 1, zero = 0;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int saved;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, salen) < 0 || listen(fd, SERVER__LISTEN_BACKLOG) < 0) {
		saved = errno;
		close(fd);
		return -saved;
	}
	return fd;
}

static int
server__bind(struct server *s, struct server_error *err)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -EINVAL, rc;

	if (server__split_address(s->opts.listen, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err->message, sizeof(err->message),
		    "%s \"%s\": expected [host]:port, like :8443, 127.0.0.1:0 or [::1]:8443",
		    s->opts.listen_flag, s->opts.listen);
		return -EINVAL;
	}
	if (host[0] == '\0') {
		/* Any address: one dual-stack socket, or IPv4 alone where IPv6 is off. */
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
			.sin6_port = htons((uint16_t)atoi(port)) };
		struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
			.sin_port = htons((uint16_t)atoi(port)) };
		fd = server__listen_on((struct sockaddr *)&a6, sizeof(a6), true);
		if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
			fd = server__listen_on((struct sockaddr *)&a4, sizeof(a4), false);
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		rc = getaddrinfo(host, port, &hints, &res);
		if (rc != 0) {
			snprintf(err->message, sizeof(err->message), "%s \"%s\": %s",
			    s->opts.listen_flag, s->opts.listen, gai_strerror(rc));
			return -EINVAL;
		}
		for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
			fd = server__listen_on(ai->ai_addr, ai->ai_addrlen, false);
			if (fd >= 0)
				break;
		}
		freeaddrinfo(res);
	}
	if (fd < 0) {
		snprintf(err->message, sizeof(err->message), "%s \"%s\": %s", s->opts.listen_flag,
		    s->opts.listen, strerror(-fd));
		return fd;
	}
	s->listen_fd = fd;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		char ip[INET6_ADDRSTRLEN] = "?";
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
			s->port = ntohs(a->sin6_port);
			snprintf(s->address, sizeof(s->address), "[%s]:%d", ip, s->port);
		} else {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
			s->port = ntohs(a->sin_port);
			snprintf(s->address, sizeof(s->address), "%s:%d", ip, s->port);
		}
	}
	return 0;
}

/* libmicrohttpd's own messages: start-up problems are warnings, the rest (a
 * client that fails its handshake, resets...) would flood the log at warn. */
static void server__mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
server__mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct server *s = cls;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_msg(atomic_load(&s->started) ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN,
	    json_pack("{s:s}", "server", s->opts.name), "libmicrohttpd: %s", msg);
}

static char *
server__strdup_opt(const char *v, bool *oom)
{
	char *d;

	if (v == NULL)
		return NULL;
	d = strdup(v);
	if (d == NULL)
		*oom = true;
	return d;
}

struct server *
server_new(const struct server_options *opts)
{
	struct server *s;
	bool oom = false;

	if (opts == NULL || opts->listen == NULL ||
	    (opts->tls_cert == NULL) != (opts->tls_key == NULL) ||
	    (opts->client_ca != NULL && opts->tls_cert == NULL))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->opts = *opts;
	s->opts.name = server__strdup_opt(opts->name != NULL ? opts->name : "http", &oom);
	s->opts.listen = server__strdup_opt(opts->listen, &oom);
	s->opts.listen_flag = server__strdup_opt(opts->listen_flag != NULL ? opts->listen_flag :
	    "listen address", &oom);
	s->opts.tls_cert = server__strdup_opt(opts->tls_cert, &oom);
	s->opts.tls_key = server__strdup_opt(opts->tls_key, &oom);
	s->opts.client_ca = server__strdup_opt(opts->client_ca, &oom);
	if (s->opts.max_body_bytes == 0)
		s->opts.max_body_bytes = LIMITS_HTTP_BODY_DEFAULT;
	if (s->opts.max_connections == 0)
		s->opts.max_connections = LIMITS_HTTP_CONNECTIONS_DEFAULT;
	if (s->opts.threads == 0)
		s->opts.threads = 1;
	if (s->opts.threads > LIMITS_HTTP_THREADS_MAX)
		s->opts.threads = LIMITS_HTTP_THREADS_MAX;
	s->tls = s->opts.tls_cert != NULL;
	s->listen_fd = -1;
	pthread_mutex_init(&s->cred_lock, NULL);
	pthread_rwlock_init(&s->ca_lock, NULL);
	pthread_mutex_init(&s->reload_lock, NULL);
	pthread_mutex_init(&s->conns_lock, NULL);
	pthread_mutex_init(&s->wd_lock, NULL);
	time_cond_init(&s->wd_cond);
	server__metrics_init();
	if (oom || server_route(s, "GET", "/healthz", 0, server__handle_healthz, s) < 0 ||
	    server_route(s, "GET", "/readyz", 0, server__handle_readyz, s) < 0) {
		server_free(s);
		return NULL;
	}
	return s;
}

int
server_route(struct server *s, const char *method, const char *path, unsigned flags,
    server_handler_fn fn, void *ctx)
{
	struct server__route *r;
	bool known;

	if (s == NULL || method == NULL || path == NULL || path[0] != '/' || fn == NULL ||
	    atomic_load(&s->started))
		return -EINVAL;
	if (server__route_find(s, method, path, &known) != NULL)
		return -EEXIST;
	if (s->nroutes == LIMITS_HTTP_ROUTES)
		return -ENOSPC;
	r = &s->routes[s->nroutes];
	r->method = strdup(method);
	r->path = strdup(path);
	if (r->method == NULL || r->path == NULL) {
		free(r->method);
		free(r->path);
		r->method = r->path = NULL;
		return -ENOMEM;
	}
	r->flags = flags;
	r->fn = fn;
	r->ctx = ctx;
	s->nroutes++;
	return 0;
}

int
server_start(struct server *s, struct server_error *err)
{
	struct MHD_OptionItem o[16];
	unsigned flags, timeout_s;
	size_t n = 0;
	int rc;

	err->message[0] = '\0';
	if (atomic_load(&s->started) || s->daemon != NULL) {
		snprintf(err->message, sizeof(err->message), "%s server already started", s->opts.name);
		return -EALREADY;
	}
	if (s->tls) {
		struct server__cred *c = NULL;
		rc = server__cred_load(s->opts.tls_cert, s->opts.tls_key, &c, err->message,
		    sizeof(err->message));
		if (rc < 0)
			return rc;
		server__cred_unref(s->cred);
		s->cred = c;
		server__sig_read(s->opts.tls_cert, &s->sig_cert);
		server__sig_read(s->opts.tls_key, &s->sig_key);
		metrics_gauge_set(server_m_tls_not_after, (double)c->not_after, s->opts.name);
		if (s->opts.client_ca != NULL) {
			if (s->ca != NULL) {
				gnutls_x509_trust_list_deinit(s->ca, 1);
				s->ca = NULL;
			}
			rc = server__ca_load(s->opts.client_ca, &s->ca, err->message, sizeof(err->message));
			if (rc < 0)
				return rc;
			server__sig_read(s->opts.client_ca, &s->sig_ca);
		}
	}
	rc = server__bind(s, err);
	if (rc < 0)
		return rc;

	timeout_s = s->opts.idle_timeout_ms <= 0 ? 0 :
	    (unsigned)((s->opts.idle_timeout_ms + 999) / 1000);
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)server__mhd_log, s };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, s->opts.max_connections, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		LIMITS_HTTP_CONNECTION_MEMORY, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)server__completed, s };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
		(intptr_t)server__notify_connection, s };
	if (s->opts.threads > 1)
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, s->opts.threads, NULL };
	if (s->tls) {
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
			(void *)server__cert_cb };
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
			(void *)SERVER__TLS_PRIORITIES };
	}
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (s->tls)
		flags |= MHD_USE_TLS;
	s->daemon = MHD_start_daemon(flags, 0, server__accept_policy, s, server__access, s,
	    MHD_OPTION_ARRAY, o,
	    MHD_OPTION_END);
	if (s->daemon == NULL) {
		snprintf(err->message, sizeof(err->message),
		    "%s server on %s: libmicrohttpd did not start (see the log above)", s->opts.name,
		    s->address);
		close(s->listen_fd);
		s->listen_fd = -1;
		return -EIO;
	}
	atomic_store(&s->started, true);
	if (s->cred != NULL)
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:I}", "server", s->opts.name,
		    "serial", s->cred->serial, "not_after", (json_int_t)s->cred->not_after),
		    "serving certificate loaded from %s", s->opts.tls_cert);
	s->wd_stop = false;
	rc = pthread_create(&s->watchdog, NULL, server__watchdog_main, s);
	if (rc != 0) {
		snprintf(err->message, sizeof(err->message), "%s server: watchdog thread: %s",
		    s->opts.name, strerror(rc));
		server_stop(s, 0);
		return -rc;
	}
	s->watchdog_running = true;
	return 0;
}

int
server_port(const struct server *s)
{
	return s != NULL ? s->port : 0;
}

const char *
server_address(const struct server *s)
{
	return s != NULL ? s->address : "";
}

unsigned
server_connections(const struct server *s)
{
	return atomic_load(&((struct server *)s)->nconns);
}

void
server_stop(struct server *s, int64_t grace_ms)
{
	int64_t deadline;

	if (s == NULL || s->daemon == NULL)
		return;
	atomic_store(&s->stopping, true);
	/* Every port that answers /readyz says so while this one drains. */
	if (s->opts.ready != NULL)
		atomic_store(&s->opts.ready->stopping, true);
	/*
	 * New connections are refused from here on by server__accept_policy, not
	 * by MHD_quiesce_daemon(): with epoll worker threads that call races the
	 * workers' own removal of the listening socket and libmicrohttpd aborts
	 * the process ("Failed to remove listen FD from epoll set", an open
	 * defect in 0.9.75). MHD_stop_daemon() closes the socket.
	 */
	deadline = time_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
	while (atomic_load(&s->inflight) > 0 && time_mono_ms() < deadline) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&s->inflight) > 0)
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:i}", "server", s->opts.name, "requests",
		    atomic_load(&s->inflight)), "stopping with requests still in flight");
	MHD_stop_daemon(s->daemon);
	s->daemon = NULL;
	s->listen_fd = -1;
	if (s->watchdog_running) {
		pthread_mutex_lock(&s->wd_lock);
		s->wd_stop = true;
		pthread_cond_signal(&s->wd_cond);
		pthread_mutex_unlock(&s->wd_lock);
		pthread_join(s->watchdog, NULL);
		s->watchdog_running = false;
	}
	atomic_store(&s->started, false);
}

void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	server_stop(s, 0);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	for (size_t i = 0; i < s->nroutes; i++) {
		free(s->routes[i].method);
		free(s->routes[i].path);
	}
	server__cred_unref(s->cred);
	if (s->ca != NULL)
		gnutls_x509_trust_list_deinit(s->ca, 1);
	free((char *)s->opts.name);
	free((char *)s->opts.listen);
	free((char *)s->opts.listen_flag);
	free((char *)s->opts.tls_cert);
	free((char *)s->opts.tls_key);
	free((char *)s->opts.client_ca);
	pthread_mutex_destroy(&s->cred_lock);
	pthread_rwlock_destroy(&s->ca_lock);
	pthread_mutex_destroy(&s->reload_lock);
	pthread_mutex_destroy(&s->conns_lock);
	pthread_mutex_destroy(&s->wd_lock);
	pthread_cond_destroy(&s->wd_cond);
	free(s);
}
