/* Reservations: parse, rewrite and fit-check the stratos.sh/reservations annotation of a starting node. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "stratos/reservations.h"
#include "stratos/timeutil.h"

static bool
reservations__valid_uid(const char *uid, size_t len)
{
	/* len is the JSON string's; a shorter C string hides an embedded NUL. */
	return uid != NULL && len > 0 && len <= LIMITS_RESERVATION_UID && strlen(uid) == len;
}

/* "namespace/name": one slash, something on both sides. */
static bool
reservations__valid_pod(const char *pod, size_t len)
{
	const char *slash;

	if (pod == NULL || len == 0 || len > LIMITS_RESERVATION_POD || strlen(pod) != len)
		return false;
	slash = strchr(pod, '/');
	return slash != NULL && slash != pod && slash[1] != '\0' && strchr(slash + 1, '/') == NULL;
}

/* A negative request would make room out of nothing. */
static bool
reservations__non_negative(const struct resources *q)
{
	if (q->cpu_milli < 0 || q->memory < 0 || q->ephemeral < 0)
		return false;
	for (uint32_t i = 0; i < q->next; i++)
		if (q->ext[i].value < 0)
			return false;
	return true;
}

void
reservations_free(struct reservations *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		resources_release((struct resources *)&r->item[i].requests);
	free(r);
}

/* Members of one array item, checked; strings borrowed from the JSON. */
struct reservations__raw {
	const char *uid, *pod, *since;
	size_t uid_len, pod_len;
	json_t *requests;
};

static int
reservations__raw(json_t *item, struct reservations__raw *raw)
{
	json_t *uid = json_object_get(item, "uid"), *pod = json_object_get(item, "pod");

	if (!json_is_object(item) || !json_is_string(uid) || !json_is_string(pod))
		return -EINVAL;
	raw->uid = json_string_value(uid);
	raw->uid_len = json_string_length(uid);
	raw->pod = json_string_value(pod);
	raw->pod_len = json_string_length(pod);
	raw->since = json_string_value(json_object_get(item, "since"));
	raw->requests = json_object_get(item, "requests");
	if (!reservations__valid_uid(raw->uid, raw->uid_len) ||
	    !reservations__valid_pod(raw->pod, raw->pod_len) || raw->since == NULL ||
	    !json_is_object(raw->requests))
		return -EINVAL;
	return 0;
}

/* Stable insertion sort by since: n is small and ties keep the order written. */
static void
reservations__sort(struct reservation *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct reservation x = v[i];
		size_t j = i;

		for (; j > 0 && v[j - 1].since_ms > x.since_ms; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

int
reservations_parse(const char *json, struct reservations **out)
{
	json_t *arr = NULL, *item;
	struct reservations *r = NULL;
	struct reservation *items;
	size_t len, n, i, bytes = 0;
	char *strs;
	int rc = -EINVAL;

	*out = NULL;
	if (json == NULL)
		return -EINVAL;
	len = strnlen(json, LIMITS_RESERVATIONS_TEXT + 1);
	if (len > LIMITS_RESERVATIONS_TEXT)
		return -E2BIG;
	/* Duplicate members ("uid" twice) are as ambiguous as duplicate uids. */
	arr = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_array(arr))
		goto out;
	n = json_array_size(arr);
	if (n > LIMITS_RESERVATIONS_PER_NODE) {
		rc = -E2BIG;
		goto out;
	}
	/* Check every item's members and size the strings: one allocation holds it all. */
	json_array_foreach(arr, i, item) {
		struct reservations__raw raw;
		if ((rc = reservations__raw(item, &raw)) < 0)
			goto out;
		bytes += raw.uid_len + 1 + raw.pod_len + 1;
	}
	r = calloc(1, sizeof(*r) + n * sizeof(*items) + bytes);
	if (r == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	items = (struct reservation *)(r + 1);
	strs = (char *)(items + n);
	r->item = items;
	json_array_foreach(arr, i, item) {
		struct reservations__raw raw;
		struct reservation *it = &items[i];

		(void)reservations__raw(item, &raw);
		it->uid = memcpy(strs, raw.uid, raw.uid_len + 1);
		strs += raw.uid_len + 1;
		it->pod = memcpy(strs, raw.pod, raw.pod_len + 1);
		strs += raw.pod_len + 1;
		if ((rc = resources_parse_list(raw.requests, &it->requests)) < 0)
			goto out;
		r->n = i + 1;               /* from here reservations_free releases it */
		it->requests.pods = 1;
		if (!reservations__non_negative(&it->requests) ||
		    time_parse_rfc3339(raw.since, &it->since_ms) < 0) {
			rc = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(items[i].uid, items[j].uid) == 0) {
				rc = -EINVAL;
				goto out;
			}
	reservations__sort(items, n);
	*out = r;
	r = NULL;
	rc = 0;
out:
	reservations_free(r);
	json_decref(arr);
	return rc;
}

const struct reservation *
reservations_find(const struct reservations *r, const char *uid)
{
	if (r == NULL || uid == NULL)
		return NULL;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->item[i].uid, uid) == 0)
			return &r->item[i];
	return NULL;
}

/* One reservation as its JSON object (caller's reference), or NULL on ENOMEM. */
static json_t *
reservations__item_json(const struct reservation *it)
{
	struct resources req = it->requests;
	char since[TIME_RFC3339_LEN];
	json_t *o = json_object(), *list = NULL;
	int rc;

	/* The pod slot is implied: the format never carries "pods". */
	req.pods = 0;
	time_format_rfc3339(it->since_ms, since);
	if (o == NULL || resources_format_list(&req, &list) < 0 ||
	    json_object_set_new(o, "uid", json_string(it->uid)) < 0 ||
	    json_object_set_new(o, "pod", json_string(it->pod)) < 0)
		goto fail;
	/* set_new takes the reference even when it fails. */
	rc = json_object_set_new(o, "requests", list);
	list = NULL;
	if (rc < 0 || json_object_set_new(o, "since", json_string(since)) < 0)
		goto fail;
	return o;
fail:
	json_decref(list);
	json_decref(o);
	return NULL;
}

/* The annotation text of v[0..n), or NULL for none; checked against what the parser accepts. */
static int
reservations__dump(const struct reservation *const *v, size_t n, char **out)
{
	json_t *arr;
	char *text;

	*out = NULL;
	if (n == 0)
		return 0;
	if (n > LIMITS_RESERVATIONS_PER_NODE)
		return -E2BIG;
	if ((arr = json_array()) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (json_array_append_new(arr, reservations__item_json(v[i])) < 0) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (text == NULL)
		return -ENOMEM;
	if (strlen(text) > LIMITS_RESERVATIONS_TEXT) {
		free(text);
		return -E2BIG;
	}
	*out = text;
	return 0;
}

int
reservations_with(const struct reservations *r, const struct reservation *add, char **out)
{
	const struct reservation *v[LIMITS_RESERVATIONS_PER_NODE + 1];
	struct reservation copy;
	size_t n = r != NULL ? r->n : 0, k = 0;
	bool placed = false;

	*out = NULL;
	if (add == NULL || add->uid == NULL || add->pod == NULL ||
	    !reservations__valid_uid(add->uid, strlen(add->uid)) ||
	    !reservations__valid_pod(add->pod, strlen(add->pod)) ||
	    !reservations__non_negative(&add->requests) || add->since_ms < 0)
		return -EINVAL;
	if (reservations_find(r, add->uid) != NULL)
		return -EEXIST;
	if (n + 1 > LIMITS_RESERVATIONS_PER_NODE)
		return -E2BIG;
	copy = *add;
	for (size_t i = 0; i < n; i++) {
		if (!placed && r->item[i].since_ms > copy.since_ms) {
			v[k++] = &copy;
			placed = true;
		}
		v[k++] = &r->item[i];
	}
	if (!placed)
		v[k++] = &copy;
	return reservations__dump(v, k, out);
}

int
reservations_without(const struct reservations *r, const char *uid, char **out)
{
	const struct reservation *v[LIMITS_RESERVATIONS_PER_NODE];
	size_t k = 0;

	*out = NULL;
	if (reservations_find(r, uid) == NULL)
		return -ENOENT;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->item[i].uid, uid) != 0)
			v[k++] = &r->item[i];
	return reservations__dump(v, k, out);
}

int
reservations_filter(const struct reservations *r, reservations_keep_fn keep, void *ctx,
    char **out)
{
	const struct reservation *v[LIMITS_RESERVATIONS_PER_NODE];
	size_t n = r != NULL ? r->n : 0, k = 0;
	int rc;

	*out = NULL;
	for (size_t i = 0; i < n; i++)
		if (keep(ctx, &r->item[i]))
			v[k++] = &r->item[i];
	rc = reservations__dump(v, k, out);
	return rc < 0 ? rc : (int)(n - k);
}

int
reservations_sum(const struct reservations *r, const char *except_uid,
    struct resources_sum *sum)
{
	int rc;

	for (size_t i = 0; r != NULL && i < r->n; i++) {
		if (except_uid != NULL && strcmp(r->item[i].uid, except_uid) == 0)
			continue;
		if ((rc = resources_sum_add(sum, &r->item[i].requests)) < 0)
			return rc;
	}
	return 0;
}

bool
reservations_fit(const struct resources *allocatable,
    const struct resources_sum *used_by_daemonsets, const struct reservations *r,
    const char *except_uid, const struct resources *pod, const char **short_of)
{
	struct resources_sum used;

	if (used_by_daemonsets != NULL)
		used = *used_by_daemonsets;
	else
		resources_sum_init(&used);
	if (reservations_sum(r, except_uid, &used) < 0) {
		if (short_of != NULL)
			*short_of = "extended resources";
		return false;
	}
	return resources_sum_fits_pod(&used, pod, allocatable, short_of);
}
