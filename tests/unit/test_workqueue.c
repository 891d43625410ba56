/* Unit tests for the work queue: dedup, one run per key, re-runs, delays, stop and bounds. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "test_util.h"
#include "stratos/timeutil.h"
#include "stratos/workqueue.h"

#define NKEYS 64
#define WAIT_MS 10000               /* deadline for what should happen at once; never reached when passing */

/*
 * What the callbacks saw, under one lock with a monotonic condition
 * variable: tests wait on it with deadlines, never by sleeping.
 */
struct probe {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct workqueue *q;
	int calls[NKEYS];
	int inflight[NKEYS];
	int violations;                 /* a key seen running twice at once */
	int total;
	int running;
	char order[NKEYS * 4];          /* keys in run order, e.g. "d a b c " */
	int64_t first_ms[NKEYS], last_ms[NKEYS];
	bool gated[NKEYS];              /* these keys wait for the gate to open */
	bool gate_open;
	int at_gate;
	int held;                       /* runs hold_worker() parked at the gate */
	int requeues_left[NKEYS];       /* return requeue_ms this many times */
	int64_t requeue_ms;
	bool busy;                      /* spin a little inside the run */
	bool stop_self;                 /* the run calls workqueue_stop on its own queue */
	int stop_self_rc;
	atomic_ulong gen[NKEYS];        /* bumped before each add */
	unsigned long seen[NKEYS];      /* gen read at the start of the last run */
};

static struct probe P;

static void
probe_reset(void)
{
	memset(&P, 0, sizeof(P));
	pthread_mutex_init(&P.lock, NULL);
	assert_int_equal(time_cond_init(&P.cond), 0);
}

static int
key_index(const char *key)
{
	int i = atoi(key + 1);

	assert_true(key[0] == 'k' && i >= 0 && i < NKEYS);
	return i;
}

static const char *
key_name(int i)
{
	static char names[NKEYS][8];

	snprintf(names[i], sizeof(names[i]), "k%d", i);
	return names[i];
}

static int64_t
probe_fn(void *ctx, const char *key)
{
	int i = key_index(key);
	int64_t requeue = 0;

	(void)ctx;
	pthread_mutex_lock(&P.lock);
	if (P.inflight[i]++ > 0)
		P.violations++;
	P.running++;
	P.seen[i] = atomic_load(&P.gen[i]);
	if (P.calls[i]++ == 0)
		P.first_ms[i] = time_mono_ms();
	P.last_ms[i] = time_mono_ms();
	if (strlen(P.order) + strlen(key) + 2 <= sizeof(P.order)) {
		strcat(P.order, key);
		strcat(P.order, " ");
	}
	if (P.gated[i]) {
		P.at_gate++;
		pthread_cond_broadcast(&P.cond);
		while (!P.gate_open)
			pthread_cond_wait(&P.cond, &P.lock);
		P.at_gate--;
	}
	if (P.stop_self)
		P.stop_self_rc = workqueue_stop(P.q, NULL);
	if (P.requeues_left[i] > 0) {
		P.requeues_left[i]--;
		requeue = P.requeue_ms;
	}
	pthread_mutex_unlock(&P.lock);
	if (P.busy) {
		/* Long enough for adds to land while the key runs (not a timing assertion). */
		struct timespec ts = { 0, 100 * 1000 };
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&P.lock);
	P.inflight[i]--;
	P.running--;
	P.total++;
	pthread_cond_broadcast(&P.cond);
	pthread_mutex_unlock(&P.lock);
	return requeue;
}

/* Waits (lock held) until pred() or the deadline; returns pred(). */
static bool
wait_locked(bool (*pred)(void *), void *arg)
{
	int64_t deadline = time_mono_ms() + WAIT_MS;

	while (!pred(arg))
		if (time_cond_wait_until(&P.cond, &P.lock, deadline) == ETIMEDOUT)
			return pred(arg);
	return true;
}

static bool
wait_for(bool (*pred)(void *), void *arg)
{
	bool ok;

	pthread_mutex_lock(&P.lock);
	ok = wait_locked(pred, arg);
	pthread_mutex_unlock(&P.lock);
	return ok;
}

static bool
pred_total_at_least(void *arg)
{
	return P.total >= *(int *)arg;
}

static bool
pred_at_gate(void *arg)
{
	return P.at_gate >= *(int *)arg;
}


static void
open_gate(void)
{
	pthread_mutex_lock(&P.lock);
	P.gate_open = true;
	pthread_cond_broadcast(&P.cond);
	pthread_mutex_unlock(&P.lock);
}

/* Blocks one worker on key k<i> until open_gate(). */
static void
hold_worker(int i)
{
	P.gated[i] = true;
	P.held++;
	assert_int_equal(workqueue_add(P.q, key_name(i)), 0);
	assert_true(wait_for(pred_at_gate, &P.held));
}

/* Stops the queue (joining the workers: every run has returned) and frees it. */
static size_t
finish(void)
{
	size_t cancelled = 99;

	open_gate();
	assert_int_equal(workqueue_stop(P.q, &cancelled), 0);
	workqueue_free(P.q);
	P.q = NULL;
	return cancelled;
}

/* A key added while it waits is queued once. */
static void
test_dedup(void **state)
{
	int three = 3;

	(void)state;
	probe_reset();
	assert_int_equal(workqueue_new(1, 0, probe_fn, NULL, &P.q), 0);
	hold_worker(0);
	for (int n = 0; n < 5; n++)
		assert_int_equal(workqueue_add(P.q, "k1"), 0);
	for (int n = 0; n < 3; n++)
		assert_int_equal(workqueue_add(P.q, "k2"), 0);
	assert_int_equal(workqueue_len(P.q), 2);
	open_gate();
	assert_true(wait_for(pred_total_at_least, &three));
	assert_int_equal(finish(), 0);              /* nothing else was queued */
	assert_int_equal(P.calls[0], 1);
	assert_int_equal(P.calls[1], 1);
	assert_int_equal(P.calls[2], 1);
	assert_string_equal(P.order, "k0 k1 k2 ");
}

/* Added while it runs: runs again after, once however often it was added. */
static void
test_rerun_after_add_during_run(void **state)
{
	int two = 2;

	(void)state;
	probe_reset();
	assert_int_equal(workqueue_new(2, 0, probe_fn, NULL, &P.q), 0);
	hold_worker(3);
	assert_int_equal(workqueue_len(P.q), 0);    /* running, nothing queued behind it */
	assert_int_equal(workqueue_add(P.q, "k3"), 0);
	assert_int_equal(workqueue_add(P.q, "k3"), 0);
	assert_int_equal(workqueue_add_after(P.q, "k3", 3600 * 1000), 0);
	assert_int_equal(workqueue_len(P.q), 1);
	/* The second worker is free, yet k3 must not run beside itself. */
	pthread_mutex_lock(&P.lock);
	assert_int_equal(P.calls[3], 1);
	P.gated[3] = false;
	P.gate_open = true;
	pthread_cond_broadcast(&P.cond);
	assert_true(wait_locked(pred_total_at_least, &two));
	pthread_mutex_unlock(&P.lock);
	assert_int_equal(finish(), 0);              /* the hour-later add was absorbed */
	assert_int_equal(P.calls[3], 2);
	assert_int_equal(P.violations, 0);
}

struct adder {
	int from, n;
	unsigned seed;
	int failed;                     /* cmocka asserts belong to the test's thread */
};

static void *
adder_thread(void *arg)
{
	struct adder *a = arg;

	for (int n = 0; n < a->n; n++) {
		int i = a->from + (int)(rand_r(&a->seed) % 8);
		atomic_fetch_add(&P.gen[i], 1);
		if (workqueue_add(P.q, key_name(i)) != 0)
			a->failed++;
		if (n % 16 == 0)
			sched_yield();          /* spread the adds over the runs */
	}
	return NULL;
}

static bool
pred_all_seen(void *arg)
{
	(void)arg;
	for (int i = 0; i < 16; i++)
		if (P.seen[i] != atomic_load(&P.gen[i]) || P.running > 0)
			return false;
	return true;
}

/*
 * Four workers, two threads adding 16 keys many times: never two runs of one
 * key at once, and every add is followed by a run that started after it (no
 * add lost to a run in progress).
 */
static void
test_one_run_per_key_under_load(void **state)
{
	struct adder a[2] = { { 0, 20000, 1, 0 }, { 8, 20000, 2, 0 } };
	pthread_t t[2];

	(void)state;
	probe_reset();
	P.busy = true;
	assert_int_equal(workqueue_new(4, 0, probe_fn, NULL, &P.q), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, adder_thread, &a[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(a[0].failed + a[1].failed, 0);
	assert_true(wait_for(pred_all_seen, NULL));
	assert_int_equal(finish(), 0);
	assert_int_equal(P.violations, 0);
	for (int i = 0; i < 16; i++)
		assert_true(P.calls[i] >= 1);
	/* Dedup did its work: far fewer runs than adds. */
	assert_true(P.total < 40000);
}

/* Delayed keys run in due order, none before its time; an immediate one first. */
static void
test_delays_in_order(void **state)
{
	int four = 4;
	int64_t t0;

	(void)state;
	probe_reset();
	assert_int_equal(workqueue_new(1, 0, probe_fn, NULL, &P.q), 0);
	t0 = time_mono_ms();
	assert_int_equal(workqueue_add_after(P.q, "k13", 300), 0);
	assert_int_equal(workqueue_add_after(P.q, "k11", 100), 0);
	assert_int_equal(workqueue_add_after(P.q, "k12", 200), 0);
	assert_int_equal(workqueue_add_after(P.q, "k10", -5), 0);     /* negative: now */
	assert_true(wait_for(pred_total_at_least, &four));
	assert_string_equal(P.order, "k10 k11 k12 k13 ");
	assert_true(P.first_ms[11] - t0 >= 100);
	assert_true(P.first_ms[12] - t0 >= 200);
	assert_true(P.first_ms[13] - t0 >= 300);
	assert_int_equal(finish(), 0);
}

/* Added twice, a key waits for the earlier due time; the later add changes nothing. */
static void
test_earliest_due_wins(void **state)
{
	int three = 3;
	int64_t t0;

	(void)state;
	probe_reset();
	assert_int_equal(workqueue_new(2, 0, probe_fn, NULL, &P.q), 0);
	t0 = time_mono_ms();
	assert_int_equal(workqueue_add_after(P.q, "k20", 3600 * 1000), 0);
	assert_int_equal(workqueue_add_after(P.q, "k20", 50), 0);         /* moves it earlier */
	assert_int_equal(workqueue_add_after(P.q, "k21", 50), 0);
	assert_int_equal(workqueue_add_after(P.q, "k21", 3600 * 1000), 0); /* does not postpone */
	assert_int_equal(workqueue_add_after(P.q, "k22", 3600 * 1000), 0);
	assert_int_equal(workqueue_add(P.q, "k22"), 0);                   /* now overtakes later */
	assert_true(wait_for(pred_total_at_least, &three));
	assert_true(P.first_ms[20] - t0 >= 50);
	assert_true(P.first_ms[21] - t0 >= 50);
	assert_int_equal(workqueue_len(P.q), 0);
	assert_int_equal(finish(), 0);              /* no hour-later entry left behind */
	assert_int_equal(P.calls[20] + P.calls[21] + P.calls[22], 3);
}

/* A run that returns a delay runs again after it. */
static void
test_requeue_by_return(void **state)
{
	int three = 3;

	(void)state;
	probe_reset();
	P.requeues_left[30] = 2;
	P.requeue_ms = 60;
	assert_int_equal(workqueue_new(1, 0, probe_fn, NULL, &P.q), 0);
	assert_int_equal(workqueue_add(P.q, "k30"), 0);
	assert_true(wait_for(pred_total_at_least, &three));
	assert_int_equal(P.calls[30], 3);
	assert_true(P.last_ms[30] - P.first_ms[30] >= 120);
	assert_int_equal(finish(), 0);
	assert_int_equal(P.calls[30], 3);
}

struct stopper {
	size_t cancelled;
	int rc;
};

static void *
stop_thread(void *arg)
{
	struct stopper *s = arg;

	s->rc = workqueue_stop(P.q, &s->cancelled);
	return NULL;
}

/* Stop cancels what waits, lets the run in progress finish, and refuses later adds. */
static void
test_stop_with_items_pending(void **state)
{
	struct stopper s = { 99, 99 };
	int64_t deadline;
	pthread_t t;
	int rc;

	(void)state;
	probe_reset();
	assert_int_equal(workqueue_new(1, 0, probe_fn, NULL, &P.q), 0);
	hold_worker(40);
	for (int i = 41; i < 51; i++)
		assert_int_equal(workqueue_add(P.q, key_name(i)), 0);
	for (int i = 51; i < 56; i++)
		assert_int_equal(workqueue_add_after(P.q, key_name(i), 3600 * 1000), 0);
	assert_int_equal(workqueue_add(P.q, "k40"), 0);         /* a re-run behind the held run */
	assert_int_equal(workqueue_len(P.q), 16);
	pthread_create(&t, NULL, stop_thread, &s);
	/*
	 * The stop is under way once adds are refused (it waits for the held
	 * run). Polling with a key already waiting adds nothing meanwhile.
	 */
	deadline = time_mono_ms() + WAIT_MS;
	while ((rc = workqueue_add(P.q, "k41")) == 0 && time_mono_ms() < deadline)
		sched_yield();
	assert_int_equal(rc, -ESHUTDOWN);
	assert_int_equal(workqueue_add_after(P.q, "k61", 10), -ESHUTDOWN);
	open_gate();
	pthread_join(t, NULL);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.cancelled, 16);
	assert_int_equal(P.total, 1);
	assert_int_equal(P.calls[40], 1);
	assert_int_equal(workqueue_len(P.q), 0);
	/* Again: nothing more to do. */
	size_t again = 7;
	assert_int_equal(workqueue_stop(P.q, &again), 0);
	assert_int_equal(again, 0);
	workqueue_free(P.q);
}

/* Stopping from a callback would join itself: refused. */
static void
test_stop_from_callback(void **state)
{
	int one = 1;

	(void)state;
	probe_reset();
	P.stop_self = true;
	P.stop_self_rc = 99;
	assert_int_equal(workqueue_new(1, 0, probe_fn, NULL, &P.q), 0);
	assert_int_equal(workqueue_add(P.q, "k0"), 0);
	assert_true(wait_for(pred_total_at_least, &one));
	assert_int_equal(P.stop_self_rc, -EDEADLK);
	assert_int_equal(workqueue_add(P.q, "k1"), 0);          /* still running */
	finish();
}

/* max_items counts keys waiting or running; keys already in the queue are never refused. */
static void
test_full_queue(void **state)
{
	char long_key[LIMITS_WORKQUEUE_KEY + 2];
	int five = 5;

	(void)state;
	probe_reset();
	assert_int_equal(workqueue_new(1, 4, probe_fn, NULL, &P.q), 0);
	hold_worker(0);
	assert_int_equal(workqueue_add(P.q, "k1"), 0);
	assert_int_equal(workqueue_add(P.q, "k2"), 0);
	assert_int_equal(workqueue_add_after(P.q, "k3", 100), 0);
	assert_int_equal(workqueue_add(P.q, "k4"), -ENOSPC);
	assert_int_equal(workqueue_add_after(P.q, "k4", 100), -ENOSPC);
	assert_int_equal(workqueue_add(P.q, "k1"), 0);          /* waiting: dedup */
	assert_int_equal(workqueue_add(P.q, "k3"), 0);          /* delayed: now */
	assert_int_equal(workqueue_add(P.q, "k0"), 0);          /* running: re-run */
	assert_int_equal(workqueue_len(P.q), 4);
	open_gate();
	/* k0 k1 k2 k3 and k0 again: then the slots are free. */
	assert_true(wait_for(pred_total_at_least, &five));
	assert_int_equal(workqueue_add(P.q, "k4"), 0);
	assert_int_equal(workqueue_add(P.q, "k5"), 0);

	assert_int_equal(workqueue_add(P.q, NULL), -EINVAL);
	assert_int_equal(workqueue_add(P.q, ""), -EINVAL);
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_int_equal(workqueue_add(P.q, long_key), -ENAMETOOLONG);
	finish();

	struct workqueue *q = (struct workqueue *)&q;
	assert_int_equal(workqueue_new(0, 0, probe_fn, NULL, &q), -EINVAL);
	assert_null(q);
	assert_int_equal(workqueue_new(LIMITS_WORKQUEUE_WORKERS + 1, 0, probe_fn, NULL, &q), -EINVAL);
	assert_int_equal(workqueue_new(1, LIMITS_WORKQUEUE_ITEMS + 1, probe_fn, NULL, &q), -EINVAL);
	assert_int_equal(workqueue_new(1, 0, NULL, NULL, &q), -EINVAL);
	workqueue_free(NULL);
}

/* Many distinct keys: the table and the heap grow, every key runs once. */
static void
test_many_keys(void **state)
{
	static char keys[3000][16];
	int want = 3000;

	(void)state;
	probe_reset();
	assert_int_equal(workqueue_new(4, 0, probe_fn, NULL, &P.q), 0);
	hold_worker(0);
	hold_worker(1);
	hold_worker(2);
	hold_worker(3);
	for (int i = 0; i < want - 4; i++) {
		/* k<4..63> with a suffix key_index ignores: distinct keys, 60 counters. */
		snprintf(keys[i], sizeof(keys[i]), "k%d.%d", 4 + i % 60, i);
		assert_int_equal(workqueue_add_after(P.q, keys[i], (i * 7919) % 50), 0);
	}
	assert_int_equal(workqueue_len(P.q), (size_t)want - 4);
	open_gate();
	assert_true(wait_for(pred_total_at_least, &want));
	assert_int_equal(finish(), 0);
	assert_int_equal(P.total, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedup),
		cmocka_unit_test(test_rerun_after_add_during_run),
		cmocka_unit_test(test_one_run_per_key_under_load),
		cmocka_unit_test(test_delays_in_order),
		cmocka_unit_test(test_earliest_due_wins),
		cmocka_unit_test(test_requeue_by_return),
		cmocka_unit_test(test_stop_with_items_pending),
		cmocka_unit_test(test_stop_from_callback),
		cmocka_unit_test(test_full_queue),
		cmocka_unit_test(test_many_keys),
	};
	/* TEST_FILTER=test_name runs one test, e.g. in a loop to shake out a race. */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
