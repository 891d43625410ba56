/* EC2 Query API client: query building, SigV4-signed calls with retries, XML replies, error classes. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <openssl/evp.h>

#include "stratos/aws_credentials.h"
#include "stratos/aws_retry.h"
#include "stratos/aws_xml.h"
#include "stratos/config.h"
#include "stratos/ec2.h"
#include "stratos/httpc.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/ratelimit.h"
#include "stratos/sigv4.h"
#include "stratos/timeutil.h"

#define EC2__CONNECTIONS_DEFAULT 4u
#define EC2__TIMEOUT_DEFAULT_MS  20000
#define EC2__PAGE_DEFAULT        500u
#define EC2__KEEPALIVE_DEFAULT_MS 30000
#define EC2__CONNECT_TIMEOUT_MS  5000
#define EC2__CONTENT_TYPE        "Content-Type: application/x-www-form-urlencoded; charset=utf-8"

static const char *const ec2__op_names[EC2_OP_COUNT] = {
	[EC2_OP_RUN_INSTANCES] = "RunInstances",
	[EC2_OP_START_INSTANCES] = "StartInstances",
	[EC2_OP_STOP_INSTANCES] = "StopInstances",
	[EC2_OP_TERMINATE_INSTANCES] = "TerminateInstances",
	[EC2_OP_DESCRIBE_INSTANCES] = "DescribeInstances",
	[EC2_OP_CREATE_TAGS] = "CreateTags",
	[EC2_OP_DELETE_TAGS] = "DeleteTags",
};

const char *
ec2_op_name(enum ec2_op op)
{
	return op < EC2_OP_COUNT ? ec2__op_names[op] : "Unknown";
}

/* ---- error classes ------------------------------------------------------- */

const char *
ec2_error_class_name(enum ec2_error_class cls)
{
	switch (cls) {
	case EC2_ERR_NONE:
		return "none";
	case EC2_ERR_NOT_FOUND:
		return "not-found";
	case EC2_ERR_CAPACITY:
		return "capacity";
	case EC2_ERR_WRONG_STATE:
		return "wrong-state";
	case EC2_ERR_THROTTLED:
		return "throttled";
	case EC2_ERR_AUTH:
		return "auth";
	case EC2_ERR_UNKNOWN_OUTCOME:
		return "unknown-outcome";
	default:
		return "other";
	}
}

static bool
ec2__in(const char *code, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(code, *list) == 0)
			return true;
	return false;
}

enum ec2_error_class
ec2_error_classify(const char *code, long http_status)
{
	static const char *const capacity[] = {
		"InsufficientInstanceCapacity", "InsufficientFreeAddressesInSubnet",
		"InstanceLimitExceeded", "VcpuLimitExceeded", "InsufficientHostCapacity",
		"InsufficientCapacity", "InsufficientReservedInstanceCapacity", NULL,
	};
	static const char *const wrong_state[] = {
		"IncorrectInstanceState", "IncorrectState", NULL,
	};
	static const char *const auth[] = {
		"AuthFailure", "UnauthorizedOperation", "SignatureDoesNotMatch", "InvalidClientTokenId",
		"ExpiredToken", "ExpiredTokenException", "RequestExpired", "MissingAuthenticationToken",
		"IncompleteSignature", "AccessDenied", "AccessDeniedException", "OptInRequired",
		"Blocked", "UnrecognizedClientException", "InvalidAccessKeyId",
		"CredentialsExpired", NULL,
	};
	size_t n;

	if (code == NULL || code[0] == '\0') {
		if (http_status == 429 || http_status == 503)
			return EC2_ERR_THROTTLED;
		if (http_status == 401 || http_status == 403)
			return EC2_ERR_AUTH;
		return EC2_ERR_OTHER;
	}
	if (ec2__in(code, capacity))
		return EC2_ERR_CAPACITY;
	if (ec2__in(code, wrong_state))
		return EC2_ERR_WRONG_STATE;
	if (aws_retry_is_throttle_code(code) || strcmp(code, "ClientRateLimited") == 0)
		return EC2_ERR_THROTTLED;
	if (ec2__in(code, auth))
		return EC2_ERR_AUTH;
	n = strlen(code);
	if (n > 9 && strcmp(code + n - 9, ".NotFound") == 0)
		return EC2_ERR_NOT_FOUND;
	return EC2_ERR_OTHER;
}

static void
ec2__err(struct ec2_error *err, enum ec2_error_class cls, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
ec2__err(struct ec2_error *err, enum ec2_error_class cls, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->cls = cls;
	snprintf(err->code, sizeof(err->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->request_id[0] = '\0';
}

int
ec2_parse_error(const char *xml, size_t len, long status, struct ec2_error *err)
{
	struct aws_xml_error xe;

	if (aws_xml_parse_error(xml, len, &xe) < 0) {
		ec2__err(err, ec2_error_classify(NULL, status), status >= 500 ? "HTTP5xx" : "HTTP4xx",
		    "HTTP %ld without an EC2 error document", status);
		err->http_status = status;
		return -EINVAL;
	}
	err->cls = ec2_error_classify(xe.code, status);
	snprintf(err->code, sizeof(err->code), "%s", xe.code);
	snprintf(err->message, sizeof(err->message), "%s", xe.message);
	snprintf(err->request_id, sizeof(err->request_id), "%s", xe.request_id);
	err->http_status = status;
	return 0;
}

static int
ec2__rc_of(enum ec2_error_class cls)
{
	switch (cls) {
	case EC2_ERR_NONE:
		return 0;
	case EC2_ERR_NOT_FOUND:
		return -ENOENT;
	case EC2_ERR_CAPACITY:
		return -ENOSPC;
	case EC2_ERR_WRONG_STATE:
		return -EBUSY;
	case EC2_ERR_THROTTLED:
		return -EAGAIN;
	case EC2_ERR_AUTH:
		return -EACCES;
	case EC2_ERR_UNKNOWN_OUTCOME:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

/* ---- query building --------------------------------------------------------- */

/* Appends "&<key>=<escaped value>"; key is formatted. */
static int
ec2__param(struct buf *out, const char *value, const char *keyfmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
ec2__param(struct buf *out, const char *value, const char *keyfmt, ...)
{
	char key[160];
	char *esc;
	va_list ap;
	int rc;

	va_start(ap, keyfmt);
	vsnprintf(key, sizeof(key), keyfmt, ap);
	va_end(ap);
	esc = httpc_escape(value);
	if (esc == NULL)
		return -ENOMEM;
	rc = buf_printf(out, "&%s=%s", key, esc);
	free(esc);
	return rc;
}

static int
ec2__action(struct buf *out, enum ec2_op op)
{
	return buf_printf(out, "Action=%s&Version=" EC2_API_VERSION, ec2_op_name(op));
}

static int
ec2__invalid(struct ec2_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
ec2__invalid(struct ec2_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		memset(err, 0, sizeof(*err));
		err->cls = EC2_ERR_OTHER;
		snprintf(err->code, sizeof(err->code), "InvalidParameter");
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool
ec2__nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static int
ec2__ids(struct buf *out, const char *prefix, const char *const *ids, size_t n,
    struct ec2_error *err)
{
	int rc;

	if (n > LIMITS_EC2_IDS_PER_CALL)
		return ec2__invalid(err, "%zu ids in one call (at most %u)", n, LIMITS_EC2_IDS_PER_CALL);
	for (size_t i = 0; i < n; i++) {
		if (!ec2__nonempty(ids[i]))
			return ec2__invalid(err, "%s.%zu is empty", prefix, i + 1);
		if ((rc = ec2__param(out, ids[i], "%s.%zu", prefix, i + 1)) < 0)
			return rc;
	}
	return 0;
}

static int
ec2__tag_list(struct buf *out, const char *prefix, const struct ec2_tag *tags, size_t n,
    bool values_required, struct ec2_error *err)
{
	int rc;

	if (n > LIMITS_EC2_TAGS)
		return ec2__invalid(err, "%zu tags (EC2 allows %u)", n, LIMITS_EC2_TAGS);
	for (size_t i = 0; i < n; i++) {
		if (!ec2__nonempty(tags[i].key))
			return ec2__invalid(err, "tag %zu has no key", i + 1);
		if (values_required && tags[i].value == NULL)
			return ec2__invalid(err, "tag %s has no value", tags[i].key);
		if ((rc = ec2__param(out, tags[i].key, "%sTag.%zu.Key", prefix, i + 1)) < 0)
			return rc;
		if (tags[i].value != NULL &&
		    (rc = ec2__param(out, tags[i].value, "%sTag.%zu.Value", prefix, i + 1)) < 0)
			return rc;
	}
	return 0;
}

static const char *
ec2__bool(bool b)
{
	return b ? "true" : "false";
}

static int
ec2__block_device(struct buf *out, size_t i, const struct ec2_block_device *d,
    struct ec2_error *err)
{
	char num[32];
	int rc;

	if (!ec2__nonempty(d->device_name) || strncmp(d->device_name, "/dev/", 5) != 0)
		return ec2__invalid(err, "block device %zu: deviceName must start with /dev/", i);
	if (d->volume_size_gib < 0 || d->volume_size_gib > 65536 || d->iops < 0 ||
	    d->throughput < 0)
		return ec2__invalid(err, "block device %s: size, iops or throughput out of range",
		    d->device_name);
	if (d->kms_key_id != NULL && !d->encrypted)
		return ec2__invalid(err, "block device %s: kmsKeyId requires encrypted", d->device_name);
	if ((rc = ec2__param(out, d->device_name, "BlockDeviceMapping.%zu.DeviceName", i)) < 0)
		return rc;
	if (d->volume_size_gib > 0) {
		snprintf(num, sizeof(num), "%d", d->volume_size_gib);
		if ((rc = ec2__param(out, num, "BlockDeviceMapping.%zu.Ebs.VolumeSize", i)) < 0)
			return rc;
	}
	if (ec2__nonempty(d->volume_type) &&
	    (rc = ec2__param(out, d->volume_type, "BlockDeviceMapping.%zu.Ebs.VolumeType", i)) < 0)
		return rc;
	if (d->iops > 0) {
		snprintf(num, sizeof(num), "%d", d->iops);
		if ((rc = ec2__param(out, num, "BlockDeviceMapping.%zu.Ebs.Iops", i)) < 0)
			return rc;
	}
	if (d->throughput > 0) {
		snprintf(num, sizeof(num), "%d", d->throughput);
		if ((rc = ec2__param(out, num, "BlockDeviceMapping.%zu.Ebs.Throughput", i)) < 0)
			return rc;
	}
	if ((rc = ec2__param(out, ec2__bool(d->encrypted), "BlockDeviceMapping.%zu.Ebs.Encrypted",
	    i)) < 0)
		return rc;
	if (ec2__nonempty(d->kms_key_id) &&
	    (rc = ec2__param(out, d->kms_key_id, "BlockDeviceMapping.%zu.Ebs.KmsKeyId", i)) < 0)
		return rc;
	return ec2__param(out, ec2__bool(d->delete_on_termination),
	    "BlockDeviceMapping.%zu.Ebs.DeleteOnTermination", i);
}

static bool
ec2__valid_client_token(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > 64)
		return false;
	for (; *t != '\0'; t++)
		if ((unsigned char)*t < 0x21 || (unsigned char)*t > 0x7e)
			return false;
	return true;
}

int
ec2_query_run_instances(const struct ec2_run_params *p, struct buf *out, struct ec2_error *err)
{
	unsigned count = p->count > 0 ? p->count : 1;
	char num[32];
	size_t spec = 0;
	int rc;

	if (!ec2__nonempty(p->image_id) || !ec2__nonempty(p->instance_type))
		return ec2__invalid(err, "RunInstances needs an image and an instance type");
	if (p->nsecurity_groups > LIMITS_EC2_SECURITY_GROUPS ||
	    p->nblock_devices > LIMITS_EC2_BLOCK_DEVICES)
		return ec2__invalid(err, "too many security groups or block devices");
	if (p->user_data_len > LIMITS_EC2_USER_DATA)
		return ec2__invalid(err, "user data is %zu bytes; EC2 allows %u before base64",
		    p->user_data_len, LIMITS_EC2_USER_DATA);
	if (p->client_token != NULL && !ec2__valid_client_token(p->client_token))
		return ec2__invalid(err, "ClientToken must be 1-64 printable ASCII characters");
	if (p->metadata_hop_limit < 0 || p->metadata_hop_limit > 64)
		return ec2__invalid(err, "metadata hop limit must be 1-64");
	if (count > 1000)
		return ec2__invalid(err, "count %u too large", count);

	snprintf(num, sizeof(num), "%u", count);
	if ((rc = ec2__action(out, EC2_OP_RUN_INSTANCES)) < 0 ||
	    (rc = ec2__param(out, p->image_id, "ImageId")) < 0 ||
	    (rc = ec2__param(out, p->instance_type, "InstanceType")) < 0 ||
	    (rc = ec2__param(out, num, "MinCount")) < 0 ||
	    (rc = ec2__param(out, num, "MaxCount")) < 0)
		return rc;
	if (ec2__nonempty(p->subnet_id) && (rc = ec2__param(out, p->subnet_id, "SubnetId")) < 0)
		return rc;
	if ((rc = ec2__ids(out, "SecurityGroupId", p->security_group_ids, p->nsecurity_groups,
	    err)) < 0)
		return rc;
	if (ec2__nonempty(p->iam_instance_profile)) {
		bool arn = strncmp(p->iam_instance_profile, "arn:", 4) == 0;
		if ((rc = ec2__param(out, p->iam_instance_profile, "IamInstanceProfile.%s",
		    arn ? "Arn" : "Name")) < 0)
			return rc;
	}
	for (size_t i = 0; i < p->nblock_devices; i++)
		if ((rc = ec2__block_device(out, i + 1, &p->block_devices[i], err)) < 0)
			return rc;
	if (p->user_data != NULL && p->user_data_len > 0) {
		size_t n = 4 * ((p->user_data_len + 2) / 3);
		unsigned char *b64 = malloc(n + 1);
		if (b64 == NULL)
			return -ENOMEM;
		EVP_EncodeBlock(b64, p->user_data, (int)p->user_data_len);
		rc = ec2__param(out, (const char *)b64, "UserData");
		free(b64);
		if (rc < 0)
			return rc;
	}
	if (ec2__nonempty(p->metadata_http_tokens)) {
		if (strcmp(p->metadata_http_tokens, "required") != 0 &&
		    strcmp(p->metadata_http_tokens, "optional") != 0)
			return ec2__invalid(err, "metadata httpTokens must be required or optional");
		if ((rc = ec2__param(out, p->metadata_http_tokens, "MetadataOptions.HttpTokens")) < 0 ||
		    (rc = ec2__param(out, "enabled", "MetadataOptions.HttpEndpoint")) < 0)
			return rc;
	}
	if (p->metadata_hop_limit > 0) {
		snprintf(num, sizeof(num), "%d", p->metadata_hop_limit);
		if ((rc = ec2__param(out, num, "MetadataOptions.HttpPutResponseHopLimit")) < 0)
			return rc;
	}
	if (p->ntags > 0) {
		char prefix[48];
		const char *types[2] = { "instance", "volume" };
		for (size_t t = 0; t < (p->tag_volumes ? 2u : 1u); t++) {
			spec++;
			if ((rc = ec2__param(out, types[t], "TagSpecification.%zu.ResourceType", spec)) < 0)
				return rc;
			snprintf(prefix, sizeof(prefix), "TagSpecification.%zu.", spec);
			if ((rc = ec2__tag_list(out, prefix, p->tags, p->ntags, true, err)) < 0)
				return rc;
		}
	}
	if (p->client_token != NULL && (rc = ec2__param(out, p->client_token, "ClientToken")) < 0)
		return rc;
	return 0;
}

int
ec2_query_instance_ids(enum ec2_op op, const char *const *ids, size_t n, bool force,
    struct buf *out, struct ec2_error *err)
{
	int rc;

	if (op != EC2_OP_START_INSTANCES && op != EC2_OP_STOP_INSTANCES &&
	    op != EC2_OP_TERMINATE_INSTANCES)
		return ec2__invalid(err, "%s does not take a plain id list", ec2_op_name(op));
	if (n == 0)
		return ec2__invalid(err, "%s needs at least one instance id", ec2_op_name(op));
	if ((rc = ec2__action(out, op)) < 0 || (rc = ec2__ids(out, "InstanceId", ids, n, err)) < 0)
		return rc;
	if (op == EC2_OP_STOP_INSTANCES && force)
		return ec2__param(out, "true", "Force");
	return 0;
}

int
ec2_query_describe(const struct ec2_filter *filters, size_t nfilters, const char *const *ids,
    size_t nids, unsigned max_results, const char *next_token, struct buf *out,
    struct ec2_error *err)
{
	char num[32];
	int rc;

	if (nfilters > LIMITS_EC2_FILTERS)
		return ec2__invalid(err, "%zu filters (at most %u)", nfilters, LIMITS_EC2_FILTERS);
	if ((rc = ec2__action(out, EC2_OP_DESCRIBE_INSTANCES)) < 0)
		return rc;
	for (size_t i = 0; i < nfilters; i++) {
		const struct ec2_filter *f = &filters[i];
		if (!ec2__nonempty(f->name) || f->nvalues == 0 ||
		    f->nvalues > LIMITS_EC2_FILTER_VALUES)
			return ec2__invalid(err, "filter %zu needs a name and 1-%u values", i + 1,
			    LIMITS_EC2_FILTER_VALUES);
		if ((rc = ec2__param(out, f->name, "Filter.%zu.Name", i + 1)) < 0)
			return rc;
		for (size_t j = 0; j < f->nvalues; j++) {
			if (f->values[j] == NULL)
				return ec2__invalid(err, "filter %s: value %zu is NULL", f->name, j + 1);
			if ((rc = ec2__param(out, f->values[j], "Filter.%zu.Value.%zu", i + 1, j + 1)) < 0)
				return rc;
		}
	}
	if ((rc = ec2__ids(out, "InstanceId", ids, nids, err)) < 0)
		return rc;
	/* EC2 refuses MaxResults together with InstanceId. */
	if (nids == 0 && max_results > 0) {
		if (max_results < 5 || max_results > 1000)
			return ec2__invalid(err, "MaxResults must be 5-1000");
		snprintf(num, sizeof(num), "%u", max_results);
		if ((rc = ec2__param(out, num, "MaxResults")) < 0)
			return rc;
	}
	if (ec2__nonempty(next_token) && (rc = ec2__param(out, next_token, "NextToken")) < 0)
		return rc;
	return 0;
}

int
ec2_query_tags(enum ec2_op op, const char *const *ids, size_t n, const struct ec2_tag *tags,
    size_t ntags, struct buf *out, struct ec2_error *err)
{
	int rc;

	if (op != EC2_OP_CREATE_TAGS && op != EC2_OP_DELETE_TAGS)
		return ec2__invalid(err, "%s is not a tag operation", ec2_op_name(op));
	if (n == 0 || (op == EC2_OP_CREATE_TAGS && ntags == 0))
		return ec2__invalid(err, "%s needs resources and tags", ec2_op_name(op));
	if ((rc = ec2__action(out, op)) < 0 || (rc = ec2__ids(out, "ResourceId", ids, n, err)) < 0)
		return rc;
	return ec2__tag_list(out, "", tags, ntags, op == EC2_OP_CREATE_TAGS, err);
}

/* ---- reply parsing ------------------------------------------------------------ */

void
ec2_instances_free(struct ec2_instances *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->len; i++) {
		for (size_t t = 0; t < list->v[i].ntags; t++) {
			free(list->v[i].tags[t].key);
			free(list->v[i].tags[t].value);
		}
		free(list->v[i].tags);
	}
	free(list->v);
	memset(list, 0, sizeof(*list));
}

const char *
ec2_instance_tag(const struct ec2_instance *in, const char *key)
{
	for (size_t i = 0; i < in->ntags; i++)
		if (strcmp(in->tags[i].key, key) == 0)
			return in->tags[i].value;
	return NULL;
}

void
ec2_state_changes_free(struct ec2_state_changes *list)
{
	if (list == NULL)
		return;
	free(list->v);
	memset(list, 0, sizeof(*list));
}

static int
ec2__grow(void **v, size_t *cap, size_t len, size_t elem, size_t max)
{
	size_t ncap;
	void *p;

	if (len < *cap)
		return 0;
	if (len >= max)
		return -E2BIG;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > max)
		ncap = max;
	p = realloc(*v, ncap * elem);
	if (p == NULL)
		return -ENOMEM;
	memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
	*v = p;
	*cap = ncap;
	return 0;
}

static int
ec2__state_code(const xmlNode *state)
{
	char code[16];

	aws_xml_text(aws_xml_child(state, "code"), code, sizeof(code));
	return (int)(strtol(code, NULL, 10) & 0xff);
}

static int
ec2__parse_instance(const xmlNode *item, struct ec2_instance *in)
{
	const xmlNode *state = aws_xml_child(item, "instanceState");
	const xmlNode *tags, *t;
	char when[64];
	size_t n = 0;

	aws_xml_text(aws_xml_child(item, "instanceId"), in->id, sizeof(in->id));
	if (in->id[0] == '\0')
		return -EINVAL;
	aws_xml_text(aws_xml_child(item, "imageId"), in->image_id, sizeof(in->image_id));
	aws_xml_text(aws_xml_child(item, "instanceType"), in->instance_type,
	    sizeof(in->instance_type));
	in->state_code = ec2__state_code(state);
	aws_xml_text(aws_xml_child(state, "name"), in->state, sizeof(in->state));
	aws_xml_text(aws_xml_path(item, "stateReason/code"), in->state_reason,
	    sizeof(in->state_reason));
	aws_xml_text(aws_xml_child(item, "reason"), in->state_transition_reason,
	    sizeof(in->state_transition_reason));
	aws_xml_text(aws_xml_child(item, "privateDnsName"), in->private_dns_name,
	    sizeof(in->private_dns_name));
	aws_xml_text(aws_xml_child(item, "privateIpAddress"), in->private_ip,
	    sizeof(in->private_ip));
	aws_xml_text(aws_xml_path(item, "placement/availabilityZone"), in->availability_zone,
	    sizeof(in->availability_zone));
	aws_xml_text(aws_xml_child(item, "subnetId"), in->subnet_id, sizeof(in->subnet_id));
	aws_xml_text(aws_xml_child(item, "vpcId"), in->vpc_id, sizeof(in->vpc_id));
	aws_xml_text(aws_xml_child(item, "clientToken"), in->client_token, sizeof(in->client_token));
	if (aws_xml_text(aws_xml_child(item, "launchTime"), when, sizeof(when)) == 0 &&
	    time_parse_rfc3339(when, &in->launch_time_ms) < 0)
		in->launch_time_ms = 0;
	tags = aws_xml_child(item, "tagSet");
	for (t = aws_xml_child(tags, "item"); t != NULL; t = aws_xml_next(t))
		n++;
	if (n > LIMITS_EC2_TAGS * 2)
		n = LIMITS_EC2_TAGS * 2;
	if (n == 0)
		return 0;
	in->tags = calloc(n, sizeof(*in->tags));
	if (in->tags == NULL)
		return -ENOMEM;
	for (t = aws_xml_child(tags, "item"); t != NULL && in->ntags < n; t = aws_xml_next(t)) {
		struct ec2_instance_tag *tag = &in->tags[in->ntags];
		tag->key = aws_xml_strdup(aws_xml_child(t, "key"));
		tag->value = aws_xml_strdup(aws_xml_child(t, "value"));
		if (tag->value == NULL && tag->key != NULL)
			tag->value = strdup("");
		if (tag->key == NULL || tag->value == NULL) {
			free(tag->key);
			free(tag->value);
			tag->key = tag->value = NULL;
			return -ENOMEM;
		}
		in->ntags++;
	}
	return 0;
}

static int
ec2__append_items(const xmlNode *set, struct ec2_instances *out)
{
	int rc;

	for (const xmlNode *it = aws_xml_child(set, "item"); it != NULL; it = aws_xml_next(it)) {
		rc = ec2__grow((void **)&out->v, &out->cap, out->len, sizeof(*out->v),
		    LIMITS_EC2_DESCRIBE_INSTANCES);
		if (rc < 0)
			return rc;
		rc = ec2__parse_instance(it, &out->v[out->len]);
		/* A half-parsed instance is freed with the list. */
		out->len++;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
ec2_parse_instances(const char *xml, size_t len, struct ec2_instances *out, char **next_token)
{
	xmlDoc *doc = aws_xml_parse(xml, len);
	xmlNode *root;
	int rc = 0;

	if (next_token != NULL)
		*next_token = NULL;
	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	if (strcmp((const char *)root->name, "RunInstancesResponse") == 0) {
		rc = ec2__append_items(aws_xml_child(root, "instancesSet"), out);
	} else if (strcmp((const char *)root->name, "DescribeInstancesResponse") == 0) {
		xmlNode *rs = aws_xml_child(root, "reservationSet");
		for (xmlNode *r = aws_xml_child(rs, "item"); r != NULL && rc == 0; r = aws_xml_next(r))
			rc = ec2__append_items(aws_xml_child(r, "instancesSet"), out);
		if (rc == 0 && next_token != NULL) {
			xmlNode *nt = aws_xml_child(root, "nextToken");
			if (nt != NULL) {
				*next_token = aws_xml_strdup(nt);
				if (*next_token == NULL)
					rc = -ENOMEM;
				else if ((*next_token)[0] == '\0') {
					free(*next_token);
					*next_token = NULL;
				}
			}
		}
	} else {
		rc = -EINVAL;
	}
	xmlFreeDoc(doc);
	return rc;
}

int
ec2_parse_state_changes(const char *xml, size_t len, struct ec2_state_changes *out)
{
	xmlDoc *doc = aws_xml_parse(xml, len);
	xmlNode *root, *set;
	int rc = 0;

	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	set = aws_xml_child(root, "instancesSet");
	if (set == NULL) {
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	for (xmlNode *it = aws_xml_child(set, "item"); it != NULL; it = aws_xml_next(it)) {
		struct ec2_state_change *sc;
		rc = ec2__grow((void **)&out->v, &out->cap, out->len, sizeof(*out->v),
		    LIMITS_EC2_IDS_PER_CALL);
		if (rc < 0)
			break;
		sc = &out->v[out->len];
		aws_xml_text(aws_xml_child(it, "instanceId"), sc->id, sizeof(sc->id));
		sc->current_code = ec2__state_code(aws_xml_child(it, "currentState"));
		aws_xml_text(aws_xml_path(it, "currentState/name"), sc->current, sizeof(sc->current));
		sc->previous_code = ec2__state_code(aws_xml_child(it, "previousState"));
		aws_xml_text(aws_xml_path(it, "previousState/name"), sc->previous,
		    sizeof(sc->previous));
		if (sc->id[0] == '\0' || aws_xml_child(it, "currentState") == NULL) {
			rc = -EINVAL;
			break;
		}
		out->len++;
	}
	xmlFreeDoc(doc);
	return rc;
}

/* ---- the client ---------------------------------------------------------------- */

struct ec2__conn {
	struct httpc *http;
	int64_t last_used_ms;         /* monotonic; 0 = never used */
	bool busy;
};

struct ec2_client {
	char region[LIMITS_AWS_REGION + 1];
	char endpoint[LIMITS_AWS_URL];
	char host[300];                   /* Host header, port included when not the default */
	char path[512];
	struct aws_credentials_provider *creds;
	struct ratelimit buckets[EC2_OP_COUNT];
	struct aws_retry_quota quota;
	int64_t default_timeout_ms;
	int64_t keepalive_ms;
	unsigned max_attempts;
	unsigned page_size;
	bool fresh;

	pthread_mutex_t lock;             /* the pool and the stats */
	pthread_cond_t cond;
	struct ec2__conn *conns;
	size_t nconns;
	struct ec2_client_stats stats;
	bool stop;
	bool keepalive_started;
	pthread_t keepalive;

	struct metrics_family *m_requests;
	struct metrics_family *m_seconds;
};

int
ec2_endpoint_resolve(const char *flag, const char *region, char *out, size_t len)
{
	const char *v = flag;
	int n;

	if (!ec2__nonempty(v))
		v = getenv("AWS_ENDPOINT_URL_EC2");
	if (!ec2__nonempty(v))
		v = getenv("AWS_ENDPOINT_URL");
	if (ec2__nonempty(v))
		n = snprintf(out, len, "%s", v);
	else
		n = snprintf(out, len, "https://ec2.%s.amazonaws.com%s", region,
		    strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	return n < 0 || (size_t)n >= len ? -E2BIG : 0;
}

/* "Start=10/20,RunInstances=2/5" over the defaults. */
static int
ec2__parse_rates(const char *spec, double rate[EC2_OP_COUNT], double burst[EC2_OP_COUNT],
    struct ec2_error *err)
{
	char copy[1024], *save = NULL;

	if (spec == NULL || spec[0] == '\0')
		return 0;
	if (strlen(spec) >= sizeof(copy))
		return ec2__invalid(err, "rate limits: too long");
	snprintf(copy, sizeof(copy), "%s", spec);
	for (char *item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		size_t i;
		while (*item == ' ')
			item++;
		if (eq == NULL)
			return ec2__invalid(err, "rate limits: \"%s\" is not Action=rate/burst", item);
		*eq = '\0';
		for (i = 0; i < EC2_OP_COUNT; i++) {
			const char *name = ec2__op_names[i];
			size_t n = strlen(name);
			if (strcasecmp(item, name) == 0)
				break;
			/* "Start" for StartInstances. */
			if (n > 9 && strcmp(name + n - 9, "Instances") == 0 &&
			    strlen(item) == n - 9 && strncasecmp(item, name, n - 9) == 0)
				break;
		}
		if (i == EC2_OP_COUNT)
			return ec2__invalid(err, "rate limits: unknown action \"%s\"", item);
		if (ratelimit_parse(eq + 1, &rate[i], &burst[i]) < 0)
			return ec2__invalid(err, "rate limits: %s: \"%s\" is not rate/burst", item, eq + 1);
	}
	return 0;
}

static int
ec2__conn_open(struct ec2__conn *conn, const char *ca_file)
{
	struct httpc_tls tls = { .ca_file = ca_file };

	conn->http = httpc_new(&tls);
	return conn->http != NULL ? 0 : -ENOMEM;
}

static void *ec2__keepalive_main(void *arg);

int
ec2_client_new(const struct ec2_options *opts, struct ec2_client **out, struct ec2_error *err)
{
	static const char *const req_labels[] = { "operation", "result", NULL };
	static const char *const sec_labels[] = { "operation", NULL };
	double rate[EC2_OP_COUNT], burst[EC2_OP_COUNT];
	struct ec2_client *c;
	struct httpc_url u;
	const char *ca_file;
	int rc;

	*out = NULL;
	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (opts == NULL || !ec2__nonempty(opts->region) || opts->credentials == NULL ||
	    strlen(opts->region) > LIMITS_AWS_REGION)
		return ec2__invalid(err, "EC2 client needs a region and credentials");
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	time_cond_init(&c->cond);
	aws_retry_quota_init(&c->quota, AWS_RETRY_QUOTA);
	for (size_t i = 0; i < EC2_OP_COUNT; i++)
		ratelimit_init(&c->buckets[i], 0, 1);

	snprintf(c->region, sizeof(c->region), "%s", opts->region);
	c->creds = opts->credentials;
	c->default_timeout_ms = opts->default_timeout_ms > 0 ? opts->default_timeout_ms :
	    EC2__TIMEOUT_DEFAULT_MS;
	c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : AWS_RETRY_MAX_ATTEMPTS;
	if (c->max_attempts > LIMITS_EC2_ATTEMPTS_MAX)
		c->max_attempts = LIMITS_EC2_ATTEMPTS_MAX;
	c->page_size = opts->describe_page_size > 0 ? opts->describe_page_size : EC2__PAGE_DEFAULT;
	c->keepalive_ms = opts->keepalive_ms == 0 ? EC2__KEEPALIVE_DEFAULT_MS : opts->keepalive_ms;
	c->fresh = opts->fresh_connections;
	if (c->page_size < 5 || c->page_size > 1000) {
		rc = ec2__invalid(err, "describe page size must be 5-1000");
		goto fail;
	}

	rc = ec2_endpoint_resolve(opts->endpoint, opts->region, c->endpoint, sizeof(c->endpoint));
	if (rc == 0)
		rc = httpc_url_parse(c->endpoint, &u);
	if (rc < 0) {
		rc = ec2__invalid(err, "EC2 endpoint \"%.200s\" is not an http(s) URL", c->endpoint);
		goto fail;
	}
	snprintf(c->host, sizeof(c->host), "%s", u.host);
	if (!u.default_port)
		snprintf(c->host + strlen(c->host), sizeof(c->host) - strlen(c->host), ":%d", u.port);
	snprintf(c->path, sizeof(c->path), "%s", u.path);

	/* Rate limits: defaults, then the operator's overrides. */
	for (size_t i = 0; i < EC2_OP_COUNT; i++)
		rate[i] = 0, burst[i] = 1;
	if ((rc = ec2__parse_rates(EC2_RATE_LIMITS_DEFAULT, rate, burst, err)) < 0 ||
	    (rc = ec2__parse_rates(opts->rate_limits, rate, burst, err)) < 0)
		goto fail;
	for (size_t i = 0; i < EC2_OP_COUNT; i++) {
		ratelimit_destroy(&c->buckets[i]);
		ratelimit_init(&c->buckets[i], rate[i], burst[i]);
	}

	c->nconns = opts->connections > 0 ? opts->connections : EC2__CONNECTIONS_DEFAULT;
	if (c->nconns > LIMITS_EC2_CONNECTIONS_MAX)
		c->nconns = LIMITS_EC2_CONNECTIONS_MAX;
	c->conns = calloc(c->nconns, sizeof(*c->conns));
	if (c->conns == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	ca_file = opts->ca_file != NULL ? opts->ca_file : getenv("AWS_CA_BUNDLE");
	if (ca_file != NULL && ca_file[0] == '\0')
		ca_file = NULL;
	for (size_t i = 0; i < c->nconns; i++) {
		if ((rc = ec2__conn_open(&c->conns[i], ca_file)) < 0)
			goto fail;
	}
	c->m_requests = metrics_register(METRICS_COUNTER, "stratos_cloud_requests_total",
	    "EC2 HTTP requests by action and result (success or error class)", req_labels, NULL, 0);
	c->m_seconds = metrics_register(METRICS_HISTOGRAM, "stratos_cloud_request_seconds",
	    "EC2 HTTP request latency by action", sec_labels, METRICS_BUCKETS_LATENCY,
	    METRICS_BUCKETS_LATENCY_COUNT);
	c->stats.quota = AWS_RETRY_QUOTA;
	if (c->keepalive_ms > 0 && !c->fresh) {
		if (pthread_create(&c->keepalive, NULL, ec2__keepalive_main, c) != 0) {
			rc = -EAGAIN;
			goto fail;
		}
		c->keepalive_started = true;
	}
	*out = c;
	return 0;
fail:
	ec2_client_free(c);
	return rc;
}

void
ec2_client_free(struct ec2_client *c)
{
	if (c == NULL)
		return;
	if (c->keepalive_started) {
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->keepalive, NULL);
	}
	for (size_t i = 0; c->conns != NULL && i < c->nconns; i++)
		httpc_free(c->conns[i].http);
	free(c->conns);
	for (size_t i = 0; i < EC2_OP_COUNT; i++)
		ratelimit_destroy(&c->buckets[i]);
	aws_retry_quota_destroy(&c->quota);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void
ec2_options_from_config(const struct config *cfg, const char *region,
    struct aws_credentials_provider *creds, struct ec2_options *out)
{
	memset(out, 0, sizeof(*out));
	out->region = region;
	out->credentials = creds;
	out->endpoint = cfg->aws_endpoint_url;
	out->rate_limits = cfg->ec2_rate_limits;
	out->default_timeout_ms = cfg->ec2_timeout_ms;
	out->connections = (unsigned)cfg->ec2_connections;
}

const char *
ec2_client_endpoint(const struct ec2_client *c)
{
	return c->endpoint;
}

void
ec2_client_stats(struct ec2_client *c, struct ec2_client_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
	out->quota = aws_retry_quota_available(&c->quota);
}

/*
 * Checks out the free connection used most recently (the one most likely
 * still open), waiting until deadline_ms. Returns NULL on timeout.
 */
static struct ec2__conn *
ec2__checkout(struct ec2_client *c, int64_t deadline_ms, bool wait)
{
	struct ec2__conn *best = NULL;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		for (size_t i = 0; i < c->nconns; i++) {
			struct ec2__conn *k = &c->conns[i];
			if (!k->busy && (best == NULL || k->last_used_ms > best->last_used_ms))
				best = k;
		}
		if (best != NULL || !wait || c->stop || time_mono_ms() >= deadline_ms)
			break;
		time_cond_wait_until(&c->cond, &c->lock, deadline_ms);
	}
	if (best != NULL)
		best->busy = true;
	pthread_mutex_unlock(&c->lock);
	return best;
}

static void
ec2__checkin(struct ec2_client *c, struct ec2__conn *k, const struct httpc_response *resp,
    bool ping)
{
	pthread_mutex_lock(&c->lock);
	k->busy = false;
	k->last_used_ms = time_mono_ms();
	if (resp->request_sent) {
		if (ping)
			c->stats.keepalive_pings++;
		else
			c->stats.requests++;
		if (resp->reused_connection && !ping)
			c->stats.reused++;
		if (!resp->reused_connection)
			c->stats.new_connections++;
	}
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/*
 * A cheap unsigned request that keeps (or makes) a connection open. EC2
 * answers it with an error and no action is taken, so it costs no API quota.
 */
static int
ec2__ping(struct ec2_client *c, struct ec2__conn *k, int64_t timeout_ms)
{
	struct httpc_request req = { .method = "GET", .url = c->endpoint,
	    .timeout_ms = timeout_ms, .connect_timeout_ms = timeout_ms, .max_response = 64 * 1024 };
	struct httpc_response resp;
	int rc;

	httpc_response_init(&resp);
	rc = httpc_perform(k->http, &req, &resp);
	ec2__checkin(c, k, &resp, true);
	httpc_response_free(&resp);
	return rc;
}

int
ec2_client_warm(struct ec2_client *c, int64_t deadline_ms)
{
	struct ec2__conn *held[LIMITS_EC2_CONNECTIONS_MAX];
	size_t n = 0;
	int open = 0;

	/* Hold them all so each ping lands on a different handle. */
	while (n < c->nconns && (held[n] = ec2__checkout(c, deadline_ms, true)) != NULL)
		n++;
	for (size_t i = 0; i < n; i++) {
		int64_t left = deadline_ms - time_mono_ms();
		if (left < 1)
			left = 1;
		if (ec2__ping(c, held[i], left) == 0)
			open++;
	}
	return open;
}

static void *
ec2__keepalive_main(void *arg)
{
	struct ec2_client *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		int64_t now = time_mono_ms();
		struct ec2__conn *due = NULL;
		for (size_t i = 0; i < c->nconns && due == NULL; i++) {
			struct ec2__conn *k = &c->conns[i];
			if (!k->busy && k->last_used_ms != 0 && now - k->last_used_ms >= c->keepalive_ms)
				due = k;
		}
		if (due != NULL) {
			due->busy = true;
			pthread_mutex_unlock(&c->lock);
			ec2__ping(c, due, EC2__CONNECT_TIMEOUT_MS);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		time_cond_wait_until(&c->cond, &c->lock,
		    now + (c->keepalive_ms / 4 > 0 ? c->keepalive_ms / 4 : 1));
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void
ec2__sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Outcome of one HTTP attempt. */
struct ec2__attempt {
	enum ec2_error_class cls;     /* EC2_ERR_NONE on success */
	bool retryable;
	bool timeout_cost;            /* the retry quota charges a timeout */
	bool throttled;
};

/* Signs and sends one attempt on a pooled connection. */
static int
ec2__attempt(struct ec2_client *c, enum ec2_op op, const struct buf *body, int64_t deadline,
    bool dry_run, struct httpc_response *resp, struct ec2_error *err, struct ec2__attempt *at)
{
	struct aws_credentials creds;
	struct sigv4_signature sig = { 0 };
	struct ec2__conn *k;
	char date[SIGV4_DATE_LEN], h_host[320], h_date[48];
	char *h_token = NULL, *h_auth = NULL;
	const char *headers[6];
	const char *sign_headers[] = { EC2__CONTENT_TYPE, NULL };
	size_t nh = 0;
	int64_t t0, left;
	int rc;

	memset(at, 0, sizeof(*at));
	if (ratelimit_acquire(&c->buckets[op], deadline) < 0) {
		ec2__err(err, EC2_ERR_THROTTLED, "ClientRateLimited",
		    "%s: the client-side rate limit has no token before the deadline", ec2_op_name(op));
		at->cls = EC2_ERR_THROTTLED;
		return -EAGAIN;
	}
	if (aws_credentials_get(c->creds, &creds) < 0) {
		ec2__err(err, EC2_ERR_AUTH, "CredentialsExpired",
		    "the AWS credentials expired and could not be refreshed");
		at->cls = EC2_ERR_AUTH;
		return -EACCES;
	}
	sigv4_format_date(time_real_ms(), date);
	struct sigv4_request sreq = {
		.method = "POST", .host = c->host, .path = c->path, .headers = sign_headers,
		.body = body->data, .body_len = body->len, .region = c->region,
		.service = "ec2", .amz_date = date,
	};
	struct sigv4_credentials sc = { creds.access_key_id, creds.secret_access_key,
	    creds.session_token };
	rc = sigv4_sign(&sreq, &sc, false, &sig);
	if (rc == 0 && creds.session_token[0] != '\0' &&
	    asprintf(&h_token, "X-Amz-Security-Token: %s", creds.session_token) < 0) {
		h_token = NULL;
		rc = -ENOMEM;
	}
	aws_credentials_wipe(&creds);
	if (rc == 0 && asprintf(&h_auth, "Authorization: %s", sig.authorization) < 0) {
		h_auth = NULL;
		rc = -ENOMEM;
	}
	sigv4_signature_free(&sig);
	if (rc < 0) {
		ec2__err(err, EC2_ERR_OTHER, "SigningFailed", "cannot sign the request (%d)", rc);
		at->cls = EC2_ERR_OTHER;
		goto out;
	}
	snprintf(h_host, sizeof(h_host), "Host: %s", c->host);
	snprintf(h_date, sizeof(h_date), "X-Amz-Date: %s", date);
	headers[nh++] = EC2__CONTENT_TYPE;
	headers[nh++] = h_host;
	headers[nh++] = h_date;
	if (h_token != NULL)
		headers[nh++] = h_token;
	headers[nh++] = h_auth;
	headers[nh] = NULL;

	k = ec2__checkout(c, deadline, true);
	if (k == NULL) {
		ec2__err(err, EC2_ERR_THROTTLED, "ClientRateLimited",
		    "%s: every pooled EC2 connection stayed busy until the deadline", ec2_op_name(op));
		at->cls = EC2_ERR_THROTTLED;
		rc = -EAGAIN;
		goto out;
	}
	t0 = time_mono_ms();
	left = deadline - t0;
	if (left < 1)
		left = 1;
	struct httpc_request req = {
		.method = "POST", .url = c->endpoint, .headers = headers, .body = body->data,
		.body_len = body->len, .timeout_ms = left,
		.connect_timeout_ms = left < EC2__CONNECT_TIMEOUT_MS ? left : EC2__CONNECT_TIMEOUT_MS,
		.max_response = LIMITS_EC2_RESPONSE, .fresh_connection = c->fresh,
	};
	rc = httpc_perform(k->http, &req, resp);
	ec2__checkin(c, k, resp, false);
	if (c->m_seconds != NULL)
		metrics_histogram_observe(c->m_seconds, (double)(time_mono_ms() - t0) / 1000.0,
		    ec2_op_name(op));
	err->http_status = resp->status;

	if (rc == 0 && resp->status == 200) {
		at->cls = EC2_ERR_NONE;
	} else if (rc == 0) {
		ec2_parse_error(resp->body.data, resp->body.len, resp->status, err);
		/* Keys refused as expired or unknown: maybe revoked; fetch new ones now. */
		if (strcmp(err->code, "ExpiredToken") == 0 || strcmp(err->code, "RequestExpired") == 0 ||
		    strcmp(err->code, "AuthFailure") == 0 || strcmp(err->code, "InvalidClientTokenId") == 0)
			aws_credentials_provider_refresh_soon(c->creds);
		if (dry_run && strcmp(err->code, "DryRunOperation") == 0) {
			at->cls = EC2_ERR_NONE;
		} else {
			at->cls = err->cls;
			at->throttled = err->cls == EC2_ERR_THROTTLED;
			at->retryable = aws_retry_is_retryable(err->code, resp->status);
			/* A bare 5xx (a proxy, a load balancer) may come after EC2 acted. */
			if (resp->status >= 500 && err->code[0] == 'H' &&
			    strncmp(err->code, "HTTP", 4) == 0 && op != EC2_OP_DESCRIBE_INSTANCES) {
				at->cls = err->cls = EC2_ERR_UNKNOWN_OUTCOME;
				at->timeout_cost = true;
			}
		}
	} else {
		/*
		 * No reply. If the request left, EC2 may have acted on it: the
		 * outcome is unknown (a read has no outcome to be unsure of).
		 */
		const char *code = rc == -ETIMEDOUT ? "RequestTimeout" :
		    rc == -ECONNRESET ? "ConnectionDropped" : rc == -EPROTO ? "TLSError" :
		    rc == -EMSGSIZE ? "ResponseTooLarge" : "ConnectionFailed";
		at->cls = resp->request_sent && op != EC2_OP_DESCRIBE_INSTANCES ?
		    EC2_ERR_UNKNOWN_OUTCOME : EC2_ERR_OTHER;
		ec2__err(err, at->cls, code, "%s", resp->error);
		err->http_status = 0;
		at->retryable = rc != -EMSGSIZE;
		at->timeout_cost = true;
	}
	rc = 0;
out:
	free(h_auth);
	if (h_token != NULL) {
		explicit_bzero(h_token, strlen(h_token));
		free(h_token);
	}
	return rc;
}

static void
ec2__log_attempt(enum ec2_op op, const struct ec2_error *err, unsigned attempt, int64_t elapsed,
    bool final)
{
	/* Not-found and wrong-state are answers the caller expects and handles. */
	enum log_level lvl = final && err->cls != EC2_ERR_NOT_FOUND &&
	    err->cls != EC2_ERR_WRONG_STATE ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;

	if (!log_enabled(lvl))
		return;
	log_msg(lvl, json_pack("{s:s,s:s,s:s,s:i,s:I,s:i,s:s}", "operation", ec2_op_name(op),
	    "code", err->code, "class", ec2_error_class_name(err->cls), "attempt", (int)attempt,
	    "elapsed_ms", (json_int_t)elapsed, "http_status", (int)err->http_status,
	    "request_id", err->request_id),
	    final ? "EC2 call failed: %s" : "EC2 attempt failed, retrying: %s", err->message);
}

/*
 * Runs one call: rate limit, sign, send, classify; retries in the AWS
 * standard mode while the deadline and the retry quota allow. On success
 * reply holds the body (the caller frees it).
 */
static int
ec2__call(struct ec2_client *c, enum ec2_op op, struct buf *body, const struct ec2_call *call,
    struct buf *reply, struct ec2_error *err)
{
	struct ec2_error scratch;
	struct httpc_response resp;
	struct ec2__attempt at;
	int64_t start = time_mono_ms();
	int64_t deadline = call != NULL && call->deadline_ms > 0 ? call->deadline_ms :
	    start + c->default_timeout_ms;
	unsigned max = call != NULL && call->max_attempts > 0 ? call->max_attempts : c->max_attempts;
	unsigned last_cost = 0, attempt = 0;
	bool dry_run = call != NULL && call->dry_run;
	bool was_unknown = false;
	int rc;

	if (err == NULL)
		err = &scratch;
	memset(err, 0, sizeof(*err));
	if (max > LIMITS_EC2_ATTEMPTS_MAX)
		max = LIMITS_EC2_ATTEMPTS_MAX;
	if (dry_run && (rc = buf_append_str(body, "&DryRun=true")) < 0)
		return rc;
	httpc_response_init(&resp);
	for (;;) {
		if (time_mono_ms() >= deadline) {
			if (attempt == 0)
				ec2__err(err, EC2_ERR_OTHER, "DeadlineExceeded",
				    "%s: the deadline passed before the request was sent", ec2_op_name(op));
			break;
		}
		attempt++;
		rc = ec2__attempt(c, op, body, deadline, dry_run, &resp, err, &at);
		err->attempts = attempt;
		if (rc < 0 && at.cls == EC2_ERR_NONE)
			at.cls = EC2_ERR_OTHER;
		if (c->m_requests != NULL)
			metrics_counter_add(c->m_requests, 1, ec2_op_name(op),
			    at.cls == EC2_ERR_NONE ? "success" : ec2_error_class_name(at.cls));
		if (at.cls == EC2_ERR_NONE) {
			aws_retry_quota_success(&c->quota, last_cost);
			*reply = resp.body;
			buf_init(&resp.body, 0);
			memset(err, 0, sizeof(*err));
			err->attempts = attempt;
			err->elapsed_ms = time_mono_ms() - start;
			httpc_response_free(&resp);
			return 0;
		}
		if (at.cls == EC2_ERR_UNKNOWN_OUTCOME)
			was_unknown = true;
		if (!at.retryable || attempt >= max)
			break;
		unsigned cost = aws_retry_quota_acquire(&c->quota, at.timeout_cost);
		if (cost == 0) {
			snprintf(err->message + strlen(err->message),
			    sizeof(err->message) - strlen(err->message), " (retry quota exhausted)");
			break;
		}
		int64_t delay = aws_retry_backoff_ms(attempt, at.throttled, aws_retry_random());
		/* The deadline wins: no retry that could not finish in time. */
		if (time_mono_ms() + delay >= deadline) {
			aws_retry_quota_success(&c->quota, cost);   /* not spent: give it back */
			break;
		}
		last_cost = cost;
		ec2__log_attempt(op, err, attempt, time_mono_ms() - start, false);
		ec2__sleep_ms(delay);
	}
	httpc_response_free(&resp);
	/* An earlier attempt may have acted even though the last one was refused. */
	if (was_unknown && err->cls != EC2_ERR_UNKNOWN_OUTCOME) {
		char prev[sizeof(err->message)];
		snprintf(prev, sizeof(prev), "%s", err->message);
		snprintf(err->message, sizeof(err->message),
		    "%s (an earlier attempt timed out or lost its connection after sending)", prev);
		err->cls = EC2_ERR_UNKNOWN_OUTCOME;
	}
	if (err->cls == EC2_ERR_NONE)
		err->cls = EC2_ERR_OTHER;
	err->attempts = attempt;
	err->elapsed_ms = time_mono_ms() - start;
	ec2__log_attempt(op, err, attempt, err->elapsed_ms, true);
	return ec2__rc_of(err->cls);
}

/* ---- operations ---------------------------------------------------------------- */

/* "stratos-" and 32 random hex digits: 40 characters, within EC2's 64. */
static int
ec2__client_token(char out[48])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	memcpy(out, "stratos-", 8);
	for (size_t i = 0; i < sizeof(r); i++) {
		out[8 + 2 * i] = hex[r[i] >> 4];
		out[9 + 2 * i] = hex[r[i] & 15];
	}
	out[40] = '\0';
	return 0;
}

static int
ec2__malformed(struct ec2_error *err, enum ec2_op op, int rc)
{
	if (rc == -ENOMEM)
		return rc;
	if (err != NULL) {
		ec2__err(err, EC2_ERR_UNKNOWN_OUTCOME, "MalformedResponse",
		    "%s: EC2 answered 200 with a reply that could not be read", ec2_op_name(op));
		if (op == EC2_OP_DESCRIBE_INSTANCES)
			err->cls = EC2_ERR_OTHER;
	}
	return op == EC2_OP_DESCRIBE_INSTANCES ? -EIO : -ETIMEDOUT;
}

int
ec2_run_instances(struct ec2_client *c, const struct ec2_run_params *p,
    const struct ec2_call *call, struct ec2_instances *out, struct ec2_error *err)
{
	struct ec2_run_params q = *p;
	struct buf body, reply;
	struct ec2_instances tmp = { 0 };
	char token[48];
	int rc;

	buf_init(&body, LIMITS_EC2_QUERY);
	buf_init(&reply, 0);
	if (q.client_token == NULL) {
		if (ec2__client_token(token) < 0)
			return ec2__invalid(err, "no randomness for a ClientToken");
		q.client_token = token;
	}
	rc = ec2_query_run_instances(&q, &body, err);
	if (rc == 0)
		rc = ec2__call(c, EC2_OP_RUN_INSTANCES, &body, call, &reply, err);
	if (rc == 0 && !(call != NULL && call->dry_run)) {
		rc = ec2_parse_instances(reply.data, reply.len, &tmp, NULL);
		if (rc < 0) {
			ec2_instances_free(&tmp);
			rc = ec2__malformed(err, EC2_OP_RUN_INSTANCES, rc);
		} else if (out != NULL) {
			*out = tmp;
		} else {
			ec2_instances_free(&tmp);
		}
	}
	buf_free(&body);
	buf_free(&reply);
	return rc;
}

static int
ec2__state_op(struct ec2_client *c, enum ec2_op op, const char *const *ids, size_t n, bool force,
    const struct ec2_call *call, struct ec2_state_changes *out, struct ec2_error *err)
{
	struct buf body, reply;
	struct ec2_state_changes tmp = { 0 };
	int rc;

	buf_init(&body, LIMITS_EC2_QUERY);
	buf_init(&reply, 0);
	rc = ec2_query_instance_ids(op, ids, n, force, &body, err);
	if (rc == 0)
		rc = ec2__call(c, op, &body, call, &reply, err);
	if (rc == 0 && !(call != NULL && call->dry_run)) {
		rc = ec2_parse_state_changes(reply.data, reply.len, &tmp);
		if (rc < 0) {
			ec2_state_changes_free(&tmp);
			rc = ec2__malformed(err, op, rc);
		} else if (out != NULL) {
			*out = tmp;
		} else {
			ec2_state_changes_free(&tmp);
		}
	}
	buf_free(&body);
	buf_free(&reply);
	return rc;
}

int
ec2_start_instances(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_call *call, struct ec2_state_changes *out, struct ec2_error *err)
{
	return ec2__state_op(c, EC2_OP_START_INSTANCES, ids, n, false, call, out, err);
}

int
ec2_stop_instances(struct ec2_client *c, const char *const *ids, size_t n, bool force,
    const struct ec2_call *call, struct ec2_state_changes *out, struct ec2_error *err)
{
	return ec2__state_op(c, EC2_OP_STOP_INSTANCES, ids, n, force, call, out, err);
}

int
ec2_terminate_instances(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_call *call, struct ec2_state_changes *out, struct ec2_error *err)
{
	return ec2__state_op(c, EC2_OP_TERMINATE_INSTANCES, ids, n, false, call, out, err);
}

int
ec2_describe_instances(struct ec2_client *c, const struct ec2_filter *filters, size_t nfilters,
    const char *const *ids, size_t nids, const struct ec2_call *call, struct ec2_instances *out,
    struct ec2_error *err)
{
	struct ec2_instances tmp = { 0 };
	char *next = NULL;
	unsigned pages = 0;
	int rc = 0;

	do {
		struct buf body, reply;
		char *token = next;

		buf_init(&body, LIMITS_EC2_QUERY);
		buf_init(&reply, 0);
		next = NULL;
		rc = ec2_query_describe(filters, nfilters, ids, nids, nids > 0 ? 0 : c->page_size,
		    token, &body, err);
		free(token);
		if (rc == 0)
			rc = ec2__call(c, EC2_OP_DESCRIBE_INSTANCES, &body, call, &reply, err);
		if (rc == 0 && !(call != NULL && call->dry_run)) {
			rc = ec2_parse_instances(reply.data, reply.len, &tmp, nids > 0 ? NULL : &next);
			if (rc == -E2BIG)
				ec2__err(err, EC2_ERR_OTHER, "TooManyInstances",
				    "DescribeInstances returned more than %u instances",
				    LIMITS_EC2_DESCRIBE_INSTANCES);
			else if (rc < 0)
				rc = ec2__malformed(err, EC2_OP_DESCRIBE_INSTANCES, rc);
		}
		buf_free(&body);
		buf_free(&reply);
		if (rc == 0 && next != NULL && ++pages >= LIMITS_EC2_DESCRIBE_PAGES) {
			ec2__err(err, EC2_ERR_OTHER, "TooManyPages",
			    "DescribeInstances still had a NextToken after %u pages",
			    LIMITS_EC2_DESCRIBE_PAGES);
			rc = -E2BIG;
		}
	} while (rc == 0 && next != NULL);
	free(next);
	if (rc < 0 || out == NULL) {
		ec2_instances_free(&tmp);
		return rc;
	}
	if (out->len == 0 && out->v == NULL) {
		*out = tmp;
		return 0;
	}
	/* Append to what the caller already holds. */
	for (size_t i = 0; i < tmp.len; i++) {
		rc = ec2__grow((void **)&out->v, &out->cap, out->len, sizeof(*out->v),
		    LIMITS_EC2_DESCRIBE_INSTANCES);
		if (rc < 0) {
			/* Move what did not fit back so it is freed with tmp. */
			memmove(tmp.v, tmp.v + i, (tmp.len - i) * sizeof(*tmp.v));
			tmp.len -= i;
			ec2_instances_free(&tmp);
			return rc;
		}
		out->v[out->len++] = tmp.v[i];
	}
	free(tmp.v);
	return 0;
}

int
ec2_describe_cluster_instances(struct ec2_client *c, const char *cluster, const char *pool,
    const char *const *states, const struct ec2_call *call, struct ec2_instances *out,
    struct ec2_error *err)
{
	struct ec2_filter f[3];
	size_t n = 0, nstates = 0;

	if (!ec2__nonempty(cluster))
		return ec2__invalid(err, "every DescribeInstances of the controller names the cluster");
	f[n++] = (struct ec2_filter){ "tag:" EC2_TAG_CLUSTER, &cluster, 1 };
	if (pool != NULL)
		f[n++] = (struct ec2_filter){ "tag:" EC2_TAG_POOL, &pool, 1 };
	while (states != NULL && states[nstates] != NULL)
		nstates++;
	if (nstates > 0)
		f[n++] = (struct ec2_filter){ "instance-state-name", states, nstates };
	return ec2_describe_instances(c, f, n, NULL, 0, call, out, err);
}

static int
ec2__tags_op(struct ec2_client *c, enum ec2_op op, const char *const *ids, size_t n,
    const struct ec2_tag *tags, size_t ntags, const struct ec2_call *call, struct ec2_error *err)
{
	struct buf body, reply;
	int rc;

	buf_init(&body, LIMITS_EC2_QUERY);
	buf_init(&reply, 0);
	rc = ec2_query_tags(op, ids, n, tags, ntags, &body, err);
	if (rc == 0)
		rc = ec2__call(c, op, &body, call, &reply, err);
	buf_free(&body);
	buf_free(&reply);
	return rc;
}

int
ec2_create_tags(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_tag *tags, size_t ntags, const struct ec2_call *call, struct ec2_error *err)
{
	return ec2__tags_op(c, EC2_OP_CREATE_TAGS, ids, n, tags, ntags, call, err);
}

int
ec2_delete_tags(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_tag *tags, size_t ntags, const struct ec2_call *call, struct ec2_error *err)
{
	return ec2__tags_op(c, EC2_OP_DELETE_TAGS, ids, n, tags, ntags, call, err);
}
