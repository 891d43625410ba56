/* AWSNodeClass (stratos.sh/v1alpha1): the parsed, defaulted spec and every per-field rule of DESIGN §3.1. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stratos/limits.h"
#include "stratos/nodestate.h"
#include "stratos/nodeclass.h"

const char *const NODECLASS_VOLUME_TYPE_NAMES[] = {
	"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard", NULL,
};
const char *const NODECLASS_HTTP_TOKENS_NAMES[] = { "required", "optional", NULL };

static const char *const nodeclass_spec_fields[] = {
	"instanceType", "ami", "region", "subnetIds", "securityGroupIds", "iamInstanceProfile",
	"blockDeviceMappings", "userData", "metadataOptions", "tags", NULL,
};
static const char *const nodeclass_bdm_fields[] = {
	"deviceName", "volumeSize", "volumeType", "iops", "throughput", "encrypted", "kmsKeyId",
	"deleteOnTermination", NULL,
};
static const char *const nodeclass_metadata_options_fields[] = {
	"httpTokens", "httpPutResponseHopLimit", NULL,
};

/* IOPS limits per volume type (EC2): range and the most IOPS per GiB of volume. */
static const struct {
	enum nodeclass_volume_type type;
	int min, max, per_gib;
} nodeclass_iops[] = {
	{ NODECLASS_VOLUME_GP3, 3000, 80000, 500 },
	{ NODECLASS_VOLUME_IO1, 100, 64000, 50 },
	{ NODECLASS_VOLUME_IO2, 100, 256000, 1000 },
};

#define NODECLASS_GP3_BASELINE_IOPS       3000
#define NODECLASS_GP3_BASELINE_THROUGHPUT 125

struct nodeclass *
nodeclass_ref(struct nodeclass *c)
{
	if (c != NULL)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

static void
nodeclass__free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
nodeclass_free(struct nodeclass *c)
{
	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	free(c->name);
	free(c->uid);
	free(c->resource_version);
	free(c->instance_type);
	free(c->ami);
	free(c->region);
	nodeclass__free_strings(c->subnet_ids, c->nsubnet_ids);
	nodeclass__free_strings(c->security_group_ids, c->nsecurity_group_ids);
	free(c->iam_instance_profile);
	for (size_t i = 0; i < c->nblock_devices; i++) {
		free(c->block_devices[i].device_name);
		free(c->block_devices[i].kms_key_id);
	}
	free(c->block_devices);
	free(c->user_data);
	fieldcheck_pairs_free(c->tags, c->ntags);
	free(c);
}

/* --- EC2 and IAM syntax --- */

static bool
nodeclass__lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* prefix + 8 or 17 lower-case hex digits ("ami-0123456789abcdef0"). */
static bool
nodeclass__resource_id(const char *s, const char *prefix)
{
	size_t plen = strlen(prefix), n;

	if (strncmp(s, prefix, plen) != 0)
		return false;
	n = strlen(s + plen);
	return (n == 8 || n == 17) && nodeclass__lower_hex(s + plen, n);
}

/* family.size: "m5.2xlarge", "u-6tb1.metal", "m7i-flex.large", "c6i.metal-32xl". */
static bool
nodeclass__instance_type(const char *s)
{
	const char *dot = strchr(s, '.');
	size_t n = strlen(s);

	if (n > 64 || dot == NULL || dot == s || strchr(dot + 1, '.') != NULL || dot[1] == '\0')
		return false;
	if (!islower((unsigned char)s[0]) || dot[-1] == '-' || s[n - 1] == '-' ||
	    dot[1] == '-')
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (p != dot && !islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-')
			return false;
	return true;
}

/* us-east-1, us-gov-west-1, cn-north-1, ap-southeast-2. */
static bool
nodeclass__region(const char *s)
{
	size_t n = strlen(s), i = 0, parts = 0;

	if (n < 4 || n > 32)
		return false;
	while (i < n && islower((unsigned char)s[i]))
		i++;
	if (i != 2)
		return false;
	for (;;) {
		size_t start;
		if (i == n || s[i] != '-')
			return false;
		start = ++i;
		if (i < n && isdigit((unsigned char)s[i])) {
			while (i < n && isdigit((unsigned char)s[i]))
				i++;
			return i == n && parts > 0;
		}
		while (i < n && islower((unsigned char)s[i]))
			i++;
		if (i == start)
			return false;
		parts++;
	}
}

/* IAM names: [\w+=,.@-]. */
static bool
nodeclass__iam_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("_+=,.@-", s[i]) == NULL)
			return false;
	return n > 0;
}

/* arn:aws[-cn|-us-gov]:iam::<12 digits>:instance-profile/<path/>name, or a bare name. */
static bool
nodeclass__instance_profile(const char *s)
{
	static const char *const partitions[] = { "arn:aws:", "arn:aws-cn:", "arn:aws-us-gov:" };
	const char *p = NULL, *name;

	if (strncmp(s, "arn:", 4) != 0)
		return strlen(s) <= 128 && nodeclass__iam_chars(s, strlen(s));
	for (size_t i = 0; i < 3 && p == NULL; i++)
		if (strncmp(s, partitions[i], strlen(partitions[i])) == 0)
			p = s + strlen(partitions[i]);
	if (p == NULL || strncmp(p, "iam::", 5) != 0)
		return false;
	p += 5;
	for (int i = 0; i < 12; i++, p++)
		if (!isdigit((unsigned char)*p))
			return false;
	if (strncmp(p, ":instance-profile/", 18) != 0)
		return false;
	p += 18;
	name = strrchr(p, '/');
	name = name != NULL ? name + 1 : p;
	if (strlen(name) > 128 || !nodeclass__iam_chars(name, strlen(name)))
		return false;
	/* The path: "/"-separated segments of the same characters, at most 512 in all. */
	if (name - p > 512)
		return false;
	for (const char *q = p; q < name; q++)
		if (*q != '/' && !nodeclass__iam_chars(q, 1))
			return false;
	return true;
}

/* Key ID (UUID or mrk-<32 hex>), key ARN, alias/<name>, alias ARN. */
static bool
nodeclass__kms_key(const char *s)
{
	size_t n = strlen(s);

	if (n > 2048)
		return false;
	if (strncmp(s, "alias/", 6) == 0) {
		for (const char *p = s + 6; *p != '\0'; p++)
			if (!isalnum((unsigned char)*p) && strchr("/_-", *p) == NULL)
				return false;
		return n > 6;
	}
	if (strncmp(s, "mrk-", 4) == 0)
		return n == 36 && nodeclass__lower_hex(s + 4, 32);
	if (strncmp(s, "arn:aws", 7) == 0) {
		const char *kms = strstr(s, ":kms:");
		return kms != NULL && (strstr(kms, ":key/") != NULL || strstr(kms, ":alias/") != NULL);
	}
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* /dev/xvda, /dev/sda1, /dev/sdf. */
static bool
nodeclass__device_name(const char *s)
{
	size_t n = strlen(s);

	if (strncmp(s, "/dev/", 5) != 0 || n == 5 || n > 32)
		return false;
	for (size_t i = 5; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* --- fields --- */

/* A required string checked by ok(); copies it into *dst when valid. */
static int
nodeclass__string(struct fieldcheck *fc, const json_t *spec, const char *key, unsigned flags,
    bool (*ok)(const char *), const char *problem, char **dst)
{
	const char *s;

	if (fieldcheck_string(fc, spec, key, flags, &s) <= 0)
		return 0;
	if (!ok(s)) {
		size_t mark = fieldcheck_push(fc, key);
		fieldcheck_violation(fc, "%s", problem);
		fieldcheck_pop(fc, mark);
		return 0;
	}
	return fieldcheck_set_string(dst, s) ? 0 : -ENOMEM;
}

static bool
nodeclass__ami(const char *s)
{
	return nodeclass__resource_id(s, "ami-");
}

/* An item of subnetIds or securityGroupIds: prefix + 8 or 17 lower-case hex digits. */
static bool
nodeclass__id(struct fieldcheck *fc, const char *s, const char *prefix)
{
	if (nodeclass__resource_id(s, prefix))
		return true;
	fieldcheck_violation(fc, "must be \"%s\" followed by 8 or 17 lower-case hexadecimal digits",
	    prefix);
	return false;
}

static bool
nodeclass__subnet(struct fieldcheck *fc, const char *s, size_t len)
{
	(void)len;
	return nodeclass__id(fc, s, "subnet-");
}

static bool
nodeclass__sg(struct fieldcheck *fc, const char *s, size_t len)
{
	(void)len;
	return nodeclass__id(fc, s, "sg-");
}

static int
nodeclass__iops_limits(enum nodeclass_volume_type t)
{
	for (size_t i = 0; i < sizeof(nodeclass_iops) / sizeof(nodeclass_iops[0]); i++)
		if (nodeclass_iops[i].type == t)
			return (int)i;
	return -1;
}

static int
nodeclass__block_device(struct fieldcheck *fc, const json_t *m, struct nodeclass *c)
{
	struct nodeclass_block_device *bd = &c->block_devices[c->nblock_devices];
	const char *s, *type_name;
	int64_t size = 0, iops = 0, throughput = 0;
	int type = NODECLASS_DEFAULT_VOLUME_TYPE, lim;
	bool ok = true, b, has_kms = false, type_known;
	size_t mark;

	memset(bd, 0, sizeof(*bd));
	bd->volume_type = NODECLASS_DEFAULT_VOLUME_TYPE;
	bd->delete_on_termination = true;
	fieldcheck_unknown_fields(fc, m, nodeclass_bdm_fields);
	if (fieldcheck_string(fc, m, "deviceName", FIELDCHECK_REQUIRED, &s) > 0) {
		mark = fieldcheck_push(fc, "deviceName");
		if (!nodeclass__device_name(s)) {
			fieldcheck_violation(fc, "must be a device name like /dev/xvda");
			ok = false;
		} else {
			for (size_t j = 0; j < c->nblock_devices; j++) {
				if (strcmp(c->block_devices[j].device_name, s) == 0) {
					fieldcheck_violation(fc, FIELDCHECK_MSG_DUPLICATE);
					ok = false;
					break;
				}
			}
		}
		fieldcheck_pop(fc, mark);
	} else {
		ok = false;
	}
	if (fieldcheck_int(fc, m, "volumeSize", FIELDCHECK_REQUIRED, 1, 65536, &size) <= 0)
		ok = false;
	/* With an unknown type the rules of iops and throughput cannot be applied. */
	type_known = fieldcheck_enum(fc, m, "volumeType", 0, NODECLASS_VOLUME_TYPE_NAMES, &type) >= 0;
	if (!type_known)
		ok = false;
	type_name = NODECLASS_VOLUME_TYPE_NAMES[type];
	lim = nodeclass__iops_limits((enum nodeclass_volume_type)type);

	/* iops: its range depends on the type, and is bounded by the volume size. */
	if (fieldcheck_int(fc, m, "iops", 0, 0, INT32_MAX, &iops) > 0 && type_known) {
		mark = fieldcheck_push(fc, "iops");
		if (lim < 0) {
			fieldcheck_violation(fc, "not allowed for volumeType %s "
			    "(only gp3, io1 and io2 take iops)", type_name);
			ok = false;
		} else if (iops < nodeclass_iops[lim].min || iops > nodeclass_iops[lim].max) {
			fieldcheck_violation(fc, "must be between %d and %d for volumeType %s",
			    nodeclass_iops[lim].min, nodeclass_iops[lim].max, type_name);
			ok = false;
		} else if (size > 0 && iops > (int64_t)nodeclass_iops[lim].per_gib * size &&
		    !(type == NODECLASS_VOLUME_GP3 && iops <= NODECLASS_GP3_BASELINE_IOPS)) {
			fieldcheck_violation(fc, "must be at most %lld for a volumeSize of %lld GiB "
			    "(%s allows %d IOPS per GiB)",
			    (long long)(nodeclass_iops[lim].per_gib * size), (long long)size, type_name,
			    nodeclass_iops[lim].per_gib);
			ok = false;
		}
		fieldcheck_pop(fc, mark);
	} else if (!json_is_integer(json_object_get(m, "iops")) &&
	    (type == NODECLASS_VOLUME_IO1 || type == NODECLASS_VOLUME_IO2)) {
		/* EC2 refuses provisioned-IOPS volumes without iops. */
		mark = fieldcheck_push(fc, "iops");
		fieldcheck_violation(fc, "is required for volumeType %s", type_name);
		fieldcheck_pop(fc, mark);
		ok = false;
	}

	/* throughput: gp3 only, and at most 0.25 MiB/s per provisioned IOPS. */
	if (fieldcheck_int(fc, m, "throughput", 0, 0, INT32_MAX, &throughput) > 0 && type_known) {
		int64_t eff_iops = iops > 0 ? iops : NODECLASS_GP3_BASELINE_IOPS;
		mark = fieldcheck_push(fc, "throughput");
		if (type != NODECLASS_VOLUME_GP3) {
			fieldcheck_violation(fc, "not allowed for volumeType %s (only gp3)", type_name);
			ok = false;
		} else if (throughput < 125 || throughput > 2000) {
			fieldcheck_violation(fc, "must be between 125 and 2000");
			ok = false;
		} else if (throughput > NODECLASS_GP3_BASELINE_THROUGHPUT && throughput > eff_iops / 4) {
			fieldcheck_violation(fc, "must be at most %lld for %lld IOPS "
			    "(gp3 allows 0.25 MiB/s per IOPS)", (long long)(eff_iops / 4),
			    (long long)eff_iops);
			ok = false;
		}
		fieldcheck_pop(fc, mark);
	}
	if (fieldcheck_bool(fc, m, "encrypted", 0, &b) > 0)
		bd->encrypted = b;
	if (fieldcheck_string(fc, m, "kmsKeyId", 0, &s) > 0) {
		mark = fieldcheck_push(fc, "kmsKeyId");
		if (!nodeclass__kms_key(s)) {
			fieldcheck_violation(fc, "must be a KMS key ID, key ARN, alias (alias/name) "
			    "or alias ARN");
			ok = false;
		} else if (!bd->encrypted) {
			fieldcheck_violation(fc, "requires encrypted: true");
			ok = false;
		} else {
			has_kms = true;
		}
		fieldcheck_pop(fc, mark);
	}
	if (fieldcheck_bool(fc, m, "deleteOnTermination", 0, &b) > 0)
		bd->delete_on_termination = b;
	if (!ok)
		return 0;
	bd->device_name = strdup(json_string_value(json_object_get(m, "deviceName")));
	if (has_kms)
		bd->kms_key_id = strdup(json_string_value(json_object_get(m, "kmsKeyId")));
	if (bd->device_name == NULL || (has_kms && bd->kms_key_id == NULL)) {
		free(bd->device_name);
		free(bd->kms_key_id);
		return -ENOMEM;
	}
	bd->volume_size = (int)size;
	bd->volume_type = (enum nodeclass_volume_type)type;
	bd->iops = (int)iops;
	bd->throughput = (int)throughput;
	c->nblock_devices++;
	return 0;
}

static int
nodeclass__block_devices(struct fieldcheck *fc, const json_t *spec, struct nodeclass *c)
{
	const json_t *list = NULL;
	size_t mark;
	int rc;

	if (fieldcheck_list(fc, spec, "blockDeviceMappings", 0, LIMITS_NODECLASS_BLOCK_DEVICES,
	    &list) <= 0)
		return 0;
	c->block_devices = calloc(json_array_size(list) + 1, sizeof(*c->block_devices));
	if (c->block_devices == NULL)
		return -ENOMEM;
	mark = fieldcheck_push(fc, "blockDeviceMappings");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *m = json_array_get(list, i);
		size_t m2 = fieldcheck_push_index(fc, i);

		if (!json_is_object(m))
			fieldcheck_violation(fc, FIELDCHECK_MSG_OBJECT);
		else if ((rc = nodeclass__block_device(fc, m, c)) < 0)
			return rc;
		fieldcheck_pop(fc, m2);
	}
	fieldcheck_pop(fc, mark);
	return 0;
}

static int
nodeclass__user_data(struct fieldcheck *fc, const json_t *spec, struct nodeclass *c)
{
	const json_t *v;
	size_t mark = fieldcheck_push(fc, "userData");
	int rc = 0;

	v = json_object_get(spec, "userData");
	if (v == NULL || json_is_null(v)) {
		fieldcheck_warning(fc, "not set; instances join the cluster only if the AMI "
		    "bootstraps itself");
	} else if (!json_is_string(v)) {
		fieldcheck_violation(fc, FIELDCHECK_MSG_STRING);
	} else if (json_string_length(v) > LIMITS_NODECLASS_USER_DATA) {
		fieldcheck_violation(fc, "must be at most %u bytes (the EC2 limit before base64), "
		    "not %zu", LIMITS_NODECLASS_USER_DATA, json_string_length(v));
	} else {
		c->user_data = malloc(json_string_length(v) + 1);
		if (c->user_data == NULL) {
			rc = -ENOMEM;
		} else {
			memcpy(c->user_data, json_string_value(v), json_string_length(v) + 1);
			c->user_data_len = json_string_length(v);
		}
	}
	fieldcheck_pop(fc, mark);
	return rc;
}

static void
nodeclass__metadata_options(struct fieldcheck *fc, const json_t *spec, struct nodeclass *c)
{
	const json_t *mo = NULL;
	int64_t hops;
	size_t mark;
	int v;

	if (fieldcheck_object(fc, spec, "metadataOptions", 0, &mo) <= 0)
		return;
	mark = fieldcheck_push(fc, "metadataOptions");
	fieldcheck_unknown_fields(fc, mo, nodeclass_metadata_options_fields);
	if (fieldcheck_enum(fc, mo, "httpTokens", 0, NODECLASS_HTTP_TOKENS_NAMES, &v) > 0) {
		c->http_tokens = (enum nodeclass_http_tokens)v;
		if (c->http_tokens == NODECLASS_HTTP_TOKENS_OPTIONAL) {
			size_t m2 = fieldcheck_push(fc, "httpTokens");
			fieldcheck_warning(fc, "optional lets pods on the node use IMDSv1; "
			    "required is safer");
			fieldcheck_pop(fc, m2);
		}
	}
	if (fieldcheck_int(fc, mo, "httpPutResponseHopLimit", 0, 1, 64, &hops) > 0)
		c->http_put_response_hop_limit = (int)hops;
	fieldcheck_pop(fc, mark);
}

/* One entry of spec.tags. */
static bool
nodeclass__tag(struct fieldcheck *fc, const char *key, const json_t *v, const void *arg)
{
	bool ok = true;

	(void)arg;
	if (strlen(key) == 0 || strlen(key) > 128) {
		fieldcheck_violation(fc, "key must be 1 to 128 characters");
		ok = false;
	} else if (strncasecmp(key, "aws:", 4) == 0) {
		fieldcheck_violation(fc, "keys starting with \"aws:\" are reserved by AWS");
		ok = false;
	} else if (strncmp(key, NODESTATE_PREFIX, strlen(NODESTATE_PREFIX)) == 0) {
		fieldcheck_violation(fc, "keys starting with \"stratos.sh/\" are reserved "
		    "for Stratos");
		ok = false;
	} else if (strcmp(key, "Name") == 0 || strcmp(key, "managed-by") == 0) {
		fieldcheck_violation(fc, "is set by Stratos on every instance");
		ok = false;
	}
	if (json_is_string(v) && json_string_length(v) > 256) {
		fieldcheck_violation(fc, "value must be at most 256 characters");
		ok = false;
	}
	return ok;
}

static int
nodeclass__spec(struct fieldcheck *fc, const json_t *obj, struct nodeclass *c)
{
	const json_t *spec = NULL;
	int rc;

	if (fieldcheck_object(fc, obj, "spec", FIELDCHECK_REQUIRED, &spec) <= 0)
		return 0;
	fieldcheck_push(fc, "spec");
	fieldcheck_unknown_fields(fc, spec, nodeclass_spec_fields);
	if ((rc = nodeclass__string(fc, spec, "instanceType", FIELDCHECK_REQUIRED,
	    nodeclass__instance_type, "must be an EC2 instance type like m5.2xlarge (family.size)",
	    &c->instance_type)) < 0 ||
	    (rc = nodeclass__string(fc, spec, "ami", FIELDCHECK_REQUIRED, nodeclass__ami,
	    "must be \"ami-\" followed by 8 or 17 lower-case hexadecimal digits", &c->ami)) < 0 ||
	    (rc = nodeclass__string(fc, spec, "region", 0, nodeclass__region,
	    "must be an AWS region like us-east-1", &c->region)) < 0 ||
	    (rc = fieldcheck_string_set(fc, spec, "subnetIds", FIELDCHECK_REQUIRED,
	    LIMITS_NODECLASS_SUBNETS, nodeclass__subnet, &c->subnet_ids, &c->nsubnet_ids)) < 0 ||
	    (rc = fieldcheck_string_set(fc, spec, "securityGroupIds", FIELDCHECK_REQUIRED,
	    LIMITS_NODECLASS_SECURITY_GROUPS, nodeclass__sg, &c->security_group_ids,
	    &c->nsecurity_group_ids)) < 0 ||
	    (rc = nodeclass__string(fc, spec, "iamInstanceProfile", FIELDCHECK_REQUIRED,
	    nodeclass__instance_profile, "must be an instance-profile ARN "
	    "(arn:aws:iam::<12-digit account>:instance-profile/<name>) or a profile name",
	    &c->iam_instance_profile)) < 0 ||
	    (rc = nodeclass__block_devices(fc, spec, c)) < 0 ||
	    (rc = nodeclass__user_data(fc, spec, c)) < 0)
		return rc;
	nodeclass__metadata_options(fc, spec, c);
	if ((rc = fieldcheck_string_map(fc, spec, "tags", LIMITS_NODECLASS_TAGS, nodeclass__tag,
	    NULL, &c->tags, &c->ntags)) < 0)
		return rc;
	fieldcheck_pop(fc, 0);
	return 0;
}

/* The whole object: metadata, then spec. */
static int
nodeclass__object(struct fieldcheck *fc, const json_t *obj, void *arg)
{
	struct nodeclass *c = arg;
	int rc = fieldcheck_metadata(fc, obj, &c->name, &c->uid, &c->resource_version,
	    &c->generation, &c->deleting);

	if (rc < 0)
		return rc;
	return nodeclass__spec(fc, obj, c);
}

int
nodeclass_parse(const json_t *obj, struct fieldcheck_report *rep, struct nodeclass **out)
{
	struct nodeclass *c;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->refs = 1;
	c->http_tokens = NODECLASS_HTTP_TOKENS_REQUIRED;
	c->http_put_response_hop_limit = NODECLASS_DEFAULT_HOP_LIMIT;
	if (!fieldcheck_set_string(&c->name, "") || !fieldcheck_set_string(&c->uid, "") ||
	    !fieldcheck_set_string(&c->resource_version, "") ||
	    !fieldcheck_set_string(&c->instance_type, "") || !fieldcheck_set_string(&c->ami, "") ||
	    !fieldcheck_set_string(&c->iam_instance_profile, "")) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = fieldcheck_walk(obj, rep, nodeclass__object, c, &c->nviolations)) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	nodeclass_free(c);
	return rc;
}
