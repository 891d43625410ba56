/* The informer: list, then watch from the list's resourceVersion, relist on 410; events to a cache. */
#ifndef STRATOS_KUBE_INFORMER_H
#define STRATOS_KUBE_INFORMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/kube.h"
#include "stratos/kube_watch.h"

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
