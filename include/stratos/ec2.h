/* EC2 Query API client: signed requests over pooled keep-alive connections, retries, rate limits. */
#ifndef STRATOS_EC2_H
#define STRATOS_EC2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/buf.h"
#include "stratos/nodestate.h"

struct aws_credentials_provider;
struct config;

#define EC2_API_VERSION "2016-11-15"


/* Instance state codes (low byte of instanceState/code). */
#define EC2_STATE_PENDING       0
#define EC2_STATE_RUNNING       16
#define EC2_STATE_SHUTTING_DOWN 32
#define EC2_STATE_TERMINATED    48
#define EC2_STATE_STOPPING      64
#define EC2_STATE_STOPPED       80

enum ec2_op {
	EC2_OP_RUN_INSTANCES,
	EC2_OP_START_INSTANCES,
	EC2_OP_STOP_INSTANCES,
	EC2_OP_TERMINATE_INSTANCES,
	EC2_OP_DESCRIBE_INSTANCES,
	EC2_OP_CREATE_TAGS,
	EC2_OP_DELETE_TAGS,
	EC2_OP_COUNT,
};

/* The Action name ("RunInstances"...). */
const char *ec2_op_name(enum ec2_op op);

/*
 * What the controller and the extender act on (DESIGN §7). Every class but
 * EC2_ERR_UNKNOWN_OUTCOME is a definite failure: the request did not take
 * effect (EC2 said so, or it never left this process).
 */
enum ec2_error_class {
	EC2_ERR_NONE = 0,
	EC2_ERR_NOT_FOUND,        /* *.NotFound: the instance (or AMI, subnet...) does not exist */
	EC2_ERR_CAPACITY,         /* InsufficientInstanceCapacity, InsufficientFreeAddressesInSubnet,
	                           * InstanceLimitExceeded, VcpuLimitExceeded */
	EC2_ERR_WRONG_STATE,      /* IncorrectInstanceState */
	EC2_ERR_THROTTLED,        /* RequestLimitExceeded & co., or the client's own rate limit */
	EC2_ERR_AUTH,             /* AuthFailure, UnauthorizedOperation, SignatureDoesNotMatch,
	                           * expired tokens, no usable credentials */
	EC2_ERR_UNKNOWN_OUTCOME,  /* timeout or dropped connection after the request may have been sent */
	EC2_ERR_OTHER,            /* anything else, incl. invalid parameters */
};

/* "not-found", "capacity", "wrong-state", "throttled", "auth", "unknown-outcome", "other", "none". */
const char *ec2_error_class_name(enum ec2_error_class cls);

/* Class of an AWS error code (HTTP status breaks ties for codes it does not know). Pure. */
enum ec2_error_class ec2_error_classify(const char *code, long http_status);

/*
 * Failure details, kept for logs and Kubernetes events. code is EC2's code,
 * or one of the client's own: "RequestTimeout", "ConnectionDropped",
 * "ConnectionFailed", "TLSError", "ResponseTooLarge", "MalformedResponse",
 * "ClientRateLimited", "DeadlineExceeded", "CredentialsExpired",
 * "InvalidParameter".
 */
struct ec2_error {
	enum ec2_error_class cls;
	char code[128];
	char message[1024];
	char request_id[128];
	long http_status;         /* of the last attempt; 0 when no reply */
	unsigned attempts;        /* HTTP attempts made */
	int64_t elapsed_ms;       /* whole call, waits included */
};

/* Per-call options; a NULL pointer means all defaults. */
struct ec2_call {
	/*
	 * Absolute deadline on the time_mono_ms() clock bounding every wait,
	 * retry and backoff of the call; 0 = now + the client's default
	 * timeout. The scheduler fast path passes now + ~2 s.
	 */
	int64_t deadline_ms;
	bool dry_run;             /* DryRun=true: success means "permitted" (DryRunOperation) */
	unsigned max_attempts;    /* 0 = the client's setting (3) */
};

/* A tag given to the client (borrowed strings). */
struct ec2_tag {
	const char *key;
	const char *value;        /* DeleteTags: NULL = whatever the value */
};

/* A tag read back (owned by the instance). */
struct ec2_instance_tag {
	char *key;
	char *value;
};

struct ec2_instance {
	char id[32];
	char image_id[64];
	char instance_type[64];
	int state_code;                   /* EC2_STATE_* */
	char state[24];                   /* "running"... */
	char state_reason[128];           /* stateReason/code, e.g. "Client.UserInitiatedShutdown" */
	char state_transition_reason[256];
	char private_dns_name[256];
	char private_ip[64];
	char availability_zone[64];
	char subnet_id[64];
	char vpc_id[64];
	char client_token[72];
	int64_t launch_time_ms;           /* Unix ms; 0 when absent */
	struct ec2_instance_tag *tags;
	size_t ntags;
};

struct ec2_instances {
	struct ec2_instance *v;
	size_t len;
	size_t cap;
};

/* Frees the instances and their tags, leaves an empty list. NULL-safe. */
void ec2_instances_free(struct ec2_instances *list);

/* Value of tag `key` on in, NULL when absent. */
const char *ec2_instance_tag(const struct ec2_instance *in, const char *key);

struct ec2_state_change {
	char id[32];
	int current_code;
	char current[24];
	int previous_code;
	char previous[24];
};

struct ec2_state_changes {
	struct ec2_state_change *v;
	size_t len;
	size_t cap;
};

void ec2_state_changes_free(struct ec2_state_changes *list);

struct ec2_block_device {
	const char *device_name;          /* "/dev/xvda" */
	int volume_size_gib;              /* 0 = the AMI's */
	const char *volume_type;          /* NULL = the AMI's (AWSNodeClass defaults it to gp3) */
	int iops;                         /* 0 = unset */
	int throughput;                   /* MiB/s, gp3 only; 0 = unset */
	bool encrypted;
	const char *kms_key_id;           /* NULL = the account default key */
	bool delete_on_termination;
};

/* RunInstances parameters (borrowed). One subnet per call: the caller picks it. */
struct ec2_run_params {
	const char *image_id;
	const char *instance_type;
	const char *subnet_id;
	const char *const *security_group_ids;
	size_t nsecurity_groups;
	const char *iam_instance_profile;  /* "arn:aws...:instance-profile/..." or a bare name */
	const struct ec2_block_device *block_devices;
	size_t nblock_devices;
	const void *user_data;             /* raw bytes, base64-encoded by the client; NULL = none */
	size_t user_data_len;
	const char *metadata_http_tokens;  /* "required" / "optional"; NULL = EC2 default */
	int metadata_hop_limit;            /* 1..64; 0 = EC2 default */
	const struct ec2_tag *tags;        /* TagSpecification for the instance (and volumes) */
	size_t ntags;
	bool tag_volumes;                  /* also tag the EBS volumes at launch */
	/*
	 * Idempotency token (≤ 64 ASCII): the same token never makes a second
	 * instance, so retries — ours and the caller's after a crash — are
	 * safe. NULL = the client generates one for this call's own retries.
	 */
	const char *client_token;
	unsigned count;                    /* MinCount = MaxCount; 0 = 1 */
};

/* A DescribeInstances filter (borrowed). */
struct ec2_filter {
	const char *name;                  /* "tag:stratos.sh/cluster", "instance-state-name"... */
	const char *const *values;
	size_t nvalues;
};

/* Client settings. */
struct ec2_options {
	const char *region;                /* required */
	const char *endpoint;              /* NULL = ec2_endpoint_resolve(NULL, region) */
	const char *ca_file;               /* NULL = AWS_CA_BUNDLE, else the system store */
	struct aws_credentials_provider *credentials;   /* borrowed; outlives the client */
	unsigned connections;              /* pooled keep-alive connections; 0 = 4 */
	int64_t default_timeout_ms;        /* deadline of calls that give none; 0 = 20 s */
	unsigned max_attempts;             /* 0 = 3 (AWS standard mode) */
	/*
	 * Token buckets per action, "Action=rate/burst" separated by commas,
	 * action names case-insensitive with or without their "Instances"
	 * suffix ("Start=10/20,RunInstances=2/5,DescribeInstances=0" where 0
	 * disables). Unnamed actions keep EC2_RATE_LIMITS_DEFAULT.
	 */
	const char *rate_limits;
	unsigned describe_page_size;       /* MaxResults 5..1000; 0 = 500 */
	/*
	 * Idle pooled connections are refreshed with a cheap unsigned request
	 * this often so the fast path finds them open (servers drop idle
	 * keep-alive connections); 0 = 30 s, negative = never.
	 */
	int64_t keepalive_ms;
	bool fresh_connections;            /* a new connection per request (benchmarks only) */
};

/*
 * Defaults, about half of EC2's per-account buckets so other tools in the
 * account keep room (rate per second / burst).
 */
#define EC2_RATE_LIMITS_DEFAULT \
	"RunInstances=2/10,StartInstances=5/20,StopInstances=5/20,TerminateInstances=5/20," \
	"DescribeInstances=10/50,CreateTags=10/50,DeleteTags=10/50"

struct ec2_client;

/*
 * Endpoint for region: flag when set, else AWS_ENDPOINT_URL_EC2, else
 * AWS_ENDPOINT_URL (environment), else https://ec2.<region>.amazonaws.com
 * (".com.cn" for cn- regions). Returns 0 or -E2BIG.
 */
int ec2_endpoint_resolve(const char *flag, const char *region, char *out, size_t len);

/*
 * New client. Opens no connection yet (ec2_client_warm() does). Returns
 * 0, -EINVAL (bad region, endpoint or rate limits; err->message says
 * which) or -ENOMEM. The client is thread-safe: any number of threads may
 * call operations at once; each call checks out one pooled connection.
 */
int ec2_client_new(const struct ec2_options *opts, struct ec2_client **out, struct ec2_error *err);

/*
 * Options from the daemon configuration (--aws-endpoint-url,
 * --ec2-rate-limits, --ec2-timeout, --ec2-connections) for an already
 * resolved region and credential provider.
 */
void ec2_options_from_config(const struct config *cfg, const char *region,
    struct aws_credentials_provider *creds, struct ec2_options *out);

/* Closes the connections and stops the keep-alive thread; no call may be in flight. NULL-safe. */
void ec2_client_free(struct ec2_client *c);

/*
 * Opens every pooled connection now (TLS handshake included) so that the
 * first calls of the fast path do not pay for it. Returns how many are
 * open. Thread-safe.
 */
int ec2_client_warm(struct ec2_client *c, int64_t deadline_ms);

/* The endpoint in use. */
const char *ec2_client_endpoint(const struct ec2_client *c);

/*
 * Counters for tests, the benchmark and doctor: requests sent, of those
 * how many reused a pooled connection, and retry-quota tokens left.
 */
struct ec2_client_stats {
	unsigned long requests;
	unsigned long reused;
	unsigned long new_connections;
	unsigned long keepalive_pings;
	unsigned quota;
};
void ec2_client_stats(struct ec2_client *c, struct ec2_client_stats *out);

/*
 * Operations. All: thread-safe; call may be NULL; return 0 on success, or
 * a negative code with err filled (err may be NULL): -ENOENT not found,
 * -ENOSPC capacity, -EBUSY wrong state, -EAGAIN throttled, -EACCES auth,
 * -ETIMEDOUT unknown outcome, -EIO other, -EINVAL bad parameters (nothing
 * sent), -ENOMEM. A dry run returns 0 when EC2 answers DryRunOperation
 * (the caller is permitted) and fills nothing else. Outputs are filled
 * only on success and owned by the caller.
 */
int ec2_run_instances(struct ec2_client *c, const struct ec2_run_params *p,
    const struct ec2_call *call, struct ec2_instances *out, struct ec2_error *err);
int ec2_start_instances(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_call *call, struct ec2_state_changes *out, struct ec2_error *err);
int ec2_stop_instances(struct ec2_client *c, const char *const *ids, size_t n, bool force,
    const struct ec2_call *call, struct ec2_state_changes *out, struct ec2_error *err);
int ec2_terminate_instances(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_call *call, struct ec2_state_changes *out, struct ec2_error *err);

/*
 * DescribeInstances with filters and/or ids; follows NextToken until the
 * end (at most LIMITS_EC2_DESCRIBE_INSTANCES instances), appending to out.
 * With ids, no pagination (EC2 forbids MaxResults with InstanceId). A
 * call->deadline_ms bounds every page together; without one each page
 * gets the client's default timeout.
 */
int ec2_describe_instances(struct ec2_client *c, const struct ec2_filter *filters,
    size_t nfilters, const char *const *ids, size_t nids, const struct ec2_call *call,
    struct ec2_instances *out, struct ec2_error *err);

/*
 * The controller's usual query: instances tagged with cluster, and
 * optionally pool (NULL = all pools) and in one of states (NULL-terminated
 * state names, NULL = any state).
 */
int ec2_describe_cluster_instances(struct ec2_client *c, const char *cluster, const char *pool,
    const char *const *states, const struct ec2_call *call, struct ec2_instances *out,
    struct ec2_error *err);

int ec2_create_tags(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_tag *tags, size_t ntags, const struct ec2_call *call, struct ec2_error *err);
int ec2_delete_tags(struct ec2_client *c, const char *const *ids, size_t n,
    const struct ec2_tag *tags, size_t ntags, const struct ec2_call *call, struct ec2_error *err);

/*
 * Query building and reply parsing, exposed for the unit tests and the
 * benchmark. Builders append the form body (Action, Version and
 * parameters; no DryRun) to out and return 0, -EINVAL (err says why),
 * -E2BIG or -ENOMEM.
 */
int ec2_query_run_instances(const struct ec2_run_params *p, struct buf *out,
    struct ec2_error *err);
int ec2_query_instance_ids(enum ec2_op op, const char *const *ids, size_t n, bool force,
    struct buf *out, struct ec2_error *err);
int ec2_query_describe(const struct ec2_filter *filters, size_t nfilters,
    const char *const *ids, size_t nids, unsigned max_results, const char *next_token,
    struct buf *out, struct ec2_error *err);
int ec2_query_tags(enum ec2_op op, const char *const *ids, size_t n, const struct ec2_tag *tags,
    size_t ntags, struct buf *out, struct ec2_error *err);

/*
 * Parses a DescribeInstances or RunInstances reply, appending its instances
 * to out; *next_token (when next_token is not NULL) gets the NextToken or
 * NULL (caller frees). Returns 0, -EINVAL (not that reply), -E2BIG (over
 * LIMITS_EC2_DESCRIBE_INSTANCES) or -ENOMEM.
 */
int ec2_parse_instances(const char *xml, size_t len, struct ec2_instances *out,
    char **next_token);

/* Parses a Start/Stop/TerminateInstances reply, appending to out. Same returns. */
int ec2_parse_state_changes(const char *xml, size_t len, struct ec2_state_changes *out);

/*
 * Fills err from an error reply (code, message, RequestID, class) of HTTP
 * status `status`. Returns 0, or -EINVAL when the body is not an AWS error
 * document (err then says "HTTP <status>").
 */
int ec2_parse_error(const char *xml, size_t len, long status, struct ec2_error *err);

#endif
