/* Unit tests for YAML to JSON conversion. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "stratos/limits.h"
#include "stratos/yamljson.h"

/*
 * jansson's allocations, counted: live bytes, the peak, and a budget past
 * which malloc fails, so that a parser that expands aliases without bound
 * fails the test at once instead of taking the machine's memory.
 */
static size_t alloc_live, alloc_peak, alloc_budget = SIZE_MAX;

static void *
counting_malloc(size_t n)
{
	size_t *p;

	if (n > alloc_budget - alloc_live || (p = malloc(sizeof(size_t) * 2 + n)) == NULL)
		return NULL;
	p[0] = n;
	alloc_live += n;
	if (alloc_live > alloc_peak)
		alloc_peak = alloc_live;
	return p + 2;
}

static void
counting_free(void *ptr)
{
	size_t *p = ptr;

	if (p == NULL)
		return;
	alloc_live -= p[-2];
	free(p - 2);
}

static void
counting_start(size_t budget)
{
	alloc_live = alloc_peak = 0;
	alloc_budget = budget;
	json_set_alloc_funcs(counting_malloc, counting_free);
}

static void
counting_stop(void)
{
	assert_int_equal(alloc_live, 0);
	json_set_alloc_funcs(malloc, free);
	alloc_budget = SIZE_MAX;
}

/* A stream in a growing buffer (the caller frees it). */
static char *
text_append(char *s, const char *add)
{
	size_t n = s != NULL ? strlen(s) : 0;
	char *r = realloc(s, n + strlen(add) + 1);

	assert_non_null(r);
	memcpy(r + n, add, strlen(add) + 1);
	return r;
}

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
	char yaml[1000], msg[64];
	struct yamljson_error err;
	json_t *docs;
	size_t n = 0;

	(void)state;
	snprintf(msg, sizeof(msg), "YAML nesting deeper than %u", LIMITS_YAML_DEPTH);
	for (int i = 0; i < 200; i++)
		yaml[n++] = '[';
	yaml[n] = '\0';
	assert_int_equal(yamljson_parse(yaml, n, &docs, &err), -EINVAL);
	assert_string_equal(err.message, msg);
	assert_int_equal(err.line, 1);
	assert_int_equal(err.column, LIMITS_YAML_DEPTH + 1);

	/* Exactly LIMITS_YAML_DEPTH levels of block mappings are fine, one more is not. */
	char *text = NULL;
	for (unsigned i = 0; i <= LIMITS_YAML_DEPTH; i++) {
		char line[300];
		snprintf(line, sizeof(line), "%*sk:%s\n", (int)(2 * i), "",
		    i == LIMITS_YAML_DEPTH - 1 ? " leaf" : "");
		text = text_append(text, line);
		if (i == LIMITS_YAML_DEPTH - 1) {
			assert_int_equal(yamljson_parse(text, strlen(text), &docs, &err), 0);
			json_decref(docs);
			/* replace " leaf" by a deeper level */
			text[strlen(text) - 6] = '\n';
			text[strlen(text) - 5] = '\0';
		}
	}
	assert_int_equal(yamljson_parse(text, strlen(text), &docs, &err), -EINVAL);
	assert_string_equal(err.message, msg);
	assert_int_equal(err.line, LIMITS_YAML_DEPTH + 1);
	free(text);
}

/*
 * "Billion laughs": nine levels of ten aliases of the level below, 10^10
 * nodes from 400 bytes. It must be refused at the alias that crosses
 * LIMITS_YAML_ALIAS_NODES, with its line, after spending no more than
 * those nodes' memory (the allocator's budget makes a parser that copies
 * first fail with -ENOMEM instead of exhausting the machine).
 */
static void
test_alias_bomb_is_refused_before_it_expands(void **state)
{
	char *text = text_append(NULL, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	char msg[64];
	struct yamljson_error err;
	json_t *docs = NULL;

	(void)state;
	for (int i = 1; i <= 9; i++) {
		char line[200];
		snprintf(line, sizeof(line), "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
		    "*a%d, *a%d]\n", i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
		    i - 1, i - 1);
		text = text_append(text, line);
	}
	counting_start(64u * 1024 * 1024);
	int rc = yamljson_parse(text, strlen(text), &docs, &err);
	counting_stop();
	assert_int_equal(rc, -EINVAL);
	snprintf(msg, sizeof(msg), "YAML alias expansion exceeds %u nodes", LIMITS_YAML_ALIAS_NODES);
	assert_string_equal(err.message, msg);
	/*
	 * a1..a3 copy 110 + 1,110 + 11,110 nodes; a4 (line 5) copies a3's 11,111
	 * per alias, and its eighth alias crosses LIMITS_YAML_ALIAS_NODES.
	 */
	assert_int_equal(err.line, 5);
	print_message("alias bomb: %zu bytes of input, peak %zu bytes allocated by jansson\n",
	    strlen(text), alloc_peak);
	assert_true(alloc_peak < 32u * 1024 * 1024);
	free(text);
}

/* The budget is exact: copies up to LIMITS_YAML_ALIAS_NODES are kept, one node more is refused. */
static void
test_alias_budget_boundary(void **state)
{
	const size_t anchor_nodes = 1000; /* a sequence of 999 scalars */
	const size_t uses = LIMITS_YAML_ALIAS_NODES / anchor_nodes;
	struct yamljson_error err;
	json_t *docs = NULL;
	char *text = text_append(NULL, "a: &a [");

	(void)state;
	assert_int_equal(uses * anchor_nodes, LIMITS_YAML_ALIAS_NODES);
	for (size_t i = 0; i < anchor_nodes - 1; i++)
		text = text_append(text, i == 0 ? "x" : ", x");
	text = text_append(text, "]\nb:\n");
	for (size_t i = 0; i < uses; i++)
		text = text_append(text, "- *a\n");
	assert_int_equal(yamljson_parse(text, strlen(text), &docs, &err), 0);
	json_t *b = json_object_get(json_array_get(docs, 0), "b");
	assert_int_equal(json_array_size(b), uses);
	assert_int_equal(json_array_size(json_array_get(b, uses - 1)), anchor_nodes - 1);
	json_decref(docs);

	text = text_append(text, "- *a\n");
	assert_int_equal(yamljson_parse(text, strlen(text), &docs, &err), -EINVAL);
	assert_non_null(strstr(err.message, "YAML alias expansion exceeds"));
	assert_int_equal(err.line, 3 + (int)uses);
	free(text);
}

/* An alias counts as deep as its anchor: nesting cannot be smuggled past LIMITS_YAML_DEPTH. */
static void
test_alias_nesting_counts_toward_depth(void **state)
{
	const unsigned half = LIMITS_YAML_DEPTH / 2 + 1;
	struct yamljson_error err;
	json_t *docs = NULL;
	char *text = text_append(NULL, "a: &a ");

	(void)state;
	for (unsigned i = 0; i < half; i++)
		text = text_append(text, "[");
	for (unsigned i = 0; i < half; i++)
		text = text_append(text, "]");
	text = text_append(text, "\nb: ");
	/* b is one level, then half - 1 more, then the alias of half levels: depth half * 2 */
	for (unsigned i = 0; i < half - 1; i++)
		text = text_append(text, "[");
	text = text_append(text, "*a");
	for (unsigned i = 0; i < half - 1; i++)
		text = text_append(text, "]");
	text = text_append(text, "\n");
	assert_int_equal(yamljson_parse(text, strlen(text), &docs, &err), -EINVAL);
	assert_non_null(strstr(err.message, "YAML nesting deeper than"));
	assert_int_equal(err.line, 2);
	free(text);
}

/* What aliases are for still works: shared settings, nested anchors, scalars, keys, redefinition. */
static void
test_legit_aliases_still_work(void **state)
{
	json_t *d;

	(void)state;
	d = parse_one("defaults: &defaults {effect: NoSchedule, value: \"true\"}\n"
	    "taints:\n- &t1 {key: a, spec: *defaults}\n- {key: b, spec: *defaults}\n- *t1\n"
	    "name: &n pool-a\nlabels: {*n : yes, other: *n}\n"
	    "list: &l [1, [2, [3]]]\nnested: [*l, *l]\n"
	    "again: &defaults {effect: NoExecute}\nlatest: *defaults\n");
	json_t *taints = json_object_get(d, "taints");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    json_array_get(taints, 1), "spec"), "effect")), "NoSchedule");
	assert_true(json_equal(json_array_get(taints, 0), json_array_get(taints, 2)));
	/* a copy, not a shared node: changing one leaves the other */
	json_object_set_new(json_array_get(taints, 2), "key", json_string("c"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(taints, 0), "key")), "a");
	assert_string_equal(json_string_value(json_object_get(json_object_get(d, "labels"),
	    "pool-a")), "yes");
	assert_string_equal(json_string_value(json_object_get(json_object_get(d, "labels"),
	    "other")), "pool-a");
	assert_int_equal(json_integer_value(json_array_get(json_array_get(json_array_get(
	    json_array_get(json_object_get(d, "nested"), 1), 1), 1), 0)), 3);
	assert_string_equal(json_string_value(json_object_get(json_object_get(d, "latest"),
	    "effect")), "NoExecute");
	json_decref(d);
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
		cmocka_unit_test(test_alias_bomb_is_refused_before_it_expands),
		cmocka_unit_test(test_alias_budget_boundary),
		cmocka_unit_test(test_alias_nesting_counts_toward_depth),
		cmocka_unit_test(test_legit_aliases_still_work),
		cmocka_unit_test(test_seed_examples_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
