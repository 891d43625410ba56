/* NodePool (stratos.sh/v1alpha1): the parsed, defaulted spec and every per-field rule of DESIGN §3.2. */
#ifndef STRATOS_NODEPOOL_H
#define STRATOS_NODEPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/fieldcheck.h"
#include "stratos/kube_types.h"
#include "stratos/nodestate.h"

#define NODEPOOL_API_VERSION "stratos.sh/v1alpha1"
#define NODEPOOL_KIND        "NodePool"

/* Defaults of DESIGN §3.2. */
#define NODEPOOL_DEFAULT_PREWARM_TIMEOUT_MS (10 * 60 * 1000LL)
#define NODEPOOL_DEFAULT_EMPTY_NODE_TTL_MS  (5 * 60 * 1000LL)
#define NODEPOOL_DEFAULT_DRAIN_TIMEOUT_MS   (5 * 60 * 1000LL)
#define NODEPOOL_PREWARM_TIMEOUT_MIN_MS     (60 * 1000LL)
#define NODEPOOL_PREWARM_TIMEOUT_MAX_MS     (2 * 3600 * 1000LL)
#define NODEPOOL_POOL_SIZE_MAX              1000


/* Enum values, in the order their names appear in NODEPOOL_*_NAMES (and in messages). */
enum nodepool_taint_removal {
	NODEPOOL_REMOVAL_WHEN_NETWORK_READY,    /* default */
	NODEPOOL_REMOVAL_WHEN_READY,
	NODEPOOL_REMOVAL_NEVER,
};

enum nodepool_timeout_action {
	NODEPOOL_TIMEOUT_TERMINATE,
	NODEPOOL_TIMEOUT_STOP,                  /* default */
};

/* NULL-terminated name lists: "NoSchedule"..., "WhenNetworkReady"..., "terminate", "stop". */
extern const char *const NODEPOOL_EFFECT_NAMES[];
extern const char *const NODEPOOL_REMOVAL_NAMES[];
extern const char *const NODEPOOL_TIMEOUT_ACTION_NAMES[];
extern const char *const NODEPOOL_NODE_CLASS_KINDS[];   /* "AWSNodeClass" */

struct nodepool_taint {
	char *key;
	char *value;                            /* "" when absent */
	enum kube_taint_effect effect;     /* never KUBE_EFFECT_ANY */
};

/*
 * One NodePool with every default of DESIGN §3.2 applied; durations in ms.
 * Immutable once parsed and shared between snapshots (reference counted),
 * so any thread may read it while it holds a reference.
 */
struct nodepool {
	int refs;                               /* atomic; see nodepool_ref() */
	/* metadata */
	char *name;                             /* "" when the object has none */
	char *uid;                              /* "" when absent (files) */
	char *resource_version;                 /* "" when absent */
	int64_t generation;
	bool deleting;                          /* metadata.deletionTimestamp is set */
	/* spec */
	int pool_size;
	int min_standby;
	char *node_class_kind;                  /* "AWSNodeClass" */
	char *node_class_name;
	struct fieldcheck_pair *labels;         /* spec.template.labels, in object order */
	size_t nlabels;
	struct nodepool_taint *startup_taints;
	size_t nstartup_taints;
	enum nodepool_taint_removal startup_taint_removal;
	int64_t prewarm_timeout_ms;
	enum nodepool_timeout_action prewarm_timeout_action;
	char **images_to_pull;
	size_t nimages_to_pull;
	bool scale_down_enabled;
	int64_t empty_node_ttl_ms;
	int64_t drain_timeout_ms;
	/* How many rules the object broke when parsed (0: valid). Fields that broke one hold their defaults. */
	size_t nviolations;
};

/*
 * Parses a NodePool object (the whole object: metadata and spec) and
 * applies every rule of DESIGN §3.2 that concerns the object alone: types at
 * every level, enums, ranges, formats, label/taint syntax, durations, image
 * references, minStandby ≤ poolSize, unknown fields. Every violation goes
 * to rep (may be NULL) as "spec.path: problem", in field order; a broken
 * field keeps its default. Apart from allocation failure it always yields a
 * struct, so the webhook, the pools file and the watch cache share this one
 * path. Returns 0 (*out: one reference, caller frees), -EINVAL when obj is
 * not an object ("must be an object" reported), -ENOMEM. Thread-safe.
 */
int nodepool_parse(const json_t *obj, struct fieldcheck_report *rep, struct nodepool **out);

/* Takes another reference. Thread-safe. Returns p. */
struct nodepool *nodepool_ref(struct nodepool *p);

/* Drops a reference; the last one frees. NULL-safe, thread-safe. */
void nodepool_free(struct nodepool *p);

/* The value of template label key, or NULL. */
const char *nodepool_label(const struct nodepool *p, const char *key);

#endif
