/* RFC 6902 JSON Patch building with RFC 6901 pointer escaping. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/jsonpatch.h"

#define JSONPATCH_POINTER_MAX (64u * 1024)

int
jsonpointer_append(struct buf *out, const char *token)
{
	int rc = buf_append(out, "/", 1);

	for (const char *p = token; rc == 0 && *p != '\0'; p++) {
		if (*p == '~')
			rc = buf_append(out, "~0", 2);
		else if (*p == '/')
			rc = buf_append(out, "~1", 2);
		else
			rc = buf_append(out, p, 1);
	}
	return rc;
}

static char *
jsonpointer__vbuild(const char *first, va_list ap)
{
	struct buf b;

	buf_init(&b, JSONPATCH_POINTER_MAX);
	for (const char *tok = first; tok != NULL; tok = va_arg(ap, const char *)) {
		if (jsonpointer_append(&b, tok) < 0) {
			buf_free(&b);
			return NULL;
		}
	}
	return buf_take(&b);
}

char *
jsonpointer_build(const char *first, ...)
{
	va_list ap;
	char *p;

	va_start(ap, first);
	p = jsonpointer__vbuild(first, ap);
	va_end(ap);
	return p;
}

json_t *
jsonpatch_new(void)
{
	return json_array();
}

int
jsonpatch_append_pointer(json_t *patch, const char *op, const char *pointer, json_t *value)
{
	json_t *item;

	if (patch == NULL || op == NULL || pointer == NULL) {
		json_decref(value);
		return -EINVAL;
	}
	item = json_object();
	if (item == NULL || json_object_set_new(item, "op", json_string(op)) < 0 ||
	    json_object_set_new(item, "path", json_string(pointer)) < 0) {
		json_decref(item);
		json_decref(value);
		return -ENOMEM;
	}
	/* json_object_set_new consumes value even when it fails. */
	if (value != NULL && json_object_set_new(item, "value", value) < 0) {
		json_decref(item);
		return -ENOMEM;
	}
	if (json_array_append_new(patch, item) < 0)
		return -ENOMEM;
	return 0;
}

int
jsonpatch_append(json_t *patch, const char *op, json_t *value, ...)
{
	va_list ap;
	const char *first;
	char *pointer;
	int rc;

	va_start(ap, value);
	first = va_arg(ap, const char *);
	pointer = first != NULL ? jsonpointer__vbuild(first, ap) : strdup("");
	va_end(ap);
	if (pointer == NULL) {
		json_decref(value);
		return -ENOMEM;
	}
	rc = jsonpatch_append_pointer(patch, op, pointer, value);
	free(pointer);
	return rc;
}

int
jsonpatch_test_resource_version(json_t *patch, const char *resource_version)
{
	return jsonpatch_append_pointer(patch, "test", "/metadata/resourceVersion",
	    json_string(resource_version));
}
