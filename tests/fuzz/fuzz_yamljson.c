/* libFuzzer target: YAML files (yamljson) as --pools-file, --config, kubeconfig and `stratosd validate` read them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/pools.h"
#include "stratos/pools_file.h"
#include "stratos/crd_validate.h"
#include "stratos/yamljson.h"

/*
 * The parse must stay within its limits whatever the input: no tree deeper
 * than LIMITS_YAML_DEPTH collections (aliases expanded), no more nodes than
 * the text can hold plus LIMITS_YAML_ALIAS_NODES copies. A parsed stream
 * then goes through what the daemon does with it: every document
 * validated as `stratosd validate` does, and the whole file loaded as a
 * --pools-file (from a memfd, through the real file path).
 */
static FILE *fuzz_devnull;
static int fuzz_memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Collection levels of v (a scalar is 0); *nodes counts every value. */
static size_t
fuzz_yaml_height(const json_t *v, size_t *nodes)
{
	size_t h = 0, i;
	const char *k;
	json_t *m;

	(*nodes)++;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, m) {
			size_t c = fuzz_yaml_height(m, nodes);
			if (c > h)
				h = c;
		}
		return h + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, m) {
			size_t c = fuzz_yaml_height(m, nodes);
			if (c > h)
				h = c;
		}
		return h + 1;
	}
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_devnull = fopen("/dev/null", "w");
	log_set_stream(fuzz_devnull);
	fuzz_memfd = memfd_create("fuzz-yaml", 0);
	return fuzz_devnull != NULL && fuzz_memfd >= 0 ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yamljson_error err;
	struct crd_validate_stats st = { 0 };
	json_t *docs = NULL, *doc;
	size_t i, nodes = 0;
	char path[64];

	if (yamljson_parse((const char *)data, size, &docs, &err) == 0) {
		json_array_foreach(docs, i, doc) {
			if (fuzz_yaml_height(doc, &nodes) > LIMITS_YAML_DEPTH) {
				fprintf(stderr, "document %zu deeper than %u\n", i, LIMITS_YAML_DEPTH);
				abort();
			}
		}
		/* A node takes at least one byte of text, or comes from an alias. */
		if (nodes > size + 1 + LIMITS_YAML_ALIAS_NODES) {
			fprintf(stderr, "%zu nodes from %zu bytes\n", nodes, size);
			abort();
		}
		(void)crd_validate_documents("fuzz.yaml", docs, NULL, true, fuzz_devnull, &st);
		json_decref(docs);
	} else if (err.message[0] == '\0') {
		fprintf(stderr, "a refused parse must say why\n");
		abort();
	}

	/* The same bytes as a --pools-file, read through the file path. */
	if (ftruncate(fuzz_memfd, 0) == 0 && pwrite(fuzz_memfd, data, size, 0) == (ssize_t)size) {
		struct pools *pools = pools_new();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fuzz_memfd);
		if (pools != NULL)
			(void)pools_file_load(pools, path, fuzz_devnull);
		pools_free(pools);
	}
	return 0;
}
