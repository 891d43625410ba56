/* Launching pool instances (DESIGN §5.1): launch records kept on the NodePool before RunInstances, subnets, parameters and tags. */
#ifndef STRATOS_LAUNCH_H
#define STRATOS_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/ec2.h"
#include "stratos/limits.h"
#include "stratos/nodeclass.h"
#include "stratos/nodepool.h"

/*
 * A launch the controller decided: its ClientToken and the subnet it goes
 * to, recorded in the NodePool's stratos.sh/launches annotation before
 * RunInstances is called, so that a leader that crashes between the two
 * (or gets no answer) repeats exactly the same call: EC2 returns the
 * instance the token already made, or makes the one that was never made.
 */
struct launch_record {
	char token[LIMITS_LAUNCH_TOKEN + 1];
	char subnet[32];
	int64_t at_ms;               /* Unix ms the launch was decided */
};

struct launch_records {
	size_t n;
	struct launch_record v[LIMITS_LAUNCH_RECORDS];
};

/*
 * Parses the annotation text (NULL or "" = none). Entries that are not
 * well formed are skipped (counted in *skipped, may be NULL): a record the
 * controller cannot read cannot be repeated either. Returns 0, -EINVAL (not
 * a JSON list) or -E2BIG (over LIMITS_LAUNCH_RECORDS; the first ones are kept).
 */
int launch_records_parse(const char *text, struct launch_records *out, size_t *skipped);

/* The annotation text of r (caller frees), NULL in *out when r is empty. Returns 0 or -ENOMEM. */
int launch_records_format(const struct launch_records *r, char **out);

/* Index of the record with this token, or -1. */
int launch_records_find(const struct launch_records *r, const char *token);

/* Removes the record at i (order kept). */
void launch_records_remove(struct launch_records *r, size_t i);

/*
 * A fresh ClientToken for pool: "<pool, at most 40 characters>-<16 random
 * hex digits>" (≤ 57 ASCII characters, EC2 allows 64). Returns 0 or -EIO
 * (no randomness).
 */
int launch_token(const char *pool, char out[LIMITS_LAUNCH_TOKEN + 1]);

/*
 * The subnet of n with the fewest pool instances counts[i], skipping those
 * avoid[i] marks (a recent capacity error; avoid may be NULL) unless every
 * one is marked; ties go to the first listed. Returns the index, -1 when n
 * is 0. Pure.
 */
int launch_pick_subnet(size_t n, const unsigned *counts, const bool *avoid);

/*
 * Everything RunInstances needs for one instance of pool, built from the
 * pool and its AWSNodeClass (both must outlive it): image, type, subnet,
 * security groups, instance profile, block devices, user data, IMDS
 * options, and the tags of DESIGN §4 (stratos.sh/pool, stratos.sh/cluster,
 * stratos.sh/state=warmup, managed-by=stratos, Name=stratos-<pool>, then
 * spec.tags), volumes tagged too.
 */
struct launch_params {
	struct ec2_run_params run;
	struct ec2_block_device devices[LIMITS_NODECLASS_BLOCK_DEVICES];
	const char *groups[LIMITS_NODECLASS_SECURITY_GROUPS];
	struct ec2_tag tags[LIMITS_EC2_TAGS];
	char name_tag[LIMITS_NODEPOOL_NAME + 16];
};

/* Fills out. Returns 0 or -EINVAL (too many tags, nothing to launch from). Pure. */
int launch_params_build(const struct nodepool *pool, const struct nodeclass *nc,
    const char *cluster, const char *subnet, const char *token, struct launch_params *out);

#endif
