/* libFuzzer target: LIST reply bodies (jsonprune_list_metadata, jsonprune_list_items) and the typed parsers behind them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_kube_common.h"
#include "stratos/buf.h"
#include "stratos/limits.h"
#include "stratos/log.h"

/*
 * Input: byte 0 picks the cache type, the rest is a LIST body. Each item
 * is handled as kube_list does (pruned, then parsed; the unpruned text
 * when pruning fails) and, for comparison, parsed whole.
 */
struct fuzz_list_ctx {
	size_t type;
	struct buf scratch;
	size_t items;
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_list_item(void *p, const char *item, size_t len)
{
	struct fuzz_list_ctx *c = p;
	const struct cache_type *type = fuzz_kube_types[c->type];
	json_t *pruned = NULL, *whole;
	struct fuzz_kube_summary a, b;

	c->items++;
	whole = json_loadb(item, len, 0, NULL);
	if (fuzz_kube_prune_items[c->type] != NULL) {
		buf_reset(&c->scratch);
		if (jsonprune_apply(fuzz_kube_prune_items[c->type], item, len, &c->scratch) == 0)
			pruned = json_loadb(c->scratch.data, c->scratch.len, 0, NULL);
	}
	if (pruned == NULL)
		pruned = json_incref(whole);
	if (whole == NULL) {
		/* kube_list stops the page here; a pruned parse of it proves nothing. */
		json_decref(pruned);
		return 1;
	}
	fuzz_kube_summarize(type, pruned, &a);
	fuzz_kube_summarize(type, whole, &b);
	fuzz_kube_same(&a, &b, type->resource);
	json_decref(pruned);
	json_decref(whole);
	return 0;
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
	struct fuzz_list_ctx c = { 0 };
	json_t *meta = NULL;

	if (size < 1)
		return 0;
	c.type = data[0] % FUZZ_KUBE_NTYPES;
	buf_init(&c.scratch, LIMITS_KUBE_RESPONSE);
	if (jsonprune_list_metadata((const char *)data + 1, size - 1, &meta) == 0) {
		(void)json_string_value(json_object_get(meta, "resourceVersion"));
		(void)json_string_value(json_object_get(meta, "continue"));
	}
	json_decref(meta);
	meta = NULL;
	(void)jsonprune_list_items((const char *)data + 1, size - 1, fuzz_list_item, &c, &meta);
	json_decref(meta);
	buf_free(&c.scratch);
	return 0;
}
