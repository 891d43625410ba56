/* Scale-down (DESIGN §5.4): which pods keep a node busy, and which ones a drain evicts. */
#ifndef STRATOS_SCALEDOWN_H
#define STRATOS_SCALEDOWN_H

#include <stdbool.h>

#include "stratos/pod_cache.h"

/*
 * Whether pod keeps its node from being empty: anything but DaemonSet pods,
 * mirror (static) pods and pods that finished (Succeeded, Failed). A pod
 * being deleted still counts until it is gone. Pure.
 */
bool scaledown_pod_counts(const struct pod_info *pod);

/*
 * Whether a drain evicts pod: one that counts and is not already being
 * deleted (the eviction would only say so again). Pure.
 */
bool scaledown_pod_evictable(const struct pod_info *pod);

#endif
