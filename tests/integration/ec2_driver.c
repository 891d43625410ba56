/* Test-only driver: runs EC2 client operations given as JSON lines on stdin, answers JSON lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "stratos/aws_credentials.h"
#include "stratos/buf.h"
#include "stratos/ec2.h"
#include "stratos/httpc.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/timeutil.h"

/*
 * usage: ec2_driver [--endpoint URL] [--region R] [--page-size N]
 *            [--rate-limits SPEC] [--connections N] [--keepalive-ms N]
 *            [--timeout-ms N] [--refresh-ahead-ms N] [--fresh] [--log-level L]
 * Credentials and region come from the environment as in stratosd.
 * Each input line is {"op": ..., ...}; see driver_run() for the ops.
 */

static struct ec2_client *client;
static struct aws_credentials_provider *creds;

static json_t *
driver_error(int rc, const struct ec2_error *err)
{
	return json_pack("{s:b,s:i,s:s,s:s,s:s,s:s,s:i,s:i,s:I}", "ok", rc == 0, "rc", rc,
	    "class", ec2_error_class_name(err->cls), "code", err->code, "message", err->message,
	    "request_id", err->request_id, "http_status", (int)err->http_status,
	    "attempts", (int)err->attempts, "elapsed_ms", (json_int_t)err->elapsed_ms);
}

static json_t *
driver_instances(const struct ec2_instances *list)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < list->len; i++) {
		const struct ec2_instance *in = &list->v[i];
		json_t *tags = json_object();
		for (size_t t = 0; t < in->ntags; t++)
			json_object_set_new(tags, in->tags[t].key, json_string(in->tags[t].value));
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o}",
		    "id", in->id, "image_id", in->image_id, "instance_type", in->instance_type,
		    "state_code", in->state_code, "state", in->state, "state_reason", in->state_reason,
		    "availability_zone", in->availability_zone, "subnet_id", in->subnet_id,
		    "client_token", in->client_token, "private_dns_name", in->private_dns_name,
		    "launch_time_ms", (json_int_t)in->launch_time_ms, "tags", tags));
	}
	return arr;
}

static json_t *
driver_changes(const struct ec2_state_changes *sc)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < sc->len; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "id", sc->v[i].id, "current",
		    sc->v[i].current, "previous", sc->v[i].previous));
	return arr;
}

/* Borrowed string array from a JSON array of strings. */
static const char **
driver_strings(json_t *arr, size_t *n)
{
	const char **v = calloc(json_array_size(arr) + 1, sizeof(*v));
	size_t i;
	json_t *s;

	*n = 0;
	json_array_foreach(arr, i, s)
		if (json_is_string(s))
			v[(*n)++] = json_string_value(s);
	return v;
}

static struct ec2_tag *
driver_tags(json_t *obj, size_t *n)
{
	struct ec2_tag *t = calloc(json_object_size(obj) + 1, sizeof(*t));
	const char *k;
	json_t *v;

	*n = 0;
	json_object_foreach(obj, k, v) {
		t[*n].key = k;
		t[*n].value = json_is_string(v) ? json_string_value(v) : NULL;
		(*n)++;
	}
	return t;
}

static json_t *
driver_run_instances(json_t *p, const struct ec2_call *call, struct ec2_error *err, int *rc)
{
	struct ec2_run_params rp = { 0 };
	struct ec2_block_device bd[LIMITS_EC2_BLOCK_DEVICES];
	struct ec2_instances out = { 0 };
	size_t nsg = 0, ntags = 0, i;
	const char **sgs = driver_strings(json_object_get(p, "security_group_ids"), &nsg);
	struct ec2_tag *tags = driver_tags(json_object_get(p, "tags"), &ntags);
	json_t *d, *res;

	rp.image_id = json_string_value(json_object_get(p, "image_id"));
	rp.instance_type = json_string_value(json_object_get(p, "instance_type"));
	rp.subnet_id = json_string_value(json_object_get(p, "subnet_id"));
	rp.security_group_ids = sgs;
	rp.nsecurity_groups = nsg;
	rp.iam_instance_profile = json_string_value(json_object_get(p, "iam_instance_profile"));
	rp.user_data = json_string_value(json_object_get(p, "user_data"));
	rp.user_data_len = rp.user_data != NULL ? strlen(rp.user_data) : 0;
	rp.metadata_http_tokens = json_string_value(json_object_get(p, "metadata_http_tokens"));
	rp.metadata_hop_limit = (int)json_integer_value(json_object_get(p, "metadata_hop_limit"));
	rp.tags = tags;
	rp.ntags = ntags;
	rp.tag_volumes = json_is_true(json_object_get(p, "tag_volumes"));
	rp.client_token = json_string_value(json_object_get(p, "client_token"));
	rp.count = (unsigned)json_integer_value(json_object_get(p, "count"));
	json_array_foreach(json_object_get(p, "block_devices"), i, d) {
		if (i >= LIMITS_EC2_BLOCK_DEVICES)
			break;
		bd[i] = (struct ec2_block_device){
			.device_name = json_string_value(json_object_get(d, "device_name")),
			.volume_size_gib = (int)json_integer_value(json_object_get(d, "volume_size")),
			.volume_type = json_string_value(json_object_get(d, "volume_type")),
			.iops = (int)json_integer_value(json_object_get(d, "iops")),
			.throughput = (int)json_integer_value(json_object_get(d, "throughput")),
			.encrypted = json_is_true(json_object_get(d, "encrypted")),
			.kms_key_id = json_string_value(json_object_get(d, "kms_key_id")),
			.delete_on_termination = !json_is_false(json_object_get(d, "delete_on_termination")),
		};
		rp.nblock_devices = i + 1;
	}
	rp.block_devices = bd;
	*rc = ec2_run_instances(client, &rp, call, &out, err);
	res = driver_error(*rc, err);
	json_object_set_new(res, "instances", driver_instances(&out));
	ec2_instances_free(&out);
	free(sgs);
	free(tags);
	return res;
}

static json_t *
driver_run(json_t *cmd)
{
	const char *op = json_string_value(json_object_get(cmd, "op"));
	struct ec2_call call = { 0 };
	struct ec2_error err = { 0 };
	struct ec2_instances list = { 0 };
	struct ec2_state_changes sc = { 0 };
	json_t *res = NULL;
	size_t nids = 0;
	const char **ids = driver_strings(json_object_get(cmd, "ids"), &nids);
	int rc = 0;

	if (json_object_get(cmd, "budget_ms") != NULL)
		call.deadline_ms = time_mono_ms() + json_integer_value(json_object_get(cmd, "budget_ms"));
	call.dry_run = json_is_true(json_object_get(cmd, "dry_run"));
	call.max_attempts = (unsigned)json_integer_value(json_object_get(cmd, "max_attempts"));
	if (op == NULL) {
		res = json_pack("{s:b,s:s}", "ok", 0, "message", "no op");
	} else if (strcmp(op, "run") == 0) {
		res = driver_run_instances(json_object_get(cmd, "params"), &call, &err, &rc);
	} else if (strcmp(op, "start") == 0 || strcmp(op, "stop") == 0 ||
	    strcmp(op, "terminate") == 0) {
		if (op[2] == 'a')
			rc = ec2_start_instances(client, ids, nids, &call, &sc, &err);
		else if (op[2] == 'o')
			rc = ec2_stop_instances(client, ids, nids,
			    json_is_true(json_object_get(cmd, "force")), &call, &sc, &err);
		else
			rc = ec2_terminate_instances(client, ids, nids, &call, &sc, &err);
		res = driver_error(rc, &err);
		json_object_set_new(res, "changes", driver_changes(&sc));
	} else if (strcmp(op, "describe") == 0) {
		json_t *fa = json_object_get(cmd, "filters"), *f;
		struct ec2_filter filters[LIMITS_EC2_FILTERS];
		const char **vals[LIMITS_EC2_FILTERS];
		size_t nf = 0, i;
		json_array_foreach(fa, i, f) {
			if (nf >= LIMITS_EC2_FILTERS)
				break;
			vals[nf] = driver_strings(json_object_get(f, "values"), &filters[nf].nvalues);
			filters[nf].values = vals[nf];
			filters[nf].name = json_string_value(json_object_get(f, "name"));
			nf++;
		}
		rc = ec2_describe_instances(client, filters, nf, ids, nids, &call, &list, &err);
		for (i = 0; i < nf; i++)
			free(vals[i]);
		res = driver_error(rc, &err);
		json_object_set_new(res, "instances", driver_instances(&list));
	} else if (strcmp(op, "describe_cluster") == 0) {
		size_t ns = 0;
		const char **states = driver_strings(json_object_get(cmd, "states"), &ns);
		rc = ec2_describe_cluster_instances(client,
		    json_string_value(json_object_get(cmd, "cluster")),
		    json_string_value(json_object_get(cmd, "pool")), ns > 0 ? states : NULL, &call,
		    &list, &err);
		free(states);
		res = driver_error(rc, &err);
		json_object_set_new(res, "instances", driver_instances(&list));
	} else if (strcmp(op, "create_tags") == 0 || strcmp(op, "delete_tags") == 0) {
		size_t nt = 0;
		struct ec2_tag *tags = driver_tags(json_object_get(cmd, "tags"), &nt);
		rc = op[0] == 'c' ? ec2_create_tags(client, ids, nids, tags, nt, &call, &err) :
		    ec2_delete_tags(client, ids, nids, tags, nt, &call, &err);
		free(tags);
		res = driver_error(rc, &err);
	} else if (strcmp(op, "warm") == 0) {
		int n = ec2_client_warm(client, time_mono_ms() + 5000);
		res = json_pack("{s:b,s:i}", "ok", 1, "open", n);
	} else if (strcmp(op, "stats") == 0) {
		struct ec2_client_stats st;
		unsigned fetches = 0, failures = 0;
		ec2_client_stats(client, &st);
		aws_credentials_provider_stats(creds, &fetches, &failures);
		res = json_pack("{s:b,s:I,s:I,s:I,s:I,s:i,s:i,s:i,s:s}", "ok", 1,
		    "requests", (json_int_t)st.requests, "reused", (json_int_t)st.reused,
		    "new_connections", (json_int_t)st.new_connections,
		    "keepalive_pings", (json_int_t)st.keepalive_pings, "quota", (int)st.quota,
		    "credential_fetches", (int)fetches, "credential_failures", (int)failures,
		    "credential_source",
		    aws_credentials_source_name(aws_credentials_provider_source(creds)));
	} else if (strcmp(op, "creds") == 0) {
		/* The access key id and expiry only: never the secret. */
		struct aws_credentials c;
		int g = aws_credentials_get(creds, &c);
		res = json_pack("{s:b,s:s,s:I,s:b}", "ok", g == 0, "access_key_id",
		    g == 0 ? c.access_key_id : "", "expiration_ms", (json_int_t)c.expiration_ms,
		    "has_session_token", c.session_token[0] != '\0');
		aws_credentials_wipe(&c);
	} else if (strcmp(op, "metrics") == 0) {
		struct buf b;
		buf_init(&b, 1 << 20);
		metrics_render(&b);
		res = json_pack("{s:b,s:s}", "ok", 1, "text", b.data != NULL ? b.data : "");
		buf_free(&b);
	} else if (strcmp(op, "sleep") == 0) {
		int64_t ms = json_integer_value(json_object_get(cmd, "ms"));
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
		nanosleep(&ts, NULL);
		res = json_pack("{s:b}", "ok", 1);
	} else {
		res = json_pack("{s:b,s:s}", "ok", 0, "message", "unknown op");
	}
	ec2_instances_free(&list);
	ec2_state_changes_free(&sc);
	free(ids);
	return res;
}

int
main(int argc, char **argv)
{
	struct ec2_options o = { 0 };
	struct aws_credentials_options co = { 0 };
	struct aws_credentials_error cerr;
	struct ec2_error err;
	const char *region_flag = NULL, *source = NULL;
	char region[64], line[1 << 16];
	enum log_level lvl = LOG_LEVEL_WARN;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--fresh") == 0) {
			o.fresh_connections = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "ec2_driver: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--endpoint") == 0)
			o.endpoint = v;
		else if (strcmp(a, "--region") == 0)
			region_flag = v;
		else if (strcmp(a, "--page-size") == 0)
			o.describe_page_size = (unsigned)atoi(v);
		else if (strcmp(a, "--rate-limits") == 0)
			o.rate_limits = v;
		else if (strcmp(a, "--connections") == 0)
			o.connections = (unsigned)atoi(v);
		else if (strcmp(a, "--keepalive-ms") == 0)
			o.keepalive_ms = atoll(v);
		else if (strcmp(a, "--timeout-ms") == 0)
			o.default_timeout_ms = atoll(v);
		else if (strcmp(a, "--refresh-ahead-ms") == 0)
			co.refresh_ahead_ms = atoll(v);
		else if (strcmp(a, "--log-level") == 0)
			log_level_parse(v, &lvl);
		else {
			fprintf(stderr, "ec2_driver: unknown flag %s\n", a);
			return 2;
		}
	}
	log_set_level(lvl);
	httpc_global_init();
	const char *stage = "region";
	int rc = aws_region_resolve(region_flag, &co, region, sizeof(region), &source, &cerr);
	if (rc == 0) {
		co.region = region;
		stage = "credentials";
		rc = aws_credentials_provider_new(&co, &creds, &cerr);
	}
	if (rc < 0) {
		json_t *j = json_pack("{s:b,s:s,s:s,s:i}", "ok", 0, "stage", stage, "message",
		    cerr.message, "rc", rc);
		char *s = json_dumps(j, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(j);
		return 1;
	}
	o.region = region;
	o.credentials = creds;
	if (ec2_client_new(&o, &client, &err) < 0) {
		fprintf(stderr, "ec2_driver: %s\n", err.message);
		aws_credentials_provider_free(creds);
		return 1;
	}
	printf("{\"ok\":true,\"ready\":true,\"region\":\"%s\",\"region_source\":\"%s\","
	    "\"endpoint\":\"%s\",\"credential_source\":\"%s\"}\n", region, source,
	    ec2_client_endpoint(client),
	    aws_credentials_source_name(aws_credentials_provider_source(creds)));
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		json_error_t jerr;
		json_t *cmd = json_loads(line, 0, &jerr), *res;
		char *out;
		if (cmd == NULL) {
			res = json_pack("{s:b,s:s}", "ok", 0, "message", jerr.text);
		} else {
			res = driver_run(cmd);
			json_decref(cmd);
		}
		out = json_dumps(res, JSON_COMPACT);
		printf("%s\n", out);
		fflush(stdout);
		free(out);
		json_decref(res);
	}
	ec2_client_free(client);
	aws_credentials_provider_free(creds);
	return 0;
}
