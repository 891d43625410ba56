/* AWS Signature Version 4: canonical request, string to sign, signature. Pure, no I/O. */
#ifndef STRATOS_SIGV4_H
#define STRATOS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/limits.h"

/* "20150830T123600Z" plus the NUL. */
#define SIGV4_DATE_LEN 17

/* Borrowed key material; session_token NULL or "" for long-term keys. */
struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;
};

struct sigv4_request {
	const char *method;            /* "POST" */
	const char *host;              /* Host header value, with a non-default port ("127.0.0.1:4566") */
	const char *path;              /* canonical URI, already URI-encoded; NULL = "/" */
	const char *query;             /* canonical query string (sorted, encoded); NULL = "" */
	/*
	 * Other headers to sign, NULL-terminated "Name: value" lines (may be
	 * NULL). host, x-amz-date and x-amz-security-token are added by the
	 * signer and must not be listed. At most LIMITS_SIGV4_HEADERS in all.
	 */
	const char *const *headers;
	const void *body;              /* exact body bytes; NULL with body_len 0 for none */
	size_t body_len;
	const char *region;            /* "us-east-1" */
	const char *service;           /* "ec2", "sts" */
	const char *amz_date;          /* X-Amz-Date value, "YYYYMMDDTHHMMSSZ" */
};

/*
 * Result of sigv4_sign(). authorization is the Authorization header value.
 * canonical_request and string_to_sign are filled only when asked for
 * (tests, debugging); they contain no secret. Free with sigv4_signature_free().
 */
struct sigv4_signature {
	char *authorization;
	char *canonical_request;
	char *string_to_sign;
};

/*
 * Signs req with creds. The caller sends X-Amz-Date (req->amz_date),
 * X-Amz-Security-Token (when creds has one), Host (req->host) and
 * Authorization (out->authorization) along with the headers it listed.
 * Every intermediate key is wiped before return. Returns 0, -EINVAL (bad
 * date, header line, or missing field), -E2BIG (too many headers) or
 * -ENOMEM; out is zeroed on failure. Thread-safe (no shared state).
 */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_credentials *creds,
    bool keep_intermediates, struct sigv4_signature *out);

/* Frees the strings of sig and zeroes it. NULL-safe. */
void sigv4_signature_free(struct sigv4_signature *sig);

/*
 * Every header a signed request sends, for httpc_request.headers: the
 * headers the request signed (req->headers), then Host, X-Amz-Date,
 * X-Amz-Security-Token (only with a session token) and Authorization.
 */
struct sigv4_headers {
	const char *lines[LIMITS_SIGV4_HEADERS + 5];   /* NULL-terminated */
	char host[320];
	char date[48];
	char *token;                 /* holds the session token: wiped by sigv4_headers_free */
	char *authorization;
};

/*
 * Signs req with creds (req->amz_date NULL = now) and fills h with every
 * header to send. The caller may wipe creds as soon as this returns; the
 * only secret left is the session token in h, wiped by sigv4_headers_free.
 * Returns 0 or as sigv4_sign (h is then empty). Thread-safe.
 */
int sigv4_sign_headers(const struct sigv4_request *req, const struct sigv4_credentials *creds,
    struct sigv4_headers *h);

/* Wipes the session token line and frees h's strings. NULL-safe. */
void sigv4_headers_free(struct sigv4_headers *h);

/* Formats a Unix time in milliseconds as an X-Amz-Date value. */
void sigv4_format_date(int64_t unix_ms, char out[SIGV4_DATE_LEN]);

/* Lower-case hex SHA-256 of data (65 bytes with the NUL). Returns 0 or -EIO. */
int sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
