/* YAML (libyaml) to JSON (jansson) conversion, the way Kubernetes reads YAML. */
#ifndef STRATOS_YAMLJSON_H
#define STRATOS_YAMLJSON_H

#include <stddef.h>
#include <jansson.h>

struct yamljson_error {
	int line;              /* 1-based; 0 when unknown */
	int column;            /* 1-based; 0 when unknown */
	char message[256];
};

/*
 * Parses every document of a YAML stream into a new JSON array (caller
 * owns it); empty documents ("---" with nothing after it) are skipped.
 * Scalars follow the YAML 1.2 core schema (true/false, null/~, integers,
 * floats; anything quoted is a string). An alias is a copy of its anchor.
 * Duplicate keys, non-scalar keys, nesting deeper than LIMITS_YAML_DEPTH
 * (aliases expanded), aliases that would copy more than
 * LIMITS_YAML_ALIAS_NODES nodes in all, more than LIMITS_YAML_ANCHORS
 * anchors or LIMITS_YAML_ALIASES aliases, and more than
 * LIMITS_YAML_DOCUMENTS documents are errors, found before the memory is
 * spent: "billion laughs" costs no more than LIMITS_YAML_ALIAS_NODES nodes.
 * Returns 0, -EINVAL (err filled, with the line of the offending event) or
 * -ENOMEM.
 * Thread-safe (no shared state).
 */
int yamljson_parse(const char *data, size_t len, json_t **out_docs,
    struct yamljson_error *err);

/* Reads path (at most LIMITS_YAML_FILE bytes) and parses it. Errors as above, -errno for I/O. */
int yamljson_parse_file(const char *path, json_t **out_docs, struct yamljson_error *err);

#endif
