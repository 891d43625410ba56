/* The CRDs in manifests/crds/ and the webhook's rules agree: defaults, enums, ranges, caps, patterns. */
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"

/* Pattern tables name webhook_stricter only where it is true. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "stratos/fieldcheck.h"
#include "stratos/limits.h"
#include "stratos/nodeclass.h"
#include "stratos/nodepool.h"
#include "stratos/timeutil.h"
#include "stratos/crd_validate.h"
#include "stratos/yamljson.h"

#define CRD(name) STRATOS_SOURCE_DIR "/manifests/crds/" name

static json_t *pool_crd, *class_crd;

static json_t *
load_crd(const char *path)
{
	struct yamljson_error err;
	json_t *docs, *crd;

	if (yamljson_parse_file(path, &docs, &err) != 0)
		fail_msg("%s:%d: %s", path, err.line, err.message);
	assert_int_equal(json_array_size(docs), 1);
	crd = json_incref(json_array_get(docs, 0));
	json_decref(docs);
	return crd;
}

static int
setup(void **state)
{
	(void)state;
	pool_crd = load_crd(CRD("stratos.sh_nodepools.yaml"));
	class_crd = load_crd(CRD("stratos.sh_awsnodeclasses.yaml"));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	json_decref(pool_crd);
	json_decref(class_crd);
	return 0;
}

/* The schema of a field: names walk "properties", "[]" walks "items", "{}" additionalProperties. */
static const json_t *
field(const json_t *crd, ...)
{
	const json_t *s = json_object_get(json_object_get(json_array_get(json_object_get(
	    json_object_get(crd, "spec"), "versions"), 0), "schema"), "openAPIV3Schema");
	const char *name;
	va_list ap;

	va_start(ap, crd);
	while ((name = va_arg(ap, const char *)) != NULL) {
		if (strcmp(name, "[]") == 0)
			s = json_object_get(s, "items");
		else if (strcmp(name, "{}") == 0)
			s = json_object_get(s, "additionalProperties");
		else
			s = json_object_get(json_object_get(s, "properties"), name);
		if (s == NULL)
			fail_msg("no schema for %s", name);
	}
	va_end(ap);
	return s;
}

static void
assert_enum(const json_t *schema, const char *const *names)
{
	const json_t *e = json_object_get(schema, "enum");
	size_t n = 0;

	while (names[n] != NULL)
		n++;
	assert_int_equal(json_array_size(e), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(e, i)), names[i]);
}

static int64_t
int_of(const json_t *schema, const char *key)
{
	const json_t *v = json_object_get(schema, key);

	if (!json_is_integer(v))
		fail_msg("%s is not an integer", key);
	return (int64_t)json_integer_value(v);
}

static int64_t
duration_default(const json_t *schema)
{
	int64_t ms;

	assert_int_equal(duration_parse_ms(json_string_value(json_object_get(schema, "default")), &ms), 0);
	return ms;
}

static void
assert_required(const json_t *schema, const char *const *names)
{
	const json_t *r = json_object_get(schema, "required");
	size_t n = 0;

	while (names[n] != NULL)
		n++;
	assert_int_equal(json_array_size(r), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(r, i)), names[i]);
}

static void
test_nodepool_defaults_enums_ranges(void **state)
{
	static const char *const spec_required[] = { "poolSize", "minStandby", "template", NULL };
	static const char *const taint_required[] = { "key", "effect", NULL };
	static const char *const ref_required[] = { "name", NULL };
	const json_t *s;

	(void)state;
	assert_required(field(pool_crd, "spec", NULL), spec_required);
	s = field(pool_crd, "spec", "poolSize", NULL);
	assert_int_equal(int_of(s, "minimum"), 1);
	assert_int_equal(int_of(s, "maximum"), NODEPOOL_POOL_SIZE_MAX);
	s = field(pool_crd, "spec", "minStandby", NULL);
	assert_int_equal(int_of(s, "minimum"), 0);
	assert_int_equal(int_of(s, "maximum"), NODEPOOL_POOL_SIZE_MAX);
	s = field(pool_crd, "spec", "template", "nodeClassRef", NULL);
	assert_required(s, ref_required);
	s = field(pool_crd, "spec", "template", "nodeClassRef", "kind", NULL);
	assert_enum(s, NODEPOOL_NODE_CLASS_KINDS);
	assert_string_equal(json_string_value(json_object_get(s, "default")), NODEPOOL_NODE_CLASS_KINDS[0]);
	assert_int_equal(int_of(field(pool_crd, "spec", "template", "labels", NULL), "maxProperties"),
	    LIMITS_NODEPOOL_LABELS);
	s = field(pool_crd, "spec", "template", "startupTaints", NULL);
	assert_int_equal(int_of(s, "maxItems"), LIMITS_NODEPOOL_STARTUP_TAINTS);
	assert_required(json_object_get(s, "items"), taint_required);
	assert_enum(field(pool_crd, "spec", "template", "startupTaints", "[]", "effect", NULL),
	    NODEPOOL_EFFECT_NAMES);
	s = field(pool_crd, "spec", "template", "startupTaintRemoval", NULL);
	assert_enum(s, NODEPOOL_REMOVAL_NAMES);
	assert_string_equal(json_string_value(json_object_get(s, "default")),
	    NODEPOOL_REMOVAL_NAMES[NODEPOOL_REMOVAL_WHEN_NETWORK_READY]);
	assert_int_equal(duration_default(field(pool_crd, "spec", "preWarm", "timeout", NULL)),
	    NODEPOOL_DEFAULT_PREWARM_TIMEOUT_MS);
	s = field(pool_crd, "spec", "preWarm", "timeoutAction", NULL);
	assert_enum(s, NODEPOOL_TIMEOUT_ACTION_NAMES);
	assert_string_equal(json_string_value(json_object_get(s, "default")),
	    NODEPOOL_TIMEOUT_ACTION_NAMES[NODEPOOL_TIMEOUT_STOP]);
	s = field(pool_crd, "spec", "preWarm", "imagesToPull", NULL);
	assert_int_equal(int_of(s, "maxItems"), LIMITS_NODEPOOL_IMAGES);
	assert_string_equal(json_string_value(json_object_get(s, "x-kubernetes-list-type")), "set");
	assert_int_equal(int_of(json_object_get(s, "items"), "maxLength"), LIMITS_NODEPOOL_IMAGE_REF);
	assert_true(json_is_true(json_object_get(field(pool_crd, "spec", "scaleDown", "enabled", NULL),
	    "default")));
	assert_int_equal(duration_default(field(pool_crd, "spec", "scaleDown", "emptyNodeTTL", NULL)),
	    NODEPOOL_DEFAULT_EMPTY_NODE_TTL_MS);
	assert_int_equal(duration_default(field(pool_crd, "spec", "scaleDown", "drainTimeout", NULL)),
	    NODEPOOL_DEFAULT_DRAIN_TIMEOUT_MS);
	assert_int_equal(int_of(field(pool_crd, "spec", "preWarm", "timeout", NULL), "maxLength"),
	    LIMITS_DURATION);
}

static void
test_nodeclass_defaults_enums_ranges(void **state)
{
	static const char *const spec_required[] = {
		"instanceType", "ami", "subnetIds", "securityGroupIds", "iamInstanceProfile", NULL,
	};
	static const char *const bdm_required[] = { "deviceName", "volumeSize", NULL };
	const json_t *s;

	(void)state;
	assert_required(field(class_crd, "spec", NULL), spec_required);
	assert_int_equal(int_of(field(class_crd, "spec", "subnetIds", NULL), "maxItems"),
	    LIMITS_NODECLASS_SUBNETS);
	assert_int_equal(int_of(field(class_crd, "spec", "subnetIds", NULL), "minItems"), 1);
	assert_int_equal(int_of(field(class_crd, "spec", "securityGroupIds", NULL), "maxItems"),
	    LIMITS_NODECLASS_SECURITY_GROUPS);
	assert_int_equal(int_of(field(class_crd, "spec", "securityGroupIds", NULL), "minItems"), 1);
	s = field(class_crd, "spec", "blockDeviceMappings", NULL);
	assert_int_equal(int_of(s, "maxItems"), LIMITS_NODECLASS_BLOCK_DEVICES);
	assert_required(json_object_get(s, "items"), bdm_required);
	s = field(class_crd, "spec", "blockDeviceMappings", "[]", "volumeSize", NULL);
	assert_int_equal(int_of(s, "minimum"), 1);
	assert_int_equal(int_of(s, "maximum"), 65536);
	s = field(class_crd, "spec", "blockDeviceMappings", "[]", "volumeType", NULL);
	assert_enum(s, NODECLASS_VOLUME_TYPE_NAMES);
	assert_string_equal(json_string_value(json_object_get(s, "default")),
	    NODECLASS_VOLUME_TYPE_NAMES[NODECLASS_DEFAULT_VOLUME_TYPE]);
	/* The CRD bounds iops by the widest range of any type; the per-type ranges are CEL and ours. */
	s = field(class_crd, "spec", "blockDeviceMappings", "[]", "iops", NULL);
	assert_int_equal(int_of(s, "minimum"), 100);
	assert_int_equal(int_of(s, "maximum"), 256000);
	s = field(class_crd, "spec", "blockDeviceMappings", "[]", "throughput", NULL);
	assert_int_equal(int_of(s, "minimum"), 125);
	assert_int_equal(int_of(s, "maximum"), 2000);
	assert_true(json_is_false(json_object_get(field(class_crd, "spec", "blockDeviceMappings", "[]",
	    "encrypted", NULL), "default")));
	assert_true(json_is_true(json_object_get(field(class_crd, "spec", "blockDeviceMappings", "[]",
	    "deleteOnTermination", NULL), "default")));
	assert_int_equal(int_of(field(class_crd, "spec", "userData", NULL), "maxLength"),
	    LIMITS_NODECLASS_USER_DATA);
	s = field(class_crd, "spec", "metadataOptions", "httpTokens", NULL);
	assert_enum(s, NODECLASS_HTTP_TOKENS_NAMES);
	assert_string_equal(json_string_value(json_object_get(s, "default")),
	    NODECLASS_HTTP_TOKENS_NAMES[NODECLASS_HTTP_TOKENS_REQUIRED]);
	s = field(class_crd, "spec", "metadataOptions", "httpPutResponseHopLimit", NULL);
	assert_int_equal(int_of(s, "minimum"), 1);
	assert_int_equal(int_of(s, "maximum"), 64);
	assert_int_equal(int_of(s, "default"), NODECLASS_DEFAULT_HOP_LIMIT);
	s = field(class_crd, "spec", "tags", NULL);
	assert_int_equal(int_of(s, "maxProperties"), LIMITS_NODECLASS_TAGS);
	assert_int_equal(int_of(json_object_get(s, "additionalProperties"), "maxLength"), 256);
}

/* One string against a field: does the CRD pattern accept it, does the webhook? */
struct pattern_case {
	const char *value;
	bool webhook_stricter;  /* the CRD accepts, the webhook refuses on purpose */
};

/* Compiles a CRD pattern as POSIX ERE (the CRD patterns use no Perl-only syntax). */
static bool
crd_accepts(const json_t *schema, const char *value)
{
	const char *pattern = json_string_value(json_object_get(schema, "pattern"));
	const json_t *maxlen = json_object_get(schema, "maxLength");
	regex_t re;
	int rc;

	assert_non_null(pattern);
	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
		fail_msg("pattern does not compile: %s", pattern);
	rc = regexec(&re, value, 0, NULL, 0);
	regfree(&re);
	/* maxLength counts characters; every test value is ASCII except the µs units. */
	return rc == 0 && (maxlen == NULL || strlen(value) <= (size_t)json_integer_value(maxlen) ||
	    strchr(value, '\xc2') != NULL);
}

/*
 * Runs value through the webhook's rules: the base object with one field
 * replaced; accepted when no violation names that field.
 */
static bool
webhook_accepts(bool pool, const char *base, const char *path_in_json, const char *field_name,
    const char *value)
{
	json_error_t err;
	json_t *obj = json_loads(base, 0, &err), *parent = obj;
	struct fieldcheck_report rep;
	struct crd_validate_input in = { .op = CRD_VALIDATE_CREATE, .nodes = -1 };
	char buf[128], *seg, *save = NULL, *last = NULL;
	bool ok = true;

	assert_non_null(obj);
	snprintf(buf, sizeof(buf), "%s", path_in_json);
	for (seg = strtok_r(buf, ".", &save); seg != NULL; seg = strtok_r(NULL, ".", &save)) {
		if (last != NULL)
			parent = json_is_array(parent) ? json_array_get(parent, 0) :
			    json_object_get(parent, last);
		last = seg;
	}
	if (json_is_array(parent))
		json_array_set_new(parent, 0, json_string(value));
	else
		json_object_set_new(parent, last, json_string(value));
	in.object = obj;
	fieldcheck_report_init(&rep);
	assert_int_equal(pool ? crd_validate_nodepool(&in, &rep) : crd_validate_nodeclass(&in, &rep), 0);
	for (size_t i = 0; i < rep.nviolations; i++)
		if (strstr(rep.violations[i].field, field_name) != NULL)
			ok = false;
	fieldcheck_report_free(&rep);
	json_decref(obj);
	return ok;
}

static void
check_patterns(bool pool, const json_t *schema, const char *base, const char *path,
    const char *field_name, const struct pattern_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool crd = crd_accepts(schema, cases[i].value);
		bool hook = webhook_accepts(pool, base, path, field_name, cases[i].value);

		if (cases[i].webhook_stricter) {
			if (!crd || hook)
				fail_msg("%s \"%s\": expected CRD yes, webhook no; got CRD %d webhook %d",
				    field_name, cases[i].value, crd, hook);
		} else if (crd != hook) {
			fail_msg("%s \"%s\": CRD %s, webhook %s", field_name, cases[i].value,
			    crd ? "accepts" : "refuses", hook ? "accepts" : "refuses");
		}
	}
}

#define POOL_BASE "{\"apiVersion\":\"stratos.sh/v1alpha1\",\"kind\":\"NodePool\",\"metadata\":{\"name\":\"p1\"}," \
	"\"spec\":{\"poolSize\":3,\"minStandby\":1,\"template\":{\"nodeClassRef\":{\"name\":\"c1\"}," \
	"\"labels\":{\"team\":\"a\"},\"startupTaints\":[{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoSchedule\"}]}," \
	"\"preWarm\":{\"timeout\":\"10m\"},\"scaleDown\":{\"emptyNodeTTL\":\"5m\"}}}"
#define CLASS_BASE "{\"apiVersion\":\"stratos.sh/v1alpha1\",\"kind\":\"AWSNodeClass\",\"metadata\":{\"name\":\"c1\"}," \
	"\"spec\":{\"instanceType\":\"m5.large\",\"ami\":\"ami-01234567\",\"region\":\"us-east-1\"," \
	"\"subnetIds\":[\"subnet-01234567\"],\"securityGroupIds\":[\"sg-01234567\"],\"iamInstanceProfile\":\"p\"," \
	"\"blockDeviceMappings\":[{\"deviceName\":\"/dev/xvda\",\"volumeSize\":10}],\"userData\":\"x\"}}"

static void
test_patterns_agree(void **state)
{
	static const struct pattern_case durations[] = {
		{ "0" }, { "10m" }, { "1h30m" }, { "1.5h" }, { "90000ms" }, { "5m0s" }, { "2h" },
		{ "+5m" }, { "-5m" }, { ".5h" }, { "5.m" }, { "5" }, { "5 m" }, { "5min" }, { "" },
		{ "1m1m" }, { "3000000\xc2\xb5s" },
	};
	static const struct pattern_case label_values[] = {
		{ "" }, { "a" }, { "A-b_c.d" }, { "-a" }, { "a-" }, { "a b" }, { "true" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	};
	static const struct pattern_case taint_keys[] = {
		{ "k" }, { "node.eks.amazonaws.com/not-ready" }, { "example.com/Under_score" },
		{ "Example.com/x" }, { "a/b/c" }, { "/x" }, { "x/" }, { "-x" }, { "a..b/x" },
	};
	static const struct pattern_case class_refs[] = {
		{ "c1" }, { "a.b-c" }, { "C1" }, { "a_b" }, { "-a" }, { "a." },
	};
	static const struct pattern_case instance_types[] = {
		{ "m5.large" }, { "g5.2xlarge" }, { "u-6tb1.metal" }, { "m7i-flex.large" },
		{ "c6i.metal-32xl" }, { "M5.large" }, { "m5" }, { "m5..large" }, { "5m.large" },
		{ "m5.large.x" }, { "m5-.large", true }, { "m5.large-", true },
	};
	static const struct pattern_case amis[] = {
		{ "ami-01234567" }, { "ami-0123456789abcdef0" }, { "ami-0123456" }, { "ami-0123456789ABCDEF0" },
		{ "ami-0123456789abcdef" }, { "AMI-01234567" },
	};
	static const struct pattern_case regions[] = {
		{ "us-east-1" }, { "us-gov-west-1" }, { "ap-southeast-2" }, { "useast1" }, { "us-east" },
		{ "US-east-1" }, { "u-east-1" },
	};
	static const struct pattern_case subnets[] = {
		{ "subnet-01234567" }, { "subnet-0123456789abcdef0" }, { "subnet-0123" }, { "sg-01234567" },
	};
	static const struct pattern_case sgs[] = {
		{ "sg-01234567" }, { "sg-0123456789abcdef0" }, { "sg-0123456G" }, { "subnet-01234567" },
	};
	static const struct pattern_case profiles[] = {
		{ "node-role" }, { "arn:aws:iam::123456789012:instance-profile/ci-node-role" },
		{ "arn:aws-cn:iam::123456789012:instance-profile/path/x" }, { "arn:aws:iam::1234:instance-profile/x" },
		{ "arn:aws:iam::123456789012:role/x" }, { "a b" }, { "arn:aws-eu:iam::123456789012:instance-profile/x" },
	};
	static const struct pattern_case devices[] = {
		{ "/dev/xvda" }, { "/dev/sda1" }, { "xvda" }, { "/dev/" }, { "/dev/XVDA" }, { "/dev/xvda/1" },
	};
	char big_duration[80];

	(void)state;
	check_patterns(true, field(pool_crd, "spec", "preWarm", "timeout", NULL), POOL_BASE,
	    "spec.scaleDown.emptyNodeTTL", "emptyNodeTTL", durations,
	    sizeof(durations) / sizeof(durations[0]));
	memset(big_duration, '1', 65);
	strcpy(big_duration + 65, "s");
	{
		const struct pattern_case big[] = { { big_duration } };
		check_patterns(true, field(pool_crd, "spec", "scaleDown", "drainTimeout", NULL), POOL_BASE,
		    "spec.scaleDown.emptyNodeTTL", "emptyNodeTTL", big, 1);
	}
	check_patterns(true, field(pool_crd, "spec", "template", "labels", "{}", NULL), POOL_BASE,
	    "spec.template.labels.team", "labels", label_values,
	    sizeof(label_values) / sizeof(label_values[0]));
	check_patterns(true, field(pool_crd, "spec", "template", "startupTaints", "[]", "value", NULL),
	    POOL_BASE, "spec.template.startupTaints.0.value", "value", label_values,
	    sizeof(label_values) / sizeof(label_values[0]));
	check_patterns(true, field(pool_crd, "spec", "template", "startupTaints", "[]", "key", NULL),
	    POOL_BASE, "spec.template.startupTaints.0.key", "key", taint_keys,
	    sizeof(taint_keys) / sizeof(taint_keys[0]));
	check_patterns(true, field(pool_crd, "spec", "template", "nodeClassRef", "name", NULL),
	    POOL_BASE, "spec.template.nodeClassRef.name", "nodeClassRef", class_refs,
	    sizeof(class_refs) / sizeof(class_refs[0]));
	check_patterns(false, field(class_crd, "spec", "instanceType", NULL), CLASS_BASE,
	    "spec.instanceType", "instanceType", instance_types,
	    sizeof(instance_types) / sizeof(instance_types[0]));
	check_patterns(false, field(class_crd, "spec", "ami", NULL), CLASS_BASE, "spec.ami", "ami",
	    amis, sizeof(amis) / sizeof(amis[0]));
	check_patterns(false, field(class_crd, "spec", "region", NULL), CLASS_BASE, "spec.region",
	    "region", regions, sizeof(regions) / sizeof(regions[0]));
	check_patterns(false, field(class_crd, "spec", "subnetIds", "[]", NULL), CLASS_BASE,
	    "spec.subnetIds.0", "subnetIds", subnets, sizeof(subnets) / sizeof(subnets[0]));
	check_patterns(false, field(class_crd, "spec", "securityGroupIds", "[]", NULL), CLASS_BASE,
	    "spec.securityGroupIds.0", "securityGroupIds", sgs, sizeof(sgs) / sizeof(sgs[0]));
	check_patterns(false, field(class_crd, "spec", "iamInstanceProfile", NULL), CLASS_BASE,
	    "spec.iamInstanceProfile", "iamInstanceProfile", profiles,
	    sizeof(profiles) / sizeof(profiles[0]));
	check_patterns(false, field(class_crd, "spec", "blockDeviceMappings", "[]", "deviceName", NULL),
	    CLASS_BASE, "spec.blockDeviceMappings.0.deviceName", "deviceName", devices,
	    sizeof(devices) / sizeof(devices[0]));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nodepool_defaults_enums_ranges),
		cmocka_unit_test(test_nodeclass_defaults_enums_ranges),
		cmocka_unit_test(test_patterns_agree),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
