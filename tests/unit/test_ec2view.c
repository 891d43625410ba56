/* Unit tests for the EC2 view: replies applied, changes reported, full listings sweep, what a refresh asks and when. */
#include <errno.h>
#include <string.h>

#include "test_util.h"
#include "stratos/ec2view.h"
#include "stratos/nodestate.h"
#include "stratos/timeutil.h"

static struct ec2_instance_tag tags_ci[] = {
	{ (char *)NODESTATE_TAG_POOL, (char *)"ci" },
	{ (char *)NODESTATE_TAG_STATE, (char *)"standby" },
};

static struct ec2_instance
inst(const char *id, int state, const char *token)
{
	struct ec2_instance in;

	memset(&in, 0, sizeof(in));
	snprintf(in.id, sizeof(in.id), "%s", id);
	in.state_code = state;
	snprintf(in.subnet_id, sizeof(in.subnet_id), "subnet-12345678");
	snprintf(in.availability_zone, sizeof(in.availability_zone), "us-east-1a");
	snprintf(in.client_token, sizeof(in.client_token), "%s", token ? token : "");
	in.launch_time_ms = 1796000000000LL;
	in.tags = tags_ci;
	in.ntags = 2;
	return in;
}

struct changes {
	int n;
	char id[8][32];
	int from[8], to[8];
};

static void
on_change(void *ctx, const struct ec2view_instance *now, int old)
{
	struct changes *c = ctx;

	if (c->n < 8) {
		snprintf(c->id[c->n], sizeof(c->id[0]), "%s", now->id);
		c->from[c->n] = old;
		c->to[c->n] = now->state_code;
		c->n++;
	}
}

static void
test_replies_and_changes(void **state)
{
	struct ec2view *v = ec2view_new(NULL, &(struct ec2view_options){ .cluster = "c" });
	struct ec2_instance a[2] = { inst("i-a", EC2_STATE_PENDING, "ci-1"),
	    inst("i-b", EC2_STATE_STOPPED, NULL) };
	struct ec2_instances list = { a, 2, 2 };
	struct ec2view_instance out;
	struct changes ch = { 0 };

	(void)state;
	assert_false(ec2view_synced(v));
	/* A RunInstances reply: known, not described yet. */
	assert_int_equal(ec2view_apply_instances(v, &(struct ec2_instances){ a, 1, 1 }, false, false,
	    on_change, &ch), 0);
	assert_int_equal(ch.n, 1);
	assert_int_equal(ch.from[0], EC2VIEW_STATE_GONE);
	assert_int_equal(ec2view_get(v, "i-a", &out), 0);
	assert_false(out.described);
	assert_string_equal(out.pool, "ci");
	assert_string_equal(out.client_token, "ci-1");
	assert_false(ec2view_synced(v));
	/* A full listing: synced, both described; only i-b is a change. */
	ch.n = 0;
	assert_int_equal(ec2view_apply_instances(v, &list, true, true, on_change, &ch), 0);
	assert_true(ec2view_synced(v));
	assert_int_equal(ch.n, 1);
	assert_string_equal(ch.id[0], "i-b");
	assert_int_equal(ec2view_get(v, "i-a", &out), 0);
	assert_true(out.described);
	/* A Stop reply moves the state. */
	struct ec2_state_change sc = { .id = "i-a", .current_code = EC2_STATE_STOPPING };
	ch.n = 0;
	ec2view_apply_changes(v, &(struct ec2_state_changes){ &sc, 1, 1 }, on_change, &ch);
	assert_int_equal(ch.n, 1);
	assert_int_equal(ch.from[0], EC2_STATE_PENDING);
	assert_int_equal(ch.to[0], EC2_STATE_STOPPING);
	/* A full listing without i-b: gone, and dropped from the view. */
	ch.n = 0;
	a[0].state_code = EC2_STATE_STOPPED;
	assert_int_equal(ec2view_apply_instances(v, &(struct ec2_instances){ a, 1, 1 }, true, true,
	    on_change, &ch), 0);
	assert_int_equal(ch.n, 2);
	assert_int_equal(ec2view_get(v, "i-b", &out), -ENOENT);
	/* Tags written by CreateTags. */
	const char *ids[] = { "i-a" };
	ec2view_apply_state_tag(v, ids, 1, "warmup");
	assert_int_equal(ec2view_get(v, "i-a", &out), 0);
	assert_string_equal(out.state_tag, "warmup");
	ec2view_free(v);
}

static void
test_list_by_pool_and_many_entries(void **state)
{
	struct ec2view *v = ec2view_new(NULL, NULL);
	struct ec2_instance *many = calloc(3000, sizeof(*many));
	struct ec2view_instance *out = NULL;
	long n;

	(void)state;
	for (int i = 0; i < 3000; i++) {
		char id[32];
		snprintf(id, sizeof(id), "i-%05d", i);
		many[i] = inst(id, EC2_STATE_STOPPED, NULL);
		if (i % 3 == 0)
			many[i].ntags = 0;       /* no pool */
	}
	assert_int_equal(ec2view_apply_instances(v, &(struct ec2_instances){ many, 3000, 3000 }, true,
	    true, NULL, NULL), 0);
	n = ec2view_list(v, "ci", &out);
	assert_int_equal(n, 2000);
	free(out);
	n = ec2view_list(v, NULL, &out);
	assert_int_equal(n, 3000);
	free(out);
	struct ec2view_instance one;
	assert_int_equal(ec2view_get(v, "i-02999", &one), 0);
	assert_int_equal(ec2view_get(v, "i-03000", &one), -ENOENT);
	/* Sweep half away: the index still finds the rest. */
	assert_int_equal(ec2view_apply_instances(v, &(struct ec2_instances){ many, 1500, 1500 }, true,
	    true, NULL, NULL), 0);
	assert_int_equal(ec2view_get(v, "i-01499", &one), 0);
	assert_int_equal(ec2view_get(v, "i-01500", &one), -ENOENT);
	free(many);
	ec2view_free(v);
}

static void
test_when_a_refresh_is_due(void **state)
{
	struct ec2view *v = ec2view_new(NULL, &(struct ec2view_options){ .resync_ms = 60000,
	    .poll_ms = 1000 });
	struct ec2_instance a = inst("i-a", EC2_STATE_STOPPED, NULL);
	struct ec2view_stats st;
	int64_t now = time_mono_ms();

	(void)state;
	/* Not synced: now. */
	assert_true(ec2view_next_refresh(v) <= now);
	assert_int_equal(ec2view_apply_instances(v, &(struct ec2_instances){ &a, 1, 1 }, true, true,
	    NULL, NULL), 0);
	/* Synced, nothing moving: the next resync only. */
	assert_true(ec2view_next_refresh(v) >= now + 60000);
	/* Something in transition: the next poll. */
	struct ec2_state_change sc = { .id = "i-a", .current_code = EC2_STATE_PENDING };
	ec2view_apply_changes(v, &(struct ec2_state_changes){ &sc, 1, 1 }, NULL, NULL);
	assert_true(ec2view_next_refresh(v) <= now + 1000);
	ec2view_stats(v, &st);
	assert_int_equal(st.transitional, 1);
	sc.current_code = EC2_STATE_RUNNING;
	ec2view_apply_changes(v, &(struct ec2_state_changes){ &sc, 1, 1 }, NULL, NULL);
	assert_true(ec2view_next_refresh(v) >= now + 60000);
	/* Asked about (started behind the view's back): the next poll. */
	ec2view_want(v, "i-a");
	assert_true(ec2view_next_refresh(v) <= now + 1000);
	/* Without a client nothing is called. */
	assert_int_equal(ec2view_refresh(v, 0, NULL, NULL, NULL), -ENOTSUP);
	assert_true(ec2view_state_transitional(EC2_STATE_STOPPING));
	assert_false(ec2view_state_transitional(EC2_STATE_STOPPED));
	assert_string_equal(ec2view_state_name(EC2VIEW_STATE_GONE), "gone");
	ec2view_free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replies_and_changes),
		cmocka_unit_test(test_list_by_pool_and_many_entries),
		cmocka_unit_test(test_when_a_refresh_is_due),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
