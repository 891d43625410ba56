/* /debug/caches: what the in-memory caches hold, as names and resourceVersions. */
#include <stdlib.h>
#include <string.h>

#include "stratos/cache.h"
#include "stratos/debug.h"

void
debug_handle_caches(void *ctx, const struct server_request *req,
    struct server_response *resp)
{
	const char *resource = ctx;
	/* Leave room for the counters around the object list. */
	size_t budget = resp->body.max > 4096 ? resp->body.max - 4096 : 1;
	json_t *out = cache_debug_json(resource, budget);
	char *text;

	(void)req;
	if (out == NULL) {
		server_json_error(resp, 404, "no cache of %s", resource != NULL ? resource : "?");
		return;
	}
	text = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	if (text == NULL || buf_append_str(&resp->body, text) < 0)
		server_json_error(resp, 500, "debug view too large or out of memory");
	free(text);
}
