/* The validating webhooks for NodePool and AWSNodeClass (/admission/validate-nodepool, /admission/validate-awsnodeclass). */
#ifndef STRATOS_VALIDATE_WEBHOOK_H
#define STRATOS_VALIDATE_WEBHOOK_H

#include "stratos/pools.h"
#include "stratos/server.h"

/*
 * Registration in `stratosd serve`:
 *
 *   struct validate_webhook_options vo = {
 *       .pool_nodes = node_cache_pool_size,   // nodes labelled with the pool, -1 before sync
 *       .pool_nodes_ctx = node_cache,
 *   };
 *   struct validate_webhook *vr = validate_webhook_new(pools, &vo);
 *   route "/admission/validate-nodepool"     → validate_webhook_nodepool_handle,  ctx vr
 *   route "/admission/validate-awsnodeclass" → validate_webhook_nodeclass_handle, ctx vr
 *   ... after the server stopped: validate_webhook_free(vr)
 */

struct validate_webhook_options {
	/*
	 * How many nodes pool has now (any state), or -1 when unknown. Called on
	 * webhook threads: must be thread-safe and must not block. NULL: always
	 * unknown (transition warnings then assume nodes may exist).
	 */
	long (*pool_nodes)(void *ctx, const char *pool);
	void *pool_nodes_ctx;
};

struct validate_webhook;

/*
 * A context for both handlers. pools is borrowed (it supplies the other
 * resources for cross-references). Registers
 * stratos_admission_denials_total{kind}. NULL on ENOMEM.
 */
struct validate_webhook *validate_webhook_new(struct pools *pools,
    const struct validate_webhook_options *opt);
void validate_webhook_free(struct validate_webhook *vr);

/*
 * server_handler_fn for /admission/validate-nodepool and
 * /admission/validate-awsnodeclass (ctx: struct validate_webhook *).
 * Every violation is in one denial: status code 422, reason "Invalid",
 * message `NodePool "x" is invalid: spec.a: problem; spec.b: problem`, and
 * one status.details.causes entry per violation; warnings in both cases.
 * Requests for other kinds or for subresources are allowed unchanged.
 */
void validate_webhook_nodepool_handle(void *ctx, const struct server_request *req,
    struct server_response *resp);
void validate_webhook_nodeclass_handle(void *ctx, const struct server_request *req,
    struct server_response *resp);

#endif
