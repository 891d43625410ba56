/* libxml2 helpers shared by the EC2 client and the STS credential source. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>

#include "stratos/aws_xml.h"

static pthread_once_t aws_xml__once = PTHREAD_ONCE_INIT;

static void
aws_xml__init(void)
{
	xmlInitParser();
}

xmlDoc *
aws_xml_parse(const char *data, size_t len)
{
	pthread_once(&aws_xml__once, aws_xml__init);
	if (data == NULL || len == 0 || len > INT_MAX)
		return NULL;
	/* Blank text is kept: a tag value may be a single space. */
	return xmlReadMemory(data, (int)len, "aws-reply.xml", NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool
aws_xml__is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

xmlNode *
aws_xml_child(const xmlNode *parent, const char *name)
{
	if (parent == NULL)
		return NULL;
	for (xmlNode *c = parent->children; c != NULL; c = c->next)
		if (aws_xml__is(c, name))
			return c;
	return NULL;
}

xmlNode *
aws_xml_next(const xmlNode *node)
{
	if (node == NULL)
		return NULL;
	for (xmlNode *c = node->next; c != NULL; c = c->next)
		if (aws_xml__is(c, (const char *)node->name))
			return c;
	return NULL;
}

xmlNode *
aws_xml_path(const xmlNode *from, const char *path)
{
	const xmlNode *n = from;
	char step[128];

	while (n != NULL && *path != '\0') {
		size_t len = strcspn(path, "/");
		if (len == 0 || len >= sizeof(step))
			return NULL;
		memcpy(step, path, len);
		step[len] = '\0';
		n = aws_xml_child(n, step);
		path += len;
		if (*path == '/')
			path++;
	}
	return (xmlNode *)n;
}

int
aws_xml_text(const xmlNode *node, char *out, size_t len)
{
	size_t used = 0;
	int rc = 0;

	if (len == 0)
		return -E2BIG;
	out[0] = '\0';
	if (node == NULL)
		return -ENOENT;
	for (const xmlNode *c = node->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			continue;
		size_t n = strlen((const char *)c->content);
		if (n > len - 1 - used) {
			n = len - 1 - used;
			rc = -E2BIG;
		}
		memcpy(out + used, c->content, n);
		used += n;
	}
	out[used] = '\0';
	return rc;
}

char *
aws_xml_strdup(const xmlNode *node)
{
	size_t total = 0;
	char *s;

	if (node == NULL)
		return NULL;
	for (const xmlNode *c = node->children; c != NULL; c = c->next)
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
			total += strlen((const char *)c->content);
	s = malloc(total + 1);
	if (s == NULL)
		return NULL;
	aws_xml_text(node, s, total + 1);
	return s;
}

int
aws_xml_parse_error(const char *data, size_t len, struct aws_xml_error *out)
{
	xmlDoc *doc = aws_xml_parse(data, len);
	xmlNode *root, *err;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	/* EC2: Response/Errors/Error; STS & co: ErrorResponse/Error; some: bare Error. */
	err = aws_xml_path(root, "Errors/Error");
	if (err == NULL)
		err = aws_xml_child(root, "Error");
	if (err == NULL && root != NULL && strcmp((const char *)root->name, "Error") == 0)
		err = root;
	if (err == NULL) {
		rc = -ENOENT;
		goto out;
	}
	aws_xml_text(aws_xml_child(err, "Code"), out->code, sizeof(out->code));
	aws_xml_text(aws_xml_child(err, "Message"), out->message, sizeof(out->message));
	if (aws_xml_text(aws_xml_child(root, "RequestID"), out->request_id,
	    sizeof(out->request_id)) == -ENOENT &&
	    aws_xml_text(aws_xml_child(root, "RequestId"), out->request_id,
	    sizeof(out->request_id)) == -ENOENT)
		aws_xml_text(aws_xml_child(err, "RequestId"), out->request_id,
		    sizeof(out->request_id));
	if (out->code[0] == '\0')
		rc = -ENOENT;
out:
	xmlFreeDoc(doc);
	return rc;
}
