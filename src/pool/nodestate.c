/* The node states of DESIGN §4: names and the transitions a guarded PATCH may make. */
#include <string.h>

#include "stratos/nodestate.h"

static const char *const nodestate__names[NODESTATE_COUNT] = {
	[NODESTATE_NONE] = "",
	[NODESTATE_WARMUP] = "warmup",
	[NODESTATE_STANDBY] = "standby",
	[NODESTATE_RUNNING] = "running",
	[NODESTATE_STOPPING] = "stopping",
};

const char *
nodestate_name(enum nodestate s)
{
	return (unsigned)s < NODESTATE_COUNT ? nodestate__names[s] : "";
}

enum nodestate
nodestate_parse(const char *label)
{
	if (label == NULL || label[0] == '\0')
		return NODESTATE_NONE;
	for (unsigned i = 1; i < NODESTATE_COUNT; i++)
		if (strcmp(label, nodestate__names[i]) == 0)
			return (enum nodestate)i;
	return NODESTATE_NONE;
}

bool
nodestate_transition_allowed(enum nodestate from, enum nodestate to)
{
	switch (from) {
	case NODESTATE_NONE:
		return to == NODESTATE_WARMUP;
	case NODESTATE_WARMUP:
		/* Warmup done (stopped), or finished while pool pods wait: straight to running (§5.5). */
		return to == NODESTATE_STANDBY || to == NODESTATE_RUNNING;
	case NODESTATE_STANDBY:
		/* Claimed for a pod; or taken back to warmup to be re-warmed (warmup-failed, §5.1). */
		return to == NODESTATE_RUNNING || to == NODESTATE_WARMUP;
	case NODESTATE_RUNNING:
		/* Scale-down; or a start that failed goes back to standby (§5.6). */
		return to == NODESTATE_STOPPING || to == NODESTATE_STANDBY;
	case NODESTATE_STOPPING:
		/* Stopped; or the drain timed out (§5.4). */
		return to == NODESTATE_STANDBY || to == NODESTATE_RUNNING;
	}
	return false;
}
