/* Unit tests for the EC2 client: query encoding, XML replies, error classes, and the call loop
 * (retries, quota, deadlines, rate limits, connection reuse) against a scripted local server. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "test_util.h"
#include "fake_http.h"
#include "stratos/aws_credentials.h"
#include "stratos/ec2.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/timeutil.h"

/* ---- query encoding --------------------------------------------------------- */

static void
test_query_run_instances_every_parameter(void **state)
{
	const char *sgs[] = { "sg-12345678", "sg-0123456789abcdef0" };
	const struct ec2_block_device bd[] = {
		{ .device_name = "/dev/xvda", .volume_size_gib = 500, .volume_type = "gp3",
		  .iops = 16000, .throughput = 1000, .encrypted = true,
		  .kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/abcd",
		  .delete_on_termination = true },
		{ .device_name = "/dev/xvdb", .volume_size_gib = 100, .volume_type = "st1",
		  .delete_on_termination = false },
	};
	const struct ec2_tag tags[] = {
		{ "stratos.sh/pool", "inference" }, { "Name", "stratos-inference" },
		{ "team", "a&b=c d" },
	};
	const char ud[] = "#!/bin/bash\npoweroff\n";
	struct ec2_run_params p = {
		.image_id = "ami-0123456789abcdef0", .instance_type = "g5.2xlarge",
		.subnet_id = "subnet-12345678", .security_group_ids = sgs, .nsecurity_groups = 2,
		.iam_instance_profile = "arn:aws:iam::123456789012:instance-profile/inference-node-role",
		.block_devices = bd, .nblock_devices = 2,
		.user_data = ud, .user_data_len = strlen(ud),
		.metadata_http_tokens = "required", .metadata_hop_limit = 2,
		.tags = tags, .ntags = 3, .tag_volumes = true,
		.client_token = "inference-launch-42",
	};
	struct buf b;

	(void)state;
	buf_init(&b, LIMITS_EC2_QUERY);
	assert_int_equal(ec2_query_run_instances(&p, &b, NULL), 0);
	assert_string_equal(b.data,
	    "Action=RunInstances&Version=2016-11-15"
	    "&ImageId=ami-0123456789abcdef0&InstanceType=g5.2xlarge&MinCount=1&MaxCount=1"
	    "&SubnetId=subnet-12345678"
	    "&SecurityGroupId.1=sg-12345678&SecurityGroupId.2=sg-0123456789abcdef0"
	    "&IamInstanceProfile.Arn=arn%3Aaws%3Aiam%3A%3A123456789012%3Ainstance-profile%2Finference-node-role"
	    "&BlockDeviceMapping.1.DeviceName=%2Fdev%2Fxvda"
	    "&BlockDeviceMapping.1.Ebs.VolumeSize=500&BlockDeviceMapping.1.Ebs.VolumeType=gp3"
	    "&BlockDeviceMapping.1.Ebs.Iops=16000&BlockDeviceMapping.1.Ebs.Throughput=1000"
	    "&BlockDeviceMapping.1.Ebs.Encrypted=true"
	    "&BlockDeviceMapping.1.Ebs.KmsKeyId=arn%3Aaws%3Akms%3Aus-east-1%3A123456789012%3Akey%2Fabcd"
	    "&BlockDeviceMapping.1.Ebs.DeleteOnTermination=true"
	    "&BlockDeviceMapping.2.DeviceName=%2Fdev%2Fxvdb"
	    "&BlockDeviceMapping.2.Ebs.VolumeSize=100&BlockDeviceMapping.2.Ebs.VolumeType=st1"
	    "&BlockDeviceMapping.2.Ebs.Encrypted=false"
	    "&BlockDeviceMapping.2.Ebs.DeleteOnTermination=false"
	    "&UserData=IyEvYmluL2Jhc2gKcG93ZXJvZmYK"
	    "&MetadataOptions.HttpTokens=required&MetadataOptions.HttpEndpoint=enabled"
	    "&MetadataOptions.HttpPutResponseHopLimit=2"
	    "&TagSpecification.1.ResourceType=instance"
	    "&TagSpecification.1.Tag.1.Key=stratos.sh%2Fpool&TagSpecification.1.Tag.1.Value=inference"
	    "&TagSpecification.1.Tag.2.Key=Name&TagSpecification.1.Tag.2.Value=stratos-inference"
	    "&TagSpecification.1.Tag.3.Key=team&TagSpecification.1.Tag.3.Value=a%26b%3Dc%20d"
	    "&TagSpecification.2.ResourceType=volume"
	    "&TagSpecification.2.Tag.1.Key=stratos.sh%2Fpool&TagSpecification.2.Tag.1.Value=inference"
	    "&TagSpecification.2.Tag.2.Key=Name&TagSpecification.2.Tag.2.Value=stratos-inference"
	    "&TagSpecification.2.Tag.3.Key=team&TagSpecification.2.Tag.3.Value=a%26b%3Dc%20d"
	    "&ClientToken=inference-launch-42");
	buf_free(&b);
}

static void
test_query_run_instances_minimal_and_profile_name(void **state)
{
	struct ec2_run_params p = { .image_id = "ami-1", .instance_type = "t3.micro",
	    .iam_instance_profile = "ci-node-role", .count = 3 };
	struct buf b;

	(void)state;
	buf_init(&b, LIMITS_EC2_QUERY);
	assert_int_equal(ec2_query_run_instances(&p, &b, NULL), 0);
	assert_string_equal(b.data, "Action=RunInstances&Version=2016-11-15&ImageId=ami-1"
	    "&InstanceType=t3.micro&MinCount=3&MaxCount=3&IamInstanceProfile.Name=ci-node-role");
	buf_free(&b);
}

/* Base64 of user data of every length mod 3 (padding), and the 16 KiB cap. */
static void
test_query_user_data_base64(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "a", "YQ%3D%3D" }, { "ab", "YWI%3D" }, { "abc", "YWJj" },
		{ "\xff\xfe\xfd", "%2F%2F79" },
	};
	static char big[LIMITS_EC2_USER_DATA + 1];
	struct ec2_run_params p = { .image_id = "ami-1", .instance_type = "t3.micro" };
	struct ec2_error err;
	struct buf b;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[64];
		buf_init(&b, LIMITS_EC2_QUERY);
		p.user_data = cases[i].in;
		p.user_data_len = strlen(cases[i].in);
		assert_int_equal(ec2_query_run_instances(&p, &b, NULL), 0);
		snprintf(want, sizeof(want), "&UserData=%s", cases[i].out);
		assert_non_null(strstr(b.data, want));
		buf_free(&b);
	}
	memset(big, 'x', sizeof(big));
	p.user_data = big;
	p.user_data_len = LIMITS_EC2_USER_DATA;
	buf_init(&b, LIMITS_EC2_QUERY);
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), 0);
	buf_free(&b);
	p.user_data_len = LIMITS_EC2_USER_DATA + 1;
	buf_init(&b, LIMITS_EC2_QUERY);
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	assert_string_equal(err.code, "InvalidParameter");
	assert_non_null(strstr(err.message, "user data"));
	buf_free(&b);
}

static void
test_query_run_instances_rejects(void **state)
{
	const struct ec2_block_device kms_plain = { .device_name = "/dev/xvda", .kms_key_id = "k" };
	const struct ec2_block_device bad_name = { .device_name = "xvda" };
	const struct ec2_tag nokey = { "", "v" };
	struct ec2_run_params base = { .image_id = "ami-1", .instance_type = "t3.micro" };
	struct ec2_run_params p;
	struct ec2_error err;
	struct buf b;

	(void)state;
	buf_init(&b, LIMITS_EC2_QUERY);
	p = base;
	p.image_id = NULL;
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	p = base;
	p.client_token = "has space";
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	p.client_token = "0123456789012345678901234567890123456789012345678901234567890123x";
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	p = base;
	p.block_devices = &kms_plain;
	p.nblock_devices = 1;
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	assert_non_null(strstr(err.message, "encrypted"));
	p.block_devices = &bad_name;
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	p = base;
	p.tags = &nokey;
	p.ntags = 1;
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	p = base;
	p.metadata_http_tokens = "sometimes";
	assert_int_equal(ec2_query_run_instances(&p, &b, &err), -EINVAL);
	buf_free(&b);
}

static void
test_query_other_actions(void **state)
{
	const char *ids[] = { "i-1", "i-2" };
	const char *cluster[] = { "prod" };
	const char *states[] = { "running", "stopped" };
	const struct ec2_filter f[] = {
		{ "tag:stratos.sh/cluster", cluster, 1 },
		{ "instance-state-name", states, 2 },
	};
	const struct ec2_tag tags[] = { { "stratos.sh/state", "standby" }, { "x", NULL } };
	struct ec2_error err;
	struct buf b;

	(void)state;
	buf_init(&b, LIMITS_EC2_QUERY);
	assert_int_equal(ec2_query_instance_ids(EC2_OP_START_INSTANCES, ids, 2, true, &b, NULL), 0);
	assert_string_equal(b.data,
	    "Action=StartInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2");
	buf_reset(&b);
	assert_int_equal(ec2_query_instance_ids(EC2_OP_STOP_INSTANCES, ids, 1, true, &b, NULL), 0);
	assert_string_equal(b.data, "Action=StopInstances&Version=2016-11-15&InstanceId.1=i-1&Force=true");
	buf_reset(&b);
	assert_int_equal(ec2_query_instance_ids(EC2_OP_TERMINATE_INSTANCES, ids, 1, false, &b, NULL), 0);
	assert_string_equal(b.data, "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-1");
	buf_reset(&b);
	assert_int_equal(ec2_query_instance_ids(EC2_OP_START_INSTANCES, ids, 0, false, &b, &err),
	    -EINVAL);
	buf_reset(&b);
	assert_int_equal(ec2_query_describe(f, 2, NULL, 0, 500, "tok/+=", &b, NULL), 0);
	assert_string_equal(b.data, "Action=DescribeInstances&Version=2016-11-15"
	    "&Filter.1.Name=tag%3Astratos.sh%2Fcluster&Filter.1.Value.1=prod"
	    "&Filter.2.Name=instance-state-name&Filter.2.Value.1=running&Filter.2.Value.2=stopped"
	    "&MaxResults=500&NextToken=tok%2F%2B%3D");
	buf_reset(&b);
	/* With ids: no MaxResults (EC2 refuses the pair). */
	assert_int_equal(ec2_query_describe(NULL, 0, ids, 2, 500, NULL, &b, NULL), 0);
	assert_string_equal(b.data, "Action=DescribeInstances&Version=2016-11-15"
	    "&InstanceId.1=i-1&InstanceId.2=i-2");
	buf_reset(&b);
	assert_int_equal(ec2_query_describe(NULL, 0, NULL, 0, 3, NULL, &b, &err), -EINVAL);
	buf_reset(&b);
	assert_int_equal(ec2_query_tags(EC2_OP_CREATE_TAGS, ids, 2, tags, 1, &b, NULL), 0);
	assert_string_equal(b.data, "Action=CreateTags&Version=2016-11-15&ResourceId.1=i-1"
	    "&ResourceId.2=i-2&Tag.1.Key=stratos.sh%2Fstate&Tag.1.Value=standby");
	buf_reset(&b);
	assert_int_equal(ec2_query_tags(EC2_OP_CREATE_TAGS, ids, 1, tags, 2, &b, &err), -EINVAL);
	buf_reset(&b);
	/* DeleteTags: a tag without value deletes whatever value it has. */
	assert_int_equal(ec2_query_tags(EC2_OP_DELETE_TAGS, ids, 1, tags, 2, &b, NULL), 0);
	assert_string_equal(b.data, "Action=DeleteTags&Version=2016-11-15&ResourceId.1=i-1"
	    "&Tag.1.Key=stratos.sh%2Fstate&Tag.1.Value=standby&Tag.2.Key=x");
	buf_free(&b);
}

/* ---- replies ---------------------------------------------------------------- */

static void
test_parse_describe_reservations_tags_token(void **state)
{
	char *xml = test_read_file(FIXTURE("ec2/describe-instances-page1.xml"), NULL);
	struct ec2_instances list = { 0 };
	char *next = NULL;
	int64_t t;

	(void)state;
	assert_int_equal(ec2_parse_instances(xml, strlen(xml), &list, &next), 0);
	assert_int_equal(list.len, 3);
	assert_string_equal(next, "eyJ2IjoiMiIsImMiOiJ0b2tlbi8rPSJ9");
	const struct ec2_instance *a = &list.v[0];
	assert_string_equal(a->id, "i-0123456789abcdef0");
	assert_string_equal(a->image_id, "ami-0123456789abcdef0");
	assert_string_equal(a->instance_type, "m5.2xlarge");
	assert_int_equal(a->state_code, EC2_STATE_RUNNING);
	assert_string_equal(a->state, "running");
	assert_string_equal(a->private_dns_name, "ip-10-0-1-17.ec2.internal");
	assert_string_equal(a->private_ip, "10.0.1.17");
	assert_string_equal(a->availability_zone, "us-east-1a");
	/* The instance's subnet, not the network interface's. */
	assert_string_equal(a->subnet_id, "subnet-12345678");
	assert_string_equal(a->vpc_id, "vpc-0abc1234def567890");
	assert_string_equal(a->client_token, "ci-runners-7f3a");
	assert_int_equal(time_parse_rfc3339("2026-11-28T07:01:02Z", &t), 0);
	assert_int_equal(a->launch_time_ms, t);
	assert_int_equal(a->ntags, 4);
	assert_string_equal(ec2_instance_tag(a, "stratos.sh/pool"), "ci-runners");
	assert_string_equal(ec2_instance_tag(a, "stratos.sh/cluster"), "prod");
	assert_string_equal(ec2_instance_tag(a, "empty"), "");
	assert_null(ec2_instance_tag(a, "decoy"));
	const struct ec2_instance *b = &list.v[1];
	/* The high byte of the state code is internal to AWS. */
	assert_int_equal(b->state_code, EC2_STATE_STOPPED);
	assert_string_equal(b->state_reason, "Client.UserInitiatedShutdown");
	assert_string_equal(b->state_transition_reason, "User initiated (2026-11-28 07:30:00 GMT)");
	assert_string_equal(b->subnet_id, "subnet-87654321");
	/* Second reservation. */
	assert_string_equal(list.v[2].id, "i-0aaaaaaaaaaaaaaaa");
	assert_int_equal(list.v[2].state_code, EC2_STATE_PENDING);
	assert_int_equal(list.v[2].ntags, 0);
	assert_int_equal(list.v[2].launch_time_ms, 0);
	free(next);
	free(xml);

	/* The last page appends nothing and has no token. */
	xml = test_read_file(FIXTURE("ec2/describe-instances-last.xml"), NULL);
	assert_int_equal(ec2_parse_instances(xml, strlen(xml), &list, &next), 0);
	assert_int_equal(list.len, 3);
	assert_null(next);
	free(xml);
	ec2_instances_free(&list);
	assert_int_equal(list.len, 0);
	assert_int_equal(ec2_parse_instances("<Other/>", 8, &list, &next), -EINVAL);
	assert_int_equal(ec2_parse_instances("garbage", 7, &list, &next), -EINVAL);
}

/* Entities decoded, blank values kept (a tag value may be one space). */
static void
test_parse_tag_values_exactly(void **state)
{
	const char *xml = "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
	    "<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId>"
	    "<instanceState><code>16</code><name>running</name></instanceState><tagSet>"
	    "<item><key>team</key><value>ml &amp; infra &lt;3</value></item>"
	    "<item><key>space</key><value> </value></item>"
	    "<item><key>cdata</key><value><![CDATA[a<b]]></value></item>"
	    "</tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>";
	struct ec2_instances list = { 0 };

	(void)state;
	assert_int_equal(ec2_parse_instances(xml, strlen(xml), &list, NULL), 0);
	assert_int_equal(list.len, 1);
	assert_string_equal(ec2_instance_tag(&list.v[0], "team"), "ml & infra <3");
	assert_string_equal(ec2_instance_tag(&list.v[0], "space"), " ");
	assert_string_equal(ec2_instance_tag(&list.v[0], "cdata"), "a<b");
	ec2_instances_free(&list);
	/* An entity bomb or external entity is not expanded. */
	const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
	    "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
	    "<instanceId>i-1</instanceId><tagSet><item><key>k</key><value>&x;</value></item>"
	    "</tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>";
	if (ec2_parse_instances(xxe, strlen(xxe), &list, NULL) == 0 && list.len == 1) {
		const char *v = ec2_instance_tag(&list.v[0], "k");
		assert_true(v == NULL || strstr(v, "root:") == NULL);
	}
	ec2_instances_free(&list);
}

static void
test_parse_run_and_state_changes(void **state)
{
	char *run = test_read_file(FIXTURE("ec2/run-instances.xml"), NULL);
	char *start = test_read_file(FIXTURE("ec2/start-instances.xml"), NULL);
	struct ec2_instances list = { 0 };
	struct ec2_state_changes sc = { 0 };

	(void)state;
	assert_int_equal(ec2_parse_instances(run, strlen(run), &list, NULL), 0);
	assert_int_equal(list.len, 1);
	assert_string_equal(list.v[0].id, "i-1234567890abcdef0");
	assert_string_equal(list.v[0].client_token, "ci-runners-launch-42");
	assert_string_equal(ec2_instance_tag(&list.v[0], "stratos.sh/pool"), "ci-runners");
	ec2_instances_free(&list);
	assert_int_equal(ec2_parse_state_changes(start, strlen(start), &sc), 0);
	assert_int_equal(sc.len, 2);
	assert_string_equal(sc.v[0].id, "i-1234567890abcdef0");
	assert_int_equal(sc.v[0].current_code, EC2_STATE_PENDING);
	assert_string_equal(sc.v[0].current, "pending");
	assert_int_equal(sc.v[0].previous_code, EC2_STATE_STOPPED);
	assert_string_equal(sc.v[0].previous, "stopped");
	assert_int_equal(sc.v[1].current_code, EC2_STATE_RUNNING);
	ec2_state_changes_free(&sc);
	/* A RunInstances reply has instances but no state changes. */
	assert_int_equal(ec2_parse_state_changes(run, strlen(run), &sc), -EINVAL);
	ec2_state_changes_free(&sc);
	free(run);
	free(start);
}

static void
test_parse_error_and_classes(void **state)
{
	char *cap = test_read_file(FIXTURE("ec2/error-capacity.xml"), NULL);
	struct ec2_error err;
	static const struct { const char *code; long status; enum ec2_error_class cls; } table[] = {
		{ "InvalidInstanceID.NotFound", 400, EC2_ERR_NOT_FOUND },
		{ "InvalidAMIID.NotFound", 400, EC2_ERR_NOT_FOUND },
		{ "InsufficientInstanceCapacity", 500, EC2_ERR_CAPACITY },
		{ "InsufficientFreeAddressesInSubnet", 400, EC2_ERR_CAPACITY },
		{ "InstanceLimitExceeded", 400, EC2_ERR_CAPACITY },
		{ "VcpuLimitExceeded", 400, EC2_ERR_CAPACITY },
		{ "IncorrectInstanceState", 400, EC2_ERR_WRONG_STATE },
		{ "RequestLimitExceeded", 503, EC2_ERR_THROTTLED },
		{ "Throttling", 400, EC2_ERR_THROTTLED },
		{ "AuthFailure", 401, EC2_ERR_AUTH },
		{ "UnauthorizedOperation", 403, EC2_ERR_AUTH },
		{ "SignatureDoesNotMatch", 403, EC2_ERR_AUTH },
		{ "RequestExpired", 400, EC2_ERR_AUTH },
		{ "ExpiredToken", 400, EC2_ERR_AUTH },
		{ "InvalidInstanceID.Malformed", 400, EC2_ERR_OTHER },
		{ "IdempotentParameterMismatch", 400, EC2_ERR_OTHER },
		{ "InternalError", 500, EC2_ERR_OTHER },
		{ NULL, 503, EC2_ERR_THROTTLED },
		{ NULL, 403, EC2_ERR_AUTH },
		{ NULL, 502, EC2_ERR_OTHER },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		print_message("%s\n", table[i].code ? table[i].code : "(none)");
		assert_int_equal(ec2_error_classify(table[i].code, table[i].status), table[i].cls);
	}
	memset(&err, 0, sizeof(err));
	assert_int_equal(ec2_parse_error(cap, strlen(cap), 500, &err), 0);
	assert_int_equal(err.cls, EC2_ERR_CAPACITY);
	assert_string_equal(err.code, "InsufficientInstanceCapacity");
	assert_string_equal(err.request_id, "a0e7b9d8-5e0c-4a4b-9d2d-0b7e0EXAMPLE");
	assert_non_null(strstr(err.message, "m5.2xlarge capacity"));
	assert_int_equal(err.http_status, 500);
	assert_int_equal(ec2_parse_error("<html>bad gateway</html>", 24, 502, &err), -EINVAL);
	assert_string_equal(err.code, "HTTP5xx");
	assert_string_equal(ec2_error_class_name(EC2_ERR_UNKNOWN_OUTCOME), "unknown-outcome");
	assert_string_equal(ec2_error_class_name(EC2_ERR_WRONG_STATE), "wrong-state");
	free(cap);
}

/* ---- a scripted EC2 endpoint ------------------------------------------------------ */

enum step_kind { STEP_REPLY, STEP_DROP, STEP_SLOW };

struct step {
	enum step_kind kind;
	int status;
	const char *body;      /* fixture text or literal */
	int delay_ms;
};

#define MAX_STEPS 256

static struct {
	pthread_mutex_t lock;
	struct step steps[MAX_STEPS];
	size_t nsteps, next;
	int requests;
	char last_head[8192];
	char last_body[8192];
	char bodies[8][512];       /* the first few request bodies since reset */
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static char *fx_start, *fx_page1, *fx_last, *fx_throttled, *fx_capacity, *fx_run;

static void
script_reset(void)
{
	pthread_mutex_lock(&srv.lock);
	srv.nsteps = srv.next = 0;
	srv.requests = 0;
	__atomic_store_n(&fake_http_connections, 0, __ATOMIC_SEQ_CST);
	memset(srv.bodies, 0, sizeof(srv.bodies));
	pthread_mutex_unlock(&srv.lock);
}

static void
script(enum step_kind kind, int status, const char *body, int delay_ms)
{
	pthread_mutex_lock(&srv.lock);
	assert_true(srv.nsteps < MAX_STEPS);
	srv.steps[srv.nsteps++] = (struct step){ kind, status, body, delay_ms };
	pthread_mutex_unlock(&srv.lock);
}

/* Pings (GET) are refused as EC2 does; every other request takes the next scripted step. */
static void
h_ec2(int fd, const struct req *r)
{
	struct step st = { STEP_REPLY, 200, fx_start, 0 };

	pthread_mutex_lock(&srv.lock);
	if (strcmp(r->method, "GET") != 0) {
		snprintf(srv.last_head, sizeof(srv.last_head), "%s", r->head);
		snprintf(srv.last_body, sizeof(srv.last_body), "%.*s", (int)r->body_len, r->body);
		if (srv.requests < 8)
			snprintf(srv.bodies[srv.requests], sizeof(srv.bodies[0]), "%.*s",
			    (int)r->body_len, r->body);
		srv.requests++;
		if (srv.next < srv.nsteps)
			st = srv.steps[srv.next++];
	} else {
		st.status = 400;
		st.body = "<Response><Errors><Error><Code>MissingAction</Code></Error></Errors></Response>";
	}
	pthread_mutex_unlock(&srv.lock);
	if (st.kind == STEP_DROP) {
		fake_http_drop(fd);
		return;
	}
	if (st.delay_ms > 0)
		usleep((useconds_t)st.delay_ms * 1000);
	fake_http_reply(fd, st.status, "text/xml;charset=UTF-8", NULL, st.body);
}

static struct aws_credentials_provider *creds;

static int
setup(void **state)
{
	char *env[] = { "AWS_ACCESS_KEY_ID=AKIASTRATOSSIM000001",
	    "AWS_SECRET_ACCESS_KEY=stratosSimSecretKey00000000000000000000",
	    "AWS_SESSION_TOKEN=session/token+=", NULL };
	struct aws_credentials_options opts = { .env = env };
	struct aws_credentials_error err;

	(void)state;
	log_set_level(LOG_LEVEL_ERROR);
	fx_start = test_read_file(FIXTURE("ec2/start-instances.xml"), NULL);
	fx_page1 = test_read_file(FIXTURE("ec2/describe-instances-page1.xml"), NULL);
	fx_last = test_read_file(FIXTURE("ec2/describe-instances-last.xml"), NULL);
	fx_throttled = test_read_file(FIXTURE("ec2/error-throttled.xml"), NULL);
	fx_capacity = test_read_file(FIXTURE("ec2/error-capacity.xml"), NULL);
	fx_run = test_read_file(FIXTURE("ec2/run-instances.xml"), NULL);
	handler = h_ec2;
	if (fake_http_start() < 0)
		return -1;
	return aws_credentials_provider_new(&opts, &creds, &err);
}

static int
teardown(void **state)
{
	(void)state;
	aws_credentials_provider_free(creds);
	free(fx_start);
	free(fx_page1);
	free(fx_last);
	free(fx_throttled);
	free(fx_capacity);
	free(fx_run);
	return 0;
}

static struct ec2_client *
client(const char *rates, unsigned connections)
{
	char url[64];
	struct ec2_options o = { .region = "us-east-1", .endpoint = url, .credentials = creds,
	    .rate_limits = rates, .connections = connections, .keepalive_ms = -1 };
	struct ec2_client *c;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", server_port);
	script_reset();
	assert_int_equal(ec2_client_new(&o, &c, NULL), 0);
	return c;
}

static const char *one_id[] = { "i-1234567890abcdef0" };

static void
test_call_is_signed_and_reuses_the_connection(void **state)
{
	struct ec2_client *c = client(NULL, 2);
	struct ec2_state_changes sc = { 0 };
	struct ec2_client_stats st;
	struct ec2_error err;
	char want[128];

	(void)state;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, &sc, &err), 0);
		assert_int_equal(err.attempts, 1);
		assert_int_equal(sc.len, 2);
		ec2_state_changes_free(&sc);
	}
	pthread_mutex_lock(&srv.lock);
	assert_int_equal(__atomic_load_n(&fake_http_connections, __ATOMIC_SEQ_CST), 1);
	assert_string_equal(srv.last_body,
	    "Action=StartInstances&Version=2016-11-15&InstanceId.1=i-1234567890abcdef0");
	assert_non_null(strstr(srv.last_head, "POST / HTTP/1.1\r\n"));
	snprintf(want, sizeof(want), "\r\nHost: 127.0.0.1:%d\r\n", server_port);
	assert_non_null(strstr(srv.last_head, want));
	assert_non_null(strstr(srv.last_head,
	    "\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"));
	assert_non_null(strstr(srv.last_head, "\r\nX-Amz-Security-Token: session/token+=\r\n"));
	assert_non_null(strstr(srv.last_head, "\r\nX-Amz-Date: "));
	assert_non_null(strstr(srv.last_head, "\r\nAuthorization: AWS4-HMAC-SHA256 "
	    "Credential=AKIASTRATOSSIM000001/"));
	assert_non_null(strstr(srv.last_head, "/us-east-1/ec2/aws4_request, SignedHeaders="
	    "content-type;host;x-amz-date;x-amz-security-token, Signature="));
	pthread_mutex_unlock(&srv.lock);
	ec2_client_stats(c, &st);
	assert_int_equal(st.requests, 5);
	assert_int_equal(st.reused, 4);
	assert_int_equal(st.new_connections, 1);
	ec2_client_free(c);
}

static void
test_throttling_is_retried_with_backoff(void **state)
{
	struct ec2_client *c = client(NULL, 1);
	struct ec2_error err;
	int64_t t0 = time_mono_ms();

	(void)state;
	script(STEP_REPLY, 503, fx_throttled, 0);
	script(STEP_REPLY, 503, fx_throttled, 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), 0);
	assert_int_equal(err.attempts, 3);
	/* Full jitter over [0,1 s) then [0,2 s). */
	assert_true(time_mono_ms() - t0 < 3500);
	/* A third throttle in a row ends the call: 3 attempts, the code kept. */
	script(STEP_REPLY, 503, fx_throttled, 0);
	script(STEP_REPLY, 503, fx_throttled, 0);
	script(STEP_REPLY, 503, fx_throttled, 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), -EAGAIN);
	assert_int_equal(err.cls, EC2_ERR_THROTTLED);
	assert_int_equal(err.attempts, 3);
	assert_string_equal(err.code, "RequestLimitExceeded");
	assert_string_equal(err.request_id, "5b1e4f8c-0000-4000-8000-000000000001");
	assert_int_equal(err.http_status, 503);
	ec2_client_free(c);
}

static void
test_definite_errors_are_not_retried(void **state)
{
	struct ec2_client *c = client(NULL, 1);
	struct ec2_error err;

	(void)state;
	script(STEP_REPLY, 500, fx_capacity, 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), -ENOSPC);
	assert_int_equal(err.cls, EC2_ERR_CAPACITY);
	assert_int_equal(err.attempts, 1);
	script(STEP_REPLY, 400, "<Response><Errors><Error><Code>IncorrectInstanceState</Code>"
	    "<Message>The instance 'i-1' is not in a state from which it can be started.</Message>"
	    "</Error></Errors><RequestID>r-2</RequestID></Response>", 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), -EBUSY);
	assert_int_equal(err.cls, EC2_ERR_WRONG_STATE);
	assert_string_equal(err.request_id, "r-2");
	script(STEP_REPLY, 400, "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>"
	    "<Message>The instance ID 'i-1' does not exist</Message></Error></Errors>"
	    "<RequestID>r-3</RequestID></Response>", 0);
	assert_int_equal(ec2_stop_instances(c, one_id, 1, true, NULL, NULL, &err), -ENOENT);
	assert_int_equal(err.cls, EC2_ERR_NOT_FOUND);
	pthread_mutex_lock(&srv.lock);
	assert_int_equal(srv.requests, 3);
	assert_string_equal(srv.last_body,
	    "Action=StopInstances&Version=2016-11-15&InstanceId.1=i-1234567890abcdef0&Force=true");
	pthread_mutex_unlock(&srv.lock);
	ec2_client_free(c);
}

/* The fast path's budget bounds retries, backoff sleeps and each attempt. */
static void
test_deadline_wins(void **state)
{
	struct ec2_client *c = client(NULL, 1);
	struct ec2_error err;
	struct ec2_call call;
	int64_t t0;

	(void)state;
	for (int i = 0; i < 3; i++)
		script(STEP_REPLY, 503, fx_throttled, 0);
	t0 = time_mono_ms();
	call = (struct ec2_call){ .deadline_ms = t0 + 300 };
	assert_int_equal(ec2_start_instances(c, one_id, 1, &call, NULL, &err), -EAGAIN);
	assert_true(time_mono_ms() - t0 <= 400);   /* slack for a loaded CI machine */
	assert_int_equal(err.cls, EC2_ERR_THROTTLED);

	/* A server that does not answer: the attempt is cut at the deadline; the outcome is unknown. */
	script_reset();
	script(STEP_SLOW, 200, fx_start, 1500);
	t0 = time_mono_ms();
	call = (struct ec2_call){ .deadline_ms = t0 + 400 };
	assert_int_equal(ec2_start_instances(c, one_id, 1, &call, NULL, &err), -ETIMEDOUT);
	int64_t took = time_mono_ms() - t0;
	assert_true(took >= 390 && took <= 550);
	assert_int_equal(err.cls, EC2_ERR_UNKNOWN_OUTCOME);
	assert_string_equal(err.code, "RequestTimeout");
	assert_int_equal(err.attempts, 1);

	/* A deadline already past sends nothing. */
	script_reset();
	call = (struct ec2_call){ .deadline_ms = time_mono_ms() - 1 };
	assert_int_equal(ec2_start_instances(c, one_id, 1, &call, NULL, &err), -EIO);
	assert_string_equal(err.code, "DeadlineExceeded");
	assert_int_equal(err.attempts, 0);
	usleep(1200 * 1000);   /* let the slow reply drain */
	pthread_mutex_lock(&srv.lock);
	assert_int_equal(srv.requests, 0);
	pthread_mutex_unlock(&srv.lock);
	ec2_client_free(c);
}

static void
test_dropped_connection(void **state)
{
	struct ec2_client *c = client(NULL, 1);
	struct ec2_error err;
	struct ec2_call once = { .max_attempts = 1 };
	struct ec2_instances list = { 0 };
	const struct ec2_tag tags[] = { { "stratos.sh/pool", "p" } };
	struct ec2_run_params p = { .image_id = "ami-1", .instance_type = "t3.micro",
	    .tags = tags, .ntags = 1, .client_token = "p-launch-1" };

	(void)state;
	/*
	 * Each case starts on a new client: libcurl itself resends a request
	 * once when a *reused* connection dies before any reply byte (safe
	 * here: every action the client uses is idempotent or carries a
	 * ClientToken), which would hide a single scripted drop.
	 */
	/* Dropped after the request was read: retried, and the retry succeeds. */
	script(STEP_DROP, 0, NULL, 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), 0);
	assert_int_equal(err.attempts, 2);
	ec2_client_free(c);
	/* Without retries the outcome is unknown, not a failure. */
	c = client(NULL, 1);
	script(STEP_DROP, 0, NULL, 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, &once, NULL, &err), -ETIMEDOUT);
	assert_int_equal(err.cls, EC2_ERR_UNKNOWN_OUTCOME);
	assert_string_equal(err.code, "ConnectionDropped");
	ec2_client_free(c);
	/* Dropped, then refused: an earlier attempt may have acted, so still unknown. */
	c = client(NULL, 1);
	script(STEP_DROP, 0, NULL, 0);
	script(STEP_REPLY, 400, "<Response><Errors><Error><Code>IncorrectInstanceState</Code>"
	    "<Message>pending</Message></Error></Errors><RequestID>r</RequestID></Response>", 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), -ETIMEDOUT);
	assert_int_equal(err.cls, EC2_ERR_UNKNOWN_OUTCOME);
	assert_string_equal(err.code, "IncorrectInstanceState");
	ec2_client_free(c);
	c = client(NULL, 1);
	/* RunInstances retried after a drop resends the same ClientToken. */
	script(STEP_DROP, 0, NULL, 0);
	script(STEP_REPLY, 200, fx_run, 0);
	assert_int_equal(ec2_run_instances(c, &p, NULL, &list, &err), 0);
	assert_int_equal(list.len, 1);
	pthread_mutex_lock(&srv.lock);
	assert_int_equal(srv.requests, 2);
	assert_non_null(strstr(srv.bodies[0], "&ClientToken=p-launch-1"));
	assert_string_equal(srv.bodies[0], srv.bodies[1]);
	pthread_mutex_unlock(&srv.lock);
	ec2_instances_free(&list);
	/* Without a token the client makes one, the same for every attempt. */
	p.client_token = NULL;
	ec2_client_free(c);
	c = client(NULL, 1);
	script(STEP_DROP, 0, NULL, 0);
	script(STEP_REPLY, 200, fx_run, 0);
	assert_int_equal(ec2_run_instances(c, &p, NULL, &list, &err), 0);
	pthread_mutex_lock(&srv.lock);
	assert_non_null(strstr(srv.bodies[0], "&ClientToken=stratos-"));
	assert_string_equal(srv.bodies[0], srv.bodies[1]);
	pthread_mutex_unlock(&srv.lock);
	ec2_instances_free(&list);
	ec2_client_free(c);

	/* Nothing listening: a definite failure (nothing was sent). */
	struct ec2_options o = { .region = "us-east-1", .endpoint = "http://127.0.0.1:1/",
	    .credentials = creds, .keepalive_ms = -1 };
	assert_int_equal(ec2_client_new(&o, &c, &err), 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, &once, NULL, &err), -EIO);
	assert_int_equal(err.cls, EC2_ERR_OTHER);
	assert_string_equal(err.code, "ConnectionFailed");
	ec2_client_free(c);
}

/* Every retry draws on the quota; once empty, calls fail after one attempt. */
static void
test_retry_quota_stops_storms(void **state)
{
	struct ec2_client *c = client(NULL, 1);
	struct ec2_client_stats st;
	struct ec2_error err;
	struct ec2_call two = { .max_attempts = 2 };
	int calls = 0;

	(void)state;
	/* Dropped connections cost 10 tokens per retry: 50 retries empty the 500. */
	for (;;) {
		script_reset();
		script(STEP_DROP, 0, NULL, 0);
		script(STEP_DROP, 0, NULL, 0);
		ec2_start_instances(c, one_id, 1, &two, NULL, &err);
		calls++;
		if (err.attempts == 1)
			break;
		assert_int_equal(err.attempts, 2);
		assert_true(calls <= 50);
	}
	assert_int_equal(calls, 51);
	ec2_client_stats(c, &st);
	assert_int_equal(st.quota, 0);
	assert_non_null(strstr(err.message, "retry quota exhausted"));
	/* Successes refill it one token at a time. */
	script_reset();
	for (int i = 0; i < 10; i++)
		assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), 0);
	ec2_client_stats(c, &st);
	assert_int_equal(st.quota, 10);
	ec2_client_free(c);
}

static void
test_dry_run(void **state)
{
	struct ec2_client *c = client(NULL, 1);
	struct ec2_error err;
	struct ec2_call dry = { .dry_run = true };
	struct ec2_run_params p = { .image_id = "ami-1", .instance_type = "t3.micro" };

	(void)state;
	script(STEP_REPLY, 412, "<Response><Errors><Error><Code>DryRunOperation</Code><Message>"
	    "Request would have succeeded, but DryRun flag is set.</Message></Error></Errors>"
	    "<RequestID>d1</RequestID></Response>", 0);
	assert_int_equal(ec2_run_instances(c, &p, &dry, NULL, &err), 0);
	pthread_mutex_lock(&srv.lock);
	assert_non_null(strstr(srv.last_body, "&DryRun=true"));
	pthread_mutex_unlock(&srv.lock);
	script(STEP_REPLY, 403, "<Response><Errors><Error><Code>UnauthorizedOperation</Code>"
	    "<Message>You are not authorized to perform this operation.</Message></Error>"
	    "</Errors><RequestID>d2</RequestID></Response>", 0);
	assert_int_equal(ec2_terminate_instances(c, one_id, 1, &dry, NULL, &err), -EACCES);
	assert_int_equal(err.cls, EC2_ERR_AUTH);
	assert_string_equal(err.code, "UnauthorizedOperation");
	/* DryRunOperation without DryRun set is not a success. */
	script(STEP_REPLY, 412, "<Response><Errors><Error><Code>DryRunOperation</Code>"
	    "</Error></Errors></Response>", 0);
	assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), -EIO);
	ec2_client_free(c);
}

static void
test_rate_limit_per_operation(void **state)
{
	struct ec2_client *c = client("Start=10/1,describe=0", 1);
	struct ec2_instances list = { 0 };
	struct ec2_error err;
	struct ec2_call call;
	int64_t t0 = time_mono_ms();

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(ec2_start_instances(c, one_id, 1, NULL, NULL, &err), 0);
	/* Burst 1 at 10/s: 3 waits of 100 ms. */
	assert_true(time_mono_ms() - t0 >= 280);
	/* A token 100 ms away does not fit a 20 ms budget: refused at once, nothing sent. */
	pthread_mutex_lock(&srv.lock);
	int before = srv.requests;
	pthread_mutex_unlock(&srv.lock);
	t0 = time_mono_ms();
	call = (struct ec2_call){ .deadline_ms = t0 + 20 };
	assert_int_equal(ec2_start_instances(c, one_id, 1, &call, NULL, &err), -EAGAIN);
	assert_string_equal(err.code, "ClientRateLimited");
	assert_true(time_mono_ms() - t0 < 20);
	pthread_mutex_lock(&srv.lock);
	assert_int_equal(srv.requests, before);
	pthread_mutex_unlock(&srv.lock);
	/* Describe is unlimited here: many at once. */
	for (int i = 0; i < 20; i++) {
		script(STEP_REPLY, 200, fx_last, 0);
		assert_int_equal(ec2_describe_instances(c, NULL, 0, one_id, 1, NULL, &list, &err), 0);
	}
	ec2_instances_free(&list);
	ec2_client_free(c);

	struct ec2_options o = { .region = "us-east-1", .endpoint = "http://127.0.0.1:1/",
	    .credentials = creds, .rate_limits = "Reboot=1/1" };
	assert_int_equal(ec2_client_new(&o, &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "Reboot"));
	o.rate_limits = "Start=fast";
	assert_int_equal(ec2_client_new(&o, &c, &err), -EINVAL);
}

static void
test_describe_follows_next_token(void **state)
{
	struct ec2_client *c = client(NULL, 1);
	struct ec2_instances list = { 0 };
	struct ec2_error err;
	const char *states[] = { "running", "stopped", NULL };

	(void)state;
	script(STEP_REPLY, 200, fx_page1, 0);
	script(STEP_REPLY, 200, fx_page1, 0);
	script(STEP_REPLY, 200, fx_last, 0);
	assert_int_equal(ec2_describe_cluster_instances(c, "prod", "ci-runners", states, NULL,
	    &list, &err), 0);
	assert_int_equal(list.len, 6);
	pthread_mutex_lock(&srv.lock);
	assert_int_equal(srv.requests, 3);
	assert_string_equal(srv.bodies[0], "Action=DescribeInstances&Version=2016-11-15"
	    "&Filter.1.Name=tag%3Astratos.sh%2Fcluster&Filter.1.Value.1=prod"
	    "&Filter.2.Name=tag%3Astratos.sh%2Fpool&Filter.2.Value.1=ci-runners"
	    "&Filter.3.Name=instance-state-name&Filter.3.Value.1=running&Filter.3.Value.2=stopped"
	    "&MaxResults=500");
	assert_non_null(strstr(srv.bodies[1], "&MaxResults=500&NextToken=eyJ2IjoiMiIsImMiOiJ0b2tlbi8rPSJ9"));
	pthread_mutex_unlock(&srv.lock);
	ec2_instances_free(&list);
	/* The cluster filter is mandatory. */
	assert_int_equal(ec2_describe_cluster_instances(c, "", NULL, NULL, NULL, &list, &err),
	    -EINVAL);
	ec2_client_free(c);
}

struct hammer {
	struct ec2_client *c;
	int ok;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct ec2_error err;

	for (int i = 0; i < 10; i++)
		if (ec2_start_instances(h->c, one_id, 1, NULL, NULL, &err) == 0)
			__atomic_add_fetch(&h->ok, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Six threads share a pool of two connections: all calls succeed on at most two connections. */
static void
test_threads_share_the_pool(void **state)
{
	struct hammer h = { .c = client("Start=0", 2) };
	struct ec2_client_stats st;
	pthread_t t[6];

	(void)state;
	for (int i = 0; i < 6; i++)
		pthread_create(&t[i], NULL, hammer_main, &h);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(h.ok, 60);
	pthread_mutex_lock(&srv.lock);
	assert_true(__atomic_load_n(&fake_http_connections, __ATOMIC_SEQ_CST) <= 2);
	assert_int_equal(srv.requests, 60);
	pthread_mutex_unlock(&srv.lock);
	ec2_client_stats(h.c, &st);
	assert_int_equal(st.requests, 60);
	assert_true(st.new_connections <= 2);
	ec2_client_free(h.c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_run_instances_every_parameter),
		cmocka_unit_test(test_query_run_instances_minimal_and_profile_name),
		cmocka_unit_test(test_query_user_data_base64),
		cmocka_unit_test(test_query_run_instances_rejects),
		cmocka_unit_test(test_query_other_actions),
		cmocka_unit_test(test_parse_describe_reservations_tags_token),
		cmocka_unit_test(test_parse_tag_values_exactly),
		cmocka_unit_test(test_parse_run_and_state_changes),
		cmocka_unit_test(test_parse_error_and_classes),
		cmocka_unit_test(test_call_is_signed_and_reuses_the_connection),
		cmocka_unit_test(test_throttling_is_retried_with_backoff),
		cmocka_unit_test(test_definite_errors_are_not_retried),
		cmocka_unit_test(test_deadline_wins),
		cmocka_unit_test(test_dropped_connection),
		cmocka_unit_test(test_retry_quota_stops_storms),
		cmocka_unit_test(test_dry_run),
		cmocka_unit_test(test_rate_limit_per_operation),
		cmocka_unit_test(test_describe_follows_next_token),
		cmocka_unit_test(test_threads_share_the_pool),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
