/* Fallback scale-up (DESIGN §5.5): how many nodes a pool's waiting pods need, packed first-fit-decreasing into its node size. */
#ifndef STRATOS_FALLBACK_H
#define STRATOS_FALLBACK_H

#include <stddef.h>

#include "stratos/resources.h"

/*
 * Packs n pod requests into as few nodes of allocatable alloc as
 * first-fit-decreasing does: the pods in decreasing order of their request
 * (cpu, then memory, then ephemeral-storage; ties in the caller's order),
 * each into the first node opened so far where it fits with the
 * scheduler's arithmetic (resources_sum_fits_pod: one pod slot each), on
 * top of base (the DaemonSet pods every node of the pool runs; may be
 * NULL), else into a new node while fewer than max_bins are open.
 * assign[i] gets the node index of pods[i], or -1 when it fits no node
 * (too big for an empty one, or max_bins reached). Returns the number of
 * nodes used, or -ENOMEM / -E2BIG (too many distinct extended resources).
 * Pure; pods[i] stay borrowed.
 */
long fallback_pack(const struct resources *alloc, const struct resources_sum *base,
    const struct resources *const *pods, size_t n, size_t max_bins, int *assign);

#endif
