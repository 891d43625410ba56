/* --pools-file: NodePools and AWSNodeClasses from a multi-document YAML file into the pools registry. */
#include <errno.h>
#include <string.h>

#include "stratos/pools_file.h"
#include "stratos/crd_validate.h"
#include "stratos/yamljson.h"

/* The documents of kinds the registry holds (the others are reported by crd_validate_documents). */
static json_t *
pools_file__ours(const json_t *docs)
{
	json_t *ours = json_array(), *doc;
	size_t i;

	if (ours == NULL)
		return NULL;
	json_array_foreach(docs, i, doc) {
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		if (kind != NULL && (strcmp(kind, NODEPOOL_KIND) == 0 ||
		    strcmp(kind, NODECLASS_KIND) == 0) && json_array_append(ours, doc) < 0) {
			json_decref(ours);
			return NULL;
		}
	}
	return ours;
}

int
pools_file_load(struct pools *pools, const char *path, FILE *errout)
{
	struct yamljson_error yerr;
	struct crd_validate_stats st = { 0 };
	struct pools *scratch = NULL;
	const struct pools_snapshot *snap = NULL;
	json_t *docs = NULL, *ours = NULL;
	int rc;

	rc = yamljson_parse_file(path, &docs, &yerr);
	if (rc < 0) {
		if (yerr.line > 0)
			fprintf(errout, "%s:%d:%d: %s\n", path, yerr.line, yerr.column, yerr.message);
		else
			fprintf(errout, "%s: %s\n", path, yerr.message[0] != '\0' ? yerr.message :
			    strerror(-rc));
		return rc;
	}
	/* The file's own classes resolve its pools' nodeClassRefs. */
	ours = pools_file__ours(docs);
	scratch = pools_new();
	if (ours == NULL || scratch == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = pools_replace_all(scratch, ours)) < 0)
		goto out;
	snap = pools_acquire(scratch);
	if ((rc = crd_validate_documents(path, docs, snap, false, errout, &st)) < 0)
		goto out;
	if (st.violations > 0) {
		fprintf(errout, "%s: %zu violation%s; nothing loaded\n", path, st.violations,
		    st.violations == 1 ? "" : "s");
		rc = -EINVAL;
		goto out;
	}
	rc = pools_replace_all(pools, ours);
out:
	pools_release(snap);
	pools_free(scratch);
	json_decref(ours);
	json_decref(docs);
	return rc;
}
