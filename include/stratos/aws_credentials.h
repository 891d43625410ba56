/* AWS credentials: the default chain (env, web identity, container, IMDSv2) with background refresh. */
#ifndef STRATOS_AWS_CREDENTIALS_H
#define STRATOS_AWS_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/limits.h"

enum aws_credentials_source {
	AWS_CREDENTIALS_NONE,
	AWS_CREDENTIALS_ENV,            /* AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN] */
	AWS_CREDENTIALS_WEB_IDENTITY,   /* IRSA: STS AssumeRoleWithWebIdentity */
	AWS_CREDENTIALS_CONTAINER,      /* EKS Pod Identity / ECS container endpoint */
	AWS_CREDENTIALS_IMDS,           /* EC2 instance profile via IMDSv2 */
};

/*
 * One set of keys. A copy held by a caller is wiped with
 * aws_credentials_wipe() when done; nothing in here is ever logged.
 */
struct aws_credentials {
	char access_key_id[LIMITS_AWS_ACCESS_KEY_ID + 1];
	char secret_access_key[LIMITS_AWS_SECRET_KEY + 1];
	char session_token[LIMITS_AWS_SESSION_TOKEN + 1];   /* "" for long-term keys */
	int64_t expiration_ms;                             /* Unix ms; 0 = does not expire */
	enum aws_credentials_source source;
};

/* Where to look. Every field is optional. */
struct aws_credentials_options {
	/*
	 * "NAME=value" strings the AWS_* variables are read from
	 * (NULL-terminated); NULL = the process environment. Read once, by
	 * aws_credentials_provider_new().
	 */
	char **env;
	const char *region;             /* for the STS endpoint; NULL = aws_region_resolve() */
	const char *ca_file;            /* CA bundle for HTTPS sources; NULL = AWS_CA_BUNDLE, else system */
	int64_t refresh_ahead_ms;       /* refresh this long before Expiration; 0 = 10 min, minimum 5 min */
	int64_t fetch_timeout_ms;       /* one request to STS / container endpoint; 0 = 5 s (IMDS: 1 s) */
};

struct aws_credentials_provider;

/* Why the chain or a source failed, for the operator (never holds a secret). */
struct aws_credentials_error {
	char message[512];
};

/*
 * Walks the chain in order — environment, web identity (AWS_ROLE_ARN +
 * AWS_WEB_IDENTITY_TOKEN_FILE), container (AWS_CONTAINER_CREDENTIALS_FULL_URI
 * or _RELATIVE_URI), IMDSv2 (unless AWS_EC2_METADATA_DISABLED=true) — and
 * takes the first source that is configured. A configured source that fails
 * is an error (the chain does not fall through to a weaker identity). The
 * first fetch happens here, synchronously; temporary credentials are then
 * refreshed by a background thread refresh_ahead_ms before Expiration, with
 * retries and backoff (and a log line) on failure. Returns 0, -ENOENT (no
 * source configured), -EACCES / -EIO / -ETIMEDOUT (the source failed),
 * -EINVAL (bad setting) or -ENOMEM; err says which source and why.
 * Call from one thread; the provider is then shared.
 */
int aws_credentials_provider_new(const struct aws_credentials_options *opts,
    struct aws_credentials_provider **out, struct aws_credentials_error *err);

/* Stops the refresh thread and wipes every secret. NULL-safe. */
void aws_credentials_provider_free(struct aws_credentials_provider *p);

/*
 * Copies the current credentials into out under a lock: never any I/O, so
 * it is safe inside a latency-bound call. Returns 0, or -EKEYEXPIRED when
 * the current set has expired (refreshes kept failing); out is wiped then.
 * Thread-safe.
 */
int aws_credentials_get(struct aws_credentials_provider *p, struct aws_credentials *out);

/* Wipes a copy (explicit_bzero). */
void aws_credentials_wipe(struct aws_credentials *c);

/* The source in use. Thread-safe. */
enum aws_credentials_source aws_credentials_provider_source(struct aws_credentials_provider *p);

/*
 * Counters for tests and doctor: successful fetches (initial one included),
 * failed refresh attempts. Thread-safe.
 */
void aws_credentials_provider_stats(struct aws_credentials_provider *p, unsigned *fetches,
    unsigned *failures);

/*
 * Asks the refresh thread to fetch now (tests, and after an AuthFailure
 * that suggests the keys were revoked). Does not wait. Thread-safe.
 */
void aws_credentials_provider_refresh_soon(struct aws_credentials_provider *p);

/* "environment", "web-identity", "container", "imds", "none". */
const char *aws_credentials_source_name(enum aws_credentials_source s);

/*
 * Region: `configured` (a flag) when set, else AWS_REGION, else
 * AWS_DEFAULT_REGION (from opts->env or the environment), else IMDS
 * placement/region. source says which ("flag", "AWS_REGION", "imds"...).
 * Returns 0, -ENOENT (nowhere) or -EINVAL (not a region name).
 */
int aws_region_resolve(const char *configured, const struct aws_credentials_options *opts,
    char *out, size_t len, const char **source, struct aws_credentials_error *err);

/* Result of STS GetCallerIdentity. */
struct aws_caller_identity {
	char account[32];
	char arn[512];
	char user_id[256];
};

/*
 * STS GetCallerIdentity with the provider's current credentials (SigV4,
 * service "sts"), at AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL or the
 * regional STS endpoint. For `stratosd doctor`. Returns 0, -EACCES (STS
 * refused the keys; err has its code and message), -EIO or -ETIMEDOUT.
 */
int aws_sts_get_caller_identity(struct aws_credentials_provider *p, const char *region,
    struct aws_caller_identity *out, struct aws_credentials_error *err);

/*
 * Parsers, exposed for the unit tests. They fill out (source left alone)
 * and wipe it on failure. Expiration may carry fractional seconds.
 *  - JSON of the container endpoint and IMDS: AccessKeyId, SecretAccessKey,
 *    Token, Expiration (and IMDS "Code" must be "Success" when present);
 *  - XML of AssumeRoleWithWebIdentity.
 * Return 0 or -EINVAL with err filled.
 */
int aws_credentials_parse_json(const char *data, size_t len, struct aws_credentials *out,
    struct aws_credentials_error *err);
int aws_credentials_parse_sts_xml(const char *data, size_t len, struct aws_credentials *out,
    struct aws_credentials_error *err);

/* When to refresh credentials expiring at expiration_ms, seen at now_ms (both Unix ms). Pure. */
int64_t aws_credentials_refresh_at(int64_t expiration_ms, int64_t now_ms, int64_t ahead_ms);

#endif
