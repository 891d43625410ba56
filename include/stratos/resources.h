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
 * result is the max of that sum and every init container's need; plus
 * spec.overhead. A missing request defaults to the limit, as the API server
 * does. stratos.sh/pool-pod is ignored. spec is the pod's "spec". Thread-safe.
 */
int resources_pod_requests(json_t *spec, struct resources *out);

/* Value of an extended resource, 0 when absent. */
int64_t resources_ext_get(const struct resources *r, const char *name);

/*
 * The list as a ResourceList object (new reference; NULL on ENOMEM):
 * cpu in cores or millicores ("2", "1500m"), the rest as plain integers;
 * zero values and "pods" are left out. resources_parse_list reads it back
 * to the same values. Thread-safe.
 */
json_t *resources_format_list(const struct resources *r);

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

#endif
