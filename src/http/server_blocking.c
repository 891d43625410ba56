/* Workers for handlers that may wait (SERVER_ROUTE_BLOCKING): the connection is suspended, the event loop goes on. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"
#include "stratos/log.h"

/*
 * libmicrohttpd runs handlers on its event-loop threads, each serving many
 * connections: a handler that waits 2 s for EC2 would hold up every other
 * connection of its thread (the admission webhooks, /healthz). So a blocking
 * route's request is handed over here after its body arrived, its connection
 * suspended (MHD_suspend_connection), and resumed once the answer is ready;
 * libmicrohttpd then calls the access handler again, which queues the reply.
 */

static void *
server__blocking_main(void *arg)
{
	struct server *s = arg;
	struct server__blocking_pool *b = &s->blocking;

	for (;;) {
		struct server__req *r;

		pthread_mutex_lock(&b->lock);
		while (b->len == 0 && !b->stop)
			pthread_cond_wait(&b->cond, &b->lock);
		if (b->len == 0) {
			/* Stopping and nothing left: every suspended connection has been resumed. */
			pthread_mutex_unlock(&b->lock);
			return NULL;
		}
		r = b->queue[b->head];
		b->head = (b->head + 1) % LIMITS_HTTP_BLOCKING_QUEUE;
		b->len--;
		pthread_mutex_unlock(&b->lock);

		server__run_handler(s, r);
		atomic_store(&r->blocking, SERVER__BLOCKING_DONE);
		MHD_resume_connection(r->mc);
	}
}

int
server__blocking_start(struct server *s)
{
	struct server__blocking_pool *b = &s->blocking;
	unsigned n = s->opts.blocking_threads > 0 ? s->opts.blocking_threads :
	    LIMITS_HTTP_BLOCKING_THREADS;
	int rc;

	b->threads = calloc(n, sizeof(*b->threads));
	if (b->threads == NULL)
		return -ENOMEM;
	b->stop = false;
	for (b->nthreads = 0; b->nthreads < n; b->nthreads++) {
		rc = pthread_create(&b->threads[b->nthreads], NULL, server__blocking_main, s);
		if (rc != 0) {
			server__blocking_stop(s);
			return -rc;
		}
	}
	return 0;
}

int
server__blocking_submit(struct server *s, struct server__req *r)
{
	struct server__blocking_pool *b = &s->blocking;
	int rc = 0;

	pthread_mutex_lock(&b->lock);
	if (b->nthreads == 0 || b->stop || b->len == LIMITS_HTTP_BLOCKING_QUEUE) {
		rc = -EBUSY;
	} else {
		/*
		 * Suspended only once a place is certain (a refusal is answered
		 * at once, never from a suspended connection), and before it is
		 * queued, so the worker's resume cannot come first.
		 */
		MHD_suspend_connection(r->mc);
		b->queue[(b->head + b->len) % LIMITS_HTTP_BLOCKING_QUEUE] = r;
		b->len++;
		pthread_cond_signal(&b->cond);
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

void
server__blocking_stop(struct server *s)
{
	struct server__blocking_pool *b = &s->blocking;

	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	for (unsigned i = 0; i < b->nthreads; i++)
		pthread_join(b->threads[i], NULL);
	free(b->threads);
	b->threads = NULL;
	b->nthreads = 0;
}
