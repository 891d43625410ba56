/* A strict RFC 6902 JSON Patch applier for the unit tests (add, remove, replace, test), RFC 6901 pointers. */
#ifndef STRATOS_TEST_PATCH_APPLY_H
#define STRATOS_TEST_PATCH_APPLY_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

/*
 * Strict like the API server: "add" needs the parent to exist, an array
 * index must be "-" or within 0..size, "remove"/"replace" need the target.
 */

/* Unescapes one reference token (~1 → /, ~0 → ~); false on a bad escape. */
static bool
patch_apply__token(const char *s, size_t n, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		if (j + 1 >= outlen)
			return false;
		if (s[i] == '~') {
			if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1'))
				return false;
			out[j++] = s[i + 1] == '0' ? '~' : '/';
			i++;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return true;
}

/* Parses an array index token; -1 for "-", -2 when invalid. */
static long
patch_apply__index(const char *tok)
{
	char *end;
	long v;

	if (strcmp(tok, "-") == 0)
		return -1;
	if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0'))
		return -2;
	v = strtol(tok, &end, 10);
	return *end == '\0' && v >= 0 ? v : -2;
}

/* Finds the parent of pointer's target and its last token. */
static json_t *
patch_apply__parent(json_t *doc, const char *pointer, char *last, size_t lastlen)
{
	json_t *cur = doc;
	const char *p = pointer;
	char tok[1024];

	if (p[0] != '/')
		return NULL;
	for (;;) {
		const char *next = strchr(p + 1, '/');
		size_t n = next != NULL ? (size_t)(next - p - 1) : strlen(p + 1);

		if (!patch_apply__token(p + 1, n, tok, sizeof(tok)))
			return NULL;
		if (next == NULL) {
			snprintf(last, lastlen, "%s", tok);
			return cur;
		}
		if (json_is_object(cur)) {
			cur = json_object_get(cur, tok);
		} else if (json_is_array(cur)) {
			long ix = patch_apply__index(tok);
			cur = ix >= 0 ? json_array_get(cur, (size_t)ix) : NULL;
		} else {
			return NULL;
		}
		if (cur == NULL)
			return NULL;
		p = next;
	}
}

/* Applies patch to doc in place; 0 or -1 (the op that failed is given in *failed_op). */
static int
patch_apply(json_t *doc, const json_t *patch, size_t *failed_op)
{
	size_t i;
	json_t *op;

	if (!json_is_array(patch))
		return -1;
	json_array_foreach(patch, i, op) {
		const char *name = json_string_value(json_object_get(op, "op"));
		const char *path = json_string_value(json_object_get(op, "path"));
		json_t *value = json_object_get(op, "value");
		json_t *parent;
		char last[1024];
		long ix;

		if (failed_op != NULL)
			*failed_op = i;
		if (name == NULL || path == NULL)
			return -1;
		parent = patch_apply__parent(doc, path, last, sizeof(last));
		if (parent == NULL)
			return -1;
		if (strcmp(name, "add") == 0) {
			if (value == NULL)
				return -1;
			if (json_is_object(parent)) {
				if (json_object_set(parent, last, value) < 0)
					return -1;
			} else if (json_is_array(parent)) {
				ix = patch_apply__index(last);
				if (ix == -1) {
					if (json_array_append(parent, value) < 0)
						return -1;
				} else if (ix < 0 || (size_t)ix > json_array_size(parent) ||
				    json_array_insert(parent, (size_t)ix, value) < 0) {
					return -1;
				}
			} else {
				return -1;
			}
		} else if (strcmp(name, "remove") == 0 || strcmp(name, "replace") == 0) {
			bool replace = name[0] == 'r' && name[2] == 'p';
			if (json_is_object(parent)) {
				if (json_object_get(parent, last) == NULL)
					return -1;
				if (replace ? json_object_set(parent, last, value) < 0 :
				    json_object_del(parent, last) < 0)
					return -1;
			} else if (json_is_array(parent)) {
				ix = patch_apply__index(last);
				if (ix < 0 || (size_t)ix >= json_array_size(parent))
					return -1;
				if (replace ? json_array_set(parent, (size_t)ix, value) < 0 :
				    json_array_remove(parent, (size_t)ix) < 0)
					return -1;
			} else {
				return -1;
			}
		} else if (strcmp(name, "test") == 0) {
			json_t *cur = json_is_object(parent) ? json_object_get(parent, last) :
			    json_array_get(parent, (size_t)patch_apply__index(last));
			if (cur == NULL || !json_equal(cur, value))
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

#endif
