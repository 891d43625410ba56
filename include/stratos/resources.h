/* Compute resources as the scheduler counts them: pod requests, node allocatable, fit sums. */
#ifndef STRATOS_RESOURCES_H
#define STRATOS_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/limits.h"
#include "stratos/nodestate.h"


/* One extended resource (nvidia.com/gpu, hugepages-2Mi, ...). name is interned. */
struct resources_ext {
	const char *name;
	int64_t value;
};

/*
 * An immutable resource list. ext is an interned, name-sorted blob shared
 * by equal lists (NULL when there are none); release it with
 * resources_release. A pod's requests have pods = 1.
 */
struct resources {
	int64_t cpu_milli;
	int64_t memory;              /* bytes */
	int64_t ephemeral;           /* bytes */
	int64_t pods;
	const struct resources_ext *ext;
	uint32_t next;
};

/*
 * Parses a ResourceList object ({"cpu":"7910m","memory":"31369588Ki",...})
 * such as a node's status.allocatable. Unparsable quantities are -EINVAL
 * (out untouched). Thread-safe.
 */
int resources_parse_list(json_t *list, struct resources *out);

/*
 * The scheduler's pod request (NodeResourcesFit): the sum over containers;
 * then, walking init containers in order, sidecars (restartPolicy Always)
 * add to the sum and to what later init containers run beside, and the
 * result is the max of that sum and every init container's need; then the
 * pod-level requests (spec.resources, PodLevelResources: beta and on by
 * default since Kubernetes 1.34) replace cpu, memory and hugepages-*; plus
 * spec.overhead. A missing request defaults to the limit, as the API server
 * does. stratos.sh/pool-pod is ignored. spec is the pod's "spec". Thread-safe.
 */
int resources_pod_requests(json_t *spec, struct resources *out);

/*
 * The inverse of resources_parse_list: *out (caller's reference) is a
 * ResourceList whose values are the canonical strings the API server prints
 * (apimachinery resource.Quantity.CanonicalizeBytes), so every replica writes
 * the same text for the same values and parse(format(x)) == x:
 *   cpu                      DecimalSI millicores: "500m", "1500m", "2", "2k";
 *   memory, ephemeral-storage, hugepages-*
 *                            BinarySI with the largest exact suffix when the
 *                            value is a multiple of 1024 ("1Gi", "1536Mi"),
 *                            else DecimalSI ("1k", "1G", "1025", "0"): the
 *                            strings the API server keeps as they are;
 *   pods, other extended     DecimalSI ("1", "1k").
 * cpu, memory and ephemeral-storage are left out when 0, pods when 0;
 * extended resources are always written. Returns 0 or -ENOMEM. Thread-safe.
 */
int resources_format_list(const struct resources *r, json_t **out);

/* Value of an extended resource, 0 when absent. */
int64_t resources_ext_get(const struct resources *r, const char *name);

/* Drops the ext blob reference. */
void resources_release(struct resources *r);

/* Adds a reference to r's ext blob for a copy (*dst = *src). */
void resources_copy(struct resources *dst, const struct resources *src);

/* A running total (pods on a node, reservations) to test against allocatable. */
struct resources_sum {
	int64_t cpu_milli;
	int64_t memory;
	int64_t ephemeral;
	int64_t pods;
	size_t next;
	const char *ext_name[LIMITS_RESOURCES_EXTENDED];   /* borrowed from the added lists */
	int64_t ext_value[LIMITS_RESOURCES_EXTENDED];
};

void resources_sum_init(struct resources_sum *s);

/*
 * Adds r. The sum borrows r's extended-resource names: keep r alive while
 * the sum is used. Returns 0 or -E2BIG (too many distinct extended resources).
 */
int resources_sum_add(struct resources_sum *s, const struct resources *r);

/*
 * True when s fits in alloc (every resource s uses is <= alloc's, an
 * extended resource alloc lacks counting as 0). Otherwise *short_of (may be
 * NULL) names the first resource that does not fit ("cpu", "memory",
 * "ephemeral-storage", "pods" or the extended name).
 */
bool resources_sum_fits(const struct resources_sum *s, const struct resources *alloc,
    const char **short_of);

/*
 * kube-scheduler's NodeResourcesFit filter (fitsRequest in
 * pkg/scheduler/framework/plugins/noderesources/fit.go): whether pod (its
 * requests, e.g. from resources_pod_requests) fits on a node with alloc
 * where used is already requested. The pod takes one pod slot, always
 * checked; cpu, memory, ephemeral-storage and each extended resource only
 * when the pod requests more than 0 of it, so a resource already
 * overcommitted on the node (a static pod) does not reject a pod that
 * asks none of it. Unlike resources_sum_fits, which tests a whole sum.
 * *short_of (may be NULL) names the first resource short, in fitsRequest's
 * order: "pods", "cpu", "memory", "ephemeral-storage", then the pod's
 * extended resources by name. Thread-safe.
 */
bool resources_sum_fits_pod(const struct resources_sum *used, const struct resources *pod,
    const struct resources *alloc, const char **short_of);

#endif
