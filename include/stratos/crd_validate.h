/* Validation of NodePools and AWSNodeClasses as a request: CREATE/UPDATE/DELETE rules, cross-references, manifest files. */
#ifndef STRATOS_CRD_VALIDATE_H
#define STRATOS_CRD_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <jansson.h>

#include "stratos/fieldcheck.h"
#include "stratos/pools.h"

/*
 * The per-field rules live with the resources (nodepool_parse,
 * nodeclass_parse: one code path for the webhook, files and the watch
 * cache). This module adds what depends on the request: the operation, the
 * previous object, the other resources and the node count.
 */

enum crd_validate_op {
	CRD_VALIDATE_CREATE,
	CRD_VALIDATE_UPDATE,
	CRD_VALIDATE_DELETE,
};

struct crd_validate_input {
	enum crd_validate_op op;
	const json_t *object;                   /* CREATE, UPDATE */
	const json_t *old_object;               /* UPDATE, DELETE */
	const struct pools_snapshot *snap;      /* the other resources; NULL or not loaded: unknown */
	long nodes;                             /* nodes of this pool (NodePool) or of every pool
	                                           using this class (AWSNodeClass); -1: unknown */
};

/*
 * Checks a NodePool / AWSNodeClass request and fills rep with every
 * violation (a non-empty list means deny) and every warning.
 *   CREATE: all rules of DESIGN §3; warnings for risky settings and for a
 *           nodeClassRef that names no known AWSNodeClass.
 *   UPDATE: nothing when the object is being deleted or its spec did not
 *           change (so a finalizer update never fails on rules added since);
 *           else the CREATE rules plus warnings for transitions that affect
 *           existing nodes (nodeClassRef or class fields changed, startup
 *           taints dropped, poolSize below the node count).
 *   DELETE: allowed; warnings when nodes or pools depend on the object.
 * Returns 0 or -ENOMEM. Thread-safe on a held snapshot.
 */
int crd_validate_nodepool(const struct crd_validate_input *in, struct fieldcheck_report *rep);
int crd_validate_nodeclass(const struct crd_validate_input *in, struct fieldcheck_report *rep);

/* Counters for crd_validate_documents(). */
struct crd_validate_stats {
	size_t resources;       /* NodePools and AWSNodeClasses checked */
	size_t violations;
	size_t warnings;
	size_t skipped;         /* documents of other kinds, when allowed */
};

/*
 * Checks every document of one parsed YAML file (docs: array) as a CREATE
 * against snap (the AWSNodeClasses known for cross-references; may be NULL)
 * and prints one line per problem to out:
 *   FILE: doc N (Kind/name): spec.path: problem
 *   FILE: doc N (Kind/name): warning: spec.path: problem
 * N counts the file's non-empty documents from 1. Documents of other kinds
 * are violations when other_kinds_ok is false (the pools file), else
 * skipped (manifest directories in CI); anything claiming the stratos.sh
 * group must be one of ours. Two documents of the same kind and name are a
 * violation. Adds to *st. Returns 0 or -ENOMEM.
 */
int crd_validate_documents(const char *file, const json_t *docs, const struct pools_snapshot *snap,
    bool other_kinds_ok, FILE *out, struct crd_validate_stats *st);

#endif
