/* EC2 operation names and error classes: what an EC2 error code means to the caller. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec2_internal.h"
#include "stratos/aws_xml.h"

static const char *const ec2__op_names[EC2_OP_COUNT] = {
	[EC2_OP_RUN_INSTANCES] = "RunInstances",
	[EC2_OP_START_INSTANCES] = "StartInstances",
	[EC2_OP_STOP_INSTANCES] = "StopInstances",
	[EC2_OP_TERMINATE_INSTANCES] = "TerminateInstances",
	[EC2_OP_DESCRIBE_INSTANCES] = "DescribeInstances",
	[EC2_OP_CREATE_TAGS] = "CreateTags",
	[EC2_OP_DELETE_TAGS] = "DeleteTags",
};

const char *
ec2_op_name(enum ec2_op op)
{
	return op < EC2_OP_COUNT ? ec2__op_names[op] : "Unknown";
}

/* ---- error classes ------------------------------------------------------- */

const char *
ec2_error_class_name(enum ec2_error_class cls)
{
	switch (cls) {
	case EC2_ERR_NONE:
		return "none";
	case EC2_ERR_NOT_FOUND:
		return "not-found";
	case EC2_ERR_CAPACITY:
		return "capacity";
	case EC2_ERR_WRONG_STATE:
		return "wrong-state";
	case EC2_ERR_THROTTLED:
		return "throttled";
	case EC2_ERR_AUTH:
		return "auth";
	case EC2_ERR_UNKNOWN_OUTCOME:
		return "unknown-outcome";
	default:
		return "other";
	}
}

static bool
ec2__in(const char *code, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(code, *list) == 0)
			return true;
	return false;
}

enum ec2_error_class
ec2_error_classify(const char *code, long http_status)
{
	static const char *const capacity[] = {
		"InsufficientInstanceCapacity", "InsufficientFreeAddressesInSubnet",
		"InstanceLimitExceeded", "VcpuLimitExceeded", "InsufficientHostCapacity",
		"InsufficientCapacity", "InsufficientReservedInstanceCapacity", NULL,
	};
	static const char *const wrong_state[] = {
		"IncorrectInstanceState", "IncorrectState", NULL,
	};
	static const char *const auth[] = {
		"AuthFailure", "UnauthorizedOperation", "SignatureDoesNotMatch", "InvalidClientTokenId",
		"ExpiredToken", "ExpiredTokenException", "RequestExpired", "MissingAuthenticationToken",
		"IncompleteSignature", "AccessDenied", "AccessDeniedException", "OptInRequired",
		"Blocked", "UnrecognizedClientException", "InvalidAccessKeyId",
		"CredentialsExpired", NULL,
	};
	size_t n;

	if (code == NULL || code[0] == '\0') {
		if (http_status == 429 || http_status == 503)
			return EC2_ERR_THROTTLED;
		if (http_status == 401 || http_status == 403)
			return EC2_ERR_AUTH;
		return EC2_ERR_OTHER;
	}
	if (ec2__in(code, capacity))
		return EC2_ERR_CAPACITY;
	if (ec2__in(code, wrong_state))
		return EC2_ERR_WRONG_STATE;
	if (aws_retry_is_throttle_code(code) || strcmp(code, "ClientRateLimited") == 0)
		return EC2_ERR_THROTTLED;
	if (ec2__in(code, auth))
		return EC2_ERR_AUTH;
	n = strlen(code);
	if (n > 9 && strcmp(code + n - 9, ".NotFound") == 0)
		return EC2_ERR_NOT_FOUND;
	return EC2_ERR_OTHER;
}

void
ec2__err(struct ec2_error *err, enum ec2_error_class cls, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->cls = cls;
	snprintf(err->code, sizeof(err->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->request_id[0] = '\0';
}

int
ec2_parse_error(const char *xml, size_t len, long status, struct ec2_error *err)
{
	struct aws_xml_error xe;

	if (aws_xml_parse_error(xml, len, &xe) < 0) {
		ec2__err(err, ec2_error_classify(NULL, status), status >= 500 ? "HTTP5xx" : "HTTP4xx",
		    "HTTP %ld without an EC2 error document", status);
		err->http_status = status;
		return -EINVAL;
	}
	err->cls = ec2_error_classify(xe.code, status);
	snprintf(err->code, sizeof(err->code), "%s", xe.code);
	snprintf(err->message, sizeof(err->message), "%s", xe.message);
	snprintf(err->request_id, sizeof(err->request_id), "%s", xe.request_id);
	err->http_status = status;
	return 0;
}

int
ec2__rc_of(enum ec2_error_class cls)
{
	switch (cls) {
	case EC2_ERR_NONE:
		return 0;
	case EC2_ERR_NOT_FOUND:
		return -ENOENT;
	case EC2_ERR_CAPACITY:
		return -ENOSPC;
	case EC2_ERR_WRONG_STATE:
		return -EBUSY;
	case EC2_ERR_THROTTLED:
		return -EAGAIN;
	case EC2_ERR_AUTH:
		return -EACCES;
	case EC2_ERR_UNKNOWN_OUTCOME:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}
