/* AWSNodeClass (stratos.sh/v1alpha1): the parsed, defaulted spec and every per-field rule of DESIGN §3.1. */
#ifndef STRATOS_NODECLASS_H
#define STRATOS_NODECLASS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/fieldcheck.h"

#define NODECLASS_KIND "AWSNodeClass"

/* Defaults of DESIGN §3.1. */
#define NODECLASS_DEFAULT_HOP_LIMIT   2
#define NODECLASS_DEFAULT_VOLUME_TYPE NODECLASS_VOLUME_GP3

enum nodeclass_volume_type {
	NODECLASS_VOLUME_GP2,
	NODECLASS_VOLUME_GP3,
	NODECLASS_VOLUME_IO1,
	NODECLASS_VOLUME_IO2,
	NODECLASS_VOLUME_ST1,
	NODECLASS_VOLUME_SC1,
	NODECLASS_VOLUME_STANDARD,
};

enum nodeclass_http_tokens {
	NODECLASS_HTTP_TOKENS_REQUIRED,         /* default */
	NODECLASS_HTTP_TOKENS_OPTIONAL,
};

/* NULL-terminated: "gp2", "gp3", "io1", "io2", "st1", "sc1", "standard" / "required", "optional". */
extern const char *const NODECLASS_VOLUME_TYPE_NAMES[];
extern const char *const NODECLASS_HTTP_TOKENS_NAMES[];

struct nodeclass_block_device {
	char *device_name;
	int volume_size;                        /* GiB */
	enum nodeclass_volume_type volume_type;
	int iops;                               /* 0: not set (EC2 default of the type) */
	int throughput;                         /* MiB/s; 0: not set */
	bool encrypted;                         /* default false */
	char *kms_key_id;                       /* NULL: not set */
	bool delete_on_termination;             /* default true */
};

/*
 * One AWSNodeClass with the defaults of DESIGN §3.1 applied. Immutable once
 * parsed and shared between snapshots (reference counted).
 */
struct nodeclass {
	int refs;                               /* atomic; see nodeclass_ref() */
	/* metadata */
	char *name;                             /* "" when the object has none */
	char *uid;
	char *resource_version;
	int64_t generation;
	bool deleting;
	/* spec */
	char *instance_type;                    /* "" when missing or invalid */
	char *ami;
	char *region;                           /* NULL: the daemon's region */
	char **subnet_ids;
	size_t nsubnet_ids;
	char **security_group_ids;
	size_t nsecurity_group_ids;
	char *iam_instance_profile;             /* ARN or name; "" when missing */
	struct nodeclass_block_device *block_devices;
	size_t nblock_devices;
	char *user_data;                        /* NULL: not set */
	size_t user_data_len;
	enum nodeclass_http_tokens http_tokens;
	int http_put_response_hop_limit;
	struct fieldcheck_pair *tags;           /* spec.tags in object order */
	size_t ntags;
	size_t nviolations;                     /* rules broken when parsed (0: valid) */
};

/*
 * Parses an AWSNodeClass object and applies every rule of DESIGN §3.1 that
 * concerns the object alone (types, enums, ranges, EC2 id formats, ARN,
 * iops/throughput against volumeType, kmsKeyId needs encrypted, userData
 * size, reserved tag keys, unknown fields). Same contract as
 * nodepool_parse(): violations to rep (may be NULL), a struct with defaults
 * for broken fields, 0 / -EINVAL (not an object) / -ENOMEM. Thread-safe.
 */
int nodeclass_parse(const json_t *obj, struct fieldcheck_report *rep, struct nodeclass **out);

struct nodeclass *nodeclass_ref(struct nodeclass *c);
void nodeclass_free(struct nodeclass *c);

#endif
