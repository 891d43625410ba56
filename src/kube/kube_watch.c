/* Watch-event stream parsing: chunks of a watch response in, one decoded event at a time out. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/jsonprune.h"
#include "stratos/kube_watch.h"
#include "stratos/limits.h"

const char *
kube_watch_type_name(enum kube_watch_type t)
{
	static const char *const names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK",
		"ERROR" };

	return (size_t)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

void
kube_watch_parser_init(struct kube_watch_parser *p, size_t max_event,
    const struct jsonprune *prune, kube_watch_event_fn fn, void *ctx)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->pending, max_event);
	buf_init(&p->scratch, max_event);
	p->prune = prune;
	p->fn = fn;
	p->ctx = ctx;
}

void
kube_watch_parser_reset(struct kube_watch_parser *p)
{
	buf_reset(&p->pending);
	p->scanned = 0;
	p->depth = 0;
	p->in_string = false;
	p->escaped = false;
	p->error[0] = '\0';
}

bool
kube_watch_parser_partial(const struct kube_watch_parser *p)
{
	return p->pending.len > 0;
}

void
kube_watch_parser_free(struct kube_watch_parser *p)
{
	if (p != NULL) {
		buf_free(&p->pending);
		buf_free(&p->scratch);
	}
}

static int
kube_watch__type(const char *s, enum kube_watch_type *t)
{
	static const char *const names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK",
		"ERROR" };

	for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*t = (enum kube_watch_type)i;
			return 0;
		}
	}
	return -EBADMSG;
}

static int
kube_watch__deliver(struct kube_watch_parser *p)
{
	struct kube_watch_event ev = { 0 };
	json_error_t jerr;
	json_t *root, *obj;
	const char *rv;
	int rc;

	root = NULL;
	if (p->prune != NULL) {
		buf_reset(&p->scratch);
		if (jsonprune_apply(p->prune, p->pending.data, p->pending.len, &p->scratch) == 0)
			root = json_loadb(p->scratch.data, p->scratch.len, 0, &jerr);
	}
	/* Unpruned (or unprunable) text: jansson has the last word on its validity. */
	if (root == NULL)
		root = json_loadb(p->pending.data, p->pending.len, 0, &jerr);
	if (root == NULL) {
		snprintf(p->error, sizeof(p->error), "event is not JSON: %s", jerr.text);
		return -EBADMSG;
	}
	/* The prune list is for objects; an ERROR's Status must be read whole. */
	if (p->prune != NULL && root != NULL) {
		const char *t = json_string_value(json_object_get(root, "type"));
		if (t != NULL && strcmp(t, "ERROR") == 0) {
			json_decref(root);
			root = json_loadb(p->pending.data, p->pending.len, 0, &jerr);
			if (root == NULL) {
				snprintf(p->error, sizeof(p->error), "event is not JSON: %s", jerr.text);
				return -EBADMSG;
			}
		}
	}
	obj = json_object_get(root, "object");
	if (kube_watch__type(json_string_value(json_object_get(root, "type")), &ev.type) < 0) {
		snprintf(p->error, sizeof(p->error), "event without a known type");
		json_decref(root);
		return -EBADMSG;
	}
	if (!json_is_object(obj)) {
		snprintf(p->error, sizeof(p->error), "%s event without an object",
		    kube_watch_type_name(ev.type));
		json_decref(root);
		return -EBADMSG;
	}
	rv = json_string_value(json_object_get(json_object_get(obj, "metadata"),
	    "resourceVersion"));
	ev.object = obj;
	ev.resource_version = rv != NULL ? rv : "";
	if (ev.type == KUBE_WATCH_ERROR)
		ev.code = (long)json_integer_value(json_object_get(obj, "code"));
	p->events++;
	rc = p->fn(p->ctx, &ev);
	json_decref(root);
	return rc;
}

int
kube_watch_parser_feed(struct kube_watch_parser *p, const char *data, size_t len)
{
	size_t i = 0;
	int rc;

	while (i < len) {
		size_t start;
		bool done = false;

		/* Between events only whitespace may appear. */
		if (p->pending.len == 0 && p->depth == 0) {
			char c = data[i];
			if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
				i++;
				continue;
			}
			if (c != '{') {
				snprintf(p->error, sizeof(p->error),
				    "unexpected byte 0x%02x between events", (unsigned char)c);
				return -EBADMSG;
			}
		}
		start = i;
		for (; i < len; i++) {
			char c = data[i];
			if (p->in_string) {
				if (p->escaped)
					p->escaped = false;
				else if (c == '\\')
					p->escaped = true;
				else if (c == '"')
					p->in_string = false;
			} else if (c == '"') {
				p->in_string = true;
			} else if (c == '{' || c == '[') {
				p->depth++;
			} else if (c == '}' || c == ']') {
				if (p->depth == 0) {
					snprintf(p->error, sizeof(p->error), "unbalanced '%c'", c);
					return -EBADMSG;
				}
				if (--p->depth == 0) {
					i++;
					done = true;
					break;
				}
			}
		}
		rc = buf_append(&p->pending, data + start, i - start);
		if (rc == -E2BIG) {
			snprintf(p->error, sizeof(p->error), "event larger than %zu bytes",
			    p->pending.max);
			return -EMSGSIZE;
		}
		if (rc < 0)
			return rc;
		if (done) {
			rc = kube_watch__deliver(p);
			buf_reset(&p->pending);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}
