/* Unit tests for JSON Patch building and JSON Pointer escaping. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "stratos/jsonpatch.h"

static void
test_pointer_escaping(void **state)
{
	char *p;

	(void)state;
	p = jsonpointer_build("metadata", "annotations", "stratos.sh/pool", NULL);
	assert_string_equal(p, "/metadata/annotations/stratos.sh~1pool");
	free(p);
	/* "~" must become "~0" before "/" becomes "~1", or "~1" in a key is ambiguous. */
	p = jsonpointer_build("a~1b", "c/~d", NULL);
	assert_string_equal(p, "/a~01b/c~1~0d");
	free(p);
	p = jsonpointer_build("spec", "tolerations", "-", NULL);
	assert_string_equal(p, "/spec/tolerations/-");
	free(p);
	p = jsonpointer_build("", NULL);
	assert_string_equal(p, "/");
	free(p);
}

static void
test_patch_ops(void **state)
{
	json_t *patch = jsonpatch_new();
	char *text;

	(void)state;
	assert_int_equal(jsonpatch_set_resource_version(patch, "42"), 0);
	assert_int_equal(jsonpatch_append(patch, "add", json_string("running"), "metadata",
	    "labels", "stratos.sh/state", NULL), 0);
	assert_int_equal(jsonpatch_append(patch, "remove", NULL, "spec", "taints", "0", NULL), 0);
	text = json_dumps(patch, JSON_COMPACT);
	assert_string_equal(text,
	    "[{\"op\":\"replace\",\"path\":\"/metadata/resourceVersion\",\"value\":\"42\"},"
	    "{\"op\":\"add\",\"path\":\"/metadata/labels/stratos.sh~1state\",\"value\":\"running\"},"
	    "{\"op\":\"remove\",\"path\":\"/spec/taints/0\"}]");
	free(text);
	json_decref(patch);
}

static void
test_text_patch(void **state)
{
	struct buf b, v;
	json_t *parsed, *want;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(jsonpatch_text_end(&b), 0);
	assert_string_equal(b.data, "[]");
	buf_reset(&b);
	buf_init(&v, 256);
	assert_int_equal(jsonpatch_text_string(&v, "a\"b\\c\n\x01" "d\xc3\xa9"), 0);
	assert_string_equal(v.data, "\"a\\\"b\\\\c\\u000a\\u0001d\xc3\xa9\"");
	assert_int_equal(jsonpatch_text_op(&b, "add", v.data, "metadata", "annotations",
	    "stratos.sh/pool", NULL), 0);
	assert_int_equal(jsonpatch_text_op(&b, "add", "{\"k\":1}", "spec", "tolerations", "-", NULL), 0);
	assert_int_equal(jsonpatch_text_op(&b, "remove", NULL, "a\"q", "x~y/z", NULL), 0);
	assert_int_equal(jsonpatch_text_end(&b), 0);
	parsed = json_loads(b.data, 0, NULL);
	assert_non_null(parsed);
	want = json_pack("[{s:s, s:s, s:s}, {s:s, s:s, s:{s:i}}, {s:s, s:s}]",
	    "op", "add", "path", "/metadata/annotations/stratos.sh~1pool", "value", "a\"b\\c\n\x01" "d\xc3\xa9",
	    "op", "add", "path", "/spec/tolerations/-", "value", "k", 1,
	    "op", "remove", "path", "/a\"q/x~0y~1z");
	assert_true(json_equal(parsed, want));
	json_decref(parsed);
	json_decref(want);
	buf_free(&b);
	buf_free(&v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pointer_escaping),
		cmocka_unit_test(test_patch_ops),
		cmocka_unit_test(test_text_patch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
