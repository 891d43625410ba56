/* Read-only debug views for operators and tests, served on the metrics port. */
#ifndef STRATOS_DEBUG_H
#define STRATOS_DEBUG_H

#include "stratos/server.h"

/*
 * GET /debug/caches (ctx NULL): per cache synced, count, last
 * resourceVersion, list/watch/event counters, bytes held. GET
 * /debug/caches/<resource> (ctx = the resource name, a static string): the
 * same entry plus the keys and resourceVersions of every cached object —
 * names and versions only, never specs; cut with "truncated": true when
 * the list would not fit the response cap. 404 for an unknown cache.
 * Thread-safe.
 */
void debug_handle_caches(void *ctx, const struct server_request *req,
    struct server_response *resp);

#endif
