/* Pool pods (DESIGN §6.2): which NodePools a pod is for, and Kubernetes toleration matching. */
#ifndef STRATOS_POOLPOD_H
#define STRATOS_POOLPOD_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "stratos/kube_types.h"
#include "stratos/limits.h"
#include "stratos/nodestate.h"
#include "stratos/pools.h"

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
 * The pools a pod names by itself, with no snapshot: rules 1 and 2 of
 * poolpod_detect (its nodeSelector's stratos.sh/pool, or a required node
 * affinity whose every term confines it to pools). Rule 3 (a nodeSelector
 * inside one pool's template labels) needs the pools and is left out:
 * m->rule is POOLPOD_NONE then. m->pools[] stay NULL; names are borrowed
 * from pod. No allocation. Thread-safe.
 */
void poolpod_detect_own(const json_t *pod, struct poolpod_match *m);

/* A taint to tolerate. */
struct poolpod_taint {
	const char *key;
	const char *value;
	enum kube_taint_effect effect;
};

/*
 * The taints every pool pod is made to tolerate (DESIGN §6.1/6.2): the
 * standby taint and the NoSchedule taints of a stopped or booting node.
 */
#define POOLPOD_STANDARD_TAINTS 4
extern const struct poolpod_taint POOLPOD_TAINTS[POOLPOD_STANDARD_TAINTS];

#endif
