/* EC2 operations: RunInstances, Start/Stop/Terminate, Describe with pagination, tags. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ec2_internal.h"
#include "stratos/timeutil.h"

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
	f[n++] = (struct ec2_filter){ "tag:" NODESTATE_TAG_CLUSTER, &cluster, 1 };
	if (pool != NULL)
		f[n++] = (struct ec2_filter){ "tag:" NODESTATE_TAG_POOL, &pool, 1 };
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
