/* Internal to the AWS credential chain (src/aws/aws_*.c): settings, provider state, shared steps. */
#ifndef STRATOS_AWS_CREDENTIALS_INTERNAL_H
#define STRATOS_AWS_CREDENTIALS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "stratos/aws_credentials.h"
#include "stratos/buf.h"
#include "stratos/httpc.h"
#include "stratos/limits.h"

#define AWS_CREDS__REFRESH_AHEAD_DEFAULT_MS (10 * 60 * 1000)
#define AWS_CREDS__REFRESH_AHEAD_MIN_MS     (5 * 60 * 1000)
#define AWS_CREDS__MIN_INTERVAL_MS          5000
#define AWS_CREDS__RETRY_BASE_MS            1000
#define AWS_CREDS__RETRY_MAX_MS             60000
#define AWS_CREDS__FETCH_TIMEOUT_MS         5000
#define AWS_CREDS__IMDS_TIMEOUT_MS          1000
#define AWS_CREDS__IMDS_TOKEN_TTL_S         21600
#define AWS_CREDS__IMDS_DEFAULT             "http://169.254.169.254"
#define AWS_CREDS__IMDS_DEFAULT_V6          "http://[fd00:ec2::254]"
#define AWS_CREDS__ECS_HOST                 "http://169.254.170.2"
#define AWS_CREDS__STS_VERSION              "2011-06-15"

/* The AWS_* settings, read once from the environment given to _new(). */
struct aws_creds__settings {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;
	char *role_arn;
	char *web_identity_token_file;
	char *role_session_name;
	char *sts_endpoint;             /* AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL */
	char *container_full_uri;
	char *container_relative_uri;
	char *container_token_file;
	char *container_token;
	char *imds_endpoint;
	bool imds_disabled;
	char *ca_file;
	char *region;                   /* AWS_REGION, else AWS_DEFAULT_REGION */
};

struct aws_credentials_provider {
	struct aws_creds__settings set;
	char region[LIMITS_AWS_REGION + 1];   /* for STS; "" = global endpoint */
	int64_t refresh_ahead_ms;
	int64_t fetch_timeout_ms;
	enum aws_credentials_source source;

	/* I/O state, used by one fetch at a time (fetch_lock). */
	pthread_mutex_t fetch_lock;
	struct httpc *http;
	char imds_token[256];
	int64_t imds_token_expires_ms;  /* monotonic */

	/* Shared state (lock). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct aws_credentials current;
	int64_t refresh_at_ms;          /* Unix ms; INT64_MAX = never */
	unsigned fetches;
	unsigned failures;
	unsigned streak;                /* consecutive failures */
	bool stop;
	bool force;
	bool thread_started;
	pthread_t thread;
};

/* aws_credentials.c */
void aws_creds__error(struct aws_credentials_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int aws_creds__copy(char *dst, size_t cap, const char *src, const char *what,
    struct aws_credentials_error *err);
const char *aws_creds__env(char **env, const char *name);
void aws_creds__settings_free(struct aws_creds__settings *s);
int aws_creds__settings_load(struct aws_creds__settings *s, char **env, const char *ca_file);

/* aws_sts.c: IRSA, AssumeRoleWithWebIdentity. */
int aws_creds__fetch_web_identity(struct aws_credentials_provider *p, struct aws_credentials *out,
    struct aws_credentials_error *err);

/* aws_credential_sources.c */
int aws_creds__read_token(const char *path, struct buf *out, struct aws_credentials_error *err);
int aws_creds__http_failure(const struct httpc_response *resp, const char *what,
    struct aws_credentials_error *err);
int aws_creds__request(struct aws_credentials_provider *p, const struct httpc_request *req,
    struct httpc_response *resp, const char *what, struct aws_credentials_error *err);
int aws_creds__imds_get(struct aws_credentials_provider *p, const char *path,
    struct httpc_response *resp, struct aws_credentials_error *err);
/* One fetch from the provider's source (fetch_lock held). */
int aws_creds__fetch(struct aws_credentials_provider *p, struct aws_credentials *out,
    struct aws_credentials_error *err);

#endif
