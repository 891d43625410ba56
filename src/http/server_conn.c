/* Connections of the servers: accounting, the accept policy, and the watchdog that closes stalled ones. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server_internal.h"
#include "stratos/log.h"
#include "stratos/timeutil.h"

/* ---- Connections and the watchdog ---------------------------------------- */

/* While stopping, a new connection is closed at once: the client tries another replica. */
enum MHD_Result
server__accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct server *s = cls;

	(void)addr;
	(void)addrlen;
	return atomic_load(&s->stopping) ? MHD_NO : MHD_YES;
}

void
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
		metrics_gauge_add(server__m_connections, 1, s->opts.name);
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
	metrics_gauge_add(server__m_connections, -1, s->opts.name);
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
		metrics_counter_add(server__m_timeouts, cut, s->opts.name);
		log_msg(LOG_LEVEL_DEBUG, json_pack("{s:s,s:i}", "server", s->opts.name, "count", cut),
		    "closed connections that did not send a request within the idle timeout");
	}
}

void *
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
