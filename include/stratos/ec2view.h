/* The pool controller's view of the cluster's EC2 instances: one DescribeInstances per change, not per question. */
#ifndef STRATOS_EC2VIEW_H
#define STRATOS_EC2VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/ec2.h"
#include "stratos/limits.h"

/*
 * How it is kept fresh
 *
 *   A full DescribeInstances of the cluster (tag stratos.sh/cluster, every
 *   state) fills the view at start and then every resync period (default
 *   5 min: garbage collection needs to see instances nobody asked about).
 *   In between, the view changes only through what the controller learns
 *   anyway: the replies of its own RunInstances, Start/Stop/Terminate and
 *   CreateTags calls, and a targeted DescribeInstances (by instance id) of
 *   the instances in a transitional state (pending, stopping,
 *   shutting-down) or that someone asked about (ec2view_want: a node the
 *   extender just started), at most every poll period. When nothing is in
 *   transition and nobody asks, the view makes no call at all until the
 *   next resync.
 *
 * Threads: every function is thread-safe. ec2view_refresh makes the calls
 * (one refresh at a time; a second caller waits for the first and returns);
 * everything else only takes the view's lock for a copy.
 */

#define EC2VIEW_RESYNC_MS_DEFAULT   (5 * 60 * 1000LL)
#define EC2VIEW_POLL_MS_DEFAULT     1000LL
/* Ids asked about that the view does not hold yet (launched by someone else, not described yet). */
#define EC2VIEW_WANTED_UNKNOWN_MAX  256u

/* state_code of an instance that a full DescribeInstances no longer shows (or never showed). */
#define EC2VIEW_STATE_GONE (-1)

/* What the view knows of one instance; a copy, owned by the caller. */
struct ec2view_instance {
	char id[32];
	char pool[LIMITS_NODEPOOL_NAME + 1];   /* tag stratos.sh/pool, "" when absent */
	char state_tag[16];                    /* tag stratos.sh/state, "" when absent */
	char subnet_id[32];
	char zone[32];
	char client_token[72];
	int state_code;                        /* EC2_STATE_*, or EC2VIEW_STATE_GONE */
	int64_t launch_ms;                     /* Unix ms (launchTime), 0 when unknown */
	int64_t observed_ms;                   /* Unix ms of the last reply that showed this state */
	int64_t changed_ms;                    /* Unix ms when the view first saw this state */
	bool described;                        /* a DescribeInstances has shown it (not only a reply
	                                          to our own call): EC2 lists it now */
};

/* Whether an instance in this state is on its way somewhere (the view polls it). */
bool ec2view_state_transitional(int state_code);

/* "pending", "running", ... "gone" for logs. */
const char *ec2view_state_name(int state_code);

struct ec2view;

struct ec2view_options {
	const char *cluster;          /* the stratos.sh/cluster tag value (copied) */
	int64_t resync_ms;            /* 0 = EC2VIEW_RESYNC_MS_DEFAULT */
	int64_t poll_ms;              /* 0 = EC2VIEW_POLL_MS_DEFAULT */
};

/* New, empty, not synced view over ec2 (borrowed; may be NULL for tests that only apply replies). */
struct ec2view *ec2view_new(struct ec2_client *ec2, const struct ec2view_options *opts);

/* NULL-safe. No refresh may be running. */
void ec2view_free(struct ec2view *v);

/* True once a full DescribeInstances has been applied. */
bool ec2view_synced(struct ec2view *v);

/* Unix ms of the last full DescribeInstances applied, 0 before the first. */
int64_t ec2view_full_ms(struct ec2view *v);

/* Copies the instance into *out. Returns 0 or -ENOENT. */
int ec2view_get(struct ec2view *v, const char *id, struct ec2view_instance *out);

/*
 * Copies the instances of pool (NULL: every instance) into a new array
 * (*out, caller frees; NULL when none). Returns the count or -ENOMEM.
 */
long ec2view_list(struct ec2view *v, const char *pool, struct ec2view_instance **out);

/*
 * Called for each instance whose state, pool tag or presence changed in an
 * update, after the view's lock is released. old_state is the state before
 * (EC2VIEW_STATE_GONE for an instance new to the view).
 */
typedef void (*ec2view_change_fn)(void *ctx, const struct ec2view_instance *now, int old_state);

/*
 * Applies instances described or launched: a reply to RunInstances
 * (described false) or to a DescribeInstances (described true; full true
 * when it was a full listing of the cluster, after which every instance it
 * did not show is gone). Calls fn (may be NULL) per change. Returns 0 or
 * -ENOMEM.
 */
int ec2view_apply_instances(struct ec2view *v, const struct ec2_instances *list, bool described,
    bool full, ec2view_change_fn fn, void *ctx);

/* Applies the currentState of a Start/Stop/TerminateInstances reply. Unknown ids are ignored. */
void ec2view_apply_changes(struct ec2view *v, const struct ec2_state_changes *changes,
    ec2view_change_fn fn, void *ctx);

/* Records a stratos.sh/state tag written by CreateTags on ids. */
void ec2view_apply_state_tag(struct ec2view *v, const char *const *ids, size_t n,
    const char *state);

/*
 * Asks for id to be described by the next refresh (its state may have
 * changed behind the view's back: the extender started it). Ids the view
 * does not hold are remembered too (at most EC2VIEW_WANTED_UNKNOWN_MAX).
 */
void ec2view_want(struct ec2view *v, const char *id);

/* Makes the next refresh a full one (after an answer the view cannot explain). */
void ec2view_want_full(struct ec2view *v);

/*
 * The time_mono_ms() at which ec2view_refresh has something to do: now
 * when not synced or a full refresh was asked for, the next poll while
 * instances are in transition or wanted, else the next resync.
 */
int64_t ec2view_next_refresh(struct ec2view *v);

/* Refresh counters (the benchmark, tests, /metrics). */
struct ec2view_stats {
	unsigned long full;           /* full DescribeInstances listings */
	unsigned long targeted;       /* DescribeInstances by id */
	unsigned long failures;
	size_t instances;
	size_t transitional;
};
void ec2view_stats(struct ec2view *v, struct ec2view_stats *out);

/*
 * Makes the calls that are due now (see ec2view_next_refresh; nothing when
 * nothing is), calling fn per change. deadline_ms bounds the calls (0 = the
 * client's default). Returns 0, or the EC2 error of a failed call (err
 * filled; the view keeps what it had and tries again at the next poll).
 */
int ec2view_refresh(struct ec2view *v, int64_t deadline_ms, ec2view_change_fn fn, void *ctx,
    struct ec2_error *err);

#endif
