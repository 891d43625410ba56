/* NodePool status (DESIGN §3.2): node counts, observedGeneration, the Ready, Degraded and ScaledUp conditions, lastScaleUpTime. */
#ifndef STRATOS_POOLSTATUS_H
#define STRATOS_POOLSTATUS_H

#include <stdint.h>
#include <jansson.h>

#include "stratos/nodepool.h"
#include "stratos/poolsize.h"

/* What the status says beyond the counts. */
struct poolstatus_facts {
	const char *degraded_reason;     /* NULL or "": not degraded */
	const char *degraded_message;
	int64_t last_scale_up_ms;        /* latest stratos.sh/started-at of the pool's nodes, 0 none */
};

/*
 * The status object of pool: observedGeneration, nodes {warmup, standby,
 * running, stopping, total}, conditions Ready (standby ≥ minStandby),
 * Degraded (facts' reason; False "AsExpected" when none, so it clears),
 * ScaledUp (nodes running), each with observedGeneration, and
 * lastScaleUpTime (the later of facts' and old's). A condition whose
 * status, reason and message are those of old (the current status, may be
 * NULL) keeps its lastTransitionTime. Caller's reference; NULL on ENOMEM. Pure.
 */
json_t *poolstatus_build(const struct nodepool *pool, const struct poolsize_counts *c,
    const struct poolstatus_facts *f, const json_t *old, int64_t now_ms);

/*
 * Whether new differs from old in anything but what poolstatus_build
 * carries over (so an unchanged pool is not written every pass). Pure.
 */
int poolstatus_changed(const json_t *new_status, const json_t *old);

#endif
