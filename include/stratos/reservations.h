/* Reservations (DESIGN §6.3): the stratos.sh/reservations annotation of a starting Node, parsed, rewritten and fitted with the scheduler's arithmetic. */
#ifndef STRATOS_RESERVATIONS_H
#define STRATOS_RESERVATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/resources.h"

/*
 * The annotation is a JSON list, one entry per pending pod promised to the
 * node:
 *
 *   [{"uid":"5d4c...","pod":"ci/runner-x2kqp",
 *     "requests":{"cpu":"2","memory":"4294967296"},"since":"2026-11-28T07:00:01Z"}]
 *
 * "requests" is the pod's request as the scheduler counts it (pods = 1 is
 * implied and never written). Every replica reads and writes the same list
 * with a resourceVersion guard, so a promise made by one is seen by all.
 *
 * Everything here works on the caller's lists and strings only: any thread
 * may call any function at once on lists it does not share.
 */

/* One promise. Strings are owned by the list. */
struct reservation {
	char *uid;
	char *pod;                   /* "namespace/name" */
	struct resources requests;   /* pods = 1 */
	int64_t since_ms;            /* Unix ms; 0 when absent */
};

struct reservations {
	size_t n;
	struct reservation *v;
};

/*
 * Parses the annotation text (NULL or "" is an empty list) into out, which
 * the caller frees with reservations_free in every case. Returns 0, -EINVAL
 * (not such a list: out is left empty), -E2BIG (more than
 * LIMITS_RESERVATIONS entries) or -ENOMEM. Thread-safe.
 */
int reservations_parse(const char *text, struct reservations *out);

/* Frees the entries and leaves an empty list. NULL-safe. */
void reservations_free(struct reservations *r);

/* The entry of pod uid, or NULL. */
const struct reservation *reservations_find(const struct reservations *r, const char *uid);

/*
 * Keeps the entries for which keep(ctx, entry) is true, in order, freeing
 * the others. Returns how many were dropped.
 */
size_t reservations_keep(struct reservations *r,
    bool (*keep)(void *ctx, const struct reservation *e), void *ctx);

/*
 * The annotation text of r with an entry for uid (replacing one of the same
 * uid, else appended), in *out (caller frees). Returns 0, -E2BIG (the list
 * is full) or -ENOMEM.
 */
int reservations_with(const struct reservations *r, const char *uid, const char *pod,
    const struct resources *requests, int64_t since_ms, char **out);

/*
 * The annotation text of r without uid's entry, in *out (caller frees), or
 * *out = NULL when nothing is left (remove the annotation). Returns 0 or
 * -ENOMEM.
 */
int reservations_without(const struct reservations *r, const char *uid, char **out);

/* The annotation text of r as it is (*out NULL when r is empty). Returns 0 or -ENOMEM. */
int reservations_format(const struct reservations *r, char **out);

/*
 * Whether a pod requesting pod fits a node of allocatable alloc that
 * already carries used (the requests of the pods bound to it: DaemonSet
 * pods on a starting node) and the entries of r other than except_uid's
 * (may be NULL), with NodeResourcesFit's rule (noderesources/fit.go
 * fitsRequest): the pod count always, each other resource only when the
 * pod requests some of it, against allocatable minus what is requested
 * already. Otherwise *short_of (may be NULL) names the first resource that
 * is short ("pods", "cpu", "memory", "ephemeral-storage" or the extended
 * name). Pure.
 */
bool reservations_fit(const struct resources *alloc, const struct resources_sum *used,
    const struct reservations *r, const char *except_uid, const struct resources *pod,
    const char **short_of);

#endif
