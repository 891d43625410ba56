/* RFC 6902 JSON Patch building with RFC 6901 pointer escaping. */
#ifndef STRATOS_JSONPATCH_H
#define STRATOS_JSONPATCH_H

#include <jansson.h>

#include "stratos/buf.h"

/*
 * Appends one escaped reference token ("/" + token with "~" → "~0" and
 * "/" → "~1") to out. Returns 0 or a buf error.
 */
int jsonpointer_append(struct buf *out, const char *token);

/*
 * Builds a pointer from NULL-terminated tokens:
 * jsonpointer_build("metadata", "annotations", "stratos.sh/pool", NULL)
 * → "/metadata/annotations/stratos.sh~1pool". Caller frees; NULL on ENOMEM.
 */
char *jsonpointer_build(const char *first, ...) __attribute__((sentinel));

/* New empty patch (a JSON array). */
json_t *jsonpatch_new(void);

/*
 * Appends {"op": op, "path": <tokens>, "value": value} to patch. value is
 * stolen (pass NULL for "remove"). Tokens are NULL-terminated and escaped
 * here; pass "-" to append to an array. Returns 0, -EINVAL or -ENOMEM.
 */
int jsonpatch_append(json_t *patch, const char *op, json_t *value, ...)
	__attribute__((sentinel));

/* Same as jsonpatch_append with an already-escaped pointer. */
int jsonpatch_append_pointer(json_t *patch, const char *op, const char *pointer,
    json_t *value);

/*
 * Appends {"op":"replace","path":"/metadata/resourceVersion","value":rv}: the
 * optimistic-concurrency precondition. The patched object then carries rv,
 * and the API server's store refuses it with 409 Conflict unless rv is the
 * stored version (see kube_patch_guarded for why not a "test" op).
 */
int jsonpatch_set_resource_version(json_t *patch, const char *resource_version);

/*
 * Text patches, for hot paths (the mutating webhook) that should not build
 * a JSON tree per operation. The patch is the text of a JSON array in a
 * caller-owned buf.
 */

/* Appends s as a JSON string literal: quotes, escapes for '"', '\\' and control bytes. */
int jsonpatch_text_string(struct buf *out, const char *s);

/*
 * Appends {"op":op,"path":<tokens>,"value":value_json} to the array in
 * patch ("[" is written before the first operation). value_json is JSON
 * text (NULL for "remove"). Tokens are NULL-terminated and escaped here.
 * Returns 0 or a buf error (-E2BIG, -ENOMEM).
 */
int jsonpatch_text_op(struct buf *patch, const char *op, const char *value_json, ...)
	__attribute__((sentinel));

/* Closes the array ("]"; an empty patch becomes "[]"). Returns 0 or a buf error. */
int jsonpatch_text_end(struct buf *patch);

#endif
