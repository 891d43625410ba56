/* The kube-scheduler extender (/scheduler/filter, /scheduler/prioritize, DESIGN §6.3–6.4): a standby node started inside the filter call. */
#ifndef STRATOS_EXTENDER_H
#define STRATOS_EXTENDER_H

#include "stratos/pool_ctx.h"
#include "stratos/server.h"

/*
 * Registration in `stratosd serve` (only with a Kubernetes configuration:
 * the caches are its whole view of the cluster):
 *
 *   struct extender *ex = extender_new(&pool_ctx);
 *   route POST "/scheduler/filter"     → extender_filter_handle,
 *         SERVER_ROUTE_JSON | SERVER_ROUTE_BLOCKING | SERVER_ROUTE_CLIENT_CERT
 *   route POST "/scheduler/prioritize" → extender_prioritize_handle,
 *         SERVER_ROUTE_JSON | SERVER_ROUTE_CLIENT_CERT
 *   extender_free(ex) after the server stopped
 *
 * The pods it offers nodes to are noted in pool_ctx.placed (the binding
 * tracker main owns and starts: reservations released and the bind
 * metrics recorded when they bind); without one nothing is measured.
 *
 * The wire format is kube-scheduler's (k8s.io/kube-scheduler/extender/v1
 * types.go, which has no json tags: capitalised keys): ExtenderArgs
 * {"Pod", "Nodes", "NodeNames"} in, ExtenderFilterResult {"Nodes",
 * "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"} and
 * HostPriorityList [{"Host", "Score"}] out, answering in the form the call
 * used (pkg/scheduler/extender.go HTTPExtender.Filter: with
 * nodeCacheCapable the returned NodeNames must be a subset of those sent;
 * without it, the Node objects are echoed in Nodes.items).
 */

struct extender;

/*
 * A handler context over ctx (borrowed; it must outlive the extender).
 * Registers the metrics stratos_extender_filter_seconds{outcome} and
 * stratos_scaleup_decision_seconds. NULL on ENOMEM.
 */
struct extender *extender_new(const struct pool_ctx *ctx);

/* Frees. No handler may run any more. NULL-safe. */
void extender_free(struct extender *ex);

/*
 * server_handler_fn for POST /scheduler/filter (ctx: struct extender *).
 * On the event loop it answers every call that needs no write: a pod of no
 * pool (its candidates echoed untouched, without parsing them), usable
 * nodes, a pod that waits for the node it holds a reservation on, no
 * capacity. A call that must reserve room or claim and start a standby node
 * is deferred to a blocking worker (resp->defer), where the StartInstances
 * budget (pool_ctx.start_budget_ms) bounds the wait on EC2.
 */
void extender_filter_handle(void *ctx, const struct server_request *req,
    struct server_response *resp);

/*
 * server_handler_fn for POST /scheduler/prioritize: 10 for the node the pod
 * holds a reservation on, 8 for a node whose last-workload is the pod's
 * owner (its caches), 0 for the rest. Never waits.
 */
void extender_prioritize_handle(void *ctx, const struct server_request *req,
    struct server_response *resp);

#endif
