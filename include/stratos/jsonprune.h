/* Cutting unneeded subtrees out of JSON text before it is parsed, and splitting LIST bodies. */
#ifndef STRATOS_JSONPRUNE_H
#define STRATOS_JSONPRUNE_H

#include <stddef.h>
#include <jansson.h>

#include "stratos/buf.h"

/*
 * A compiled set of paths: dot-separated member names, "[]" for every
 * element of an array. "-metadata.managedFields" (or without the sign)
 * drops that member; "+spec.containers[].resources" keeps it whole and
 * drops every member of the objects above it that no "+" path lists (an
 * allow-list: what a parser reads, nothing else); the members on the way
 * to a "-" path count as listed. Member names may not contain '.' or '['.
 * Immutable once compiled: thread-safe to use.
 */
struct jsonprune;

/*
 * Compiles a NULL-terminated list of paths, each prefixed by prefix (may be
 * NULL; "object" makes the set apply inside watch events). NULL on ENOMEM
 * or a malformed path.
 */
struct jsonprune *jsonprune_new(const char *const *paths, const char *prefix);

void jsonprune_free(struct jsonprune *p);

/*
 * Appends to out the JSON value in[0..len) without the pruned members
 * (reformatted only where members were dropped; everything else is copied
 * byte for byte). Returns 0, -EBADMSG when the structure is broken where
 * the walk descends (out then holds garbage: parse the original to get
 * jansson's error), or a buf error. Subtrees copied whole are only
 * bracket-matched: the JSON parser that follows validates them. One pass,
 * no allocation besides out.
 */
int jsonprune_apply(const struct jsonprune *p, const char *in, size_t len, struct buf *out);

/* Called with the text of one element of a LIST body's "items". Non-zero stops. */
typedef int (*jsonprune_item_fn)(void *ctx, const char *item, size_t len);

/*
 * Walks a LIST body ({"metadata":{...},"items":[...],...}) without parsing
 * the items: fn gets each item's text in order, *metadata (may be NULL) the
 * parsed "metadata" object (caller's reference, NULL when absent). Returns
 * 0, -EBADMSG, -ENOMEM or fn's non-zero value (then *metadata is NULL).
 */
int jsonprune_list_items(const char *in, size_t len, jsonprune_item_fn fn, void *ctx,
    json_t **metadata);

/*
 * Finds and parses only the "metadata" member of a LIST body (the continue
 * token), skipping the items unparsed. *metadata is the caller's, NULL when
 * absent. Returns 0 or -EBADMSG.
 */
int jsonprune_list_metadata(const char *in, size_t len, json_t **metadata);

#endif
