/* libFuzzer target: the watch stream framing (kube_watch_parser) and the typed parsers behind it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_kube_common.h"
#include "stratos/kube_watch.h"
#include "stratos/log.h"

/*
 * Input: byte 0 picks the cache type, byte 1 seeds the chunk sizes, the
 * rest is the response body of a watch. The same body goes through three
 * parsers: pruned in random chunks, pruned in one piece, and unpruned in
 * one piece. The framing must not depend on where the network cut the
 * body (same events, same result), and pruning must not change what the
 * typed parser makes of an event.
 */
#define FUZZ_WATCH_MAX_EVENT  (64u * 1024)  /* small, so oversized events are reachable */
#define FUZZ_WATCH_EVENTS     64u           /* events compared per input */

struct fuzz_watch_event {
	int type;
	long code;
	char rv[64];
	struct fuzz_kube_summary parsed;
};

struct fuzz_watch_run {
	const struct cache_type *type;
	struct fuzz_watch_event ev[FUZZ_WATCH_EVENTS];
	size_t n;
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_watch_on_event(void *ctx, const struct kube_watch_event *ev)
{
	struct fuzz_watch_run *r = ctx;
	struct fuzz_watch_event *e;

	if (r->n == FUZZ_WATCH_EVENTS)
		return 0;
	e = &r->ev[r->n++];
	e->type = (int)ev->type;
	e->code = ev->code;
	snprintf(e->rv, sizeof(e->rv), "%s", ev->resource_version);
	if (ev->type != KUBE_WATCH_ERROR && ev->type != KUBE_WATCH_BOOKMARK)
		fuzz_kube_summarize(r->type, ev->object, &e->parsed);
	return 0;
}

static int
fuzz_watch_run(const struct jsonprune *prune, const char *body, size_t len, unsigned seed,
    struct fuzz_watch_run *r)
{
	struct kube_watch_parser p;
	int rc = 0;

	kube_watch_parser_init(&p, FUZZ_WATCH_MAX_EVENT, prune, fuzz_watch_on_event, r);
	for (size_t off = 0; off < len && rc == 0;) {
		size_t n = len - off;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			size_t want = 1 + (seed >> 16) % 97;
			if (want < n)
				n = want;
		}
		rc = kube_watch_parser_feed(&p, body + off, n);
		off += n;
	}
	kube_watch_parser_free(&p);
	return rc;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_stream(fopen("/dev/null", "w"));
	fuzz_kube_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_watch_run chunked, whole, plain;
	size_t t;
	unsigned seed;
	int rc_chunked, rc_whole, rc_plain;

	if (size < 2)
		return 0;
	t = data[0] % FUZZ_KUBE_NTYPES;
	seed = data[1] | 1u;
	memset(&chunked, 0, sizeof(chunked));
	memset(&whole, 0, sizeof(whole));
	memset(&plain, 0, sizeof(plain));
	chunked.type = whole.type = plain.type = fuzz_kube_types[t];
	rc_chunked = fuzz_watch_run(fuzz_kube_prune_events[t], (const char *)data + 2, size - 2,
	    seed, &chunked);
	rc_whole = fuzz_watch_run(fuzz_kube_prune_events[t], (const char *)data + 2, size - 2, 0,
	    &whole);
	rc_plain = fuzz_watch_run(NULL, (const char *)data + 2, size - 2, 0, &plain);

	/* Chunking changes nothing. */
	if (rc_chunked != rc_whole || chunked.n != whole.n ||
	    memcmp(chunked.ev, whole.ev, whole.n * sizeof(whole.ev[0])) != 0) {
		fprintf(stderr, "chunked and whole feeds differ: rc %d/%d, events %zu/%zu\n",
		    rc_chunked, rc_whole, chunked.n, whole.n);
		abort();
	}
	/*
	 * Every event the unpruned parser accepts, the pruned one accepts and
	 * reads the same. (The reverse need not hold: a malformed member that
	 * pruning drops unread is no error for the pruned parser.)
	 */
	if (whole.n < plain.n) {
		fprintf(stderr, "pruning lost events: %zu of %zu (rc %d/%d)\n", whole.n, plain.n,
		    rc_whole, rc_plain);
		abort();
	}
	for (size_t i = 0; i < plain.n; i++) {
		if (whole.ev[i].type != plain.ev[i].type || whole.ev[i].code != plain.ev[i].code ||
		    strcmp(whole.ev[i].rv, plain.ev[i].rv) != 0) {
			fprintf(stderr, "event %zu: pruned and whole events differ\n", i);
			abort();
		}
		fuzz_kube_same(&whole.ev[i].parsed, &plain.ev[i].parsed, fuzz_kube_types[t]->resource);
	}
	return 0;
}
