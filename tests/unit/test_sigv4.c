/* Unit tests for SigV4: every vector of tests/fixtures/sigv4/vectors.json, intermediates included. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "test_util.h"
#include "stratos/limits.h"
#include "stratos/sigv4.h"

static void
test_vectors(void **state)
{
	json_error_t jerr;
	json_t *vectors = json_load_file(FIXTURE("sigv4/vectors.json"), 0, &jerr);
	size_t i;
	json_t *v;

	(void)state;
	assert_non_null(vectors);
	assert_true(json_array_size(vectors) >= 3);
	json_array_foreach(vectors, i, v) {
		const char *lines[8];
		char line[8][512];
		size_t n = 0;
		const char *name;
		json_t *value;
		json_object_foreach(json_object_get(v, "headers"), name, value) {
			snprintf(line[n], sizeof(line[n]), "%s: %s", name, json_string_value(value));
			lines[n] = line[n];
			n++;
		}
		lines[n] = NULL;
		const char *body = json_string_value(json_object_get(v, "body"));
		struct sigv4_request req = {
			.method = json_string_value(json_object_get(v, "method")),
			.host = json_string_value(json_object_get(v, "host")),
			.path = json_string_value(json_object_get(v, "path")),
			.headers = lines,
			.body = body,
			.body_len = strlen(body),
			.region = json_string_value(json_object_get(v, "region")),
			.service = json_string_value(json_object_get(v, "service")),
			.amz_date = json_string_value(json_object_get(v, "x_amz_date")),
		};
		struct sigv4_credentials creds = {
			.access_key_id = json_string_value(json_object_get(v, "access_key_id")),
			.secret_access_key = json_string_value(json_object_get(v, "secret_access_key")),
			.session_token = json_string_value(json_object_get(v, "session_token")),
		};
		struct sigv4_signature sig;

		print_message("vector %s\n", json_string_value(json_object_get(v, "name")));
		assert_int_equal(sigv4_sign(&req, &creds, true, &sig), 0);
		assert_string_equal(sig.canonical_request,
		    json_string_value(json_object_get(v, "canonical_request")));
		assert_string_equal(sig.string_to_sign,
		    json_string_value(json_object_get(v, "string_to_sign")));
		assert_string_equal(sig.authorization,
		    json_string_value(json_object_get(v, "authorization")));
		sigv4_signature_free(&sig);

		/* Without intermediates the header is the same and nothing else is kept. */
		assert_int_equal(sigv4_sign(&req, &creds, false, &sig), 0);
		assert_string_equal(sig.authorization,
		    json_string_value(json_object_get(v, "authorization")));
		assert_null(sig.canonical_request);
		assert_null(sig.string_to_sign);
		sigv4_signature_free(&sig);

		/* The headers to send: the signed ones, Host, X-Amz-Date, the token, Authorization. */
		struct sigv4_headers sh;
		char want[1024];
		size_t k = 0;
		assert_int_equal(sigv4_sign_headers(&req, &creds, &sh), 0);
		for (; k < n; k++)
			assert_string_equal(sh.lines[k], lines[k]);
		snprintf(want, sizeof(want), "Host: %s", req.host);
		assert_string_equal(sh.lines[k++], want);
		snprintf(want, sizeof(want), "X-Amz-Date: %s", req.amz_date);
		assert_string_equal(sh.lines[k++], want);
		if (creds.session_token != NULL && creds.session_token[0] != '\0') {
			snprintf(want, sizeof(want), "X-Amz-Security-Token: %s", creds.session_token);
			assert_string_equal(sh.lines[k++], want);
		}
		snprintf(want, sizeof(want), "Authorization: %s",
		    json_string_value(json_object_get(v, "authorization")));
		assert_string_equal(sh.lines[k++], want);
		assert_null(sh.lines[k]);
		sigv4_headers_free(&sh);
		assert_null(sh.token);
	}
	json_decref(vectors);
}

/* The AWS suite's get-header-value-trim / multi-value cases, by their rules. */
static void
test_header_normalisation(void **state)
{
	const char *headers[] = {
		"My-Header1:    value1   ",
		"my-header2: \"a   b   c\"",
		"My-Header1: value2",
		NULL,
	};
	struct sigv4_request req = {
		.method = "GET", .host = "example.amazonaws.com", .path = "/",
		.headers = headers, .region = "us-east-1", .service = "service",
		.amz_date = "20150830T123600Z",
	};
	struct sigv4_credentials creds = {
		.access_key_id = "AKIDEXAMPLE",
		.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};
	struct sigv4_signature sig;

	(void)state;
	assert_int_equal(sigv4_sign(&req, &creds, true, &sig), 0);
	assert_string_equal(sig.canonical_request,
	    "GET\n/\n\n"
	    "host:example.amazonaws.com\n"
	    "my-header1:value1,value2\n"
	    "my-header2:\"a b c\"\n"
	    "x-amz-date:20150830T123600Z\n\n"
	    "host;my-header1;my-header2;x-amz-date\n"
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_non_null(strstr(sig.authorization,
	    "SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature="));
	sigv4_signature_free(&sig);
}

static void
test_rejects_bad_input(void **state)
{
	const char *host_header[] = { "Host: evil", NULL };
	const char *bad_line[] = { "no colon here", NULL };
	const char *newline[] = { "X-A: a\r\nX-B: b", NULL };
	struct sigv4_request req = {
		.method = "POST", .host = "ec2.us-east-1.amazonaws.com",
		.region = "us-east-1", .service = "ec2", .amz_date = "20261128T070703Z",
	};
	struct sigv4_credentials creds = { .access_key_id = "AK", .secret_access_key = "SK" };
	struct sigv4_signature sig;
	const char *many[LIMITS_SIGV4_HEADERS + 1];
	char lines[LIMITS_SIGV4_HEADERS][32];

	(void)state;
	req.headers = host_header;
	assert_int_equal(sigv4_sign(&req, &creds, false, &sig), -EINVAL);
	assert_null(sig.authorization);
	req.headers = bad_line;
	assert_int_equal(sigv4_sign(&req, &creds, false, &sig), -EINVAL);
	req.headers = newline;
	assert_int_equal(sigv4_sign(&req, &creds, false, &sig), -EINVAL);
	req.headers = NULL;
	req.amz_date = "2026-11-28T07:07:03Z";
	assert_int_equal(sigv4_sign(&req, &creds, false, &sig), -EINVAL);
	req.amz_date = "20261128T070703Z";
	creds.access_key_id = "";
	assert_int_equal(sigv4_sign(&req, &creds, false, &sig), -EINVAL);
	creds.access_key_id = "AK";
	for (size_t i = 0; i < LIMITS_SIGV4_HEADERS; i++) {
		snprintf(lines[i], sizeof(lines[i]), "X-H%zu: v", i);
		many[i] = lines[i];
	}
	many[LIMITS_SIGV4_HEADERS] = NULL;
	req.headers = many;
	assert_int_equal(sigv4_sign(&req, &creds, false, &sig), -E2BIG);
	req.headers = NULL;
	assert_int_equal(sigv4_sign(&req, &creds, false, &sig), 0);
	sigv4_signature_free(&sig);
	sigv4_signature_free(NULL);
}

/* A changed body byte or secret changes the signature; the key id is in the scope. */
static void
test_signature_depends_on_inputs(void **state)
{
	const char *ct[] = { "Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL };
	struct sigv4_request req = {
		.method = "POST", .host = "127.0.0.1:4566", .headers = ct,
		.body = "Action=StartInstances", .body_len = 21,
		.region = "us-east-1", .service = "ec2", .amz_date = "20261128T070703Z",
	};
	struct sigv4_credentials creds = { .access_key_id = "AKIASTRATOSSIM000001",
		.secret_access_key = "stratosSimSecretKey00000000000000000000" };
	struct sigv4_signature a, b, c;

	(void)state;
	assert_int_equal(sigv4_sign(&req, &creds, true, &a), 0);
	assert_non_null(strstr(a.canonical_request, "\nhost:127.0.0.1:4566\n"));
	assert_non_null(strstr(a.authorization,
	    "Credential=AKIASTRATOSSIM000001/20261128/us-east-1/ec2/aws4_request"));
	req.body = "Action=StartInstancez";
	assert_int_equal(sigv4_sign(&req, &creds, false, &b), 0);
	assert_string_not_equal(a.authorization, b.authorization);
	req.body = "Action=StartInstances";
	creds.secret_access_key = "stratosSimSecretKey00000000000000000001";
	assert_int_equal(sigv4_sign(&req, &creds, false, &c), 0);
	assert_string_not_equal(a.authorization, c.authorization);
	sigv4_signature_free(&a);
	sigv4_signature_free(&b);
	sigv4_signature_free(&c);
}

static void
test_format_date(void **state)
{
	char d[SIGV4_DATE_LEN];
	char hex[65];

	(void)state;
	sigv4_format_date(1440938160000LL, d);
	assert_string_equal(d, "20150830T123600Z");
	sigv4_format_date(0, d);
	assert_string_equal(d, "19700101T000000Z");
	assert_int_equal(sigv4_sha256_hex("", 0, hex), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_header_normalisation),
		cmocka_unit_test(test_rejects_bad_input),
		cmocka_unit_test(test_signature_depends_on_inputs),
		cmocka_unit_test(test_format_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
