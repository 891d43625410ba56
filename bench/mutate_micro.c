/* Micro benchmark of the Pod mutating webhook: nanoseconds and JSON allocations per request, 150+ pools loaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/admission.h"
#include "stratos/log.h"
#include "stratos/mutate_pod.h"
#include "stratos/pools.h"
#include "stratos/pools_file.h"
#include "stratos/timeutil.h"

#ifndef STRATOS_SOURCE_DIR
#define STRATOS_SOURCE_DIR "."
#endif
#define FIXTURE(name) STRATOS_SOURCE_DIR "/tests/fixtures/" name

#define BENCH_SYNTHETIC_POOLS 150

/*
 * Every allocation of the process is counted: malloc and friends are
 * interposed here and passed on to glibc's own entry points.
 */
static unsigned long long bench_allocs;

#if defined(__SANITIZE_ADDRESS__)
#define BENCH_COUNTS_ALLOCS 0           /* ASan owns malloc: no interposition */
#else
#define BENCH_COUNTS_ALLOCS 1

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);

void *
malloc(size_t n)
{
	__atomic_add_fetch(&bench_allocs, 1, __ATOMIC_RELAXED);
	return __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	__atomic_add_fetch(&bench_allocs, 1, __ATOMIC_RELAXED);
	return __libc_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
	__atomic_add_fetch(&bench_allocs, 1, __ATOMIC_RELAXED);
	return __libc_realloc(p, n);
}
#endif

static char *
bench_read(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *data = calloc(1, 1 << 20);
	size_t n;

	if (f == NULL || data == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	n = fread(data, 1, (1 << 20) - 1, f);
	data[n] = '\0';
	fclose(f);
	return data;
}

static struct pools *
bench_pools(void)
{
	struct pools *p = pools_new();
	char name[32], team[16], idx[16];

	if (p == NULL || pools_file_load(p, FIXTURE("seed-examples.yaml"), stderr) != 0)
		exit(1);
	for (int i = 0; i < BENCH_SYNTHETIC_POOLS; i++) {
		json_t *obj;
		snprintf(name, sizeof(name), "pool-%03d", i);
		snprintf(team, sizeof(team), "t%d", i % 10);
		snprintf(idx, sizeof(idx), "%d", i);
		obj = json_pack("{s:s, s:s, s:{s:s}, s:{s:i, s:i, s:{s:{s:s}, s:{s:s, s:s, s:s},"
		    " s:[{s:s, s:s, s:s}]}}}",
		    "apiVersion", "stratos.sh/v1alpha1", "kind", "NodePool", "metadata", "name", name,
		    "spec", "poolSize", 10, "minStandby", 1, "template", "nodeClassRef", "name", "on-demand",
		    "labels", "stratos.sh/pool", name, "team", team, "idx", idx,
		    "startupTaints", "key", "example.com/booting", "value", "true", "effect", "NoSchedule");
		if (obj == NULL || pools_upsert_nodepool(p, obj, NULL) != 0)
			exit(1);
		json_decref(obj);
	}
	return p;
}

struct bench_case {
	const char *name;
	void (*run)(void *arg);
	void *arg;
};

struct review_arg {
	const struct mutate_pod *mp;
	const struct pools_snapshot *snap;
	const json_t *pod;
	enum mutate_pod_result want;
};

static void
bench_review(void *arg)
{
	struct review_arg *a = arg;
	struct mutate_pod_outcome out;

	mutate_pod_review(a->mp, a->snap, a->pod, &out);
	if (out.result != a->want) {
		fprintf(stderr, "unexpected result %s\n", mutate_pod_result_name(out.result));
		exit(1);
	}
	mutate_pod_outcome_free(&out);
}

struct handler_arg {
	struct mutate_pod *mp;
	const char *body;
	size_t len;
	bool want_patch;
};

static void
bench_handler(void *arg)
{
	struct handler_arg *a = arg;
	struct server_request req = { .method = "POST", .path = "/admission/mutate-pod",
		.body = a->body, .body_len = a->len };
	static struct server_response resp;
	static bool init;

	if (!init) {
		buf_init(&resp.body, 1 << 20);
		init = true;
	}
	resp.status = 200;
	buf_reset(&resp.body);
	mutate_pod_handle(a->mp, &req, &resp);
	if (resp.status != 200 || (strstr(resp.body.data, "\"patch\"") != NULL) != a->want_patch) {
		fprintf(stderr, "unexpected response %d %s\n", resp.status, resp.body.data);
		exit(1);
	}
}

static void
bench_run(const struct bench_case *c, long iterations)
{
	int64_t t0;
	unsigned long long a0;
	double ns;

	for (long i = 0; i < iterations / 10 + 1; i++)    /* warm caches and the allocator */
		c->run(c->arg);
	a0 = bench_allocs;
	t0 = time_mono_us();
	for (long i = 0; i < iterations; i++)
		c->run(c->arg);
	ns = (double)(time_mono_us() - t0) * 1000.0 / (double)iterations;
	if (BENCH_COUNTS_ALLOCS)
		printf("%-52s %9.0f ns/op %7.1f allocs/op\n", c->name, ns,
		    (double)(bench_allocs - a0) / (double)iterations);
	else
		printf("%-52s %9.0f ns/op (allocations not counted under ASan)\n", c->name, ns);
}

static json_t *
bench_pod(const char *text)
{
	json_t *pod = json_loads(text, 0, NULL);

	if (pod == NULL)
		exit(1);
	return pod;
}

int
main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	long n_review = quick ? 2000 : 200000, n_handler = quick ? 1000 : 50000;
	struct mutate_pod_options opt = { .scheduler_name = "stratos-scheduler" };
	struct pools *pools;
	struct mutate_pod *mp;
	const struct pools_snapshot *snap;
	char *pool_body, *other_body;
	json_t *review, *pool_pod, *other_pod, *label_pod, *affinity_pod;

	log_set_level(LOG_LEVEL_INFO);
	pools = bench_pools();
	mp = mutate_pod_new(pools, &opt);
	snap = pools_acquire(pools);
	pool_body = bench_read(FIXTURE("admission/pod-create-pool.json"));
	other_body = bench_read(FIXTURE("admission/pod-create-other.json"));
	review = json_loads(pool_body, 0, NULL);
	pool_pod = json_incref(json_object_get(json_object_get(review, "request"), "object"));
	json_decref(review);
	review = json_loads(other_body, 0, NULL);
	other_pod = json_incref(json_object_get(json_object_get(review, "request"), "object"));
	json_decref(review);
	label_pod = bench_pod("{\"metadata\":{\"generateName\":\"x-\"},\"spec\":{\"containers\":[{\"name\":\"c\"}],"
	    "\"nodeSelector\":{\"team\":\"t7\",\"idx\":\"47\"},\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\","
	    "\"operator\":\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":300}]}}");
	affinity_pod = bench_pod("{\"metadata\":{},\"spec\":{\"containers\":[{\"name\":\"c\"}],\"affinity\":"
	    "{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
	    "[{\"matchExpressions\":[{\"key\":\"stratos.sh/pool\",\"operator\":\"In\","
	    "\"values\":[\"pool-001\",\"pool-002\",\"ci-runners\"]}]}]}}}}}");

	printf("mutate-pod micro benchmark: %zu NodePools loaded, %s\n", snap->nnodepools,
	    quick ? "quick run" : "full run");
	{
		struct review_arg r_pool = { mp, snap, pool_pod, MUTATE_POD_MUTATED };
		struct review_arg r_other = { mp, snap, other_pod, MUTATE_POD_SKIPPED };
		struct review_arg r_label = { mp, snap, label_pod, MUTATE_POD_MUTATED };
		struct review_arg r_aff = { mp, snap, affinity_pod, MUTATE_POD_MUTATED };
		struct handler_arg h_pool = { mp, pool_body, strlen(pool_body), true };
		struct handler_arg h_other = { mp, other_body, strlen(other_body), false };
		const struct bench_case cases[] = {
			{ "review: pool pod (nodeSelector), patch built", bench_review, &r_pool },
			{ "review: pool pod (label subset of 1 in 153 pools)", bench_review, &r_label },
			{ "review: pool pod (affinity In, 3 pools)", bench_review, &r_aff },
			{ "review: other pod", bench_review, &r_other },
			{ "handler: pool pod fixture (parse+patch+base64)", bench_handler, &h_pool },
			{ "handler: other pod fixture", bench_handler, &h_other },
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			bench_run(&cases[i], i < 4 ? n_review : n_handler);
	}
	pools_release(snap);
	mutate_pod_free(mp);
	pools_free(pools);
	json_decref(pool_pod);
	json_decref(other_pod);
	json_decref(label_pod);
	json_decref(affinity_pod);
	free(pool_body);
	free(other_body);
	return 0;
}
