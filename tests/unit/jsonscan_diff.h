/* Differential check of jsonscan against jansson, shared by test_jsonscan.c and the fuzz target. */
#ifndef STRATOS_TEST_JSONSCAN_DIFF_H
#define STRATOS_TEST_JSONSCAN_DIFF_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stratos/jsonscan.h"

/* Why the two disagreed, for the failure message. */
static char jsonscan_diff_why[256];

static int
jsonscan_diff__fail(const char *what, const char *at)
{
	snprintf(jsonscan_diff_why, sizeof(jsonscan_diff_why), "%s at %.60s", what, at);
	return -1;
}

/* The scanned value v must equal jansson's j, all the way down. 0 when it does. */
static int
jsonscan_diff_value(struct jsonscan_value v, const json_t *j)
{
	struct jsonscan_iter it;
	struct jsonscan_value k, e;
	size_t i = 0;

	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *m;

		if (v.type != JSONSCAN_OBJECT)
			return jsonscan_diff__fail("object expected", v.p);
		json_object_foreach((json_t *)j, key, m) {
			/* Lookups return the last of repeated keys, as jansson keeps. */
			if (jsonscan_diff_value(jsonscan_get(v, key), m) < 0)
				return -1;
		}
		/* Every member the walk sees is one jansson has. */
		jsonscan_iter_init(&it, v);
		while (jsonscan_next(&it, &k, &e)) {
			char *name = jsonscan_strdup(k);
			bool known = name != NULL && json_object_get(j, name) != NULL;

			free(name);
			if (!known)
				return jsonscan_diff__fail("member unknown to jansson", k.p);
		}
		return 0;
	}
	case JSON_ARRAY:
		if (v.type != JSONSCAN_ARRAY)
			return jsonscan_diff__fail("array expected", v.p);
		jsonscan_iter_init(&it, v);
		while (jsonscan_next(&it, NULL, &e)) {
			if (i >= json_array_size(j))
				return jsonscan_diff__fail("array longer than jansson's", e.p);
			if (jsonscan_diff_value(e, json_array_get(j, i++)) < 0)
				return -1;
		}
		if (i != json_array_size(j) || jsonscan_count(v) != i)
			return jsonscan_diff__fail("array shorter than jansson's", v.p);
		if (i > 0 && jsonscan_index(v, i - 1).p != e.p)
			return jsonscan_diff__fail("index disagrees with the walk", v.p);
		return 0;
	case JSON_STRING: {
		size_t n = json_string_length(j), got = 0;
		char *buf = malloc(n + 1);
		int rc;

		if (v.type != JSONSCAN_STRING) {
			free(buf);
			return jsonscan_diff__fail("string expected", v.p);
		}
		rc = buf != NULL ? jsonscan_string(v, buf, n + 1, &got) : -1;
		rc = rc == 0 && got == n && memcmp(buf, json_string_value(j), n) == 0 &&
		    jsonscan_string_length(v) == n && jsonscan_string_equal(v, json_string_value(j)) ?
		    0 : -1;
		/* One byte too small must say so. */
		if (rc == 0 && n > 0 && jsonscan_string(v, buf, n, NULL) != -ENOSPC)
			rc = -1;
		free(buf);
		return rc == 0 ? 0 : jsonscan_diff__fail("string differs", v.p);
	}
	case JSON_INTEGER:
	case JSON_REAL: {
		char text[64];
		json_t *mine;
		bool same;

		if (v.type != JSONSCAN_NUMBER)
			return jsonscan_diff__fail("number expected", v.p);
		mine = jsonscan_json(v);
		same = mine != NULL && json_equal(mine, j);
		json_decref(mine);
		snprintf(text, sizeof(text), "%.*s", (int)(v.len < 60 ? v.len : 60), v.p);
		return same ? 0 : jsonscan_diff__fail("number differs", text);
	}
	case JSON_TRUE:
		return v.type == JSONSCAN_TRUE && v.len == 4 ? 0 : jsonscan_diff__fail("true expected", v.p);
	case JSON_FALSE:
		return v.type == JSONSCAN_FALSE && v.len == 5 ? 0 : jsonscan_diff__fail("false expected", v.p);
	case JSON_NULL:
		return v.type == JSONSCAN_NULL && v.len == 4 ? 0 : jsonscan_diff__fail("null expected", v.p);
	}
	return jsonscan_diff__fail("unknown jansson type", v.p);
}

/*
 * Scans text[0..len) with both: they must agree on accepting it and, when
 * accepted, on every value. Returns 0 when they agree.
 */
static int
jsonscan_diff(const char *text, size_t len)
{
	struct jsonscan_doc doc;
	struct jsonscan_value root, plain;
	struct jsonscan_error err;
	json_error_t jerr;
	json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	int rc = jsonscan_validate(text, len, &doc, &root, &err);

	/*
	 * The one known difference: jansson drops a NUL byte that directly
	 * follows a number or true/false/null ("[1\0]" is accepted as [1]).
	 * jsonscan refuses it, at that byte.
	 */
	if (j != NULL && rc == -EINVAL && err.offset < len && text[err.offset] == '\0' &&
	    err.offset > 0 && strchr("0123456789el", text[err.offset - 1]) != NULL) {
		json_decref(j);
		jsonscan_doc_free(&doc);
		return 0;
	}
	if ((j != NULL) != (rc == 0)) {
		snprintf(jsonscan_diff_why, sizeof(jsonscan_diff_why),
		    "jansson %s (%s), jsonscan %s (%s at %zu)", j != NULL ? "accepts" : "refuses",
		    j != NULL ? "-" : jerr.text, rc == 0 ? "accepts" : "refuses",
		    rc == 0 ? "-" : err.text, rc == 0 ? (size_t)0 : err.offset);
		json_decref(j);
		jsonscan_doc_free(&doc);
		return -1;
	}
	if (j == NULL) {
		jsonscan_doc_free(&doc);
		return 0;
	}
	/* Lookups agree with the recorded container ends, and without them. */
	rc = jsonscan_diff_value(root, j);
	if (rc == 0 && jsonscan_validate(text, len, NULL, &plain, NULL) == 0 && plain.doc == NULL)
		rc = jsonscan_diff_value(plain, j);
	else if (rc == 0)
		rc = jsonscan_diff__fail("a second check differs", text);
	if (rc == 0) {
		/* The tree built from the text is jansson's tree. */
		json_t *mine = jsonscan_json(root);

		if (mine == NULL || !json_equal(mine, j))
			rc = jsonscan_diff__fail("jsonscan_json differs from json_loadb", text);
		json_decref(mine);
	}
	json_decref(j);
	jsonscan_doc_free(&doc);
	return rc;
}

#endif
