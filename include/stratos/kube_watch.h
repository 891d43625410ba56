/* Kubernetes watch streams: an incremental parser of the event stream of a watch response. */
#ifndef STRATOS_KUBE_WATCH_H
#define STRATOS_KUBE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/buf.h"
#include "stratos/kube.h"

enum kube_watch_type {
	KUBE_WATCH_ADDED,
	KUBE_WATCH_MODIFIED,
	KUBE_WATCH_DELETED,
	KUBE_WATCH_BOOKMARK,
	KUBE_WATCH_ERROR,
};

/* "ADDED", ... */
const char *kube_watch_type_name(enum kube_watch_type t);

struct kube_watch_event {
	enum kube_watch_type type;
	json_t *object;                /* borrowed for the callback; json_incref to keep */
	const char *resource_version;  /* object's metadata.resourceVersion, "" when absent */
	long code;                     /* ERROR: the Status code (410 = Gone); else 0 */
};

/* Called for each complete event; a non-zero return stops the parser with that value. */
typedef int (*kube_watch_event_fn)(void *ctx, const struct kube_watch_event *ev);

/*
 * Splits a watch body into events whatever the chunking: it tracks JSON
 * nesting (and strings) so events are found with or without newlines
 * between them, and each byte is scanned once. Not thread-safe.
 */
struct jsonprune;

struct kube_watch_parser {
	struct buf pending;            /* bytes of the event being received */
	const struct jsonprune *prune; /* cut from each event before parsing; may be NULL */
	struct buf scratch;            /* the pruned event */
	size_t scanned;                /* bytes of pending already scanned */
	unsigned depth;
	bool in_string;
	bool escaped;
	kube_watch_event_fn fn;
	void *ctx;
	unsigned long events;          /* delivered so far */
	char error[160];               /* why the last feed failed */
};

/*
 * Prepares p; events larger than max_event bytes are errors. prune (may be
 * NULL; paths prefixed "object") removes members no reader needs before
 * each event is parsed. No allocation.
 */
void kube_watch_parser_init(struct kube_watch_parser *p, size_t max_event,
    const struct jsonprune *prune, kube_watch_event_fn fn, void *ctx);

/*
 * Feeds len bytes. Returns 0, -EMSGSIZE (an event over max_event), -EBADMSG
 * (not a stream of watch events; p->error says why), -ENOMEM, or the
 * callback's non-zero value. After an error, reset before feeding again.
 */
int kube_watch_parser_feed(struct kube_watch_parser *p, const char *data, size_t len);

/* Forgets any partial event (a new stream starts). */
void kube_watch_parser_reset(struct kube_watch_parser *p);

/* True when a partial event is buffered (the stream ended mid-event). */
bool kube_watch_parser_partial(const struct kube_watch_parser *p);

/* Frees the buffer. NULL-safe. */
void kube_watch_parser_free(struct kube_watch_parser *p);

#endif
