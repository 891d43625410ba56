/* Unit tests for reservations: the annotation format, its writers and the fit check of DESIGN §6.3. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/reservations.h"

#define T0 1795849200000LL          /* 2026-11-28T07:00:00Z */

/* Text with single quotes for readability. */
static char *
text(const char *s)
{
	char *t = strdup(s);

	for (char *p = t; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return t;
}

static struct reservations *
parse_ok(const char *s)
{
	char *t = text(s);
	struct reservations *r = NULL;
	int rc = reservations_parse(t, &r);

	if (rc != 0)
		fail_msg("parse %s: %d", t, rc);
	free(t);
	return r;
}

static int
parse_rc(const char *s)
{
	char *t = text(s);
	struct reservations *r = (struct reservations *)&r;      /* must be reset to NULL */
	int rc = reservations_parse(t, &r);

	assert_null(r);
	free(t);
	return rc;
}

static struct resources
list(const char *s)
{
	json_t *j = J(s);
	struct resources r;

	assert_int_equal(resources_parse_list(j, &r), 0);
	json_decref(j);
	return r;
}

static void
test_parse_valid(void **state)
{
	/* Out of order, an unknown member, an offset time: read, sorted, normalised. */
	struct reservations *r = parse_ok("["
	    "{'uid':'u2','pod':'ci/b','requests':{'cpu':'1','nvidia.com/gpu':'1'},"
	    "'since':'2026-11-28T07:00:05Z','note':'from a newer replica'},"
	    "{'uid':'u1','pod':'ci/a','requests':{'cpu':'500m','memory':'1Gi'},"
	    "'since':'2026-11-28T09:00:01+02:00'},"
	    "{'uid':'u3','pod':'web/c','requests':{},'since':'2026-11-28T07:00:05Z'}]");
	const struct reservation *a;

	(void)state;
	assert_int_equal(r->n, 3);
	assert_string_equal(r->item[0].uid, "u1");
	assert_string_equal(r->item[1].uid, "u2");
	assert_string_equal(r->item[2].uid, "u3");    /* tie with u2: the order written */
	assert_int_equal(r->item[0].since_ms, T0 + 1000);
	assert_int_equal(r->item[1].since_ms, T0 + 5000);
	a = reservations_find(r, "u1");
	assert_ptr_equal(a, &r->item[0]);
	assert_string_equal(a->pod, "ci/a");
	assert_int_equal(a->requests.cpu_milli, 500);
	assert_int_equal(a->requests.memory, 1LL << 30);
	assert_int_equal(a->requests.pods, 1);        /* each holds one pod slot */
	assert_int_equal(resources_ext_get(&reservations_find(r, "u2")->requests,
	    "nvidia.com/gpu"), 1);
	assert_int_equal(reservations_find(r, "u3")->requests.pods, 1);
	assert_null(reservations_find(r, "nope"));
	assert_null(reservations_find(NULL, "u1"));
	reservations_free(r);

	r = parse_ok("[]");
	assert_int_equal(r->n, 0);
	reservations_free(r);
	reservations_free(NULL);
}

/* Anything malformed is refused as a whole: a partial reading could promise room twice. */
static void
test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"not json",
		"{'uid':'u1'}",                                                    /* not an array */
		"[1]",
		"[{'pod':'ci/a','requests':{},'since':'2026-11-28T07:00:00Z'}]",  /* no uid */
		"[{'uid':7,'pod':'ci/a','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'','pod':'ci/a','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u\\u0000x','pod':'ci/a','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'a','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'/a','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a/b','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a','since':'2026-11-28T07:00:00Z'}]",      /* no requests */
		"[{'uid':'u1','pod':'ci/a','requests':[],'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a','requests':{'cpu':'lots'},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a','requests':{'cpu':1},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a','requests':{'memory':'-1Gi'},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a','requests':{'nvidia.com/gpu':'-1'},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a','requests':{}}]",                       /* no since */
		"[{'uid':'u1','pod':'ci/a','requests':{},'since':'yesterday'}]",
		"[{'uid':'u1','pod':'ci/a','requests':{},'since':1795849200}]",
		"[{'uid':'u1','uid':'u2','pod':'ci/a','requests':{},'since':'2026-11-28T07:00:00Z'}]",
		"[{'uid':'u1','pod':'ci/a','requests':{},'since':'2026-11-28T07:00:00Z'},"
		" {'uid':'u1','pod':'ci/b','requests':{},'since':'2026-11-28T07:00:01Z'}]",  /* uid twice */
	};
	char uid[LIMITS_RESERVATION_UID + 2], json[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_rc(bad[i]) != -EINVAL)
			fail_msg("accepted or wrong code: %s", bad[i]);
	assert_int_equal(reservations_parse(NULL, &(struct reservations *){ NULL }), -EINVAL);

	/* The uid bound is inclusive. */
	memset(uid, 'u', sizeof(uid));
	uid[LIMITS_RESERVATION_UID] = '\0';
	snprintf(json, sizeof(json), "[{'uid':'%s','pod':'ci/a','requests':{},"
	    "'since':'2026-11-28T07:00:00Z'}]", uid);
	reservations_free(parse_ok(json));
	uid[LIMITS_RESERVATION_UID] = 'u';
	uid[LIMITS_RESERVATION_UID + 1] = '\0';
	snprintf(json, sizeof(json), "[{'uid':'%s','pod':'ci/a','requests':{},"
	    "'since':'2026-11-28T07:00:00Z'}]", uid);
	assert_int_equal(parse_rc(json), -EINVAL);
}

/* The caps: items, text, extended resources per item. */
static void
test_parse_limits(void **state)
{
	struct buf {
		char *p;
		size_t len, cap;
	} b = { malloc(1 << 20), 0, 1 << 20 };
	struct reservations *r;

	(void)state;
	/* LIMITS_RESERVATIONS_PER_NODE items parse; one more does not. */
	for (unsigned n = LIMITS_RESERVATIONS_PER_NODE; n <= LIMITS_RESERVATIONS_PER_NODE + 1; n++) {
		b.len = (size_t)snprintf(b.p, b.cap, "[");
		for (unsigned i = 0; i < n; i++)
			b.len += (size_t)snprintf(b.p + b.len, b.cap - b.len, "%s{\"uid\":\"u%u\","
			    "\"pod\":\"ci/p%u\",\"requests\":{\"cpu\":\"1m\"},"
			    "\"since\":\"2026-11-28T07:00:00Z\"}", i ? "," : "", i, i);
		snprintf(b.p + b.len, b.cap - b.len, "]");
		r = NULL;
		assert_int_equal(reservations_parse(b.p, &r),
		    n <= LIMITS_RESERVATIONS_PER_NODE ? 0 : -E2BIG);
		if (r != NULL)
			assert_int_equal(r->n, n);
		reservations_free(r);
	}
	/* Text beyond LIMITS_RESERVATIONS_TEXT: refused before parsing. */
	memset(b.p, ' ', LIMITS_RESERVATIONS_TEXT + 1);
	b.p[0] = '[';
	b.p[LIMITS_RESERVATIONS_TEXT - 1] = ']';
	b.p[LIMITS_RESERVATIONS_TEXT] = '\0';
	r = NULL;
	assert_int_equal(reservations_parse(b.p, &r), 0);            /* exactly the cap */
	assert_int_equal(r->n, 0);
	reservations_free(r);
	b.p[LIMITS_RESERVATIONS_TEXT] = ' ';
	b.p[LIMITS_RESERVATIONS_TEXT + 1] = '\0';
	assert_int_equal(reservations_parse(b.p, &r), -E2BIG);
	assert_null(r);
	/* More extended resources in one item than a list may hold. */
	b.len = (size_t)snprintf(b.p, b.cap, "[{\"uid\":\"u\",\"pod\":\"a/b\",\"requests\":{");
	for (unsigned i = 0; i <= LIMITS_RESOURCES_EXTENDED; i++)
		b.len += (size_t)snprintf(b.p + b.len, b.cap - b.len, "%s\"example.com/r%u\":\"1\"",
		    i ? "," : "", i);
	snprintf(b.p + b.len, b.cap - b.len, "},\"since\":\"2026-11-28T07:00:00Z\"}]");
	assert_int_equal(reservations_parse(b.p, &r), -E2BIG);
	free(b.p);
}

/* ---- writers ---- */

static void
test_with_writes_the_format(void **state)
{
	struct resources req = list("{'cpu':'0.5','memory':'1.5Gi','nvidia.com/gpu':'1'}");
	struct reservation add = { .uid = "u1", .pod = "ci/a", .requests = req,
		.since_ms = T0 + 1500 };
	struct reservations *r, *r2;
	char *out = NULL;

	(void)state;
	/* The first reservation on a node: canonical quantities, whole seconds, no "pods". */
	assert_int_equal(reservations_with(NULL, &add, &out), 0);
	assert_string_equal(out, "[{\"uid\":\"u1\",\"pod\":\"ci/a\",\"requests\":{\"cpu\":\"500m\","
	    "\"memory\":\"1536Mi\",\"nvidia.com/gpu\":\"1\"},\"since\":\"2026-11-28T07:00:01Z\"}]");
	assert_int_equal(reservations_parse(out, &r), 0);
	free(out);
	assert_int_equal(r->n, 1);
	assert_int_equal(r->item[0].since_ms, T0 + 1000);
	assert_int_equal(r->item[0].requests.cpu_milli, 500);
	assert_int_equal(r->item[0].requests.memory, 1536LL << 20);
	assert_int_equal(r->item[0].requests.pods, 1);
	assert_ptr_equal(r->item[0].requests.ext, req.ext);     /* same interned list */

	/* The same pod again: already promised here, nothing to write. */
	assert_int_equal(reservations_with(r, &add, &out), -EEXIST);
	assert_null(out);

	/* Placed by since: an earlier one first, a same-second one after. */
	struct reservation early = { .uid = "u0", .pod = "ci/z", .since_ms = T0 };
	struct reservation same = { .uid = "u9", .pod = "ci/y", .since_ms = T0 + 1999 };
	assert_int_equal(reservations_with(r, &early, &out), 0);
	assert_int_equal(reservations_parse(out, &r2), 0);
	free(out);
	assert_string_equal(r2->item[0].uid, "u0");
	assert_int_equal(r2->item[0].requests.cpu_milli, 0);
	reservations_free(r);
	assert_int_equal(reservations_with(r2, &same, &out), 0);
	assert_int_equal(reservations_parse(out, &r), 0);
	assert_non_null(strstr(out, "{\"uid\":\"u9\",\"pod\":\"ci/y\",\"requests\":{},"
	    "\"since\":\"2026-11-28T07:00:01Z\"}]"));
	free(out);
	assert_int_equal(r->n, 3);
	assert_string_equal(r->item[0].uid, "u0");
	assert_string_equal(r->item[1].uid, "u1");
	assert_string_equal(r->item[2].uid, "u9");
	reservations_free(r2);
	reservations_free(r);
	resources_release(&req);
}

static void
test_with_refuses_bad_input(void **state)
{
	struct resources neg = list("{'cpu':'-1'}");
	struct reservation bad[] = {
		{ .uid = "", .pod = "ci/a" },
		{ .uid = NULL, .pod = "ci/a" },
		{ .uid = "u", .pod = "ci" },
		{ .uid = "u", .pod = NULL },
		{ .uid = "u", .pod = "ci/a", .requests = neg },
		{ .uid = "u", .pod = "ci/a", .since_ms = -1 },
	};
	char *out = (char *)"x";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(reservations_with(NULL, &bad[i], &out), -EINVAL);
		assert_null(out);
	}
	assert_int_equal(reservations_with(NULL, NULL, &out), -EINVAL);
	resources_release(&neg);
}

/* The writers never produce what the reader refuses. */
static void
test_with_stops_at_the_limits(void **state)
{
	struct reservations *r = NULL;
	char uid[32], long_uid[LIMITS_RESERVATION_UID + 1], pod[LIMITS_RESERVATION_POD + 1], *out;
	int rc = 0;
	unsigned n;

	(void)state;
	for (n = 0; n <= LIMITS_RESERVATIONS_PER_NODE; n++) {
		struct reservation add = { .uid = uid, .pod = "ci/a", .since_ms = T0 };
		snprintf(uid, sizeof(uid), "u%u", n);
		rc = reservations_with(r, &add, &out);
		if (rc < 0)
			break;
		reservations_free(r);
		assert_int_equal(reservations_parse(out, &r), 0);
		free(out);
	}
	assert_int_equal(rc, -E2BIG);
	assert_int_equal(n, LIMITS_RESERVATIONS_PER_NODE);
	assert_int_equal(r->n, LIMITS_RESERVATIONS_PER_NODE);
	reservations_free(r);

	/* Long names hit the text cap first (about 590 bytes an item). */
	memset(pod, 'p', sizeof(pod) - 1);
	pod[sizeof(pod) - 1] = '\0';
	pod[10] = '/';
	r = NULL;
	for (n = 0; n < LIMITS_RESERVATIONS_PER_NODE; n++) {
		struct resources req = list("{'cpu':'1','memory':'1Gi','ephemeral-storage':'1Gi',"
		    "'nvidia.com/gpu':'1','hugepages-2Mi':'2Mi'}");
		struct reservation add = { .uid = long_uid, .pod = pod, .requests = req,
			.since_ms = T0 };
		memset(long_uid, 'u', 120);
		snprintf(long_uid + 120, sizeof(long_uid) - 120, "%u", n);
		rc = reservations_with(r, &add, &out);
		resources_release(&req);
		if (rc < 0)
			break;
		assert_true(strlen(out) <= LIMITS_RESERVATIONS_TEXT);
		reservations_free(r);
		assert_int_equal(reservations_parse(out, &r), 0);
		free(out);
	}
	assert_int_equal(rc, -E2BIG);
	assert_true(n > 100 && n < LIMITS_RESERVATIONS_PER_NODE);
	reservations_free(r);
}

static void
test_without(void **state)
{
	struct reservations *r = parse_ok("["
	    "{'uid':'u1','pod':'ci/a','requests':{'cpu':'1'},'since':'2026-11-28T07:00:01Z'},"
	    "{'uid':'u2','pod':'ci/b','requests':{'cpu':'2'},'since':'2026-11-28T07:00:02Z'}]");
	struct reservations *one;
	char *out = (char *)"x";

	(void)state;
	assert_int_equal(reservations_without(r, "nope", &out), -ENOENT);
	assert_null(out);
	assert_int_equal(reservations_without(NULL, "u1", &out), -ENOENT);
	assert_int_equal(reservations_without(r, "u1", &out), 0);
	assert_string_equal(out, "[{\"uid\":\"u2\",\"pod\":\"ci/b\",\"requests\":{\"cpu\":\"2\"},"
	    "\"since\":\"2026-11-28T07:00:02Z\"}]");
	assert_int_equal(reservations_parse(out, &one), 0);
	free(out);
	/* The last one: no text, the caller removes the annotation. */
	out = (char *)"x";
	assert_int_equal(reservations_without(one, "u2", &out), 0);
	assert_null(out);
	reservations_free(one);
	reservations_free(r);
}

static bool
keep_listed(void *ctx, const struct reservation *res)
{
	const char *const *keep = ctx;

	for (; *keep != NULL; keep++)
		if (strcmp(*keep, res->uid) == 0)
			return true;
	return false;
}

static void
test_filter(void **state)
{
	const char *json = "["
	    "{'uid':'u1','pod':'ci/a','requests':{'cpu':'1'},'since':'2026-11-28T07:00:01Z'},"
	    "{'uid':'u2','pod':'ci/b','requests':{'memory':'512Mi'},'since':'2026-11-28T07:00:02Z'},"
	    "{'uid':'u3','pod':'ci/c','requests':{},'since':'2026-11-28T07:00:03Z'}]";
	struct reservations *r = parse_ok(json), *back;
	const char *keep_13[] = { "u1", "u3", NULL }, *keep_all[] = { "u3", "u2", "u1", NULL };
	const char *keep_none[] = { NULL };
	char *out, *canon = text(json);

	(void)state;
	/* The pod of u2 is gone: dropped, the others kept in order. */
	assert_int_equal(reservations_filter(r, keep_listed, keep_13, &out), 1);
	assert_int_equal(reservations_parse(out, &back), 0);
	assert_int_equal(back->n, 2);
	assert_string_equal(back->item[0].uid, "u1");
	assert_string_equal(back->item[1].uid, "u3");
	reservations_free(back);
	free(out);
	/* Nothing removed: 0, and the text as it stands (canonical input comes back byte for byte). */
	assert_int_equal(reservations_filter(r, keep_listed, keep_all, &out), 0);
	assert_string_equal(out, canon);
	free(out);
	/* Nothing kept: no text. */
	out = (char *)"x";
	assert_int_equal(reservations_filter(r, keep_listed, keep_none, &out), 3);
	assert_null(out);
	out = (char *)"x";
	assert_int_equal(reservations_filter(NULL, keep_listed, keep_all, &out), 0);
	assert_null(out);
	free(canon);
	reservations_free(r);
}

/* ---- the fit check ---- */

static void
test_sum_and_fit(void **state)
{
	struct resources alloc = list("{'cpu':'4','memory':'8Gi','pods':'4','nvidia.com/gpu':'1'}");
	struct resources ds_req = list("{'cpu':'500m','memory':'512Mi'}");
	struct resources p = list("{'cpu':'500m','memory':'1Gi'}");
	struct resources p_more = list("{'cpu':'501m'}");
	struct resources p_gpu = list("{'nvidia.com/gpu':'1'}");
	struct resources p_none = list("{}");
	struct reservations *r = parse_ok("["
	    "{'uid':'a','pod':'ci/a','requests':{'cpu':'2','memory':'4Gi'},'since':'2026-11-28T07:00:01Z'},"
	    "{'uid':'b','pod':'ci/b','requests':{'cpu':'1','nvidia.com/gpu':'1'},'since':'2026-11-28T07:00:02Z'}]");
	struct resources_sum ds, sum;
	const char *why;

	(void)state;
	ds_req.pods = 1;             /* one DaemonSet pod */
	resources_sum_init(&ds);
	resources_sum_add(&ds, &ds_req);

	resources_sum_init(&sum);
	assert_int_equal(reservations_sum(r, NULL, &sum), 0);
	assert_int_equal(sum.cpu_milli, 3000);
	assert_int_equal(sum.memory, 4LL << 30);
	assert_int_equal(sum.pods, 2);
	assert_int_equal(sum.next, 1);
	resources_sum_init(&sum);
	assert_int_equal(reservations_sum(r, "a", &sum), 0);
	assert_int_equal(sum.cpu_milli, 1000);
	assert_int_equal(sum.pods, 1);

	/* DaemonSet 0.5 + reservations 3 + pod 0.5 = 4 CPUs: exactly full. */
	assert_true(reservations_fit(&alloc, &ds, r, NULL, &p, &why));
	assert_null(why);
	assert_false(reservations_fit(&alloc, &ds, r, NULL, &p_more, &why));
	assert_string_equal(why, "cpu");
	assert_false(reservations_fit(&alloc, &ds, r, NULL, &p_gpu, &why));
	assert_string_equal(why, "nvidia.com/gpu");
	/* The pod's own reservation (b) is not counted against it. */
	assert_true(reservations_fit(&alloc, &ds, r, "b", &p_more, &why));
	assert_true(reservations_fit(&alloc, &ds, r, "b", &p_gpu, NULL));
	/* Slots: 1 DaemonSet pod + 2 reservations + this pod = 4; a fifth pod has none. */
	assert_true(reservations_fit(&alloc, &ds, r, NULL, &p_none, NULL));
	struct resources_sum ds2 = ds;
	resources_sum_add(&ds2, &ds_req);
	assert_false(reservations_fit(&alloc, &ds2, r, NULL, &p_none, &why));
	assert_string_equal(why, "pods");
	/* No DaemonSet pods, no reservations. */
	assert_true(reservations_fit(&alloc, NULL, NULL, NULL, &p_gpu, NULL));
	assert_true(reservations_fit(&alloc, NULL, r, NULL, &p_more, NULL));

	/* Names that cannot be counted: no promise. */
	struct resources many[LIMITS_RESOURCES_EXTENDED];
	resources_sum_init(&sum);
	for (unsigned i = 0; i < LIMITS_RESOURCES_EXTENDED; i++) {
		char name[64];
		json_t *one = json_object();
		snprintf(name, sizeof(name), "example.com/r%u", i);
		json_object_set_new(one, name, json_string("0"));
		assert_int_equal(resources_parse_list(one, &many[i]), 0);
		json_decref(one);
		assert_int_equal(resources_sum_add(&sum, &many[i]), 0);
	}
	assert_int_equal(reservations_sum(r, NULL, &sum), -E2BIG);
	assert_false(reservations_fit(&alloc, &sum, r, NULL, &p_none, &why));
	assert_string_equal(why, "extended resources");
	for (unsigned i = 0; i < LIMITS_RESOURCES_EXTENDED; i++)
		resources_release(&many[i]);

	reservations_free(r);
	resources_release(&alloc);
	resources_release(&p_gpu);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_with_writes_the_format),
		cmocka_unit_test(test_with_refuses_bad_input),
		cmocka_unit_test(test_with_stops_at_the_limits),
		cmocka_unit_test(test_without),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_sum_and_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
