/* Kubernetes watch streams: an incremental event parser, and the list+watch loop (informer). */
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

/*
 * What an informer delivers, all on its own thread. A (re)list is
 * list_begin, list_item per object, then list_end (committed) or list_abort.
 * Watch events come through event. A negative return from list_item,
 * list_end or event makes the informer relist.
 */
struct kube_informer_ops {
	int (*list_begin)(void *ctx);
	int (*list_item)(void *ctx, json_t *obj);
	int (*list_end)(void *ctx, const char *resource_version);
	void (*list_abort)(void *ctx);
	int (*event)(void *ctx, enum kube_watch_type type, json_t *obj);
};

struct kube_informer_config {
	const char *resource;          /* metric/log label: "nodes" */
	const char *path;              /* collection path: "/api/v1/pods" */
	const char *label_selector;    /* optional */
	const char *field_selector;    /* optional */
	long watch_timeout_s;          /* server-side timeoutSeconds; 0 = random 300..600 */
	const char *const *prune;      /* paths no callback reads (jsonprune syntax); may be NULL */
	const struct kube_informer_ops *ops;
	void *ctx;
};

/* Counters and state for /debug/caches. */
struct kube_informer_status {
	bool synced;                   /* a list has completed once */
	char resource_version[32];     /* last one seen (list, event or bookmark) */
	unsigned long lists;           /* completed lists */
	unsigned long watches;         /* watch requests made */
	unsigned long events;          /* watch events applied */
	unsigned long bookmarks;
	char last_error[160];
};

struct kube_informer;

/*
 * New informer for cfg (strings copied). Nothing runs until
 * kube_informer_start. The kube client must outlive it. NULL on ENOMEM.
 */
struct kube_informer *kube_informer_new(struct kube *k, const struct kube_informer_config *cfg);

/*
 * Starts the list+watch thread: list (paginated), then watch from the
 * list's resourceVersion with bookmarks; resume from the last
 * resourceVersion when a stream ends; relist on 410 (HTTP status or ERROR
 * event), an oversize or malformed event, or a callback error; back off
 * exponentially (jittered, up to 30 s) on failures. Returns 0 or -errno.
 */
int kube_informer_start(struct kube_informer *inf);

/* Stops the thread (within about a second, even mid-stream) and joins it. Idempotent. */
void kube_informer_stop(struct kube_informer *inf);

/* Stops and frees. NULL-safe. */
void kube_informer_free(struct kube_informer *inf);

/* Thread-safe readers. */
bool kube_informer_synced(struct kube_informer *inf);
void kube_informer_status(struct kube_informer *inf, struct kube_informer_status *st);

#endif
