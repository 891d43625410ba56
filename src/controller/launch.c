/* Launch records, ClientTokens, subnet choice and RunInstances parameters of pool instances (DESIGN §5.1). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <jansson.h>

#include "stratos/launch.h"
#include "stratos/nodestate.h"
#include "stratos/timeutil.h"

static bool
launch__token_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > LIMITS_LAUNCH_TOKEN)
		return false;
	for (; *s != '\0'; s++)
		if (*s < 0x21 || *s > 0x7e)
			return false;
	return true;
}

int
launch_records_parse(const char *text, struct launch_records *out, size_t *skipped)
{
	json_t *doc, *e;
	size_t i, skip = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (skipped != NULL)
		*skipped = 0;
	if (text == NULL || text[0] == '\0')
		return 0;
	doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_array(doc)) {
		json_decref(doc);
		return -EINVAL;
	}
	json_array_foreach(doc, i, e) {
		const char *token = json_string_value(json_object_get(e, "token"));
		const char *subnet = json_string_value(json_object_get(e, "subnet"));
		const char *at = json_string_value(json_object_get(e, "at"));
		struct launch_record *r;
		int64_t at_ms = 0;

		if (!launch__token_ok(token) || subnet == NULL || strlen(subnet) >= sizeof(r->subnet) ||
		    at == NULL || time_parse_rfc3339(at, &at_ms) < 0) {
			skip++;
			continue;
		}
		if (out->n == LIMITS_LAUNCH_RECORDS) {
			rc = -E2BIG;
			break;
		}
		r = &out->v[out->n++];
		snprintf(r->token, sizeof(r->token), "%s", token);
		snprintf(r->subnet, sizeof(r->subnet), "%s", subnet);
		r->at_ms = at_ms;
	}
	json_decref(doc);
	if (skipped != NULL)
		*skipped = skip;
	return rc;
}

int
launch_records_format(const struct launch_records *r, char **out)
{
	json_t *doc;

	*out = NULL;
	if (r->n == 0)
		return 0;
	doc = json_array();
	for (size_t i = 0; doc != NULL && i < r->n; i++) {
		char at[TIME_RFC3339_LEN];
		time_format_rfc3339(r->v[i].at_ms, at);
		if (json_array_append_new(doc, json_pack("{s:s,s:s,s:s}", "token", r->v[i].token,
		    "subnet", r->v[i].subnet, "at", at)) < 0) {
			json_decref(doc);
			return -ENOMEM;
		}
	}
	*out = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return *out != NULL ? 0 : -ENOMEM;
}

int
launch_records_find(const struct launch_records *r, const char *token)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].token, token) == 0)
			return (int)i;
	return -1;
}

void
launch_records_remove(struct launch_records *r, size_t i)
{
	if (i >= r->n)
		return;
	memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(r->v[0]));
	r->n--;
}

int
launch_token(const char *pool, char out[LIMITS_LAUNCH_TOKEN + 1])
{
	unsigned char rnd[8];
	int len;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	len = snprintf(out, LIMITS_LAUNCH_TOKEN + 1, "%.40s-", pool);
	for (size_t i = 0; i < sizeof(rnd); i++)
		len += snprintf(out + len, (size_t)(LIMITS_LAUNCH_TOKEN + 1 - len), "%02x", rnd[i]);
	return 0;
}

int
launch_pick_subnet(size_t n, const unsigned *counts, const bool *avoid)
{
	bool all_avoided = true;
	int best = -1;

	for (size_t i = 0; avoid != NULL && i < n; i++)
		if (!avoid[i])
			all_avoided = false;
	for (size_t i = 0; i < n; i++) {
		if (avoid != NULL && avoid[i] && !all_avoided)
			continue;
		if (best < 0 || counts[i] < counts[best])
			best = (int)i;
	}
	return best;
}

static const char *const launch__volume_types[] = {
	[NODECLASS_VOLUME_GP2] = "gp2", [NODECLASS_VOLUME_GP3] = "gp3",
	[NODECLASS_VOLUME_IO1] = "io1", [NODECLASS_VOLUME_IO2] = "io2",
	[NODECLASS_VOLUME_ST1] = "st1", [NODECLASS_VOLUME_SC1] = "sc1",
	[NODECLASS_VOLUME_STANDARD] = "standard",
};

int
launch_params_build(const struct nodepool *pool, const struct nodeclass *nc,
    const char *cluster, const char *subnet, const char *token, struct launch_params *out)
{
	struct ec2_run_params *r = &out->run;
	size_t nt = 0;

	memset(out, 0, sizeof(*out));
	if (nc->ami == NULL || nc->ami[0] == '\0' || nc->instance_type == NULL ||
	    nc->instance_type[0] == '\0' || subnet == NULL ||
	    nc->nsecurity_group_ids > LIMITS_NODECLASS_SECURITY_GROUPS ||
	    nc->nblock_devices > LIMITS_NODECLASS_BLOCK_DEVICES ||
	    nc->ntags + 5 > LIMITS_EC2_TAGS)
		return -EINVAL;
	r->image_id = nc->ami;
	r->instance_type = nc->instance_type;
	r->subnet_id = subnet;
	for (size_t i = 0; i < nc->nsecurity_group_ids; i++)
		out->groups[i] = nc->security_group_ids[i];
	r->security_group_ids = out->groups;
	r->nsecurity_groups = nc->nsecurity_group_ids;
	r->iam_instance_profile = nc->iam_instance_profile != NULL &&
	    nc->iam_instance_profile[0] != '\0' ? nc->iam_instance_profile : NULL;
	for (size_t i = 0; i < nc->nblock_devices; i++) {
		const struct nodeclass_block_device *b = &nc->block_devices[i];
		out->devices[i] = (struct ec2_block_device){
			.device_name = b->device_name,
			.volume_size_gib = b->volume_size,
			.volume_type = (unsigned)b->volume_type < sizeof(launch__volume_types) /
			    sizeof(launch__volume_types[0]) ? launch__volume_types[b->volume_type] : NULL,
			.iops = b->iops,
			.throughput = b->throughput,
			.encrypted = b->encrypted,
			.kms_key_id = b->kms_key_id,
			.delete_on_termination = b->delete_on_termination,
		};
	}
	r->block_devices = out->devices;
	r->nblock_devices = nc->nblock_devices;
	if (nc->user_data != NULL) {
		r->user_data = nc->user_data;
		r->user_data_len = nc->user_data_len;
	}
	r->metadata_http_tokens = nc->http_tokens == NODECLASS_HTTP_TOKENS_OPTIONAL ? "optional" :
	    "required";
	r->metadata_hop_limit = nc->http_put_response_hop_limit;
	snprintf(out->name_tag, sizeof(out->name_tag), "stratos-%s", pool->name);
	out->tags[nt++] = (struct ec2_tag){ NODESTATE_TAG_POOL, pool->name };
	out->tags[nt++] = (struct ec2_tag){ NODESTATE_TAG_CLUSTER, cluster };
	out->tags[nt++] = (struct ec2_tag){ NODESTATE_TAG_STATE, nodestate_name(NODESTATE_WARMUP) };
	out->tags[nt++] = (struct ec2_tag){ NODESTATE_TAG_MANAGED_BY, NODESTATE_TAG_MANAGED_BY_VALUE };
	out->tags[nt++] = (struct ec2_tag){ "Name", out->name_tag };
	/* spec.tags cannot name ours (the validator refuses them); a duplicate would fail the call. */
	for (size_t i = 0; i < nc->ntags; i++) {
		size_t j;
		for (j = 0; j < nt && strcmp(out->tags[j].key, nc->tags[i].key) != 0; j++)
			;
		if (j == nt)
			out->tags[nt++] = (struct ec2_tag){ nc->tags[i].key, nc->tags[i].value };
	}
	r->tags = out->tags;
	r->ntags = nt;
	r->tag_volumes = true;
	r->client_token = token;
	r->count = 1;
	return 0;
}
