/* Warmup completion (DESIGN §5.1): when a warming node may be stopped to standby, and the pre-pull pod that pulls the pool's images. */
#ifndef STRATOS_WARMUP_H
#define STRATOS_WARMUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/node_cache.h"
#include "stratos/nodepool.h"
#include "stratos/pod_cache.h"

/* Ready must have held this long before warmup may complete (DaemonSet pods appear first). */
#define WARMUP_READY_SETTLE_MS 1000LL

/* What a warming node lacks, for logs and the decision. */
struct warmup_progress {
	bool ready;                  /* Ready True for WARMUP_READY_SETTLE_MS */
	unsigned daemon_pods;        /* DaemonSet pods bound to the node */
	unsigned daemon_ready;       /* of which Ready */
	bool prepull_exists;         /* the pre-pull pod is there (when images are wanted) */
	bool prepull_finished;       /* ... and it ended (Succeeded, Failed: a restart ends a Never pod) */
	unsigned images_wanted;      /* preWarm.imagesToPull */
	unsigned images_pulled;      /* containers of the pre-pull pod with an imageID */
};

/*
 * Reads the progress of node n of pool from the pod cache: its DaemonSet
 * pods and the pre-pull pod prepull_key ("namespace/name"). Thread-safe.
 */
void warmup_progress_read(const struct node_info *n, const struct nodepool *pool,
    struct pod_cache *pods, const char *prepull_key, int64_t now_ms, struct warmup_progress *out);

/* Whether the progress is complete: Ready, every DaemonSet pod Ready, every image pulled. Pure. */
bool warmup_complete(const struct warmup_progress *p);

/* The pre-pull pod's name for a node into out; 0 or -ENAMETOOLONG. */
int warmup_prepull_name(const char *node, char *out, size_t len);

/*
 * The pre-pull pod for node in namespace: pinned by nodeName, one container
 * per image (pull-0, pull-1, ...), restartPolicy Never, tolerating every
 * taint, no service-account token, no requests. Caller's reference, NULL on
 * ENOMEM. Pure.
 */
json_t *warmup_prepull_pod(const char *namespace, const char *node, const struct nodepool *pool);

#endif
