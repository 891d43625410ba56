/* Extender-sized JSON: reading Nodes.items[*].metadata.name from ExtenderArgs with 5,000 Node objects, jsonscan vs a jansson tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stratos/buf.h"
#include "stratos/jsonscan.h"
#include "stratos/timeutil.h"

#ifndef STRATOS_SOURCE_DIR
#define STRATOS_SOURCE_DIR "."
#endif

/* One Node of tests/fixtures/extender/nodes-standby.json, renamed n-<i>, 5,000 times. */
static char *
bench_args(size_t nodes, size_t *len)
{
	FILE *f = fopen(STRATOS_SOURCE_DIR "/tests/fixtures/extender/nodes-standby.json", "rb");
	struct jsonscan_value root, node;
	struct buf doc;
	char *text = calloc(1, 1 << 20);
	size_t n;

	if (f == NULL || text == NULL)
		exit(1);
	n = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	if (jsonscan_validate(text, n, NULL, &root, NULL) < 0)
		exit(1);
	node = jsonscan_index(root, 0);
	buf_init(&doc, 256u << 20);
	buf_append_str(&doc, "{\"Pod\":{\"metadata\":{\"name\":\"p\",\"namespace\":\"ci\"},\"spec\":{}},"
	    "\"Nodes\":{\"items\":[");
	for (size_t i = 0; i < nodes; i++)
		buf_printf(&doc, "%s{\"metadata\":{\"name\":\"n-%zu\"},\"node\":%.*s}", i ? "," : "", i,
		    (int)node.len, node.p);
	buf_append_str(&doc, "]},\"NodeNames\":null}");
	free(text);
	*len = doc.len;
	return buf_take(&doc);
}

int
main(int argc, char **argv)
{
	size_t nodes = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 200 : 5000, len, names = 0;
	char *text = bench_args(nodes, &len), name[64];
	struct jsonscan_doc doc;
	struct jsonscan_value root, item;
	struct jsonscan_iter it;
	int64_t t0, t_scan, t_tree;
	json_t *tree, *v;
	size_t i;

	t0 = time_mono_us();
	if (jsonscan_validate(text, len, &doc, &root, NULL) < 0)
		return 1;
	jsonscan_iter_init(&it, jsonscan_path(root, "Nodes", "items", NULL));
	while (jsonscan_next(&it, NULL, &item))
		if (jsonscan_string(jsonscan_path(item, "metadata", "name", NULL), name, sizeof(name),
		    NULL) == 0)
			names++;
	t_scan = time_mono_us() - t0;
	jsonscan_doc_free(&doc);
	if (names != nodes)
		return 1;

	t0 = time_mono_us();
	tree = json_loadb(text, len, 0, NULL);
	names = 0;
	json_array_foreach(json_object_get(json_object_get(tree, "Nodes"), "items"), i, v)
		names += json_string_value(json_object_get(json_object_get(v, "metadata"), "name")) != NULL;
	json_decref(tree);
	t_tree = time_mono_us() - t0;
	if (names != nodes)
		return 1;

	printf("ExtenderArgs with %zu Nodes (%.1f MB): every Nodes.items[*].metadata.name\n", nodes,
	    (double)len / 1e6);
	printf("  jsonscan (check all, walk, read names)   %8.1f ms  %6.0f MB/s\n", t_scan / 1e3,
	    (double)len / (double)t_scan);
	printf("  jansson  (json_loadb, walk, free tree)   %8.1f ms  %6.0f MB/s\n", t_tree / 1e3,
	    (double)len / (double)t_tree);
	free(text);
	return 0;
}
