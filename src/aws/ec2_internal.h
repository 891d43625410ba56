/* Internal to the EC2 client (src/aws/ec2*.c): its structures and the functions its parts share. */
#ifndef STRATOS_AWS_EC2_INTERNAL_H
#define STRATOS_AWS_EC2_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "stratos/aws_credentials.h"
#include "stratos/aws_retry.h"
#include "stratos/buf.h"
#include "stratos/ec2.h"
#include "stratos/httpc.h"
#include "stratos/limits.h"
#include "stratos/metrics.h"
#include "stratos/ratelimit.h"

#define EC2__CONNECTIONS_DEFAULT 4u
#define EC2__TIMEOUT_DEFAULT_MS  20000
#define EC2__PAGE_DEFAULT        500u
#define EC2__KEEPALIVE_DEFAULT_MS 30000
#define EC2__CONNECT_TIMEOUT_MS  5000
#define EC2__CONTENT_TYPE        "Content-Type: application/x-www-form-urlencoded; charset=utf-8"

struct ec2__conn {
	struct httpc *http;
	int64_t last_used_ms;         /* monotonic; 0 = never used */
	bool busy;
};

struct ec2_client {
	char region[LIMITS_AWS_REGION + 1];
	char endpoint[LIMITS_AWS_URL];
	char host[300];                   /* Host header, port included when not the default */
	char path[512];
	struct aws_credentials_provider *creds;
	struct ratelimit buckets[EC2_OP_COUNT];
	struct aws_retry_quota quota;
	int64_t default_timeout_ms;
	int64_t keepalive_ms;
	unsigned max_attempts;
	unsigned page_size;
	bool fresh;

	pthread_mutex_t lock;             /* the pool and the stats */
	pthread_cond_t cond;
	struct ec2__conn *conns;
	size_t nconns;
	struct ec2_client_stats stats;
	bool stop;
	bool keepalive_started;
	pthread_t keepalive;

	struct metrics_family *m_requests;
	struct metrics_family *m_seconds;
};

/* ec2_error.c */
void ec2__err(struct ec2_error *err, enum ec2_error_class cls, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int ec2__rc_of(enum ec2_error_class cls);

/* ec2_query.c */
int ec2__invalid(struct ec2_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ec2__nonempty(const char *s);

/* ec2_reply.c */
int ec2__grow(void **v, size_t *cap, size_t len, size_t elem, size_t max);

/* ec2_client.c: one operation with retries, rate limit and deadline; reply is the 200 body. */
int ec2__call(struct ec2_client *c, enum ec2_op op, struct buf *body, const struct ec2_call *call,
    struct buf *reply, struct ec2_error *err);

#endif
