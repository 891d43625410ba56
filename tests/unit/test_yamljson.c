/* Unit tests for YAML to JSON conversion. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "stratos/yamljson.h"

static json_t *
parse_one(const char *yaml)
{
	struct yamljson_error err;
	json_t *docs = NULL;

	assert_int_equal(yamljson_parse(yaml, strlen(yaml), &docs, &err), 0);
	assert_int_equal(json_array_size(docs), 1);
	json_t *doc = json_incref(json_array_get(docs, 0));
	json_decref(docs);
	return doc;
}

static void
test_scalars_follow_core_schema(void **state)
{
	json_t *d;

	(void)state;
	d = parse_one("a: 1\nb: \"1\"\nc: true\nd: 'false'\ne: ~\nf: 1.5\ng: 0x1F\nh: hello\n"
	    "i: \"\"\nj: 10m\nk: -3\nl: 1.27.3\nm: !!str 12\n");
	assert_int_equal(json_integer_value(json_object_get(d, "a")), 1);
	assert_string_equal(json_string_value(json_object_get(d, "b")), "1");
	assert_true(json_is_true(json_object_get(d, "c")));
	assert_string_equal(json_string_value(json_object_get(d, "d")), "false");
	assert_true(json_is_null(json_object_get(d, "e")));
	assert_true(json_real_value(json_object_get(d, "f")) == 1.5);
	assert_int_equal(json_integer_value(json_object_get(d, "g")), 31);
	assert_string_equal(json_string_value(json_object_get(d, "h")), "hello");
	assert_string_equal(json_string_value(json_object_get(d, "i")), "");
	assert_string_equal(json_string_value(json_object_get(d, "j")), "10m");
	assert_int_equal(json_integer_value(json_object_get(d, "k")), -3);
	assert_string_equal(json_string_value(json_object_get(d, "l")), "1.27.3");
	assert_string_equal(json_string_value(json_object_get(d, "m")), "12");
	json_decref(d);
}

static void
test_block_scalars_and_nesting(void **state)
{
	json_t *d;

	(void)state;
	d = parse_one("spec:\n  userData: |\n    #!/bin/bash\n    poweroff\n  list: [a, b]\n"
	    "  taints:\n    - key: k\n      effect: NoSchedule\n");
	json_t *spec = json_object_get(d, "spec");
	assert_string_equal(json_string_value(json_object_get(spec, "userData")),
	    "#!/bin/bash\npoweroff\n");
	assert_int_equal(json_array_size(json_object_get(spec, "list")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    json_object_get(spec, "taints"), 0), "effect")), "NoSchedule");
	json_decref(d);
}

static void
test_multi_document_and_empty(void **state)
{
	const char *yaml = "# c\n---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n";
	struct yamljson_error err;
	json_t *docs;

	(void)state;
	assert_int_equal(yamljson_parse(yaml, strlen(yaml), &docs, &err), 0);
	assert_int_equal(json_array_size(docs), 2);
	json_decref(docs);
}

static void
test_errors_have_positions(void **state)
{
	struct yamljson_error err;
	json_t *docs;
	const char *dup = "a: 1\nb: 2\na: 3\n";
	const char *bad = "a: [1, 2\nb: 3\n";
	const char *alias = "x: &anc {k: v}\ny: *anc\nz: *nope\n";

	(void)state;
	assert_int_equal(yamljson_parse(dup, strlen(dup), &docs, &err), -EINVAL);
	assert_non_null(strstr(err.message, "duplicate key \"a\""));
	assert_int_equal(err.line, 3);
	assert_int_equal(yamljson_parse(bad, strlen(bad), &docs, &err), -EINVAL);
	assert_true(err.line >= 2);
	assert_int_equal(yamljson_parse(alias, strlen(alias), &docs, &err), -EINVAL);
	assert_non_null(strstr(err.message, "unknown alias"));
}

static void
test_aliases_copy(void **state)
{
	json_t *d;

	(void)state;
	d = parse_one("x: &anc {k: v}\ny: *anc\n");
	assert_true(json_equal(json_object_get(d, "x"), json_object_get(d, "y")));
	json_decref(d);
}

static void
test_depth_cap(void **state)
{
	char yaml[1000];
	struct yamljson_error err;
	json_t *docs;
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 200; i++)
		yaml[n++] = '[';
	yaml[n] = '\0';
	assert_int_equal(yamljson_parse(yaml, n, &docs, &err), -EINVAL);
}

static void
test_seed_examples_load(void **state)
{
	struct yamljson_error err;
	json_t *docs;

	(void)state;
	assert_int_equal(yamljson_parse_file(FIXTURE("seed-examples.yaml"), &docs, &err), 0);
	assert_int_equal(json_array_size(docs), 6);
	json_t *np = json_array_get(docs, 1);
	assert_string_equal(json_string_value(json_object_get(np, "kind")), "NodePool");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(np, "spec"),
	    "poolSize")), 20);
	json_decref(docs);
	assert_true(yamljson_parse_file("/nonexistent/file.yaml", &docs, &err) == -ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars_follow_core_schema),
		cmocka_unit_test(test_block_scalars_and_nesting),
		cmocka_unit_test(test_multi_document_and_empty),
		cmocka_unit_test(test_errors_have_positions),
		cmocka_unit_test(test_aliases_copy),
		cmocka_unit_test(test_depth_cap),
		cmocka_unit_test(test_seed_examples_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
