/* The node state contract of DESIGN §4: every stratos.sh key on Nodes, pods and instances, the states and their transitions. */
#ifndef STRATOS_NODESTATE_H
#define STRATOS_NODESTATE_H

#include <stdbool.h>

/*
 * One home for the vocabulary every part shares: the webhook, the extender,
 * the controller, the caches and the EC2 tags must agree on these to the
 * letter. The names are constants only, so any layer may use them (the EC2
 * client's cluster filter, the pod cache's annotation reader) without
 * depending on the pool code that implements the functions below.
 */

#define NODESTATE_PREFIX              "stratos.sh/"

/* Node labels. */
#define NODESTATE_LABEL_POOL          "stratos.sh/pool"
#define NODESTATE_LABEL_STATE         "stratos.sh/state"
#define NODESTATE_LABEL_INSTANCE_ID   "stratos.sh/instance-id"

/* Node annotations. */
#define NODESTATE_ANN_STATE_SINCE     "stratos.sh/state-since"     /* RFC 3339 UTC, last transition */
#define NODESTATE_ANN_STARTED_AT      "stratos.sh/started-at"      /* RFC 3339, last StartInstances */
#define NODESTATE_ANN_STARTED_FOR     "stratos.sh/started-for"     /* namespace/name of the pod */
#define NODESTATE_ANN_EMPTY_SINCE     "stratos.sh/empty-since"     /* RFC 3339, running and empty */
#define NODESTATE_ANN_RESERVATIONS    "stratos.sh/reservations"    /* JSON list (reservations.h) */
#define NODESTATE_ANN_LAST_WORKLOAD   "stratos.sh/last-workload"   /* owner key of the last pod */
/*
 * RFC 3339 UTC time the controller saw warmup complete (§5.1: Ready, every
 * DaemonSet pod Ready, every image pulled), written before it stops the
 * instance, so that whoever finds the instance stopped later (a new leader
 * after a crash, or an instance that powered itself off) knows whether it
 * may become standby or must be started again to finish. Removed on the
 * transition to standby.
 */
#define NODESTATE_ANN_WARMUP_DONE     "stratos.sh/warmup-done"

/* Node taints. */
#define NODESTATE_TAINT_STANDBY       "stratos.sh/standby"         /* true:NoExecute on standby nodes */
#define NODESTATE_TAINT_STANDBY_VALUE "true"
#define NODESTATE_TAINT_WARMUP_FAILED "stratos.sh/warmup-failed"   /* true:NoSchedule */

/*
 * Pods (DESIGN §6.2). The annotation the webhook puts on every pool pod: the
 * pool name, or for a pod whose node affinity allows several pools, their
 * names joined with "," in the order the pod lists them (pool names are
 * DNS-1123 subdomains, so they never contain a comma). And the extended
 * resource of the "extender on the cluster's scheduler" deployment (§6.3),
 * which is never counted as a request.
 */
#define NODESTATE_POD_ANN_POOL        "stratos.sh/pool"
#define NODESTATE_POOL_POD_RESOURCE   "stratos.sh/pool-pod"

/* The NodePool finalizer that holds a pool until its cloud side is clean (§5.2). */
#define NODESTATE_FINALIZER           "stratos.sh/nodepool"

/*
 * NodePool annotation: the launches the controller decided and recorded
 * before calling RunInstances (§5.1), a JSON list
 *   [{"token":"ci-runners-5f0c...","subnet":"subnet-12345678","at":"2026-...Z"}]
 * Each entry's ClientToken makes its RunInstances idempotent: a leader that
 * finds an entry whose instance it cannot see issues the same call again
 * and gets the instance that already exists, or the one launch that never
 * happened — never a second instance. An entry goes once a DescribeInstances
 * shows its instance.
 */
#define NODESTATE_POOL_ANN_LAUNCHES   "stratos.sh/launches"

/*
 * Warmup pre-pull pods (§5.1) are named this prefix + the node's name, in
 * the daemon's namespace, pinned to the node; one container per image.
 */
#define NODESTATE_PREPULL_PREFIX      "stratos-prepull-"

/* EC2 tags on every instance (§4); the state tag mirrors the label. */
#define NODESTATE_TAG_CLUSTER         "stratos.sh/cluster"
#define NODESTATE_TAG_POOL            "stratos.sh/pool"
#define NODESTATE_TAG_STATE           "stratos.sh/state"
#define NODESTATE_TAG_MANAGED_BY      "managed-by"
#define NODESTATE_TAG_MANAGED_BY_VALUE "stratos"

/*
 * The states of a pool node, the value of NODESTATE_LABEL_STATE:
 *
 *   launch ──> warmup ──> standby ──> running ──> stopping ──> standby
 *                   \                    ^  \
 *                    └─(timeout)─> terminate └─(drain timeout)─> running
 */
enum nodestate {
	NODESTATE_NONE,              /* no (or an unknown) state label: not yet adopted */
	NODESTATE_WARMUP,
	NODESTATE_STANDBY,
	NODESTATE_RUNNING,
	NODESTATE_STOPPING,
};

#define NODESTATE_COUNT 5

/* "warmup", "standby", "running", "stopping"; "" for NODESTATE_NONE. */
const char *nodestate_name(enum nodestate s);

/* The state a label value names; NODESTATE_NONE for NULL or anything else. */
enum nodestate nodestate_parse(const char *label);

/*
 * Whether the controller or the extender may move a node from one state to
 * the other in one guarded PATCH: the arrows above, plus the recoveries of
 * §5.6 (a start that failed: running → standby; adoption of a registered
 * node: none → warmup). Converging a label to an instance state changed by
 * hand (§5.6) is not a transition and does not ask.
 */
bool nodestate_transition_allowed(enum nodestate from, enum nodestate to);

#endif
