/* RFC 6902 JSON Patch building with RFC 6901 pointer escaping. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/jsonpatch.h"

#define JSONPATCH_POINTER_MAX (64u * 1024)

int
jsonpointer_append(struct buf *out, const char *token)
{
	int rc = buf_append(out, "/", 1);
	const char *p = token;

	/* Plain runs in one append; only '~' and '/' are rewritten. */
	while (rc == 0 && *p != '\0') {
		size_t run = strcspn(p, "~/");
		if (run > 0)
			rc = buf_append(out, p, run);
		p += run;
		if (rc == 0 && *p != '\0') {
			rc = buf_append(out, *p == '~' ? "~0" : "~1", 2);
			p++;
		}
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
jsonpatch_set_resource_version(json_t *patch, const char *resource_version)
{
	return jsonpatch_append_pointer(patch, "replace", "/metadata/resourceVersion",
	    json_string(resource_version));
}

int
jsonpatch_text_string(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;
	int rc = buf_append(out, "\"", 1);

	for (const char *p = s; rc == 0 && *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[6];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		rc = buf_append(out, run, (size_t)(p - run));
		if (rc == 0 && (c == '"' || c == '\\')) {
			esc[0] = '\\';
			esc[1] = (char)c;
			rc = buf_append(out, esc, 2);
		} else if (rc == 0) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			rc = buf_append(out, esc, 6);
		}
		run = p + 1;
	}
	if (rc == 0)
		rc = buf_append(out, run, strlen(run));
	if (rc == 0)
		rc = buf_append(out, "\"", 1);
	return rc;
}

int
jsonpatch_text_op(struct buf *patch, const char *op, const char *value_json, ...)
{
	va_list ap;
	const char *tok;
	int rc;

	rc = buf_append_str(patch, patch->len == 0 ? "[{\"op\":" : ",{\"op\":");
	if (rc == 0)
		rc = jsonpatch_text_string(patch, op);
	if (rc == 0)
		rc = buf_append_str(patch, ",\"path\":\"");
	va_start(ap, value_json);
	while (rc == 0 && (tok = va_arg(ap, const char *)) != NULL) {
		struct buf ptr;
		bool plain = true;

		for (const char *p = tok; *p != '\0' && plain; p++)
			plain = (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\';
		/* The usual token needs no JSON escaping: straight into the patch, no allocation. */
		if (plain) {
			rc = jsonpointer_append(patch, tok);
			continue;
		}
		buf_init(&ptr, JSONPATCH_POINTER_MAX);
		rc = jsonpointer_append(&ptr, tok);
		if (rc == 0) {
			/* The pointer is inside a JSON string: write it escaped, without its quotes. */
			size_t before = patch->len;
			rc = jsonpatch_text_string(patch, ptr.data);
			if (rc == 0) {
				memmove(patch->data + before, patch->data + before + 1, patch->len - before - 2);
				patch->len -= 2;
				patch->data[patch->len] = '\0';
			}
		}
		buf_free(&ptr);
	}
	va_end(ap);
	if (rc == 0)
		rc = buf_append_str(patch, "\"");
	if (rc == 0 && value_json != NULL) {
		rc = buf_append_str(patch, ",\"value\":");
		if (rc == 0)
			rc = buf_append_str(patch, value_json);
	}
	if (rc == 0)
		rc = buf_append_str(patch, "}");
	return rc;
}

int
jsonpatch_text_end(struct buf *patch)
{
	return buf_append_str(patch, patch->len == 0 ? "[]" : "]");
}
