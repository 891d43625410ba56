/* `stratosd validate FILE...`: the validating webhooks' rules, offline, on manifest files (CI). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/limits.h"
#include "stratos/pools.h"
#include "stratos/crd_validate.h"
#include "stratos/validate_cmd.h"
#include "stratos/yamljson.h"

#define VALIDATE_CLI_EXIT_OK      0
#define VALIDATE_CLI_EXIT_INVALID 1
#define VALIDATE_CLI_EXIT_IO      2

static void
validate_cmd__usage(FILE *out)
{
	fprintf(out, "usage: stratosd validate FILE...\n"
	    "Checks the NodePools and AWSNodeClasses of YAML manifest files (\"-\": standard\n"
	    "input) with the rules of the validating webhooks. Other kinds are skipped.\n"
	    "Exit status: 0 valid, 1 violations, 2 unreadable file.\n");
}

/* Standard input, at most LIMITS_YAML_FILE bytes. */
static int
validate_cmd__stdin(json_t **docs, struct yamljson_error *yerr)
{
	char *data = malloc(LIMITS_YAML_FILE + 1);
	size_t n;
	int rc;

	memset(yerr, 0, sizeof(*yerr));
	if (data == NULL)
		return -ENOMEM;
	n = fread(data, 1, LIMITS_YAML_FILE + 1, stdin);
	if (ferror(stdin)) {
		snprintf(yerr->message, sizeof(yerr->message), "read error");
		rc = -EIO;
	} else if (n > LIMITS_YAML_FILE) {
		snprintf(yerr->message, sizeof(yerr->message), "input larger than %u bytes",
		    LIMITS_YAML_FILE);
		rc = -EFBIG;
	} else {
		rc = yamljson_parse(data, n, docs, yerr);
	}
	free(data);
	return rc;
}

int
validate_cmd_main(int argc, char **argv)
{
	struct crd_validate_stats st = { 0 };
	json_t **docs;
	json_t *classes;
	struct pools *known = NULL;
	const struct pools_snapshot *snap = NULL;
	int status = VALIDATE_CLI_EXIT_OK, nfiles = 0;

	if (argc <= 0) {
		validate_cmd__usage(stderr);
		return VALIDATE_CLI_EXIT_IO;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			validate_cmd__usage(stdout);
			return VALIDATE_CLI_EXIT_OK;
		}
	}
	docs = calloc((unsigned)argc, sizeof(*docs));
	classes = json_array();
	if (docs == NULL || classes == NULL) {
		fprintf(stderr, "stratosd validate: out of memory\n");
		free(docs);
		json_decref(classes);
		return VALIDATE_CLI_EXIT_IO;
	}
	/* Read everything first: a NodePool may name a class from another file. */
	for (int i = 0; i < argc; i++) {
		struct yamljson_error yerr;
		const char *name = strcmp(argv[i], "-") == 0 ? "<stdin>" : argv[i];
		int rc = strcmp(argv[i], "-") == 0 ? validate_cmd__stdin(&docs[i], &yerr) :
		    yamljson_parse_file(argv[i], &docs[i], &yerr);
		size_t j;
		json_t *doc;

		if (rc == -EINVAL) {
			if (yerr.line > 0)
				printf("%s:%d:%d: %s\n", name, yerr.line, yerr.column, yerr.message);
			else
				printf("%s: %s\n", name, yerr.message);
			st.violations++;
			if (status == VALIDATE_CLI_EXIT_OK)
				status = VALIDATE_CLI_EXIT_INVALID;
			continue;
		}
		if (rc < 0) {
			fprintf(stderr, "%s: cannot read: %s\n", name,
			    yerr.message[0] != '\0' ? yerr.message : strerror(-rc));
			status = VALIDATE_CLI_EXIT_IO;
			continue;
		}
		nfiles++;
		json_array_foreach(docs[i], j, doc) {
			const char *kind = json_string_value(json_object_get(doc, "kind"));
			if (kind != NULL && strcmp(kind, NODECLASS_KIND) == 0)
				(void)json_array_append(classes, doc);
		}
	}
	if (json_array_size(classes) > 0) {
		known = pools_new();
		if (known != NULL && pools_replace_all(known, classes) == 0)
			snap = pools_acquire(known);
	}
	for (int i = 0; i < argc; i++) {
		const char *name = strcmp(argv[i], "-") == 0 ? "<stdin>" : argv[i];
		size_t before = st.resources;

		if (docs[i] == NULL)
			continue;
		if (crd_validate_documents(name, docs[i], snap, true, stdout, &st) < 0) {
			fprintf(stderr, "stratosd validate: out of memory\n");
			status = VALIDATE_CLI_EXIT_IO;
		}
		if (st.resources == before)
			fprintf(stderr, "%s: no NodePool or AWSNodeClass documents\n", name);
	}
	fflush(stdout);
	if (st.violations > 0 && status == VALIDATE_CLI_EXIT_OK)
		status = VALIDATE_CLI_EXIT_INVALID;
	fprintf(stderr, "stratosd validate: %zu resource%s in %d file%s: %zu violation%s, "
	    "%zu warning%s\n", st.resources, st.resources == 1 ? "" : "s", nfiles,
	    nfiles == 1 ? "" : "s", st.violations, st.violations == 1 ? "" : "s", st.warnings,
	    st.warnings == 1 ? "" : "s");
	pools_release(snap);
	pools_free(known);
	for (int i = 0; i < argc; i++)
		json_decref(docs[i]);
	free(docs);
	json_decref(classes);
	return status;
}
