/* The pool controller (DESIGN §5): keeps every NodePool warm, right-sized and recoverable, on the elected leader only. */
#ifndef STRATOS_CONTROLLER_H
#define STRATOS_CONTROLLER_H

#include <stdint.h>

#include "stratos/pool_ctx.h"

struct leader;

#define CONTROLLER_WORKERS_DEFAULT 4u
#define CONTROLLER_TICK_MS_DEFAULT 10000LL

struct controller_options {
	unsigned workers;            /* per-pool and per-node task threads; 0 = default */
	int64_t tick_ms;             /* every pool reconciled at least this often; 0 = default */
	int64_t ec2_resync_ms;       /* full DescribeInstances period (GC); 0 = EC2VIEW default */
	int64_t ec2_poll_ms;         /* instance state poll while in transition; 0 = default */
};

struct controller;

/*
 * New controller over ctx (borrowed; must outlive it, and have a kube
 * client, caches, the NodePool cache and an EC2 client). Starts nothing.
 * NULL on ENOMEM or when ctx lacks what the controller needs.
 */
struct controller *controller_new(const struct pool_ctx *ctx, const struct controller_options *o);

/*
 * The elector whose leadership every write checks (leader_is_leader before
 * each action, so a replica whose renewals stall stops acting within the
 * renew deadline even if its callbacks come late). NULL (the default):
 * act whenever started. Set before controller_start.
 */
void controller_set_leader(struct controller *c, struct leader *l);

/*
 * Starts acting: subscribes to the caches, starts the event loop and the
 * workers, and reconciles every pool and pool node once. Idempotent.
 * Returns 0 or -errno. Thread-safe with controller_stop.
 */
int controller_start(struct controller *c);

/*
 * Stops acting before it returns: no write (Kubernetes or EC2) starts after
 * it, and it waits a bounded time (CONTROLLER_STOP_GRACE_MS) for the work
 * in flight; a call already on the wire finishes, its follow-ups do not
 * happen. Idempotent; thread-safe with controller_start.
 */
void controller_stop(struct controller *c);

/* The leader_config callbacks: on_started → controller_start, on_stopped → controller_stop. */
void controller_on_started(void *c);
void controller_on_stopped(void *c);

/* Stops and frees, waiting for every thread of earlier runs. NULL-safe. */
void controller_free(struct controller *c);

#endif
