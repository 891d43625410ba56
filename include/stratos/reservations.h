/* Reservations (DESIGN §6.3): pending pods promised to a starting node, the stratos.sh/reservations annotation. */
#ifndef STRATOS_RESERVATIONS_H
#define STRATOS_RESERVATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/limits.h"
#include "stratos/resources.h"

/*
 * The annotation NODESTATE_ANN_RESERVATIONS holds a JSON array, one object
 * per pending pod, ordered by "since" (ties in the order written):
 *
 *   [{"uid":"5d4c3b2a-...","pod":"ci/runner-x2kqp",
 *     "requests":{"cpu":"500m","memory":"1Gi","nvidia.com/gpu":"1"},
 *     "since":"2026-11-28T07:00:01Z"}]
 *
 *   uid       the pod's metadata.uid (1..LIMITS_RESERVATION_UID bytes), unique
 *             in the array: a pod is promised to one node at most once there
 *   pod       "namespace/name", for people and events
 *   requests  the pod's scheduler request (resources_pod_requests) as a
 *             ResourceList of canonical Kubernetes quantities
 *             (resources_format_list): cpu, memory, ephemeral-storage and
 *             extended resources, zero ones left out; never "pods" (each
 *             reservation holds one pod slot); may be {}
 *   since     RFC 3339 UTC, seconds precision: when the promise was made
 *
 * Readers ignore members they do not know (a newer replica may add some);
 * writers here emit exactly the four above, so a rewrite by an older
 * replica drops them: a new member must be optional. An array that breaks any other
 * rule is malformed as a whole: the caller treats it as no reservations and
 * logs it, since a partial reading could promise the same room twice.
 * No reservation left is written as no annotation: the writers return NULL
 * and the caller removes the annotation (never "[]"; a "[]" that exists
 * anyway parses as empty).
 *
 * Every write of the annotation is a node patch guarded by the node's
 * resourceVersion, so replicas never lose each other's promises.
 *
 * Thread-safety: a parsed struct reservations is immutable, so any number of
 * threads may read one; every function here is pure.
 */

/* One promise: the pending pod uid will run on this starting node. */
struct reservation {
	const char *uid;
	const char *pod;             /* "namespace/name" */
	struct resources requests;   /* pods = 1 */
	int64_t since_ms;            /* Unix milliseconds (whole seconds: the text has no more) */
};

/* A node's reservations, parsed once when the node is cached. */
struct reservations {
	size_t n;
	const struct reservation *item;   /* n entries, ordered by since_ms */
};

/*
 * Parses the annotation text json (NUL-terminated). *out (free with
 * reservations_free) is set on success, NULL otherwise. Returns 0, -EINVAL
 * for anything malformed (not JSON, not an array of objects, a missing or
 * mistyped member, an unparsable or negative quantity, a bad time, a uid
 * twice), -E2BIG beyond LIMITS_RESERVATIONS_TEXT bytes or
 * LIMITS_RESERVATIONS_PER_NODE items or LIMITS_RESOURCES_EXTENDED extended
 * resources in one item, -ENOMEM.
 */
int reservations_parse(const char *json, struct reservations **out);

/* Frees r and drops its requests' references. NULL-safe. */
void reservations_free(struct reservations *r);

/* The reservation of pod uid, or NULL (also when r is NULL). Borrowed from r. */
const struct reservation *reservations_find(const struct reservations *r, const char *uid);

/*
 * The writers. Each returns the annotation text that results from r (NULL =
 * no reservations yet) for a node patch guarded by the resourceVersion r
 * was read at: *out is the caller's string, or NULL when no reservation is
 * left (remove the annotation). The result always parses back to what it
 * says (its size is checked against the limits reservations_parse applies).
 */

/*
 * r plus add, placed after every reservation with the same or an earlier
 * since; its since is written in whole seconds. add is copied. Returns 0,
 * -EEXIST when r already holds add->uid (nothing to write), -EINVAL when
 * add is not valid (empty or too long uid, pod not "namespace/name",
 * negative requests), -E2BIG when the result exceeds the limits, -ENOMEM.
 */
int reservations_with(const struct reservations *r, const struct reservation *add,
    char **out);

/*
 * r without the reservation of pod uid. Returns 0 (*out NULL when it was the
 * last), -ENOENT when r holds no such uid (nothing to write), -ENOMEM.
 */
int reservations_without(const struct reservations *r, const char *uid, char **out);

/* Whether to keep a reservation (e.g. its pod still exists, unbound). Must not fail. */
typedef bool (*reservations_keep_fn)(void *ctx, const struct reservation *res);

/*
 * r keeping only the reservations keep() accepts, in order. Returns the
 * number removed (0: nothing to write, and *out is r's text as it stands,
 * so writing it anyway changes nothing) or -ENOMEM. *out is NULL when none
 * is kept.
 */
int reservations_filter(const struct reservations *r, reservations_keep_fn keep, void *ctx,
    char **out);

/*
 * Adds the requests of every reservation of r but except_uid's (may be NULL)
 * to sum, one pod slot each. The sum borrows r's names: keep r while it is
 * used. Returns 0 or -E2BIG (too many distinct extended resources).
 */
int reservations_sum(const struct reservations *r, const char *except_uid,
    struct resources_sum *sum);

/*
 * The fit check of DESIGN §6.3: whether pod (its requests) fits on a
 * starting node with allocatable once the node's DaemonSet pods
 * (used_by_daemonsets, may be NULL) and its reservations but except_uid's
 * (the pod's own, so a pod re-checked where it is already promised is not
 * counted twice; may be NULL) are placed -- the scheduler's NodeResourcesFit
 * arithmetic (resources_sum_fits_pod): one pod slot each; cpu, memory,
 * ephemeral-storage and extended resources the pod asks for. r may be NULL.
 * When it does not fit, *short_of (may be NULL) names the first resource
 * short ("pods", "cpu", "memory", "ephemeral-storage" or the extended
 * name); a sum with more than LIMITS_RESOURCES_EXTENDED distinct extended
 * resources does not fit ("extended resources"): never promise room that
 * cannot be counted.
 */
bool reservations_fit(const struct resources *allocatable,
    const struct resources_sum *used_by_daemonsets, const struct reservations *r,
    const char *except_uid, const struct resources *pod, const char **short_of);

#endif
