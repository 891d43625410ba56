/* Small libxml2 helpers for AWS Query API replies: lookup by local name, text copies, error documents. */
#ifndef STRATOS_AWS_XML_H
#define STRATOS_AWS_XML_H

#include <stddef.h>
#include <libxml/tree.h>

/* An AWS error reply: EC2's Response/Errors/Error or the Query API's ErrorResponse/Error. */
struct aws_xml_error {
	char code[128];
	char message[1024];
	char request_id[128];
};

/*
 * Parses a reply (no network access, no entity substitution, no DTD).
 * Returns the document (free with xmlFreeDoc) or NULL when it is not
 * well-formed XML. Thread-safe; libxml2 is initialised on first use.
 */
xmlDoc *aws_xml_parse(const char *data, size_t len);

/* First element child of parent whose local name is name (namespaces ignored); NULL if none. */
xmlNode *aws_xml_child(const xmlNode *parent, const char *name);

/* Next element sibling after node with the same local name; NULL if none. */
xmlNode *aws_xml_next(const xmlNode *node);

/* Follows "a/b/c" through element children from `from`; NULL when a step is missing. */
xmlNode *aws_xml_path(const xmlNode *from, const char *path);

/*
 * Copies the text of node into out (always NUL-terminated). Returns 0,
 * -ENOENT when node is NULL (out = ""), -E2BIG when truncated.
 */
int aws_xml_text(const xmlNode *node, char *out, size_t len);

/* The text of node as a new string (caller frees); NULL when node is NULL or on ENOMEM. */
char *aws_xml_strdup(const xmlNode *node);

/*
 * Reads an error reply. Returns 0 (out filled), -ENOENT when the document
 * is XML but not an error reply, -EINVAL when it is not XML at all.
 */
int aws_xml_parse_error(const char *data, size_t len, struct aws_xml_error *out);

#endif
