/* /readyz: the named readiness checks modules register, evaluated on each request. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

/* ---- Readiness checks ---------------------------------------------------- */

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
