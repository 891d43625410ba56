/* Unit tests for the NodePool / AWSNodeClass rules: one case per rule, the invalid fixture, the seed examples, UPDATE and DELETE, files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

/* Rule tables leave the warnings column out when warnings are not checked. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "stratos/fieldcheck.h"
#include "stratos/pools_file.h"
#include "stratos/crd_validate.h"
#include "stratos/yamljson.h"

#define BASE_POOL "{'apiVersion':'stratos.sh/v1alpha1','kind':'NodePool','metadata':{'name':'p1'}," \
	"'spec':{'poolSize':3,'minStandby':1,'template':{'nodeClassRef':{'kind':'AWSNodeClass','name':'c1'}," \
	"'labels':{'stratos.sh/pool':'p1','team':'a'}," \
	"'startupTaints':[{'key':'example.com/boot','value':'true','effect':'NoSchedule'}]," \
	"'startupTaintRemoval':'WhenReady'}," \
	"'preWarm':{'timeout':'15m','timeoutAction':'stop','imagesToPull':['nginx:1.27']}," \
	"'scaleDown':{'enabled':true,'emptyNodeTTL':'5m','drainTimeout':'1m'}}}"

#define BASE_CLASS "{'apiVersion':'stratos.sh/v1alpha1','kind':'AWSNodeClass','metadata':{'name':'c1'}," \
	"'spec':{'instanceType':'m5.large','ami':'ami-0123456789abcdef0','subnetIds':['subnet-12345678']," \
	"'securityGroupIds':['sg-12345678'],'iamInstanceProfile':'node-role'," \
	"'blockDeviceMappings':[{'deviceName':'/dev/xvda','volumeSize':100}]," \
	"'userData':'#!/bin/sh\\npoweroff'," \
	"'metadataOptions':{'httpTokens':'required','httpPutResponseHopLimit':2},'tags':{'team':'a'}}}"

/*
 * Sets (or with value NULL deletes) the member at a dotted path; numeric
 * segments index arrays ("spec.template.startupTaints.0.effect"). After
 * "labels" or "tags" the rest of the path is one key (label keys have dots).
 */
static void
set_path(json_t *obj, const char *path, json_t *value)
{
	char buf[256], *seg, *save = NULL, *next;
	json_t *cur = obj;

	snprintf(buf, sizeof(buf), "%s", path);
	seg = strtok_r(buf, ".", &save);
	while (seg != NULL) {
		bool map = strcmp(seg, "labels") == 0 || strcmp(seg, "tags") == 0;
		next = strtok_r(NULL, map ? "" : ".", &save);
		if (next == NULL) {
			if (json_is_array(cur)) {
				size_t ix = (size_t)atoi(seg);
				if (value == NULL)
					json_array_remove(cur, ix);
				else if (ix == json_array_size(cur))
					json_array_append_new(cur, value);
				else
					json_array_set_new(cur, ix, value);
			} else if (value == NULL) {
				json_object_del(cur, seg);
			} else {
				json_object_set_new(cur, seg, value);
			}
			return;
		}
		cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(seg)) : json_object_get(cur, seg);
		if (cur == NULL)
			fail_msg("no %s in the test object", path);
		seg = next;
	}
}

/* rep's issues as "field: message", joined with "\n". */
static char *
issues(const struct fieldcheck_issue *v, size_t n)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append_str(&b, "\n");
		fieldcheck_issue_format(&v[i], &b);
	}
	return buf_take(&b);
}

static void
assert_issues(const struct fieldcheck_issue *v, size_t n, const char *want)
{
	char *got = issues(v, n);

	if (strcmp(got, want) != 0)
		fail_msg("got:\n%s\nwant:\n%s", got, want);
	free(got);
}

/* One rule case: set path to value on the base object, expect exactly these violations (or warnings). */
struct rule_case {
	const char *path;
	const char *value;      /* JSON with single quotes; NULL deletes the member */
	const char *violations; /* "" when valid; lines joined with \n */
	const char *warnings;   /* NULL: not checked */
};

static void
run_cases(const char *base, bool pool, const struct rule_case *cases, size_t n,
    const struct pools_snapshot *snap)
{
	for (size_t i = 0; i < n; i++) {
		json_t *obj = J(base);
		struct fieldcheck_report rep;
		struct crd_validate_input in = { .op = CRD_VALIDATE_CREATE, .snap = snap, .nodes = -1 };
		char *got;

		if (cases[i].path != NULL)
			set_path(obj, cases[i].path, cases[i].value != NULL ? J(cases[i].value) : NULL);
		in.object = obj;
		fieldcheck_report_init(&rep);
		assert_int_equal(pool ? crd_validate_nodepool(&in, &rep) : crd_validate_nodeclass(&in, &rep), 0);
		got = issues(rep.violations, rep.nviolations);
		if (strcmp(got, cases[i].violations) != 0)
			fail_msg("case %zu (%s = %s):\ngot:\n%s\nwant:\n%s", i, cases[i].path,
			    cases[i].value ? cases[i].value : "(deleted)", got, cases[i].violations);
		free(got);
		if (cases[i].warnings != NULL) {
			got = issues(rep.warnings, rep.nwarnings);
			if (strcmp(got, cases[i].warnings) != 0)
				fail_msg("case %zu (%s) warnings:\ngot:\n%s\nwant:\n%s", i, cases[i].path, got,
				    cases[i].warnings);
			free(got);
		}
		fieldcheck_report_free(&rep);
		json_decref(obj);
	}
}

#define NCASES(c) (sizeof(c) / sizeof((c)[0]))
#define BAD_NAME_CHARS "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
#define DNS_SUBDOMAIN "must be a DNS-1123 subdomain (at most 253 lower-case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character)"
#define IMAGE "must be an image reference ([registry[:port]/]path[:tag][@digest]): "

static void
test_base_objects_valid(void **state)
{
	static const struct rule_case ok[] = { { NULL, NULL, "", "" } };

	(void)state;
	run_cases(BASE_POOL, true, ok, 1, NULL);
	run_cases(BASE_CLASS, false, ok, 1, NULL);
}

static void
test_nodepool_rules(void **state)
{
	static const struct rule_case cases[] = {
		/* metadata */
		{ "metadata.name", NULL, "metadata.name: is required" },
		{ "metadata", NULL, "metadata.name: is required" },
		{ "metadata.name", "'Pool_1'", "metadata.name: " DNS_SUBDOMAIN "\n"
		  "spec.template.labels[stratos.sh/pool]: must equal the NodePool name \"Pool_1\"" },
		{ "metadata.name", "'p1234567890123456789012345678901234567890123456789012345678901234'",
		  "metadata.name: must be no more than 63 characters (it is the value of the stratos.sh/pool label)\n"
		  "spec.template.labels[stratos.sh/pool]: must equal the NodePool name \"p1234567890123456789012345678901234567890123456789012345678901234\"" },
		{ "spec.template.labels.stratos.sh/pool", "'ci.runners'", "spec.template.labels[stratos.sh/pool]: must equal the NodePool name \"p1\"" },
		/* poolSize / minStandby */
		{ "spec.poolSize", NULL, "spec.poolSize: is required" },
		{ "spec.poolSize", "0", "spec.poolSize: must be between 1 and 1000" },
		{ "spec.poolSize", "1001", "spec.poolSize: must be between 1 and 1000" },
		{ "spec.poolSize", "1000", "" },
		{ "spec.minStandby", NULL, "spec.minStandby: is required" },
		{ "spec.minStandby", "-1", "spec.minStandby: must be between 0 and 1000" },
		{ "spec.minStandby", "4", "spec.minStandby: must not be greater than spec.poolSize (3)" },
		{ "spec.minStandby", "3", "" },
		{ "spec.minStandby", "0", "" },
		/* template */
		{ "spec.template", NULL, "spec.template: is required" },
		{ "spec.template.nodeClassRef", NULL, "spec.template.nodeClassRef: is required" },
		{ "spec.template.nodeClassRef.kind", "'EC2NodeClass'",
		  "spec.template.nodeClassRef.kind: must be one of AWSNodeClass" },
		{ "spec.template.nodeClassRef.kind", NULL, "" },
		{ "spec.template.nodeClassRef.name", NULL, "spec.template.nodeClassRef.name: is required" },
		{ "spec.template.nodeClassRef.name", "'My_Class'",
		  "spec.template.nodeClassRef.name: " DNS_SUBDOMAIN },
		{ "spec.template.nodeClassRef.name", "'a.b-c'", "" },
		/* labels: keys, values, the pool label, the reserved prefix */
		{ "spec.template.labels.a~b", "'x'", "spec.template.labels[a~b]: invalid key: name part " BAD_NAME_CHARS },
		{ "spec.template.labels.-x", "'x'", "spec.template.labels[-x]: invalid key: name part " BAD_NAME_CHARS },
		{ "spec.template.labels.a/b/c", "'x'", "spec.template.labels[a/b/c]: invalid key: must be a name with an optional DNS subdomain prefix and one '/' (like example.com/name)" },
		{ "spec.template.labels./x", "'x'", "spec.template.labels[/x]: invalid key: prefix part must be non-empty" },
		{ "spec.template.labels.example.com/", "'x'", "spec.template.labels[example.com/]: invalid key: name part must be non-empty" },
		{ "spec.template.labels.Example.com/x", "'x'", "spec.template.labels[Example.com/x]: invalid key: prefix part must be a DNS-1123 subdomain (lower-case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character)" },
		{ "spec.template.labels.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "'x'",
		  "spec.template.labels[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]: invalid key: name part must be no more than 63 characters" },
		{ "spec.template.labels.example.com/Node_Role-1", "''", "" },
		{ "spec.template.labels.team", "'-a'", "spec.template.labels[team]: invalid value: " BAD_NAME_CHARS },
		{ "spec.template.labels.team", "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
		  "spec.template.labels[team]: invalid value: must be no more than 63 characters" },
		{ "spec.template.labels.team", "5", "spec.template.labels[team]: must be a string" },
		{ "spec.template.labels.stratos.sh/pool", "'p2'", "spec.template.labels[stratos.sh/pool]: must equal the NodePool name \"p1\"" },
		{ "spec.template.labels.stratos.sh/pool", NULL, "" },
		{ "spec.template.labels.stratos.sh/state", "'running'", "spec.template.labels[stratos.sh/state]: the stratos.sh/ prefix is reserved (only stratos.sh/pool may be set)" },
		/* startup taints */
		{ "spec.template.startupTaints.0.key", NULL, "spec.template.startupTaints[0].key: is required" },
		{ "spec.template.startupTaints.0.key", "'a b'", "spec.template.startupTaints[0].key: name part " BAD_NAME_CHARS },
		{ "spec.template.startupTaints.0.key", "'stratos.sh/standby'", "spec.template.startupTaints[0].key: the stratos.sh/ prefix is reserved for the taints Stratos manages" },
		{ "spec.template.startupTaints.0.value", NULL, "" },
		{ "spec.template.startupTaints.0.value", "'not ok'", "spec.template.startupTaints[0].value: " BAD_NAME_CHARS },
		{ "spec.template.startupTaints.0.effect", NULL, "spec.template.startupTaints[0].effect: is required" },
		{ "spec.template.startupTaints.0.effect", "'NoSchedul'", "spec.template.startupTaints[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute" },
		{ "spec.template.startupTaints.0.effect", "'NoExecute'", "" },
		{ "spec.template.startupTaints.1", "{'key':'example.com/boot','effect':'NoSchedule'}",
		  "spec.template.startupTaints[1]: duplicate key and effect" },
		{ "spec.template.startupTaints.1", "{'key':'example.com/boot','effect':'NoExecute'}", "" },
		{ "spec.template.startupTaints.0.timeAdded", "'x'", "spec.template.startupTaints[0].timeAdded: unknown field" },
		{ "spec.template.startupTaintRemoval", "'Eventually'", "spec.template.startupTaintRemoval: must be one of WhenNetworkReady, WhenReady, Never" },
		{ "spec.template.startupTaintRemoval", "'Never'", "" },
		/* preWarm */
		{ "spec.preWarm.timeout", "'15 minutes'", "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m" },
		{ "spec.preWarm.timeout", "'59s'", "spec.preWarm.timeout: must be between 1m and 2h" },
		{ "spec.preWarm.timeout", "'2h0m1s'", "spec.preWarm.timeout: must be between 1m and 2h" },
		{ "spec.preWarm.timeout", "'-5m'", "spec.preWarm.timeout: must not be negative" },
		{ "spec.preWarm.timeout", "'1m'", "" },
		{ "spec.preWarm.timeout", "'1h30m'", "" },
		{ "spec.preWarm.timeout", "'2h'", "" },
		{ "spec.preWarm.timeoutAction", "'kill'", "spec.preWarm.timeoutAction: must be one of terminate, stop" },
		{ "spec.preWarm.timeoutAction", "'terminate'", "" },
		{ "spec.preWarm.imagesToPull.0", "'Nginx'", "spec.preWarm.imagesToPull[0]: " IMAGE "repository name must be lowercase" },
		{ "spec.preWarm.imagesToPull.0", "'nginx:'", "spec.preWarm.imagesToPull[0]: " IMAGE "invalid tag" },
		{ "spec.preWarm.imagesToPull.0", "'nginx@sha256:abcd'", "spec.preWarm.imagesToPull[0]: " IMAGE "invalid digest" },
		{ "spec.preWarm.imagesToPull.0", "'a//b'", "spec.preWarm.imagesToPull[0]: " IMAGE "invalid reference format" },
		{ "spec.preWarm.imagesToPull.0", "''", "spec.preWarm.imagesToPull[0]: " IMAGE "invalid reference format" },
		{ "spec.preWarm.imagesToPull.0", "'localhost:5000/team/app:v1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'", "" },
		{ "spec.preWarm.imagesToPull.1", "'nginx:1.27'", "spec.preWarm.imagesToPull[1]: duplicate value" },
		{ "spec.preWarm.timeout", "'+5m'", "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m" },
		{ "spec.preWarm.timeout", "'.5h'", "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m" },
		{ "spec.preWarm.timeout", "'5.m'", "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m" },
		{ "spec.preWarm.timeout", "'1h 30m'", "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m" },
		{ "spec.preWarm.timeout", "'1.5h'", "" },
		{ "spec.preWarm.timeout", "'90000ms'", "" },
		/* scaleDown */
		{ "spec.scaleDown.emptyNodeTTL", "'soon'", "spec.scaleDown.emptyNodeTTL: must be a duration like 30s, 5m or 1h30m" },
		{ "spec.scaleDown.emptyNodeTTL", "'-1s'", "spec.scaleDown.emptyNodeTTL: must not be negative" },
		{ "spec.scaleDown.emptyNodeTTL", "'0s'", "", "spec.scaleDown.emptyNodeTTL: 0s stops a node the moment it is empty; the next pod waits for a start" },
		{ "spec.scaleDown.drainTimeout", "'-1m'", "spec.scaleDown.drainTimeout: must not be negative" },
		{ "spec.scaleDown.drainTimeout", "'0'", "", "spec.scaleDown.drainTimeout: 0s leaves no time for evictions a PodDisruptionBudget delays; such drains fail" },
		{ "spec.scaleDown.enabled", "false", "" },
		/* unknown fields at every level */
		{ "spec.minStandBy", "1", "spec.minStandBy: unknown field" },
		{ "spec.template.taints", "[]", "spec.template.taints: unknown field" },
		{ "spec.template.nodeClassRef.group", "'stratos.sh'", "spec.template.nodeClassRef.group: unknown field" },
		{ "spec.preWarm.images", "[]", "spec.preWarm.images: unknown field" },
		{ "spec.scaleDown.ttl", "'1m'", "spec.scaleDown.ttl: unknown field" },
		/* optional sections absent */
		{ "spec.preWarm", NULL, "" },
		{ "spec.scaleDown", NULL, "" },
		{ "spec.template.labels", NULL, "" },
		{ "spec.template.startupTaints", NULL, "" },
		{ "spec.preWarm", "null", "" },
	};

	(void)state;
	run_cases(BASE_POOL, true, cases, NCASES(cases), NULL);
}

/* Wrong JSON types at every level are violations, never crashes. */
static void
test_nodepool_type_errors(void **state)
{
	static const struct rule_case cases[] = {
		{ "spec", "5", "spec: must be an object" },
		{ "spec", "[]", "spec: must be an object" },
		{ "metadata", "[]", "metadata: must be an object" },
		{ "metadata.name", "7", "metadata.name: must be a string" },
		{ "spec.poolSize", "'3'", "spec.poolSize: must be an integer" },
		{ "spec.poolSize", "3.5", "spec.poolSize: must be an integer" },
		{ "spec.poolSize", "true", "spec.poolSize: must be an integer" },
		{ "spec.minStandby", "{}", "spec.minStandby: must be an integer" },
		{ "spec.template", "'x'", "spec.template: must be an object" },
		{ "spec.template.nodeClassRef", "[]", "spec.template.nodeClassRef: must be an object" },
		{ "spec.template.nodeClassRef.name", "1", "spec.template.nodeClassRef.name: must be a string" },
		{ "spec.template.labels", "[]", "spec.template.labels: must be an object" },
		{ "spec.template.startupTaints", "{}", "spec.template.startupTaints: must be a list" },
		{ "spec.template.startupTaints.0", "5", "spec.template.startupTaints[0]: must be an object" },
		{ "spec.template.startupTaints.0.key", "[]", "spec.template.startupTaints[0].key: must be a string" },
		{ "spec.template.startupTaints.0.effect", "1", "spec.template.startupTaints[0].effect: must be a string" },
		{ "spec.template.startupTaintRemoval", "false", "spec.template.startupTaintRemoval: must be a string" },
		{ "spec.preWarm", "1", "spec.preWarm: must be an object" },
		{ "spec.preWarm.timeout", "600", "spec.preWarm.timeout: must be a string" },
		{ "spec.preWarm.imagesToPull", "'nginx'", "spec.preWarm.imagesToPull: must be a list" },
		{ "spec.preWarm.imagesToPull.0", "{}", "spec.preWarm.imagesToPull[0]: must be a string" },
		{ "spec.scaleDown", "[]", "spec.scaleDown: must be an object" },
		{ "spec.scaleDown.enabled", "'true'", "spec.scaleDown.enabled: must be a boolean" },
		{ "spec.scaleDown.drainTimeout", "[]", "spec.scaleDown.drainTimeout: must be a string" },
	};

	(void)state;
	run_cases(BASE_POOL, true, cases, NCASES(cases), NULL);
}

static void
test_nodepool_lists_capped(void **state)
{
	json_t *obj = J(BASE_POOL), *images = json_array(), *labels = json_object();
	struct fieldcheck_report rep;
	struct crd_validate_input in = { .op = CRD_VALIDATE_CREATE, .nodes = -1 };

	(void)state;
	for (int i = 0; i < 65; i++) {
		char s[32], k[32];
		snprintf(s, sizeof(s), "img%d:v1", i);
		snprintf(k, sizeof(k), "k%d", i);
		json_array_append_new(images, json_string(s));
		json_object_set_new(labels, k, json_string("v"));
	}
	set_path(obj, "spec.preWarm.imagesToPull", images);
	set_path(obj, "spec.template.labels", labels);
	in.object = obj;
	fieldcheck_report_init(&rep);
	assert_int_equal(crd_validate_nodepool(&in, &rep), 0);
	assert_issues(rep.violations, rep.nviolations,
	    "spec.template.labels: must have at most 64 entries\n"
	    "spec.preWarm.imagesToPull: must have at most 64 items");
	fieldcheck_report_free(&rep);
	json_decref(obj);
}

static void
test_nodeclass_rules(void **state)
{
	static const struct rule_case cases[] = {
		{ "metadata.name", "'Bad Name'", "metadata.name: " DNS_SUBDOMAIN },
		{ "spec", NULL, "spec: is required" },
		/* instanceType */
		{ "spec.instanceType", NULL, "spec.instanceType: is required" },
		{ "spec.instanceType", "'m5'", "spec.instanceType: must be an EC2 instance type like m5.2xlarge (family.size)" },
		{ "spec.instanceType", "'M5.large'", "spec.instanceType: must be an EC2 instance type like m5.2xlarge (family.size)" },
		{ "spec.instanceType", "'m5..large'", "spec.instanceType: must be an EC2 instance type like m5.2xlarge (family.size)" },
		{ "spec.instanceType", "'g5.2xlarge'", "" },
		{ "spec.instanceType", "'u-6tb1.metal'", "" },
		{ "spec.instanceType", "'m7i-flex.large'", "" },
		{ "spec.instanceType", "'c6i.metal-32xl'", "" },
		/* ami */
		{ "spec.ami", NULL, "spec.ami: is required" },
		{ "spec.ami", "'ami-123'", "spec.ami: must be \"ami-\" followed by 8 or 17 lower-case hexadecimal digits" },
		{ "spec.ami", "'ami-0123456789ABCDEF0'", "spec.ami: must be \"ami-\" followed by 8 or 17 lower-case hexadecimal digits" },
		{ "spec.ami", "'ami-0123456g'", "spec.ami: must be \"ami-\" followed by 8 or 17 lower-case hexadecimal digits" },
		{ "spec.ami", "'ami-01234567'", "" },
		/* region */
		{ "spec.region", "'us-east-1'", "" },
		{ "spec.region", "'us-gov-west-1'", "" },
		{ "spec.region", "'useast1'", "spec.region: must be an AWS region like us-east-1" },
		{ "spec.region", "'us-east'", "spec.region: must be an AWS region like us-east-1" },
		/* subnets, security groups */
		{ "spec.subnetIds", NULL, "spec.subnetIds: is required" },
		{ "spec.subnetIds", "[]", "spec.subnetIds: must have at least 1 item" },
		{ "spec.subnetIds.1", "'subnet-0123456789abcdef0'", "" },
		{ "spec.subnetIds.1", "'subnet-12345678'", "spec.subnetIds[1]: duplicate value" },
		{ "spec.subnetIds.0", "'sub-12345678'", "spec.subnetIds[0]: must be \"subnet-\" followed by 8 or 17 lower-case hexadecimal digits" },
		{ "spec.subnetIds.0", "5", "spec.subnetIds[0]: must be a string" },
		{ "spec.securityGroupIds", "[]", "spec.securityGroupIds: must have at least 1 item" },
		{ "spec.securityGroupIds.0", "'sg-1234567'", "spec.securityGroupIds[0]: must be \"sg-\" followed by 8 or 17 lower-case hexadecimal digits" },
		{ "spec.securityGroupIds", "['sg-00000001','sg-00000002','sg-00000003','sg-00000004','sg-00000005','sg-00000006','sg-00000007','sg-00000008','sg-00000009','sg-00000010','sg-00000011','sg-00000012','sg-00000013','sg-00000014','sg-00000015','sg-00000016','sg-00000017']",
		  "spec.securityGroupIds: must have at most 16 items" },
		/* iamInstanceProfile */
		{ "spec.iamInstanceProfile", NULL, "spec.iamInstanceProfile: is required" },
		{ "spec.iamInstanceProfile", "'arn:aws:iam::123456789012:instance-profile/ci-node-role'", "" },
		{ "spec.iamInstanceProfile", "'arn:aws-us-gov:iam::123456789012:instance-profile/path/to/role+x'", "" },
		{ "spec.iamInstanceProfile", "'arn:aws:iam::12345:instance-profile/x'", "spec.iamInstanceProfile: must be an instance-profile ARN (arn:aws:iam::<12-digit account>:instance-profile/<name>) or a profile name" },
		{ "spec.iamInstanceProfile", "'arn:aws:iam::123456789012:role/x'", "spec.iamInstanceProfile: must be an instance-profile ARN (arn:aws:iam::<12-digit account>:instance-profile/<name>) or a profile name" },
		{ "spec.iamInstanceProfile", "'bad name'", "spec.iamInstanceProfile: must be an instance-profile ARN (arn:aws:iam::<12-digit account>:instance-profile/<name>) or a profile name" },
		/* block devices */
		{ "spec.blockDeviceMappings.0.deviceName", NULL, "spec.blockDeviceMappings[0].deviceName: is required" },
		{ "spec.blockDeviceMappings.0.deviceName", "'xvda'", "spec.blockDeviceMappings[0].deviceName: must be a device name like /dev/xvda" },
		{ "spec.blockDeviceMappings.1", "{'deviceName':'/dev/xvda','volumeSize':1}", "spec.blockDeviceMappings[1].deviceName: duplicate value" },
		{ "spec.blockDeviceMappings.0.volumeSize", NULL, "spec.blockDeviceMappings[0].volumeSize: is required" },
		{ "spec.blockDeviceMappings.0.volumeSize", "0", "spec.blockDeviceMappings[0].volumeSize: must be between 1 and 65536" },
		{ "spec.blockDeviceMappings.0.volumeSize", "65537", "spec.blockDeviceMappings[0].volumeSize: must be between 1 and 65536" },
		{ "spec.blockDeviceMappings.0.volumeSize", "'100Gi'", "spec.blockDeviceMappings[0].volumeSize: must be an integer" },
		{ "spec.blockDeviceMappings.0.volumeType", "'gp4'", "spec.blockDeviceMappings[0].volumeType: must be one of gp2, gp3, io1, io2, st1, sc1, standard" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'volumeType':'gp3','iops':2999}",
		  "spec.blockDeviceMappings[0].iops: must be between 3000 and 80000 for volumeType gp3" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':200,'iops':80000}", "" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'iops':80000}",
		  "spec.blockDeviceMappings[0].iops: must be at most 50000 for a volumeSize of 100 GiB (gp3 allows 500 IOPS per GiB)" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':1,'iops':3000}", "" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'volumeType':'io1','iops':99}",
		  "spec.blockDeviceMappings[0].iops: must be between 100 and 64000 for volumeType io1" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'volumeType':'io1','iops':5001}",
		  "spec.blockDeviceMappings[0].iops: must be at most 5000 for a volumeSize of 100 GiB (io1 allows 50 IOPS per GiB)" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':300,'volumeType':'io2','iops':256000}", "" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':300,'volumeType':'io2','iops':256001}",
		  "spec.blockDeviceMappings[0].iops: must be between 100 and 256000 for volumeType io2" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'volumeType':'io2'}",
		  "spec.blockDeviceMappings[0].iops: is required for volumeType io2" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'volumeType':'gp2','iops':3000}",
		  "spec.blockDeviceMappings[0].iops: not allowed for volumeType gp2 (only gp3, io1 and io2 take iops)" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':500,'volumeType':'st1','throughput':500}",
		  "spec.blockDeviceMappings[0].throughput: not allowed for volumeType st1 (only gp3)" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':500,'throughput':124}",
		  "spec.blockDeviceMappings[0].throughput: must be between 125 and 2000" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':500,'throughput':2001,'iops':16000}",
		  "spec.blockDeviceMappings[0].throughput: must be between 125 and 2000" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':500,'throughput':1000}",
		  "spec.blockDeviceMappings[0].throughput: must be at most 750 for 3000 IOPS (gp3 allows 0.25 MiB/s per IOPS)" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':500,'throughput':1000,'iops':4000}", "" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'kmsKeyId':'alias/ebs'}",
		  "spec.blockDeviceMappings[0].kmsKeyId: requires encrypted: true" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'encrypted':false,'kmsKeyId':'alias/ebs'}",
		  "spec.blockDeviceMappings[0].kmsKeyId: requires encrypted: true" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'encrypted':true,'kmsKeyId':'alias/ebs'}", "" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'encrypted':true,'kmsKeyId':'1234abcd-12ab-34cd-56ef-1234567890ab'}", "" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'encrypted':true,'kmsKeyId':'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'}", "" },
		{ "spec.blockDeviceMappings.0", "{'deviceName':'/dev/xvda','volumeSize':100,'encrypted':true,'kmsKeyId':'my key'}",
		  "spec.blockDeviceMappings[0].kmsKeyId: must be a KMS key ID, key ARN, alias (alias/name) or alias ARN" },
		{ "spec.blockDeviceMappings.0.encrypted", "'yes'", "spec.blockDeviceMappings[0].encrypted: must be a boolean" },
		{ "spec.blockDeviceMappings.0.deleteOnTermination", "0", "spec.blockDeviceMappings[0].deleteOnTermination: must be a boolean" },
		{ "spec.blockDeviceMappings.0.snapshotId", "'snap-1'", "spec.blockDeviceMappings[0].snapshotId: unknown field" },
		{ "spec.blockDeviceMappings", "{}", "spec.blockDeviceMappings: must be a list" },
		{ "spec.blockDeviceMappings.0", "'x'", "spec.blockDeviceMappings[0]: must be an object" },
		/* userData */
		{ "spec.userData", NULL, "", "spec.userData: not set; instances join the cluster only if the AMI bootstraps itself" },
		{ "spec.userData", "5", "spec.userData: must be a string" },
		/* metadataOptions */
		{ "spec.metadataOptions.httpTokens", "'sometimes'", "spec.metadataOptions.httpTokens: must be one of required, optional" },
		{ "spec.metadataOptions.httpTokens", "'optional'", "", "spec.metadataOptions.httpTokens: optional lets pods on the node use IMDSv1; required is safer" },
		{ "spec.metadataOptions.httpPutResponseHopLimit", "0", "spec.metadataOptions.httpPutResponseHopLimit: must be between 1 and 64" },
		{ "spec.metadataOptions.httpPutResponseHopLimit", "65", "spec.metadataOptions.httpPutResponseHopLimit: must be between 1 and 64" },
		{ "spec.metadataOptions.httpEndpoint", "'enabled'", "spec.metadataOptions.httpEndpoint: unknown field" },
		/* tags */
		{ "spec.tags.aws:cloudformation", "'x'", "spec.tags[aws:cloudformation]: keys starting with \"aws:\" are reserved by AWS" },
		{ "spec.tags.AWS:x", "'x'", "spec.tags[AWS:x]: keys starting with \"aws:\" are reserved by AWS" },
		{ "spec.tags.stratos.sh/pool", "'x'", "spec.tags[stratos.sh/pool]: keys starting with \"stratos.sh/\" are reserved for Stratos" },
		{ "spec.tags.Name", "'x'", "spec.tags[Name]: is set by Stratos on every instance" },
		{ "spec.tags.managed-by", "'x'", "spec.tags[managed-by]: is set by Stratos on every instance" },
		{ "spec.tags.cost-center", "5", "spec.tags[cost-center]: must be a string" },
		{ "spec.tags.team", "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
		  "spec.tags[team]: value must be at most 256 characters" },
		{ "spec.tags", "[]", "spec.tags: must be an object" },
		/* unknown */
		{ "spec.instanceTypes", "[]", "spec.instanceTypes: unknown field" },
	};

	(void)state;
	run_cases(BASE_CLASS, false, cases, NCASES(cases), NULL);
}

static void
test_nodeclass_user_data_size(void **state)
{
	json_t *obj = J(BASE_CLASS);
	char *big = malloc(16386);
	struct fieldcheck_report rep;
	struct crd_validate_input in = { .op = CRD_VALIDATE_CREATE, .nodes = -1 };

	(void)state;
	memset(big, 'x', 16384);
	big[16384] = '\0';
	set_path(obj, "spec.userData", json_string(big));
	in.object = obj;
	fieldcheck_report_init(&rep);
	assert_int_equal(crd_validate_nodeclass(&in, &rep), 0);
	assert_int_equal(rep.nviolations, 0);
	fieldcheck_report_free(&rep);
	big[16384] = 'x';
	big[16385] = '\0';
	set_path(obj, "spec.userData", json_string(big));
	assert_int_equal(crd_validate_nodeclass(&in, &rep), 0);
	assert_issues(rep.violations, rep.nviolations,
	    "spec.userData: must be at most 16384 bytes (the EC2 limit before base64), not 16385");
	fieldcheck_report_free(&rep);
	free(big);
	json_decref(obj);
}

static void
test_syntax(void **state)
{
	static const char *const good_images[] = {
		"nginx", "nginx:1.27", "library/nginx", "ghcr.io/actions/actions-runner:2.321.0",
		"my-registry.com/llama-3:70b", "localhost:5000/a/b", "registry.example.com:443/x_y/z__w/a-b--c:tag",
		"[::1]:5000/app", "Example.COM/app", "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"a.b/c:V1.0_beta-2",
	};
	static const char *const bad_images[] = {
		"", ":tag", "UPPER", "a/B", "nginx:", "nginx:-x", "a//b", "a/", "/a", "a/b.",
		"a@sha256:00", "a@md5", "reg:port/x", "a:b:c", "ex ample/x",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good_images) / sizeof(good_images[0]); i++)
		if (fieldcheck_image_ref(good_images[i]) != NULL)
			fail_msg("%s: %s", good_images[i], fieldcheck_image_ref(good_images[i]));
	for (size_t i = 0; i < sizeof(bad_images) / sizeof(bad_images[0]); i++)
		if (fieldcheck_image_ref(bad_images[i]) == NULL)
			fail_msg("%s accepted", bad_images[i]);
	{
		char long_name[300];
		memset(long_name, 'a', 256);
		long_name[256] = '\0';
		assert_string_equal(fieldcheck_image_ref(long_name),
		    "repository name must not be more than 255 characters");
	}
	assert_null(fieldcheck_qualified_name("node-role.kubernetes.io/ci"));
	assert_null(fieldcheck_qualified_name("a"));
	assert_null(fieldcheck_qualified_name("A_b.c-D"));
	assert_non_null(fieldcheck_qualified_name(""));
	assert_non_null(fieldcheck_qualified_name("a_"));
	assert_non_null(fieldcheck_qualified_name("-a.b/x"));
	assert_null(fieldcheck_label_value(""));
	assert_null(fieldcheck_label_value("true"));
	assert_non_null(fieldcheck_label_value("a b"));
	assert_null(fieldcheck_dns1123_label("ci-runners"));
	assert_non_null(fieldcheck_dns1123_label("ci.runners"));
	assert_null(fieldcheck_dns1123_subdomain("ci.runners"));
	assert_non_null(fieldcheck_dns1123_subdomain("ci..runners"));
}

static void
test_invalid_fixture(void **state)
{
	json_error_t err;
	json_t *review = json_load_file(FIXTURE("admission/nodepool-create-invalid.json"), 0, &err);
	struct fieldcheck_report rep;
	struct crd_validate_input in = { .op = CRD_VALIDATE_CREATE, .nodes = -1 };

	(void)state;
	assert_non_null(review);
	in.object = json_object_get(json_object_get(review, "request"), "object");
	fieldcheck_report_init(&rep);
	assert_int_equal(crd_validate_nodepool(&in, &rep), 0);
	assert_issues(rep.violations, rep.nviolations,
	    "spec.minStandby: must not be greater than spec.poolSize (3)\n"
	    "spec.template.startupTaints[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute\n"
	    "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m");
	assert_int_equal(rep.nwarnings, 0);
	fieldcheck_report_free(&rep);
	json_decref(review);
}

/* Every seed example is valid, and parses to the documented defaults. */
static void
test_seed_examples(void **state)
{
	struct yamljson_error yerr;
	json_t *docs;
	size_t i;
	json_t *doc;

	(void)state;
	assert_int_equal(yamljson_parse_file(FIXTURE("seed-examples.yaml"), &docs, &yerr), 0);
	assert_int_equal(json_array_size(docs), 6);
	json_array_foreach(docs, i, doc) {
		struct fieldcheck_report rep;
		struct crd_validate_input in = { .op = CRD_VALIDATE_CREATE, .object = doc, .nodes = -1 };
		bool pool = strcmp(json_string_value(json_object_get(doc, "kind")), "NodePool") == 0;

		fieldcheck_report_init(&rep);
		assert_int_equal(pool ? crd_validate_nodepool(&in, &rep) : crd_validate_nodeclass(&in, &rep), 0);
		assert_issues(rep.violations, rep.nviolations, "");
		assert_issues(rep.warnings, rep.nwarnings, "");
		fieldcheck_report_free(&rep);
	}
	{
		struct nodepool *ci, *od;
		struct nodeclass *inf;
		assert_int_equal(nodepool_parse(json_array_get(docs, 1), NULL, &ci), 0);
		assert_string_equal(ci->name, "ci-runners");
		assert_int_equal(ci->pool_size, 20);
		assert_int_equal(ci->min_standby, 5);
		assert_string_equal(ci->node_class_kind, "AWSNodeClass");
		assert_string_equal(ci->node_class_name, "ci-runners");
		assert_int_equal(ci->nlabels, 2);
		assert_string_equal(nodepool_label(ci, "node-role.kubernetes.io/ci"), "");
		assert_int_equal(ci->nstartup_taints, 1);
		assert_string_equal(ci->startup_taints[0].key, "node.eks.amazonaws.com/not-ready");
		assert_string_equal(ci->startup_taints[0].value, "true");
		assert_int_equal(ci->startup_taints[0].effect, KUBE_EFFECT_NO_SCHEDULE);
		assert_int_equal(ci->startup_taint_removal, NODEPOOL_REMOVAL_WHEN_NETWORK_READY);
		assert_int_equal(ci->prewarm_timeout_ms, 15 * 60 * 1000);
		assert_int_equal(ci->prewarm_timeout_action, NODEPOOL_TIMEOUT_TERMINATE);
		assert_true(ci->scale_down_enabled);
		assert_int_equal(ci->empty_node_ttl_ms, 10 * 60 * 1000);
		assert_int_equal(ci->drain_timeout_ms, 5 * 60 * 1000);
		assert_int_equal(ci->nviolations, 0);
		nodepool_free(ci);
		/* on-demand has no preWarm: the defaults of DESIGN §3.2. */
		assert_int_equal(nodepool_parse(json_array_get(docs, 5), NULL, &od), 0);
		assert_int_equal(od->prewarm_timeout_ms, 10 * 60 * 1000);
		assert_int_equal(od->prewarm_timeout_action, NODEPOOL_TIMEOUT_STOP);
		assert_int_equal(od->nimages_to_pull, 0);
		assert_int_equal(od->drain_timeout_ms, 30 * 1000);
		nodepool_free(od);
		assert_int_equal(nodeclass_parse(json_array_get(docs, 2), NULL, &inf), 0);
		assert_string_equal(inf->instance_type, "g5.2xlarge");
		assert_null(inf->region);
		assert_int_equal(inf->nblock_devices, 1);
		assert_int_equal(inf->block_devices[0].volume_size, 500);
		assert_int_equal(inf->block_devices[0].volume_type, NODECLASS_VOLUME_GP3);
		assert_int_equal(inf->block_devices[0].iops, 16000);
		assert_int_equal(inf->block_devices[0].throughput, 1000);
		assert_true(inf->block_devices[0].encrypted);
		assert_true(inf->block_devices[0].delete_on_termination);
		assert_null(inf->block_devices[0].kms_key_id);
		assert_int_equal(inf->http_tokens, NODECLASS_HTTP_TOKENS_REQUIRED);
		assert_int_equal(inf->http_put_response_hop_limit, 2);
		assert_non_null(strstr(inf->user_data, "poweroff"));
		assert_int_equal(inf->ntags, 0);
		nodeclass_free(inf);
	}
	json_decref(docs);
}

/* A broken field keeps its default in the parsed struct, and the struct says it is invalid. */
static void
test_parse_defaults_on_violation(void **state)
{
	json_t *obj = J(BASE_POOL);
	struct nodepool *np;

	(void)state;
	set_path(obj, "spec.preWarm.timeout", J("'forever'"));
	set_path(obj, "spec.scaleDown.emptyNodeTTL", J("3"));
	assert_int_equal(nodepool_parse(obj, NULL, &np), 0);
	assert_int_equal(np->prewarm_timeout_ms, NODEPOOL_DEFAULT_PREWARM_TIMEOUT_MS);
	assert_int_equal(np->empty_node_ttl_ms, NODEPOOL_DEFAULT_EMPTY_NODE_TTL_MS);
	assert_int_equal(np->nviolations, 2);
	nodepool_free(np);
	json_decref(obj);
	obj = J("5");
	assert_int_equal(nodepool_parse(obj, NULL, &np), -EINVAL);
	assert_null(np);
	json_decref(obj);
}

static struct pools *
pools_with(const char *docs_json)
{
	struct pools *p = pools_new();
	json_t *docs = J(docs_json);

	assert_int_equal(pools_replace_all(p, docs), 0);
	json_decref(docs);
	return p;
}

static void
test_cross_reference(void **state)
{
	struct pools *p = pools_with("[" BASE_CLASS "]");
	const struct pools_snapshot *snap = pools_acquire(p);
	static const struct rule_case cases[] = {
		{ NULL, NULL, "", "" },
		{ "spec.template.nodeClassRef.name", "'c2'", "",
		  "spec.template.nodeClassRef.name: AWSNodeClass c2 not found; the pool cannot launch nodes until it exists" },
	};

	(void)state;
	run_cases(BASE_POOL, true, cases, NCASES(cases), snap);
	pools_release(snap);
	pools_free(p);
}

static void
run_update(const char *old_json, const char *new_json, bool pool, long nodes,
    const struct pools_snapshot *snap, const char *violations, const char *warnings)
{
	json_t *old = J(old_json), *obj = J(new_json);
	struct crd_validate_input in = { .op = CRD_VALIDATE_UPDATE, .object = obj, .old_object = old,
		.snap = snap, .nodes = nodes };
	struct fieldcheck_report rep;

	fieldcheck_report_init(&rep);
	assert_int_equal(pool ? crd_validate_nodepool(&in, &rep) : crd_validate_nodeclass(&in, &rep), 0);
	assert_issues(rep.violations, rep.nviolations, violations);
	assert_issues(rep.warnings, rep.nwarnings, warnings);
	fieldcheck_report_free(&rep);
	json_decref(old);
	json_decref(obj);
}

static void
test_update_transitions(void **state)
{
	json_t *changed = J(BASE_POOL);
	char *text;

	(void)state;
	/* No change at all: nothing to say. */
	run_update(BASE_POOL, BASE_POOL, true, 3, NULL, "", "");
	/* nodeClassRef changed: a warning, worded by what is known about the nodes. */
	set_path(changed, "spec.template.nodeClassRef.name", J("'c2'"));
	text = json_dumps(changed, JSON_COMPACT);
	run_update(BASE_POOL, text, true, 3, NULL, "",
	    "spec.template.nodeClassRef: changed while the pool has 3 node(s); they keep the old class until replaced");
	run_update(BASE_POOL, text, true, -1, NULL, "",
	    "spec.template.nodeClassRef: changed; nodes launched before keep the old class until replaced");
	run_update(BASE_POOL, text, true, 0, NULL, "", "");
	free(text);
	/* poolSize below the node count, startup taint dropped. */
	set_path(changed, "spec.template.nodeClassRef.name", J("'c1'"));
	set_path(changed, "spec.poolSize", J("2"));
	set_path(changed, "spec.minStandby", J("0"));
	set_path(changed, "spec.template.startupTaints", J("[]"));
	text = json_dumps(changed, JSON_COMPACT);
	run_update(BASE_POOL, text, true, 3, NULL, "",
	    "spec.poolSize: 2 is below the pool's 3 nodes; standby nodes are terminated, running ones kept\n"
	    "spec.template.startupTaints: example.com/boot:NoSchedule dropped while the pool has nodes; Stratos stops removing it from them");
	free(text);
	/* An update that breaks a rule is denied like a create. */
	set_path(changed, "spec.minStandby", J("5"));
	text = json_dumps(changed, JSON_COMPACT);
	run_update(BASE_POOL, text, true, 0, NULL,
	    "spec.minStandby: must not be greater than spec.poolSize (2)", "");
	free(text);
	json_decref(changed);
}

/* An object that became invalid under newer rules can still have its metadata (finalizers) updated. */
static void
test_update_ratchet(void **state)
{
	json_t *old = J(BASE_POOL), *obj;
	char *a, *b;

	(void)state;
	set_path(old, "spec.minStandby", J("9"));
	obj = json_deep_copy(old);
	set_path(obj, "metadata.finalizers", J("[]"));
	a = json_dumps(old, JSON_COMPACT);
	b = json_dumps(obj, JSON_COMPACT);
	run_update(a, b, true, 3, NULL, "", "");
	/* ... and is deleted (deletionTimestamp set) whatever its spec says. */
	set_path(obj, "metadata.deletionTimestamp", J("'2026-01-01T00:00:00Z'"));
	set_path(obj, "spec.poolSize", J("0"));
	free(b);
	b = json_dumps(obj, JSON_COMPACT);
	run_update(a, b, true, 3, NULL, "", "");
	free(a);
	free(b);
	json_decref(old);
	json_decref(obj);
}

static void
test_nodeclass_update_and_delete(void **state)
{
	struct pools *p = pools_with("[" BASE_POOL "," BASE_CLASS "]");
	const struct pools_snapshot *snap = pools_acquire(p);
	json_t *changed = J(BASE_CLASS);
	struct fieldcheck_report rep;
	struct crd_validate_input in = { .op = CRD_VALIDATE_DELETE, .snap = snap, .nodes = 2 };
	char *text;

	(void)state;
	set_path(changed, "spec.ami", J("'ami-01234567'"));
	set_path(changed, "spec.region", J("'eu-west-1'"));
	text = json_dumps(changed, JSON_COMPACT);
	run_update(BASE_CLASS, text, false, 2, snap, "",
	    "spec.region: changed; instances in the old region are no longer managed by Stratos\n"
	    "spec.ami: changed while 2 node(s) use this class; their instances keep the old value until replaced");
	run_update(BASE_CLASS, text, false, 0, snap, "", "");
	free(text);
	/* Deleting a class that pools still name: allowed, with a warning. */
	in.old_object = changed;
	fieldcheck_report_init(&rep);
	assert_int_equal(crd_validate_nodeclass(&in, &rep), 0);
	assert_int_equal(rep.nviolations, 0);
	assert_issues(rep.warnings, rep.nwarnings,
	    "AWSNodeClass c1 is used by NodePool p1; they cannot launch nodes without it");
	fieldcheck_report_free(&rep);
	/* Deleting a pool with nodes: allowed, says what happens. */
	json_decref(changed);
	changed = J(BASE_POOL);
	in.old_object = changed;
	assert_int_equal(crd_validate_nodepool(&in, &rep), 0);
	assert_issues(rep.warnings, rep.nwarnings,
	    "deleting NodePool p1 drains its 2 node(s) and terminates their instances");
	fieldcheck_report_free(&rep);
	json_decref(changed);
	pools_release(snap);
	pools_free(p);
}

static char *
run_documents(const char *yaml, bool other_kinds_ok, struct crd_validate_stats *st)
{
	struct yamljson_error yerr;
	json_t *docs;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_int_equal(yamljson_parse(yaml, strlen(yaml), &docs, &yerr), 0);
	memset(st, 0, sizeof(*st));
	assert_int_equal(crd_validate_documents("f.yaml", docs, NULL, other_kinds_ok, f, st), 0);
	fclose(f);
	json_decref(docs);
	return out;
}

static void
test_documents_output(void **state)
{
	struct crd_validate_stats st;
	char *out;
	const char *yaml =
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
	    "apiVersion: stratos.sh/v1alpha1\nkind: NodePool\nmetadata: {name: a}\n"
	    "spec: {poolSize: 2, minStandby: 3, template: {nodeClassRef: {name: c}}}\n---\n"
	    "apiVersion: stratos.sh/v1beta1\nkind: NodePool\nmetadata: {name: a}\n"
	    "spec: {poolSize: 2, minStandby: 1, template: {nodeClassRef: {name: c}}, scaleDown: {emptyNodeTTL: 0s}}\n---\n"
	    "apiVersion: stratos.sh/v1alpha1\nkind: NodeClass\nmetadata: {name: x}\n---\n"
	    "- just a list\n";

	(void)state;
	out = run_documents(yaml, true, &st);
	assert_string_equal(out,
	    "f.yaml: doc 2 (NodePool/a): spec.minStandby: must not be greater than spec.poolSize (2)\n"
	    "f.yaml: doc 3 (NodePool/a): apiVersion: must be stratos.sh/v1alpha1\n"
	    "f.yaml: doc 3 (NodePool/a): metadata.name: duplicate of doc 2\n"
	    "f.yaml: doc 3 (NodePool/a): warning: spec.scaleDown.emptyNodeTTL: 0s stops a node the moment it is empty; the next pod waits for a start\n"
	    "f.yaml: doc 4 (NodeClass/x): kind: must be NodePool or AWSNodeClass\n"
	    "f.yaml: doc 5 (?/<no name>): must be an object (a Kubernetes resource)\n");
	assert_int_equal(st.resources, 2);
	assert_int_equal(st.violations, 5);
	assert_int_equal(st.warnings, 1);
	assert_int_equal(st.skipped, 1);
	free(out);
	/* In a pools file other kinds are errors. */
	out = run_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", false, &st);
	assert_string_equal(out, "f.yaml: doc 1 (ConfigMap/c): kind: must be NodePool or AWSNodeClass "
	    "(this file holds only those)\n");
	assert_int_equal(st.violations, 1);
	free(out);
}

static void
test_pools_file(void **state)
{
	struct pools *p = pools_new();
	char path[] = "/tmp/stratos-test-pools-XXXXXX";
	char *out = NULL;
	size_t len = 0;
	FILE *errout;
	int fd;
	const struct pools_snapshot *snap;
	const char *bad = "apiVersion: stratos.sh/v1alpha1\nkind: NodePool\nmetadata: {name: a}\n"
	    "spec: {poolSize: 2, minStandby: 3, template: {nodeClassRef: {name: c}}}\n";

	(void)state;
	assert_false(pools_loaded(p));
	assert_int_equal(pools_file_load(p, FIXTURE("seed-examples.yaml"), stderr), 0);
	assert_true(pools_loaded(p));
	snap = pools_acquire(p);
	assert_int_equal(snap->nnodepools, 3);
	assert_int_equal(snap->nnodeclasses, 3);
	assert_non_null(pools_find_nodepool(snap, "inference"));
	pools_release(snap);

	/* A file with a violation is refused whole, and the registry keeps what it had. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
	close(fd);
	errout = open_memstream(&out, &len);
	assert_int_equal(pools_file_load(p, path, errout), -EINVAL);
	fclose(errout);
	assert_non_null(strstr(out, "doc 1 (NodePool/a): spec.minStandby: must not be greater than spec.poolSize (2)\n"));
	assert_non_null(strstr(out, "doc 1 (NodePool/a): warning: spec.template.nodeClassRef.name: AWSNodeClass c not found"));
	assert_non_null(strstr(out, "1 violation; nothing loaded"));
	free(out);
	snap = pools_acquire(p);
	assert_int_equal(snap->nnodepools, 3);
	pools_release(snap);
	/* Unreadable and syntax errors. */
	errout = open_memstream(&out, &len);
	assert_int_equal(pools_file_load(p, "/nonexistent/pools.yaml", errout), -ENOENT);
	fclose(errout);
	free(out);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "a: [\n", 5), 5);
	close(fd);
	errout = open_memstream(&out, &len);
	assert_int_equal(pools_file_load(p, path, errout), -EINVAL);
	fclose(errout);
	assert_true(strncmp(out, path, strlen(path)) == 0 && out[strlen(path)] == ':');
	free(out);
	unlink(path);
	pools_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_objects_valid),
		cmocka_unit_test(test_nodepool_rules),
		cmocka_unit_test(test_nodepool_type_errors),
		cmocka_unit_test(test_nodepool_lists_capped),
		cmocka_unit_test(test_nodeclass_rules),
		cmocka_unit_test(test_nodeclass_user_data_size),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_invalid_fixture),
		cmocka_unit_test(test_seed_examples),
		cmocka_unit_test(test_parse_defaults_on_violation),
		cmocka_unit_test(test_cross_reference),
		cmocka_unit_test(test_update_transitions),
		cmocka_unit_test(test_update_ratchet),
		cmocka_unit_test(test_nodeclass_update_and_delete),
		cmocka_unit_test(test_documents_output),
		cmocka_unit_test(test_pools_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
