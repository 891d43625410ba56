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
	assert_int_equal(jsonpatch_test_resource_version(patch, "42"), 0);
	assert_int_equal(jsonpatch_append(patch, "add", json_string("running"), "metadata",
	    "labels", "stratos.sh/state", NULL), 0);
	assert_int_equal(jsonpatch_append(patch, "remove", NULL, "spec", "taints", "0", NULL), 0);
	text = json_dumps(patch, JSON_COMPACT);
	assert_string_equal(text,
	    "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"42\"},"
	    "{\"op\":\"add\",\"path\":\"/metadata/labels/stratos.sh~1state\",\"value\":\"running\"},"
	    "{\"op\":\"remove\",\"path\":\"/spec/taints/0\"}]");
	free(text);
	json_decref(patch);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pointer_escaping),
		cmocka_unit_test(test_patch_ops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
