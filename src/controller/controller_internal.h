/* The pool controller's parts: the shared state, the per-pool and per-node task contexts, and the write helpers every part uses. */
#ifndef STRATOS_CONTROLLER_INTERNAL_H
#define STRATOS_CONTROLLER_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "stratos/cache.h"
#include "stratos/controller.h"
#include "stratos/crd_cache.h"
#include "stratos/ec2.h"
#include "stratos/ec2view.h"
#include "stratos/kube.h"
#include "stratos/launch.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/node_cache.h"
#include "stratos/pod_cache.h"
#include "stratos/pool_ctx.h"
#include "stratos/pools.h"
#include "stratos/poolsize.h"
#include "stratos/transition.h"
#include "stratos/workqueue.h"

/*
 * Threads (one run per leadership term):
 *   loop      1   takes cache events (Nodes, Pods, NodePools) and turns them
 *                 into keys; every tick queues every pool
 *   workers   N   (the work queue's threads) run the keys: "p/<pool>" reconciles a
 *                 pool (counts, launches, shrink, fallback, status),
 *                 "n/<node>" runs a node's task (adoption, warmup, drain,
 *                 recovery), "e" refreshes the EC2 view, "g" collects
 *                 garbage. One worker per key at a time; slow waits are
 *                 delays (workqueue_add_after), never sleeps.
 *   urgent    2   (a second work queue) removes startup taints the moment a Node event shows
 *                 readiness (§5.3), on its own queue so a slow pool never
 *                 delays it
 *   reaper    1   at the end of a term, waits for the tasks in flight and
 *                 frees the queues, so that controller_stop need not
 * Everything durable is on the Nodes, the NodePools and the EC2 tags; the
 * memory here (per-pool notes, the instance index) is rebuilt from them.
 */

#define CONTROLLER_STOP_GRACE_MS     2000LL
#define CONTROLLER_START_TIMEOUT_MS  60000LL   /* a claimed node whose instance is not running by then failed (§5.6) */
#define CONTROLLER_START_SETTLE_MS   10000LL   /* a listing this soon after a claim may predate its start */
#define CONTROLLER_TAINT_FALLBACK_MS 120000LL  /* startup taints removed anyway after Ready this long (§5.3) */
#define CONTROLLER_REWARM_DELAY_MS   30000LL   /* a warmup-failed node waits this long before it is re-warmed */
#define CONTROLLER_LAUNCH_GRACE_MS   30000LL   /* a launch record with no instance in a listing this much
                                                  younger than the listing is repeated / dropped */
/* A node started for pods counts as their capacity this long, usable or not (their binding lags). */
#define CONTROLLER_FALLBACK_COVER_MS 120000LL
/*
 * How long a pool pod that went through the webhook (it tolerates the
 * standby taint) stays Unschedulable before the fallback starts a node for
 * it (§5.5): the extender's turn first. The scheduler retries a pod the
 * extender rejected after its backoff (podInitialBackoffSeconds and
 * podMaxBackoffSeconds are 1 s in the bundled configuration) on the next
 * cluster event, and that filter call claims and starts within the start
 * budget (2 s); 5 s covers a backoff, a start budget and the watch bringing
 * the claim's reservation here, twice over for the backoff. A pod the
 * extender could serve is served (and holds a reservation) well before;
 * one it could not (no standby free when it looked) waits 5 s at most.
 */
#define CONTROLLER_FALLBACK_GRACE_MS 5000LL
/* StartInstances of the fallback's claims: not inside a scheduler's call, so longer than --start-budget. */
#define CONTROLLER_FALLBACK_START_BUDGET_MS 10000LL
/* A reservation for a pod this replica has not seen is kept this long (the watch may lag a GET). */
#define CONTROLLER_RESERVATION_GRACE_MS 30000LL
/* A Node whose instance a full listing this much younger than the Node does not show: orphan. */
#define CONTROLLER_ORPHAN_GRACE_MS   10000LL
#define CONTROLLER_CAPACITY_BACKOFF_MS 120000LL /* a subnet that said "no capacity" is avoided this long */
/*
 * A drain is not called done until this long after the cordon: a pod the
 * scheduler bound just before it reaches the cache a watch delay later, and
 * stopping the instance under it would kill it without an eviction.
 */
#define CONTROLLER_DRAIN_SETTLE_MS   2000LL
#define CONTROLLER_EVICT_BACKOFF_MIN_MS 500LL
#define CONTROLLER_EVICT_BACKOFF_MAX_MS 10000LL
#define CONTROLLER_RETRY_MS          1000LL    /* a write that failed for a transient reason */
#define CONTROLLER_REGISTRY_WAIT_MS  50LL      /* the pools registry a cache event ahead of it */
#define CONTROLLER_SUB_QUEUE         LIMITS_CACHE_SUB_QUEUE
#define CONTROLLER_URGENT_WORKERS    2u        /* startup-taint removals (one may wait on a race) */

/* Event reasons (DESIGN §9), used in events and logs. */
#define CTL_EV_WARMUP_STARTED   "WarmupStarted"
#define CTL_EV_WARMUP_COMPLETED "WarmupCompleted"
#define CTL_EV_WARMUP_TIMEOUT   "WarmupTimeout"
#define CTL_EV_WARMUP_FAILED    "WarmupFailed"
#define CTL_EV_WARMUP_RESTARTED "WarmupRestarted"
#define CTL_EV_START_FAILED     "StartFailed"
#define CTL_EV_SCALE_DOWN       "ScaleDown"
#define CTL_EV_DRAIN_TIMEOUT    "DrainTimeout"
#define CTL_EV_TAINTS_REMOVED   "StartupTaintsRemoved"
#define CTL_EV_TAINT_TIMEOUT    "StartupTaintTimeout"
#define CTL_EV_REPLENISHING     "Replenishing"
#define CTL_EV_GC               "InstanceGarbageCollected"
#define CTL_EV_SHRINK           "PoolShrunk"
#define CTL_EV_LAUNCH_FAILED    "LaunchFailed"
#define CTL_EV_STATE_CONVERGED  "StateConverged"
#define CTL_EV_SCALED_UP        "ScaledUp"

/* What the controller remembers of a pool between passes (lost on restart, rebuilt or harmless). */
struct ctl_poolmem {
	char name[LIMITS_NODEPOOL_NAME + 1];
	/*
	 * Held while capacity is decided and made for the pool's waiting pods
	 * (the fallback's pass, a warm node going straight to running), so
	 * that one decision sees what the one before it made: warm nodes that
	 * finish together on several workers do not all go running for the
	 * same pods, nor does a standby start race a warm node for them.
	 */
	pthread_mutex_t serve_lock;
	/* Degraded: the last failure with a cause that a later success clears. */
	char degraded_reason[64];
	char degraded_message[256];
	int64_t degraded_since_ms;
	/* Subnets that answered "no capacity": avoided until then (Unix ms). */
	char capacity_subnet[LIMITS_NODECLASS_SUBNETS][32];
	int64_t capacity_until_ms[LIMITS_NODECLASS_SUBNETS];
	/* The last status written, so an unchanged one is not written again. */
	char *status_written;
	int64_t status_generation;
	struct ctl_poolmem *next;
};

struct ctl_run;

struct controller {
	struct pool_ctx ctx;                 /* copy; the handles are borrowed */
	struct leader *leader;
	struct controller_options opts;
	struct ec2view *view;
	pthread_mutex_t lock;                /* run, pools, instances, retire, seen, threads */
	pthread_cond_t cond;                 /* threads left */
	struct ctl_run *run;                 /* current term, NULL when stopped */
	unsigned threads;                    /* of every run, still alive */
	struct ctl_poolmem *pools;
	/* instance id → node name, from spec.providerID of every Node (adoption, GC). */
	struct ctl_map *instances;
	/* nodes the pool reconcile chose to retire (shrink, deletion): their task terminates them */
	struct ctl_map *retire;
	/*
	 * instances being terminated (a retired node's, one without a Node):
	 * not counted in their pool until EC2 shows them going, so a pass that
	 * runs between a Node's deletion and its instance's termination does
	 * not count the instance again and retire one more
	 */
	struct ctl_map *retiring;
	/* pod "namespace/name" → the node holding its reservation: a pod's event finds that node */
	struct ctl_map *reserved;
	/* when a node's readiness was seen (time_mono_us), for the startup-taint latency */
	struct ctl_map *seen;
	/* metrics */
	struct metrics_family *m_nodes, *m_desired, *m_size, *m_scaledown, *m_warmup_seconds,
	    *m_warmup_failures, *m_drain_seconds, *m_taint_seconds, *m_launches, *m_gc,
	    *m_reconcile_seconds, *m_scaleup;
};

/* One leadership term: its queues, its subscription, its threads. */
struct ctl_run {
	struct controller *ctl;
	atomic_int refs;
	atomic_bool stop;
	struct workqueue *q;
	struct workqueue *urgent;
	struct cache_sub *sub;
};

/* ---- a small string map (controller.c) ---- */

struct ctl_map;
/* A map of at most max keys. NULL on ENOMEM. */
struct ctl_map *ctl_map_new(size_t max);
void ctl_map_free(struct ctl_map *m);
/* Sets key to value (copied; value may be NULL) and num. Returns 0, -ENOSPC (full) or -ENOMEM. */
int ctl_map_set(struct ctl_map *m, const char *key, const char *value, int64_t num);
/* Copies the value (into out[len], "" when NULL) and num. Returns 0 or -ENOENT. */
int ctl_map_get(struct ctl_map *m, const char *key, char *out, size_t len, int64_t *num);
void ctl_map_del(struct ctl_map *m, const char *key);
void ctl_map_clear(struct ctl_map *m);

/* ---- acting and queueing (controller.c) ---- */

/* Whether this run may still write: not stopped, and still the leader. */
bool ctl_acting(struct ctl_run *r);
void ctl_enqueue_pool(struct ctl_run *r, const char *pool, int64_t delay_ms);
void ctl_enqueue_node(struct ctl_run *r, const char *node, int64_t delay_ms);
/* Asks the EC2 view about id and queues its refresh for when it is due. */
void ctl_want_instance(struct ctl_run *r, const char *id);
/* Queues the EC2 view refresh for when it is due. */
void ctl_schedule_ec2(struct ctl_run *r);
/* The node of instance id (from providerIDs) into out; 0 or -ENOENT. */
int ctl_instance_node(struct controller *c, const char *id, char *out, size_t len);
/* The instance id in a providerID "aws:///<zone>/<id>" into out; 0 or -EINVAL. */
int ctl_provider_instance(const char *provider_id, char *out, size_t len);
/* The pool's notes (created on first use); use under c->lock. */
struct ctl_poolmem *ctl_poolmem(struct controller *c, const char *pool);
/*
 * Takes (lock) or gives back (unlock) the pool's serve_lock. The notes
 * live as long as the controller. Returns the notes, NULL on ENOMEM (then
 * nothing is held: the caller goes on unserialised).
 */
struct ctl_poolmem *ctl_serve_lock(struct controller *c, const char *pool);
void ctl_serve_unlock(struct ctl_poolmem *m);
/* Sets (reason non-NULL) or clears (NULL) a pool's Degraded cause. */
void ctl_degraded(struct controller *c, const char *pool, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- writes (controller_act.c): each checks ctl_acting first (-ECANCELED) ---- */

/*
 * Applies transition t to node n (guarded by n's resourceVersion) and
 * logs it. *out (may be NULL) gets the node as written. -EBUSY: the node
 * changed meanwhile (look again). An empty patch writes nothing (0).
 */
int ctl_transition(struct ctl_run *r, const struct node_info *n, const struct nodepool *pool,
    enum transition t, const struct transition_args *args, struct node_info **out);

/* Deletes a Node, with a resourceVersion precondition when rv is not NULL. 404 is success. */
int ctl_delete_node(struct ctl_run *r, const char *name, const char *rv);

/* EC2 calls that feed the view with their replies. */
int ctl_ec2_run(struct ctl_run *r, const struct ec2_run_params *p, struct ec2_instance *out,
    struct ec2_error *err);
int ctl_ec2_start(struct ctl_run *r, const char *id, struct ec2_error *err);
int ctl_ec2_stop(struct ctl_run *r, const char *id, struct ec2_error *err);
int ctl_ec2_terminate(struct ctl_run *r, const char *const *ids, size_t n, struct ec2_error *err);
/* CreateTags stratos.sh/state=state on ids. */
int ctl_ec2_tag_state(struct ctl_run *r, const char *const *ids, size_t n, const char *state,
    struct ec2_error *err);

/* Events (never block). */
void ctl_event_node(struct ctl_run *r, const struct node_info *n, const char *type,
    const char *reason, const char *action, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
void ctl_event_pool(struct ctl_run *r, const struct nodepool *pool, const char *type,
    const char *reason, const char *action, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Log line with pool, node and instance fields (any may be NULL). */
void ctl_log(enum log_level level, const char *pool, const char *node, const char *instance,
    json_t *fields, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The node's resourceVersion as text. */
void ctl_rv(const struct node_info *n, char out[24]);

/* ---- a node's task (reconcile.c dispatches to the parts) ---- */

struct ctl_node {
	struct ctl_run *run;
	struct controller *ctl;
	struct node_info *n;                 /* reference */
	const struct pools_snapshot *snap;   /* held */
	const struct nodepool *pool;         /* the node's pool, NULL when unknown */
	const struct nodeclass *nc;          /* its class, NULL when unknown */
	char instance_id[32];                /* "" when unknown */
	struct ec2view_instance inst;
	bool has_inst;                       /* the view knows the instance */
	bool inst_gone;                      /* terminated, or unknown to a full listing made well
	                                        after the Node registered */
	int64_t now;                         /* Unix ms */
	int64_t again_ms;                    /* run the task again in this many ms (0: only on events) */
};

/* Asks for the task to run again within ms (the earliest request wins). */
void ctl_node_again(struct ctl_node *cn, int64_t ms);

/*
 * ctl_transition on the task's node and pool; on success cn->n becomes the
 * node as written (so a second transition in the same task is guarded by
 * the new version); a lost race asks for the task again at once.
 */
int ctl_node_write(struct ctl_node *cn, enum transition t, const struct transition_args *args);

/* Deletes the node's warmup pre-pull pod if there is one (warmup.c). */
int warmup_prepull_delete(struct ctl_node *cn);

/* Per state (warmup.c, scaledown.c, recovery.c, startup_taints.c). Return 0 or -errno. */
int warmup_adopt(struct ctl_node *cn);
int warmup_node(struct ctl_node *cn);
int scaledown_node(struct ctl_node *cn);
int scaledown_stopping(struct ctl_node *cn);
int recovery_running(struct ctl_node *cn);
int recovery_standby(struct ctl_node *cn);
int recovery_retire(struct ctl_node *cn);
int recovery_orphan(struct ctl_node *cn);
/* Drops the reservations whose pod is gone, bound or no longer pending (§6.3). */
int recovery_reservations(struct ctl_node *cn);
int startup_taints_node(struct ctl_node *cn, bool urgent);

/* The standby transition shared by warmup, scale-down and recovery: label, then the EC2 tag. */
int ctl_to_standby(struct ctl_node *cn);

/* ---- a pool's reconcile (reconcile.c, poolsize.c, launch_run.c, poolstatus.c) ---- */

struct ctl_pool {
	struct ctl_run *run;
	struct controller *ctl;
	const struct pools_snapshot *snap;   /* held */
	const struct nodepool *pool;
	const struct nodeclass *nc;          /* NULL: the class does not exist */
	struct crd_info *crd;                /* reference; NULL with --pools-file */
	struct node_info **nodes;            /* the pool's Nodes (references) */
	size_t nnodes;
	struct ec2view_instance *insts;      /* the pool's instances */
	size_t ninsts;
	struct launch_records launches;
	struct poolsize_counts counts;       /* filled by poolsize_reconcile for the status */
	int64_t now;
	int64_t again_ms;
};

int reconcile_pool(struct ctl_run *r, const char *pool);
int reconcile_node(struct ctl_run *r, const char *node, bool urgent);
int reconcile_gc(struct ctl_run *r);

/* Launches (launch_run.c): repeats or drops recorded launches, then launches count more. */
int launch_reconcile(struct ctl_pool *cp, unsigned count);
/* Removes every launch record (a deleted pool whose records are all resolved). */
int launch_reconcile_drop_all(struct ctl_pool *cp);

/* Pool size (poolsize.c): counts, replenish, shrink; deletion through the finalizer. */
int poolsize_reconcile(struct ctl_pool *cp);
int poolsize_delete(struct ctl_pool *cp);
int poolsize_finalizer(struct ctl_pool *cp, bool add);

/*
 * Fallback scale-up (fallback.c, DESIGN §5.5): the pool's pods that the
 * scheduler could not place and that hold no reservation, the nodes they
 * need packed first-fit-decreasing into the pool's node size, and the
 * pool's nodes already starting (claimed, or warm and made running for
 * waiting pods) that will take them.
 */
struct fallback_need {
	unsigned pods;               /* waiting, no reservation */
	unsigned reserve;            /* of them, to be promised room on starting nodes */
	unsigned start;              /* standby nodes to start for them */
	unsigned launch;             /* nodes beyond starting and standby ones */
	int64_t grace_left_ms;       /* the soonest a pod in the extender's grace may act; 0: none */
};
/* The plan of the pool's waiting pods, read from the caches only (warmup: run or stop?). */
int fallback_waiting(struct controller *c, const struct nodepool *pool, int64_t now_ms,
    struct fallback_need *out);
/*
 * Acts on it (the pool's reconcile): reserves room on starting nodes and
 * claims and starts standby nodes (claim_reserve, claim_start: the claim
 * module the extender uses), within poolSize − running. *launch gets the
 * nodes still needed beyond those, for the launch plan. Asks for the pool
 * again when a pod's grace ends or a write lost a race.
 */
int fallback_reconcile(struct ctl_pool *cp, unsigned *launch);

/* Status, conditions and gauges (poolstatus.c). */
int poolstatus_reconcile(struct ctl_pool *cp);
void poolstatus_forget(struct controller *c, const char *pool);

#endif
