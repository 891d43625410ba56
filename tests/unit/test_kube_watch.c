/* Unit tests for the watch-event stream parser: chunking, bookmarks, ERROR 410, caps, garbage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "stratos/jsonprune.h"
#include "stratos/kube_watch.h"

/* A realistic stream: braces and quotes inside strings, no newline before the last event. */
static const char STREAM[] =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\","
    "\"resourceVersion\":\"101\",\"annotations\":{\"x\":\"}{ \\\"quoted\\\" ]\\\\\"}}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"102\"},"
    "\"status\":{\"images\":[{\"names\":[\"a\",\"b\"]}]}}}\r\n"
    "  {\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Node\",\"metadata\":{\"resourceVersion\":\"150\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"151\"}}}"
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
    "\"message\":\"too old resource version: 1 (151)\",\"reason\":\"Expired\",\"code\":410}}\n";

struct seen {
	char log[1024];
	int count;
	int stop_after;              /* return 7 from this event on; 0 = never */
};

static int
record(void *ctx, const struct kube_watch_event *ev)
{
	struct seen *s = ctx;
	const char *name = json_string_value(json_object_get(json_object_get(ev->object,
	    "metadata"), "name"));
	char line[128];

	snprintf(line, sizeof(line), "%s %s %s %ld;", kube_watch_type_name(ev->type),
	    name != NULL ? name : "-", ev->resource_version, ev->code);
	strncat(s->log, line, sizeof(s->log) - strlen(s->log) - 1);
	s->count++;
	return s->stop_after != 0 && s->count >= s->stop_after ? 7 : 0;
}

/* "type name rv code;" per event; the Status object has no metadata, hence its empty rv. */
static const char EXPECTED[] =
    "ADDED n1 101 0;MODIFIED n1 102 0;BOOKMARK - 150 0;DELETED n1 151 0;ERROR -  410;";

static void
test_every_split_point(void **state)
{
	size_t n = strlen(STREAM);
	const char *expected = EXPECTED;

	(void)state;
	for (size_t cut = 0; cut <= n; cut++) {
		struct seen s = { 0 };
		struct kube_watch_parser p;

		kube_watch_parser_init(&p, 4096, NULL, record, &s);
		assert_int_equal(kube_watch_parser_feed(&p, STREAM, cut), 0);
		assert_int_equal(kube_watch_parser_feed(&p, STREAM + cut, n - cut), 0);
		assert_false(kube_watch_parser_partial(&p));
		if (strcmp(s.log, expected) != 0)
			fail_msg("cut at %zu: %s", cut, s.log);
		kube_watch_parser_free(&p);
	}
}

static void
test_byte_by_byte_and_three_way(void **state)
{
	size_t n = strlen(STREAM);
	const char *expected = EXPECTED;
	struct seen s = { 0 };
	struct kube_watch_parser p;

	(void)state;
	kube_watch_parser_init(&p, 4096, NULL, record, &s);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kube_watch_parser_feed(&p, STREAM + i, 1), 0);
	assert_string_equal(s.log, expected);
	kube_watch_parser_free(&p);

	/* Two cuts, a sample of the pairs. */
	for (size_t a = 0; a < n; a += 7) {
		for (size_t b = a; b <= n; b += 13) {
			struct seen t = { 0 };
			kube_watch_parser_init(&p, 4096, NULL, record, &t);
			assert_int_equal(kube_watch_parser_feed(&p, STREAM, a), 0);
			assert_int_equal(kube_watch_parser_feed(&p, STREAM + a, b - a), 0);
			assert_int_equal(kube_watch_parser_feed(&p, STREAM + b, n - b), 0);
			assert_string_equal(t.log, expected);
			kube_watch_parser_free(&p);
		}
	}
}

static void
test_partial_event_at_end(void **state)
{
	struct seen s = { 0 };
	struct kube_watch_parser p;

	(void)state;
	kube_watch_parser_init(&p, 4096, NULL, record, &s);
	assert_int_equal(kube_watch_parser_feed(&p, STREAM, 30), 0);
	assert_true(kube_watch_parser_partial(&p));
	assert_int_equal(s.count, 0);
	/* A new stream starts clean. */
	kube_watch_parser_reset(&p);
	assert_false(kube_watch_parser_partial(&p));
	assert_int_equal(kube_watch_parser_feed(&p, STREAM, strlen(STREAM)), 0);
	assert_int_equal(s.count, 5);
	kube_watch_parser_free(&p);
}

static void
test_oversize_event(void **state)
{
	struct seen s = { 0 };
	struct kube_watch_parser p;
	char big[600];
	size_t n;

	(void)state;
	n = (size_t)snprintf(big, sizeof(big), "{\"type\":\"ADDED\",\"object\":{\"metadata\":{"
	    "\"name\":\"n\",\"resourceVersion\":\"1\"},\"pad\":\"%0400d\"}}\n", 0);
	kube_watch_parser_init(&p, 256, NULL, record, &s);
	/* Under the cap first: a small event passes. */
	assert_int_equal(kube_watch_parser_feed(&p, STREAM + 0, 0), 0);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i += 50)
		rc = kube_watch_parser_feed(&p, big + i, n - i < 50 ? n - i : 50);
	assert_int_equal(rc, -EMSGSIZE);
	assert_non_null(strstr(p.error, "larger than 256"));
	assert_int_equal(s.count, 0);
	kube_watch_parser_free(&p);
}

static void
test_garbage(void **state)
{
	static const char *const bad[] = {
		"hello",
		"{\"type\":\"ADDED\"}",                           /* no object */
		"{\"object\":{}}",                                /* no type */
		"{\"type\":\"EXPLODED\",\"object\":{}}",
		"{\"type\":\"ADDED\",\"object\":[1]}",
		"{not json}",
		"]",
		"<html>502 Bad Gateway</html>",
	};
	struct kube_watch_parser p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct seen s = { 0 };
		kube_watch_parser_init(&p, 4096, NULL, record, &s);
		int rc = kube_watch_parser_feed(&p, bad[i], strlen(bad[i]));
		if (rc != -EBADMSG)
			fail_msg("case %zu (%s): rc %d", i, bad[i], rc);
		assert_true(p.error[0] != '\0');
		assert_int_equal(s.count, 0);
		kube_watch_parser_free(&p);
	}
}

static void
test_callback_stops(void **state)
{
	struct seen s = { .stop_after = 2 };
	struct kube_watch_parser p;

	(void)state;
	kube_watch_parser_init(&p, 4096, NULL, record, &s);
	assert_int_equal(kube_watch_parser_feed(&p, STREAM, strlen(STREAM)), 7);
	assert_int_equal(s.count, 2);
	kube_watch_parser_free(&p);
}

static int
record_keys(void *ctx, const struct kube_watch_event *ev)
{
	struct seen *s = ctx;
	char *text = json_dumps(ev->object, JSON_COMPACT | JSON_SORT_KEYS);

	strncat(s->log, text, sizeof(s->log) - strlen(s->log) - 2);
	strcat(s->log, ";");
	free(text);
	s->count++;
	return 0;
}

/* Objects are cut to what the cache reads; an ERROR's Status never is. */
static void
test_prune_objects_not_errors(void **state)
{
	static const char *const keep[] = { "+metadata.name", "+metadata.resourceVersion", NULL };
	struct jsonprune *pr = jsonprune_new(keep, "object");
	struct seen s = { 0 };
	struct kube_watch_parser p;
	const char *stream =
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"n\",\"resourceVersion\":\"5\","
	    "\"uid\":\"x\"},\"status\":{\"images\":[1,2,3]}}}\n"
	    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"gone\"}}\n";

	(void)state;
	assert_non_null(pr);
	kube_watch_parser_init(&p, 4096, pr, record_keys, &s);
	assert_int_equal(kube_watch_parser_feed(&p, stream, strlen(stream)), 0);
	assert_string_equal(s.log, "{\"metadata\":{\"name\":\"n\",\"resourceVersion\":\"5\"}};"
	    "{\"code\":410,\"kind\":\"Status\",\"message\":\"gone\"};");
	kube_watch_parser_free(&p);
	jsonprune_free(pr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split_point),
		cmocka_unit_test(test_byte_by_byte_and_three_way),
		cmocka_unit_test(test_partial_event_at_end),
		cmocka_unit_test(test_oversize_event),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_prune_objects_not_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
