/* TLS of the HTTPS server: serving key pairs and their reload, the client CA, client certificate checks. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server_internal.h"
#include "stratos/log.h"
#include "stratos/timeutil.h"

static bool
server__sig_equal(const struct server__filesig *a, const struct server__filesig *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	    a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	    a->ctime.tv_nsec == b->ctime.tv_nsec;
}

void
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

void
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
int
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

int
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
int
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
			metrics_counter_add(server__m_tls_reloads, 1, s->opts.name, "ok");
			metrics_gauge_set(server__m_tls_not_after, (double)c->not_after, s->opts.name);
			log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:I}", "server", s->opts.name,
			    "serial", c->serial, "not_after", (json_int_t)c->not_after),
			    "serving certificate loaded from %s", s->opts.tls_cert);
			if (c->not_after > 0 && c->not_after * 1000 < time_real_ms())
				log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "server", s->opts.name,
				    "serial", c->serial), "serving certificate has expired");
		} else {
			rc = lrc;
			metrics_counter_add(server__m_tls_reloads, 1, s->opts.name, "error");
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
			metrics_counter_add(server__m_tls_reloads, 1, s->opts.name, "ok");
			log_msg(LOG_LEVEL_INFO, json_pack("{s:s}", "server", s->opts.name),
			    "client CA loaded from %s", s->opts.client_ca);
		} else {
			rc = rc < 0 ? rc : lrc;
			metrics_counter_add(server__m_tls_reloads, 1, s->opts.name, "error");
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

struct server__conn *
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
int
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
bool
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
