/* Unit tests for launches: the records' annotation format, ClientTokens, the subnet choice, RunInstances parameters and tags. */
#include <errno.h>
#include <string.h>

#include "test_util.h"
#include "stratos/launch.h"
#include "stratos/nodestate.h"

static void
test_records_round_trip(void **state)
{
	struct launch_records r, back;
	char *text = NULL;
	size_t skipped;

	(void)state;
	assert_int_equal(launch_records_parse(NULL, &r, NULL), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(launch_records_format(&r, &text), 0);
	assert_null(text);
	r.n = 2;
	snprintf(r.v[0].token, sizeof(r.v[0].token), "ci-0123456789abcdef");
	snprintf(r.v[0].subnet, sizeof(r.v[0].subnet), "subnet-12345678");
	r.v[0].at_ms = 1796000000000LL;
	snprintf(r.v[1].token, sizeof(r.v[1].token), "ci-fedcba9876543210");
	snprintf(r.v[1].subnet, sizeof(r.v[1].subnet), "subnet-87654321");
	r.v[1].at_ms = 1796000001000LL;
	assert_int_equal(launch_records_format(&r, &text), 0);
	assert_non_null(text);
	assert_int_equal(launch_records_parse(text, &back, &skipped), 0);
	assert_int_equal(skipped, 0);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.v[1].token, "ci-fedcba9876543210");
	assert_string_equal(back.v[1].subnet, "subnet-87654321");
	assert_int_equal(back.v[1].at_ms, 1796000001000LL);
	assert_int_equal(launch_records_find(&back, "ci-fedcba9876543210"), 1);
	assert_int_equal(launch_records_find(&back, "nope"), -1);
	launch_records_remove(&back, 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.v[0].token, "ci-fedcba9876543210");
	free(text);
}

static void
test_records_refuse_what_cannot_be_repeated(void **state)
{
	struct launch_records r;
	size_t skipped;

	(void)state;
	assert_int_equal(launch_records_parse("{}", &r, NULL), -EINVAL);
	assert_int_equal(launch_records_parse("not json", &r, NULL), -EINVAL);
	/* Entries without a usable token, subnet or time are skipped, the others kept. */
	assert_int_equal(launch_records_parse(
	    "[{\"token\":\"\",\"subnet\":\"s\",\"at\":\"2026-12-06T00:00:00Z\"},"
	    "{\"token\":\"a b\",\"subnet\":\"s\",\"at\":\"2026-12-06T00:00:00Z\"},"
	    "{\"token\":\"ok\",\"at\":\"2026-12-06T00:00:00Z\"},"
	    "{\"token\":\"ok\",\"subnet\":\"s\",\"at\":\"yesterday\"},"
	    "{\"token\":\"ok\",\"subnet\":\"s\",\"at\":\"2026-12-06T00:00:00Z\"}]", &r, &skipped), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(skipped, 4);
	/* A token over EC2's 64 characters. */
	char big[200];
	snprintf(big, sizeof(big), "[{\"token\":\"%070d\",\"subnet\":\"s\",\"at\":\"2026-12-06T00:00:00Z\"}]", 0);
	assert_int_equal(launch_records_parse(big, &r, &skipped), 0);
	assert_int_equal(r.n, 0);
}

static void
test_tokens(void **state)
{
	char a[LIMITS_LAUNCH_TOKEN + 1], b[LIMITS_LAUNCH_TOKEN + 1];
	char pool[64];

	(void)state;
	assert_int_equal(launch_token("ci-runners", a), 0);
	assert_int_equal(launch_token("ci-runners", b), 0);
	assert_true(strncmp(a, "ci-runners-", 11) == 0);
	assert_int_equal(strlen(a), 11 + 16);
	assert_string_not_equal(a, b);
	/* The longest pool name still gives a token EC2 takes. */
	memset(pool, 'p', 63);
	pool[63] = '\0';
	assert_int_equal(launch_token(pool, a), 0);
	assert_true(strlen(a) <= LIMITS_LAUNCH_TOKEN);
}

static void
test_subnet_with_fewest_instances(void **state)
{
	unsigned counts[] = { 3, 1, 1, 2 };
	bool avoid[] = { false, true, false, false };
	bool all[] = { true, true, true, true };

	(void)state;
	assert_int_equal(launch_pick_subnet(4, counts, NULL), 1);      /* fewest, first listed */
	assert_int_equal(launch_pick_subnet(4, counts, avoid), 2);     /* capacity error: next */
	assert_int_equal(launch_pick_subnet(4, counts, all), 1);       /* all avoided: all count */
	assert_int_equal(launch_pick_subnet(0, counts, NULL), -1);
}

static void
test_params_and_tags(void **state)
{
	json_t *pj = J("{'apiVersion':'stratos.sh/v1alpha1','kind':'NodePool','metadata':{'name':'ci'},"
	    "'spec':{'poolSize':3,'minStandby':1,'template':{'nodeClassRef':{'kind':'AWSNodeClass',"
	    "'name':'ci'}}}}");
	json_t *cj = J("{'apiVersion':'stratos.sh/v1alpha1','kind':'AWSNodeClass','metadata':{'name':'ci'},"
	    "'spec':{'instanceType':'m5.2xlarge','ami':'ami-0123456789abcdef0',"
	    "'subnetIds':['subnet-12345678'],'securityGroupIds':['sg-12345678','sg-87654321'],"
	    "'iamInstanceProfile':'node-role','userData':'#!/bin/bash\\necho hi\\n',"
	    "'blockDeviceMappings':[{'deviceName':'/dev/xvda','volumeSize':200,'encrypted':true}],"
	    "'metadataOptions':{'httpTokens':'required','httpPutResponseHopLimit':3},"
	    "'tags':{'team':'infra'}}}");
	struct nodepool *p = NULL;
	struct nodeclass *nc = NULL;
	struct launch_params lp;
	const char *want[][2] = {
		{ NODESTATE_TAG_POOL, "ci" }, { NODESTATE_TAG_CLUSTER, "prod" },
		{ NODESTATE_TAG_STATE, "warmup" }, { NODESTATE_TAG_MANAGED_BY, "stratos" },
		{ "Name", "stratos-ci" }, { "team", "infra" },
	};

	(void)state;
	assert_int_equal(nodepool_parse(pj, NULL, &p), 0);
	assert_int_equal(nodeclass_parse(cj, NULL, &nc), 0);
	assert_int_equal(nc->nviolations, 0);
	assert_int_equal(launch_params_build(p, nc, "prod", "subnet-12345678", "ci-00", &lp), 0);
	assert_string_equal(lp.run.image_id, "ami-0123456789abcdef0");
	assert_string_equal(lp.run.instance_type, "m5.2xlarge");
	assert_string_equal(lp.run.subnet_id, "subnet-12345678");
	assert_string_equal(lp.run.client_token, "ci-00");
	assert_int_equal(lp.run.count, 1);
	assert_int_equal(lp.run.nsecurity_groups, 2);
	assert_string_equal(lp.run.iam_instance_profile, "node-role");
	assert_int_equal(lp.run.nblock_devices, 1);
	assert_int_equal(lp.run.block_devices[0].volume_size_gib, 200);
	assert_string_equal(lp.run.block_devices[0].volume_type, "gp3");
	assert_true(lp.run.block_devices[0].encrypted);
	assert_true(lp.run.block_devices[0].delete_on_termination);
	assert_int_equal(lp.run.user_data_len, strlen("#!/bin/bash\necho hi\n"));
	assert_string_equal(lp.run.metadata_http_tokens, "required");
	assert_int_equal(lp.run.metadata_hop_limit, 3);
	assert_true(lp.run.tag_volumes);
	assert_int_equal(lp.run.ntags, 6);
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(lp.run.tags[i].key, want[i][0]);
		assert_string_equal(lp.run.tags[i].value, want[i][1]);
	}
	nodepool_free(p);
	nodeclass_free(nc);
	json_decref(pj);
	json_decref(cj);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records_round_trip),
		cmocka_unit_test(test_records_refuse_what_cannot_be_repeated),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_subnet_with_fewest_instances),
		cmocka_unit_test(test_params_and_tags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
