/* EC2 Query API request bodies: form-encoded, 1-based lists, validated before anything is sent. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "ec2_internal.h"
#include "stratos/httpc.h"

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

int
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

bool
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
