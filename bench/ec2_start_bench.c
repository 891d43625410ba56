/* Benchmark: StartInstances round trips over a warm connection vs fresh ones, and SigV4 signing cost. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratos/aws_credentials.h"
#include "stratos/buf.h"
#include "stratos/ec2.h"
#include "stratos/httpc.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/sigv4.h"
#include "stratos/timeutil.h"

/*
 * usage: ec2_start_bench [-n N] [--sign-n N]
 * The endpoint, region and credentials come from the environment
 * (AWS_ENDPOINT_URL_EC2, AWS_REGION, AWS_ACCESS_KEY_ID..., AWS_CA_BUNDLE),
 * as for stratosd. Launches one instance, waits for it to run, then times
 * StartInstances on it (a no-op start of a running instance: one full
 * signed round trip each). Prints figures only.
 */

static int
bench_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int64_t
bench_pct(int64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

struct bench_result {
	int64_t p50, p99, mean;
	unsigned long new_connections;
};

static int
bench_client(struct aws_credentials_provider *creds, const char *region, bool fresh,
    struct ec2_client **out)
{
	struct ec2_options o = { .region = region, .credentials = creds, .connections = 1,
	    .keepalive_ms = -1, .rate_limits = "Start=0,Describe=0,Run=0",
	    .fresh_connections = fresh };
	struct ec2_error err;
	int rc = ec2_client_new(&o, out, &err);

	if (rc < 0)
		fprintf(stderr, "ec2_start_bench: %s\n", err.message);
	return rc;
}

/* mode 0: one warm connection; 1: a fresh connection per call (same handle,
 * TLS session resumption allowed); 2: a new client per call (full handshake). */
static int
bench_run(struct aws_credentials_provider *creds, const char *region, const char *id, int mode,
    size_t n, struct bench_result *res)
{
	struct ec2_client *c = NULL;
	struct ec2_client_stats st;
	struct ec2_error err;
	int64_t *lat = calloc(n, sizeof(*lat)), sum = 0;
	const char *ids[] = { id };

	memset(res, 0, sizeof(*res));
	if (lat == NULL)
		return -ENOMEM;
	if (mode != 2) {
		if (bench_client(creds, region, mode == 1, &c) < 0)
			goto fail;
		/* The warm case starts warm: one call first, untimed. */
		if (mode == 0 && ec2_start_instances(c, ids, 1, NULL, NULL, &err) < 0)
			goto call_failed;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t t0;
		if (mode == 2 && bench_client(creds, region, false, &c) < 0)
			goto fail;
		t0 = time_mono_us();
		if (ec2_start_instances(c, ids, 1, NULL, NULL, &err) < 0)
			goto call_failed;
		lat[i] = time_mono_us() - t0;
		sum += lat[i];
		if (mode == 2) {
			ec2_client_stats(c, &st);
			res->new_connections += st.new_connections;
			ec2_client_free(c);
			c = NULL;
		}
	}
	if (mode != 2) {
		ec2_client_stats(c, &st);
		res->new_connections = st.new_connections - (mode == 0 ? 1 : 0);
	}
	qsort(lat, n, sizeof(*lat), bench_cmp);
	res->p50 = bench_pct(lat, n, 0.50);
	res->p99 = bench_pct(lat, n, 0.99);
	res->mean = sum / (int64_t)n;
	ec2_client_free(c);
	free(lat);
	return 0;
call_failed:
	fprintf(stderr, "ec2_start_bench: StartInstances failed: %s %s\n", err.code, err.message);
fail:
	ec2_client_free(c);
	free(lat);
	return -EIO;
}

/* Signing alone, and building the query plus signing, per request. */
static void
bench_signing(size_t n)
{
	const char *ct[] = { "Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL };
	const char *ids[] = { "i-0123456789abcdef0" };
	struct sigv4_credentials sc = { "ASIAIOSFODNN7EXAMPLE",
	    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampletokenexampletoken"
	    "exampletokenexampletokenexampletokenexampletokenexampletokenexampletoken==" };
	struct sigv4_signature sig;
	struct buf body;
	char date[SIGV4_DATE_LEN];
	int64_t t0, sign_ns, build_ns;

	buf_init(&body, LIMITS_EC2_QUERY);
	ec2_query_instance_ids(EC2_OP_START_INSTANCES, ids, 1, false, &body, NULL);
	sigv4_format_date(time_real_ms(), date);
	struct sigv4_request req = { .method = "POST", .host = "ec2.us-east-1.amazonaws.com",
	    .path = "/", .headers = ct, .body = body.data, .body_len = body.len,
	    .region = "us-east-1", .service = "ec2", .amz_date = date };
	t0 = time_mono_us();
	for (size_t i = 0; i < n; i++) {
		sigv4_sign(&req, &sc, false, &sig);
		sigv4_signature_free(&sig);
	}
	sign_ns = (time_mono_us() - t0) * 1000 / (int64_t)n;
	t0 = time_mono_us();
	for (size_t i = 0; i < n; i++) {
		buf_reset(&body);
		ec2_query_instance_ids(EC2_OP_START_INSTANCES, ids, 1, false, &body, NULL);
		req.body = body.data;
		req.body_len = body.len;
		sigv4_sign(&req, &sc, false, &sig);
		sigv4_signature_free(&sig);
	}
	build_ns = (time_mono_us() - t0) * 1000 / (int64_t)n;
	buf_free(&body);
	printf("signing (SigV4, session token)       %8lld ns/request\n", (long long)sign_ns);
	printf("query building + signing             %8lld ns/request\n", (long long)build_ns);
}

static int
bench_instance(struct aws_credentials_provider *creds, const char *region, char *id, size_t len)
{
	struct ec2_client *c;
	struct ec2_instances list = { 0 };
	struct ec2_error err;
	const struct ec2_tag tag = { "stratos.sh/cluster", "bench" };
	struct ec2_run_params p = { .image_id = "ami-0123456789abcdef0",
	    .instance_type = "m5.large", .tags = &tag, .ntags = 1 };
	int64_t until = time_mono_ms() + 30000;

	if (bench_client(creds, region, false, &c) < 0)
		return -EIO;
	if (ec2_run_instances(c, &p, NULL, &list, &err) < 0 || list.len != 1) {
		fprintf(stderr, "ec2_start_bench: RunInstances failed: %s %s\n", err.code, err.message);
		ec2_client_free(c);
		return -EIO;
	}
	snprintf(id, len, "%s", list.v[0].id);
	ec2_instances_free(&list);
	/* A pending instance would answer too, but time a running one. */
	while (time_mono_ms() < until) {
		const char *ids[] = { id };
		if (ec2_describe_instances(c, NULL, 0, ids, 1, NULL, &list, &err) == 0 &&
		    list.len == 1 && list.v[0].state_code == EC2_STATE_RUNNING) {
			ec2_instances_free(&list);
			break;
		}
		ec2_instances_free(&list);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	ec2_client_free(c);
	return 0;
}

int
main(int argc, char **argv)
{
	struct aws_credentials_provider *creds;
	struct aws_credentials_error cerr;
	struct bench_result r[3];
	const char *source;
	char region[64], id[64];
	size_t n = 200, sign_n = 100000;
	static const char *const names[] = {
		"warm keep-alive connection",
		"fresh connection (TLS resumed)",
		"new client (full TLS handshake)",
	};

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "-n") == 0)
			n = (size_t)strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--sign-n") == 0)
			sign_n = (size_t)strtoul(argv[i + 1], NULL, 10);
	}
	if (n < 2)
		n = 2;
	log_set_level(LOG_LEVEL_ERROR);
	httpc_global_init();
	if (aws_region_resolve(NULL, NULL, region, sizeof(region), &source, &cerr) < 0 ||
	    aws_credentials_provider_new(NULL, &creds, &cerr) < 0) {
		fprintf(stderr, "ec2_start_bench: %s\n", cerr.message);
		return 1;
	}
	if (bench_instance(creds, region, id, sizeof(id)) < 0) {
		aws_credentials_provider_free(creds);
		return 1;
	}
	printf("StartInstances round trips: %zu per mode against %s (instance %s)\n\n", n,
	    getenv("AWS_ENDPOINT_URL_EC2") != NULL ? getenv("AWS_ENDPOINT_URL_EC2") : "EC2", id);
	printf("%-34s %9s %9s %9s %8s\n", "mode", "p50 ms", "p99 ms", "mean ms", "connects");
	for (int m = 0; m < 3; m++) {
		if (bench_run(creds, region, id, m, n, &r[m]) < 0) {
			aws_credentials_provider_free(creds);
			return 1;
		}
		printf("%-34s %9.2f %9.2f %9.2f %8lu\n", names[m], r[m].p50 / 1000.0,
		    r[m].p99 / 1000.0, r[m].mean / 1000.0, r[m].new_connections);
	}
	printf("\nratio fresh/warm   p50 %.2fx   p99 %.2fx\n", (double)r[1].p50 / (double)r[0].p50,
	    (double)r[1].p99 / (double)r[0].p99);
	printf("ratio new/warm     p50 %.2fx   p99 %.2fx\n\n", (double)r[2].p50 / (double)r[0].p50,
	    (double)r[2].p99 / (double)r[0].p99);
	bench_signing(sign_n);
	aws_credentials_provider_free(creds);
	return 0;
}
