/* Unit tests for pruning JSON text by path and walking LIST bodies. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/jsonprune.h"

static char *
prune(const char *const *paths, const char *prefix, const char *in, int *rc)
{
	struct jsonprune *p = jsonprune_new(paths, prefix);
	struct buf out;

	assert_non_null(p);
	buf_init(&out, 1 << 20);
	*rc = jsonprune_apply(p, in, strlen(in), &out);
	jsonprune_free(p);
	return buf_take(&out);
}

static void
test_drops_paths_keeps_the_rest(void **state)
{
	static const char *const paths[] = {
		"metadata.managedFields", "spec.containers[].env", "status.images",
		"spec.volumes", NULL,
	};
	const char *in =
	    "{\"metadata\": {\"managedFields\": [{\"a\": 1}], \"name\": \"p\", "
	    "\"labels\": {\"env\": \"prod\", \"images\": \"x\"}},\n"
	    " \"spec\": {\"volumes\": [], \"containers\": [{\"name\": \"a\", \"env\": [{\"name\": \"X\","
	    " \"value\": \"}]{\\\"\"}], \"resources\": {\"requests\": {\"cpu\": \"1\"}}},"
	    " {\"env\": [], \"name\": \"b\"}, {\"name\": \"c\", \"env\": null}], "
	    "\"nodeSelector\": {\"env\": \"prod\"}},"
	    " \"status\": {\"phase\": \"Running\", \"images\": [{\"names\": [\"x\"]}]}}";
	int rc;
	char *out = prune(paths, NULL, in, &rc);

	(void)state;
	assert_int_equal(rc, 0);
	/* Same-named members elsewhere (labels.env, nodeSelector.env) stay. */
	assert_string_equal(out,
	    "{\"metadata\":{\"name\":\"p\",\"labels\":{\"env\": \"prod\", \"images\": \"x\"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"a\",\"resources\":{\"requests\": {\"cpu\": \"1\"}}},"
	    "{\"name\":\"b\"},{\"name\":\"c\"}],\"nodeSelector\":{\"env\": \"prod\"}},"
	    "\"status\":{\"phase\":\"Running\"}}");
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	json_decref(j);
	free(out);
}

static void
test_watch_event_prefix_and_escapes(void **state)
{
	static const char *const paths[] = { "status.images", NULL };
	const char *in = "{\"type\":\"MODIFIED\",\"object\":{\"status\":{\"images\":[\"a\\\\\"],"
	    "\"im\\\"ages\":1,\"phase\":\"x\\\\\\\"y\"}}}";
	int rc;
	char *out = prune(paths, "object", in, &rc);

	(void)state;
	assert_int_equal(rc, 0);
	/* A key spelled with an escape is not the pruned name; strings with escapes survive. */
	assert_string_equal(out, "{\"type\":\"MODIFIED\",\"object\":{\"status\":{"
	    "\"im\\\"ages\":1,\"phase\":\"x\\\\\\\"y\"}}}");
	free(out);
	/* Without the prefix nothing matches at the top. */
	out = prune(paths, NULL, in, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, in);
	free(out);
}

static void
test_keep_lists(void **state)
{
	static const char *const paths[] = {
		"+metadata.name", "+spec.containers[].resources", "+status.phase",
		"-metadata.labels.secret", NULL,
	};
	const char *in = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"uid\":\"u\","
	    "\"labels\":{\"a\":\"b\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":"
	    "{\"requests\":{\"cpu\":\"1\"}}},{\"image\":\"x\"}],\"volumes\":[]},"
	    "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.1\"}}";
	int rc;
	char *out = prune(paths, NULL, in, &rc);

	(void)state;
	assert_int_equal(rc, 0);
	/*
	 * The root lists only metadata, spec, status; labels count as listed (a "-" path
	 * names them); the array keeps its length, its elements only resources.
	 */
	assert_string_equal(out, "{\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"b\"}},\"spec\":{"
	    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}},{}]},"
	    "\"status\":{\"phase\":\"Running\"}}");
	free(out);
	/* Inside watch events: the prefix does not restrict "type". */
	out = prune(paths, "object", "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":"
	    "\"p\",\"uid\":\"u\"}}}", &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\"}}}");
	free(out);
}

static void
test_malformed(void **state)
{
	static const char *const paths[] = { "a.b", NULL };
	static const char *const bad[] = {
		"{\"a\": {\"b\": 1", "{\"a\" 1}", "{\"a\": {\"b\": \"x}}", "{\"a\":1} x", "",
		"{\"a\": {\"b\": 1,}}",
	};
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out = prune(paths, NULL, bad[i], &rc);
		if (rc != -EBADMSG)
			fail_msg("case %zu (%s): rc %d", i, bad[i], rc);
		free(out);
	}
	assert_null(jsonprune_new((const char *const[]){ "a..b", NULL }, NULL));
	assert_null(jsonprune_new((const char *const[]){ "a[x", NULL }, NULL));
}

struct items {
	char text[256];
	int n;
};

static int
collect(void *ctx, const char *item, size_t len)
{
	struct items *it = ctx;

	strncat(it->text, item, len);
	strcat(it->text, "|");
	return ++it->n == 99 ? 5 : 0;
}

static void
test_list_items(void **state)
{
	const char *body = "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":"
	    "{\"resourceVersion\":\"42\",\"continue\":\"abc\"},\"items\":[{\"a\":\"]\"} , [1], "
	    "{\"b\":{\"c\":[]}}],\"extra\":{\"items\":[9]}}";
	struct items it = { 0 };
	json_t *meta = NULL;

	(void)state;
	assert_int_equal(jsonprune_list_items(body, strlen(body), collect, &it, &meta), 0);
	assert_string_equal(it.text, "{\"a\":\"]\"}|[1]|{\"b\":{\"c\":[]}}|");
	assert_string_equal(json_string_value(json_object_get(meta, "continue")), "abc");
	json_decref(meta);
	memset(&it, 0, sizeof(it));
	assert_int_equal(jsonprune_list_items("{\"items\":[]}", 12, collect, &it, &meta), 0);
	assert_int_equal(it.n, 0);
	assert_null(meta);
	assert_int_equal(jsonprune_list_items("{\"items\":[1,", 12, collect, &it, &meta), -EBADMSG);
	assert_null(meta);
	it.n = 97;
	assert_int_equal(jsonprune_list_items(body, strlen(body), collect, &it, &meta), 5);
	assert_null(meta);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drops_paths_keeps_the_rest),
		cmocka_unit_test(test_watch_event_prefix_and_escapes),
		cmocka_unit_test(test_keep_lists),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_list_items),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
