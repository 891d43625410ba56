/* Pool pods (DESIGN §6.2): which NodePools a pod is for, and Kubernetes toleration matching. */
#ifndef STRATOS_POOLPOD_H
#define STRATOS_POOLPOD_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "stratos/limits.h"
#include "stratos/pools.h"

/*
 * The annotation the webhook puts on every pool pod. Its value is the pool
 * name, or for a pod whose node affinity allows several pools, their names
 * joined with "," in the order the pod lists them (pool names are DNS-1123
 * subdomains of at most 63 characters, so they never contain a comma).
 */
#define POOLPOD_ANNOTATION "stratos.sh/pool"
#define POOLPOD_LABEL_KEY  "stratos.sh/pool"

enum poolpod_rule {
	POOLPOD_NONE,           /* not a pool pod */
	POOLPOD_NODE_SELECTOR,  /* nodeSelector has stratos.sh/pool: P */
	POOLPOD_AFFINITY,       /* every required node-affinity term has stratos.sh/pool In [...] */
	POOLPOD_LABELS,         /* nodeSelector contained in exactly one pool's template.labels */
	POOLPOD_AMBIGUOUS,      /* nodeSelector contained in several pools' labels: not a pool pod */
};

/* "none", "nodeSelector", "affinity", "labels", "ambiguous" (logs). */
const char *poolpod_rule_name(enum poolpod_rule rule);

struct poolpod_match {
	enum poolpod_rule rule;
	size_t npools;                          /* pools of the pod; for AMBIGUOUS the first two matches */
	const char *names[LIMITS_POOLPOD_POOLS];        /* borrowed from the pod or the snapshot */
	const struct nodepool *pools[LIMITS_POOLPOD_POOLS]; /* NULL: not in the snapshot */
	size_t nambiguous;                      /* AMBIGUOUS: how many pools matched */
	bool truncated;                         /* the affinity named more than LIMITS_POOLPOD_POOLS pools */
};

/*
 * Decides whether pod (a Pod object) is a pool pod and of which pools, by
 * the three rules of DESIGN §6.2 in order. Everything in m is borrowed from
 * pod and snap, which must outlive it. Never fails: malformed fields make a
 * pod "not a pool pod". No allocation. Thread-safe on a held snapshot.
 */
void poolpod_detect(const struct pools_snapshot *snap, const json_t *pod, struct poolpod_match *m);

/*
 * Kubernetes' Toleration.ToleratesTaint over a tolerations array (may be
 * NULL): true when one of them tolerates the taint (key, value, effect).
 */
bool poolpod_tolerates(const json_t *tolerations, const char *key, const char *value,
    const char *effect);

/* One toleration with its fields looked up once (NULL: absent), for matching many taints. */
struct poolpod_toleration {
	const char *key;
	const char *op;
	const char *value;
	const char *effect;
};

/*
 * Fills out with the tolerations of the array (borrowed strings). Returns
 * how many there are; when that is more than max only max are filled.
 */
size_t poolpod_tolerations(const json_t *tolerations, struct poolpod_toleration *out, size_t max);

/* ToleratesTaint over n tolerations from poolpod_tolerations(). */
bool poolpod_tolerates_list(const struct poolpod_toleration *t, size_t n, const char *key,
    const char *value, const char *effect);

/* A taint to tolerate. */
struct poolpod_taint {
	const char *key;
	const char *value;
	const char *effect;
};

/*
 * The taints every pool pod is made to tolerate (DESIGN §6.1/6.2): the
 * standby taint and the NoSchedule taints of a stopped or booting node.
 */
#define POOLPOD_STANDARD_TAINTS 4
extern const struct poolpod_taint POOLPOD_TAINTS[POOLPOD_STANDARD_TAINTS];

#endif
