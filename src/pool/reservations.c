/* The stratos.sh/reservations annotation: parse, rewrite, and fit a pod beside the promises already made. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stratos/limits.h"
#include "stratos/reservations.h"
#include "stratos/timeutil.h"

static void
reservations__entry_free(struct reservation *e)
{
	free(e->uid);
	free(e->pod);
	resources_release(&e->requests);
	memset(e, 0, sizeof(*e));
}

void
reservations_free(struct reservations *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		reservations__entry_free(&r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* Reads one list element; an entry without a uid or with bad requests is refused. */
static int
reservations__entry(json_t *item, struct reservation *e)
{
	const char *uid = json_string_value(json_object_get(item, "uid"));
	const char *pod = json_string_value(json_object_get(item, "pod"));
	const char *since = json_string_value(json_object_get(item, "since"));
	json_t *req = json_object_get(item, "requests");
	int rc;

	memset(e, 0, sizeof(*e));
	if (!json_is_object(item) || uid == NULL || uid[0] == '\0' ||
	    (req != NULL && !json_is_object(req)))
		return -EINVAL;
	if ((rc = resources_parse_list(req, &e->requests)) < 0)
		return rc;
	e->requests.pods = 1;
	if (since != NULL && time_parse_rfc3339(since, &e->since_ms) < 0)
		e->since_ms = 0;
	e->uid = strdup(uid);
	e->pod = strdup(pod != NULL ? pod : "");
	if (e->uid == NULL || e->pod == NULL) {
		reservations__entry_free(e);
		return -ENOMEM;
	}
	return 0;
}

int
reservations_parse(const char *text, struct reservations *out)
{
	json_t *list, *item;
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (text == NULL || text[0] == '\0')
		return 0;
	if (strlen(text) > LIMITS_RESERVATIONS_TEXT)
		return -E2BIG;
	list = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_array(list)) {
		json_decref(list);
		return -EINVAL;
	}
	if (json_array_size(list) > LIMITS_RESERVATIONS) {
		json_decref(list);
		return -E2BIG;
	}
	if (json_array_size(list) > 0 &&
	    (out->v = calloc(json_array_size(list), sizeof(*out->v))) == NULL) {
		json_decref(list);
		return -ENOMEM;
	}
	json_array_foreach(list, i, item) {
		if ((rc = reservations__entry(item, &out->v[out->n])) < 0)
			break;
		out->n++;
	}
	json_decref(list);
	if (rc < 0)
		reservations_free(out);
	return rc;
}

const struct reservation *
reservations_find(const struct reservations *r, const char *uid)
{
	for (size_t i = 0; uid != NULL && i < r->n; i++)
		if (strcmp(r->v[i].uid, uid) == 0)
			return &r->v[i];
	return NULL;
}

size_t
reservations_keep(struct reservations *r,
    bool (*keep)(void *ctx, const struct reservation *e), void *ctx)
{
	size_t out = 0, dropped = 0;

	for (size_t i = 0; i < r->n; i++) {
		if (keep(ctx, &r->v[i])) {
			r->v[out++] = r->v[i];
		} else {
			reservations__entry_free(&r->v[i]);
			dropped++;
		}
	}
	r->n = out;
	return dropped;
}

static json_t *
reservations__entry_json(const char *uid, const char *pod, const struct resources *req,
    int64_t since_ms)
{
	struct resources counted = *req;
	char when[TIME_RFC3339_LEN];
	json_t *requests = NULL;

	/* The pod slot is implied: never written. */
	counted.pods = 0;
	if (resources_format_list(&counted, &requests) < 0)
		return NULL;
	time_format_rfc3339(since_ms, when);
	return json_pack("{s:s,s:s,s:o,s:s}", "uid", uid, "pod", pod != NULL ? pod : "",
	    "requests", requests, "since", when);
}

/*
 * Text of r's entries, skipping skip_uid's, then extra (stolen, may be
 * NULL), or NULL in *out when the list is empty.
 */
static int
reservations__text(const struct reservations *r, const char *skip_uid, json_t *extra, char **out)
{
	json_t *list = json_array();
	int rc = 0;

	*out = NULL;
	if (list == NULL) {
		json_decref(extra);
		return -ENOMEM;
	}
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		const struct reservation *e = &r->v[i];
		if (skip_uid != NULL && strcmp(e->uid, skip_uid) == 0)
			continue;
		if (json_array_append_new(list, reservations__entry_json(e->uid, e->pod,
		    &e->requests, e->since_ms)) < 0)
			rc = -ENOMEM;
	}
	if (extra != NULL && rc == 0 && json_array_append_new(list, extra) < 0)
		rc = -ENOMEM;
	else if (rc < 0)
		json_decref(extra);
	if (rc == 0 && json_array_size(list) > 0 &&
	    (*out = json_dumps(list, JSON_COMPACT)) == NULL)
		rc = -ENOMEM;
	json_decref(list);
	return rc;
}

int
reservations_with(const struct reservations *r, const char *uid, const char *pod,
    const struct resources *requests, int64_t since_ms, char **out)
{
	json_t *e;

	*out = NULL;
	if (reservations_find(r, uid) == NULL && r->n >= LIMITS_RESERVATIONS)
		return -E2BIG;
	if ((e = reservations__entry_json(uid, pod, requests, since_ms)) == NULL)
		return -ENOMEM;
	return reservations__text(r, uid, e, out);
}

int
reservations_without(const struct reservations *r, const char *uid, char **out)
{
	return reservations__text(r, uid, NULL, out);
}

int
reservations_format(const struct reservations *r, char **out)
{
	return reservations__text(r, NULL, NULL, out);
}

bool
reservations_fit(const struct resources *alloc, const struct resources_sum *used,
    const struct reservations *r, const char *except_uid, const struct resources *pod,
    const char **short_of)
{
	struct resources_sum s = *used;

	for (size_t i = 0; r != NULL && i < r->n; i++) {
		if (except_uid != NULL && strcmp(r->v[i].uid, except_uid) == 0)
			continue;
		if (resources_sum_add(&s, &r->v[i].requests) < 0) {
			if (short_of != NULL)
				*short_of = "extended resources";
			return false;
		}
	}
	return resources_sum_fits_pod(&s, pod, alloc, short_of);
}
