/* Unit tests for Lease leader election against a scripted Lease store. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "fake_http.h"
#include "stratos/leader.h"
#include "stratos/timeutil.h"

/* One Lease, with optimistic concurrency like the API server. */
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *lease;                   /* NULL: not found */
static int lease_rv;
static atomic_bool failing;             /* answer 500 to everything */
static atomic_int puts_conflicted;

static void
store_reply(int fd, int status, json_t *body)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : strdup("{}");

	reply(fd, status, NULL, text);
	free(text);
}

static void
h_lease(int fd, const struct req *r)
{
	json_t *in;
	char rv[16];

	if (atomic_load(&failing)) {
		reply(fd, 500, NULL, "{\"kind\":\"Status\",\"code\":500}");
		return;
	}
	pthread_mutex_lock(&store_lock);
	if (strcmp(r->method, "GET") == 0) {
		if (lease == NULL)
			reply(fd, 404, NULL, "{\"kind\":\"Status\",\"code\":404,\"reason\":\"NotFound\"}");
		else
			store_reply(fd, 200, lease);
	} else {
		in = json_loads(r->body, 0, NULL);
		const char *want = json_string_value(json_object_get(json_object_get(in, "metadata"),
		    "resourceVersion"));
		snprintf(rv, sizeof(rv), "%d", lease_rv);
		if (strcmp(r->method, "POST") == 0 && lease != NULL) {
			reply(fd, 409, NULL, "{\"kind\":\"Status\",\"code\":409,\"reason\":\"AlreadyExists\"}");
			json_decref(in);
		} else if (strcmp(r->method, "PUT") == 0 && (want == NULL || strcmp(want, rv) != 0)) {
			atomic_fetch_add(&puts_conflicted, 1);
			reply(fd, 409, NULL, "{\"kind\":\"Status\",\"code\":409,\"reason\":\"Conflict\"}");
			json_decref(in);
		} else {
			snprintf(rv, sizeof(rv), "%d", ++lease_rv);
			json_object_set_new(json_object_get(in, "metadata"), "resourceVersion",
			    json_string(rv));
			json_decref(lease);
			lease = in;
			store_reply(fd, strcmp(r->method, "POST") == 0 ? 201 : 200, lease);
		}
	}
	pthread_mutex_unlock(&store_lock);
}

static char *
holder(void)
{
	static char out[128];

	pthread_mutex_lock(&store_lock);
	snprintf(out, sizeof(out), "%s", lease == NULL ? "(none)" :
	    json_string_value(json_object_get(json_object_get(lease, "spec"), "holderIdentity")));
	pthread_mutex_unlock(&store_lock);
	return out;
}

/* Another replica's renewal, stating its lease duration: the record changes. */
static void
renew_as(const char *who, int duration_s)
{
	char now[TIME_RFC3339_LEN], rv[16];

	time_format_rfc3339_micro(time_real_ms(), now);
	pthread_mutex_lock(&store_lock);
	if (lease == NULL)
		lease = json_pack("{s:{s:s,s:s}}", "metadata", "name", "stratos-controller",
		    "namespace", "ns");
	json_object_set_new(lease, "spec", json_pack("{s:s,s:i,s:s,s:s,s:i}", "holderIdentity", who,
	    "leaseDurationSeconds", duration_s, "acquireTime", now, "renewTime", now,
	    "leaseTransitions", 3));
	snprintf(rv, sizeof(rv), "%d", ++lease_rv);
	json_object_set_new(json_object_get(lease, "metadata"), "resourceVersion", json_string(rv));
	pthread_mutex_unlock(&store_lock);
}

struct calls {
	atomic_int started;
	atomic_int stopped;
	atomic_llong stopped_ms;
};

static void
on_started(void *ctx)
{
	atomic_fetch_add(&((struct calls *)ctx)->started, 1);
}

static void
on_stopped(void *ctx)
{
	struct calls *c = ctx;

	atomic_store(&c->stopped_ms, time_mono_ms());
	atomic_fetch_add(&c->stopped, 1);
}

static struct kube *
client(void)
{
	struct kube_config cfg = { 0 };
	char server[64];

	snprintf(server, sizeof(server), "http://127.0.0.1:%d", server_port);
	cfg.server = server;
	return kube_new(&cfg, NULL);
}

/* Short timings so the test runs in seconds: 1.5 s lease, 1 s deadline, 0.2 s retry. */
static struct leader *
elector(struct kube *k, const char *id, struct calls *c)
{
	struct leader_config lc = {
		.namespace = "ns", .identity = id, .lease_duration_ms = 1500,
		.renew_deadline_ms = 1000, .retry_period_ms = 200,
		.on_started = on_started, .on_stopped = on_stopped, .ctx = c,
	};

	return leader_new(k, &lc);
}

static bool
wait_until(bool (*pred)(void *), void *arg, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		if (pred(arg))
			return true;
		usleep(10 * 1000);
	}
	return pred(arg);
}

/* lease_rv has reached lease_rv_target (both under store_lock). */
static int lease_rv_target;

static bool
lease_renewed(void *arg)
{
	bool done;

	(void)arg;
	pthread_mutex_lock(&store_lock);
	done = lease_rv >= lease_rv_target;
	pthread_mutex_unlock(&store_lock);
	return done;
}

/* The callbacks run just after the flag flips: wait for them too. */
static void
wait_count(atomic_int *n, int want)
{
	for (int t = 0; t < 2000 * fake_http_slowdown() && atomic_load(n) < want; t += 10)
		usleep(10 * 1000);
}

static bool
is_leader(void *l)
{
	return leader_is_leader(l);
}

static bool
not_leader(void *l)
{
	return !leader_is_leader(l);
}

static int
setup(void **state)
{
	(void)state;
	httpc_global_init();
	handler = h_lease;
	return fake_http_start();
}

static void
reset_store(void)
{
	pthread_mutex_lock(&store_lock);
	json_decref(lease);
	lease = NULL;
	lease_rv = 0;
	pthread_mutex_unlock(&store_lock);
	atomic_store(&failing, false);
}

static void
test_acquire_renew_lose_and_release(void **state)
{
	struct kube *k = client();
	struct calls c = { 0 };
	struct leader *l;
	int64_t fail_at;

	(void)state;
	reset_store();
	l = elector(k, "me_1", &c);
	assert_non_null(l);
	assert_string_equal(leader_self(l), "me_1");
	assert_int_equal(leader_start(l), 0);
	assert_true(wait_until(is_leader, l, 2000 * fake_http_slowdown()));
	wait_count(&c.started, 1);
	assert_int_equal(atomic_load(&c.started), 1);
	assert_string_equal(holder(), "me_1");
	/* Renewals change the record: renewTime moves, acquireTime stays. */
	pthread_mutex_lock(&store_lock);
	char *acq = strdup(json_string_value(json_object_get(json_object_get(lease, "spec"),
	    "acquireTime")));
	lease_rv_target = lease_rv + 2;
	pthread_mutex_unlock(&store_lock);
	/* Two renewals at the 200 ms retry period: wait for them, not for a guess of their time. */
	assert_true(wait_until(lease_renewed, NULL, 3000 * fake_http_slowdown()));
	pthread_mutex_lock(&store_lock);
	assert_string_equal(json_string_value(json_object_get(json_object_get(lease, "spec"),
	    "acquireTime")), acq);
	pthread_mutex_unlock(&store_lock);
	free(acq);

	/* The API server stops answering: leadership ends within the renew deadline. */
	fail_at = time_mono_ms();
	atomic_store(&failing, true);
	assert_true(wait_until(not_leader, l, 2000));
	assert_true(time_mono_ms() - fail_at <= 1000 + 50 * fake_http_slowdown());
	wait_count(&c.stopped, 1);
	assert_int_equal(atomic_load(&c.stopped), 1);
	/* The thread notices at its next attempt: a retry period and one failed request. */
	assert_true(atomic_load(&c.stopped_ms) - fail_at <= 1000 + 250 * fake_http_slowdown());

	/* It comes back and, the lease being ours still, leads again: no new transition. */
	atomic_store(&failing, false);
	assert_true(wait_until(is_leader, l, 3000 * fake_http_slowdown()));
	wait_count(&c.started, 2);
	assert_int_equal(atomic_load(&c.started), 2);
	pthread_mutex_lock(&store_lock);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(lease, "spec"),
	    "leaseTransitions")), 0);
	pthread_mutex_unlock(&store_lock);

	/* A clean stop hands the Lease over: empty holder, 1 s lease. */
	leader_stop(l, true);
	assert_int_equal(atomic_load(&c.stopped), 2);
	assert_false(leader_is_leader(l));
	assert_string_equal(holder(), "");
	pthread_mutex_lock(&store_lock);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(lease, "spec"),
	    "leaseDurationSeconds")), 1);
	pthread_mutex_unlock(&store_lock);
	leader_free(l);
	kube_free(k);
}

static void
test_waits_for_a_live_holder(void **state)
{
	struct kube *k = client();
	struct calls c = { 0 };
	struct leader *l;
	char who[128];

	(void)state;
	reset_store();
	renew_as("other_9", 2);
	l = elector(k, "me_2", &c);
	assert_int_equal(leader_start(l), 0);
	/* While the other replica keeps renewing, never take over. */
	for (int i = 0; i < 15; i++) {
		renew_as("other_9", 2);
		usleep(150 * 1000);
		assert_false(leader_is_leader(l));
	}
	leader_holder(l, who, sizeof(who));
	assert_string_equal(who, "other_9");
	/*
	 * It stops renewing: take over after the record's lease duration (2 s) of
	 * no change, not after this replica's own 1.5 s.
	 */
	int64_t t0 = time_mono_ms();
	assert_true(wait_until(is_leader, l, 4000 * fake_http_slowdown()));
	assert_true(time_mono_ms() - t0 >= 1900);
	assert_string_equal(holder(), "me_2");
	pthread_mutex_lock(&store_lock);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(lease, "spec"),
	    "leaseTransitions")), 4);
	pthread_mutex_unlock(&store_lock);

	/* Someone else writes the Lease while we lead: we stop at once. */
	renew_as("thief_1", 2);
	assert_true(wait_until(not_leader, l, 1000 * fake_http_slowdown()));
	wait_count(&c.stopped, 1);
	assert_int_equal(atomic_load(&c.stopped), 1);
	leader_free(l);
	kube_free(k);
}

/*
 * client-go judges a record by the duration it states (isLeaseValid:
 * observedTime + observedRecord.LeaseDurationSeconds): a holder with a 1 s
 * lease that stops renewing is replaced after 1 s, though ours is 1.5 s.
 */
static void
test_record_duration_decides(void **state)
{
	struct kube *k = client();
	struct calls c = { 0 };
	struct leader *l;
	int64_t t0, took;

	(void)state;
	reset_store();
	renew_as("quick_1", 1);
	l = elector(k, "me_3", &c);
	t0 = time_mono_ms();
	assert_int_equal(leader_start(l), 0);
	assert_true(wait_until(is_leader, l, 3000 * fake_http_slowdown()));
	took = time_mono_ms() - t0;
	assert_true(took >= 950);
	assert_true(took < 1450 * fake_http_slowdown());
	assert_string_equal(holder(), "me_3");
	leader_free(l);
	kube_free(k);
}

static void
test_bad_config(void **state)
{
	struct leader_config lc = { .namespace = "ns", .lease_duration_ms = 1000,
		.renew_deadline_ms = 2000 };
	char id[LEADER_IDENTITY_MAX];

	(void)state;
	assert_null(leader_new(NULL, &lc));     /* deadline must be shorter than the lease */
	lc.namespace = NULL;
	assert_null(leader_new(NULL, &lc));
	assert_int_equal(leader_identity(id, sizeof(id)), 0);
	assert_non_null(strchr(id, '_'));
	assert_int_equal(strlen(strchr(id, '_') + 1), 16);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acquire_renew_lose_and_release),
		cmocka_unit_test(test_waits_for_a_live_holder),
		cmocka_unit_test(test_record_duration_decides),
		cmocka_unit_test(test_bad_config),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
