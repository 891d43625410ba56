/* The handles the extender and the pool controller share; main creates them and owns them. */
#ifndef STRATOS_POOL_CTX_H
#define STRATOS_POOL_CTX_H

#include <stdint.h>

struct kube;
struct node_cache;
struct pod_cache;
struct crd_cache;
struct pools;
struct ec2_client;
struct kube_recorder;
struct placed;

/*
 * Everything here is borrowed and thread-safe; it outlives the extender
 * and the controller. ec2 is NULL when the daemon runs without a cluster
 * name (webhooks only): nothing may start or launch instances then.
 */
struct pool_ctx {
	struct kube *kube;
	struct node_cache *nodes;
	struct pod_cache *pods;
	struct crd_cache *nodepools;      /* NULL with --pools-file */
	struct pools *pools;
	struct ec2_client *ec2;
	struct kube_recorder *events;
	const char *cluster;              /* --cluster-name: the stratos.sh/cluster tag */
	const char *region;
	const char *identity;             /* this replica (holder identity, reportingInstance) */
	const char *namespace;            /* the daemon's own: its Lease, warmup pre-pull pods */
	int64_t start_budget_ms;          /* StartInstances inside the filter call (--start-budget) */
	/*
	 * The binding tracker (placed.h): pods whose binding this replica
	 * measures — those its extender offered nodes to, those its controller
	 * reserved room or started a node for. NULL: nothing is measured.
	 */
	struct placed *placed;
};

#endif
