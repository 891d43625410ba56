/* --pools-file: NodePools and AWSNodeClasses from a multi-document YAML file into the pools registry. */
#ifndef STRATOS_POOLS_FILE_H
#define STRATOS_POOLS_FILE_H

#include <stdio.h>

#include "stratos/pools.h"

/*
 * Reads path (YAML, several documents), checks every document with the
 * rules of the validating webhooks (crd_validate_documents(): documents of
 * other kinds, duplicates and every rule violation are errors) and, when
 * nothing is wrong, replaces the whole content of pools with it and marks
 * it loaded. Every problem and warning is printed to errout as
 * "FILE: doc N (Kind/name): spec.path: problem" (YAML syntax errors as
 * "FILE:line:column: message"). On any violation pools is left untouched.
 * Returns 0, -EINVAL (violations or bad YAML), -ENOMEM, or -errno when the
 * file cannot be read. Not for concurrent use with another writer of the
 * same registry at start-up.
 */
int pools_file_load(struct pools *pools, const char *path, FILE *errout);

#endif
