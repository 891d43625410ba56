/* Unit tests for the AWS credential chain: parsing, chain order, refresh timing, token re-reads. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "test_util.h"
#include "fake_http.h"
#include "stratos/aws_credentials.h"
#include "stratos/timeutil.h"

/* ---- the scripted HTTP server standing in for STS / the container endpoint ---- */

static char last_request[16384];        /* head and body of the last request */
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;
static char next_body[4096];
static int next_status = 200;

/* One request per connection, answered with what serve() set. */
static void
h_creds(int fd, const struct req *r)
{
	pthread_mutex_lock(&server_lock);
	snprintf(last_request, sizeof(last_request), "%s%.*s", r->head, (int)r->body_len, r->body);
	fake_http_reply(fd, next_status, NULL, "Connection: close\r\n", next_body);
	pthread_mutex_unlock(&server_lock);
	fake_http_drop(fd);
}

static int
setup(void **state)
{
	(void)state;
	handler = h_creds;
	return fake_http_start();
}

static void
serve(int status, const char *body)
{
	pthread_mutex_lock(&server_lock);
	next_status = status;
	snprintf(next_body, sizeof(next_body), "%s", body);
	pthread_mutex_unlock(&server_lock);
}

/* ---- parsing ------------------------------------------------------------ */

static void
test_parse_json_fractional_expiration(void **state)
{
	const char *j = "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAEXAMPLE\","
	    "\"SecretAccessKey\":\"secret/+=\",\"Token\":\"tok==\","
	    "\"Expiration\":\"2026-11-28T07:00:00.123456Z\"}";
	struct aws_credentials c = { .source = AWS_CREDENTIALS_IMDS };
	struct aws_credentials_error err;
	int64_t want;

	(void)state;
	assert_int_equal(aws_credentials_parse_json(j, strlen(j), &c, &err), 0);
	assert_string_equal(c.access_key_id, "ASIAEXAMPLE");
	assert_string_equal(c.secret_access_key, "secret/+=");
	assert_string_equal(c.session_token, "tok==");
	assert_int_equal(time_parse_rfc3339("2026-11-28T07:00:00Z", &want), 0);
	assert_int_equal(c.expiration_ms, want + 123);
	assert_int_equal(c.source, AWS_CREDENTIALS_IMDS);

	/* Container endpoints send no Code; a +00:00 offset is fine too. */
	j = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"T\","
	    "\"Expiration\":\"2026-11-28T07:00:00+00:00\"}";
	assert_int_equal(aws_credentials_parse_json(j, strlen(j), &c, &err), 0);
	assert_int_equal(c.expiration_ms, want);
}

static void
test_parse_json_errors(void **state)
{
	static const char *const bad[] = {
		"not json",
		"[]",
		"{\"Code\":\"Failure\",\"Message\":\"no role\"}",
		"{\"SecretAccessKey\":\"S\",\"Token\":\"T\",\"Expiration\":\"2026-11-28T07:00:00Z\"}",
		"{\"AccessKeyId\":\"A\",\"Token\":\"T\",\"Expiration\":\"2026-11-28T07:00:00Z\"}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"T\",\"Expiration\":\"soon\"}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"T\"}",
	};
	struct aws_credentials c;
	struct aws_credentials_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 'x', sizeof(c));
		err.message[0] = '\0';
		assert_int_equal(aws_credentials_parse_json(bad[i], strlen(bad[i]), &c, &err), -EINVAL);
		assert_true(err.message[0] != '\0');
		/* Nothing half-parsed survives. */
		assert_string_equal(c.access_key_id, "");
		assert_string_equal(c.secret_access_key, "");
	}
	/* "Failure" names the code. */
	assert_int_equal(aws_credentials_parse_json(bad[2], strlen(bad[2]), &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "Failure"));
	/* An over-long key is refused rather than truncated. */
	char big[LIMITS_AWS_SECRET_KEY + 200];
	memset(big, 'k', sizeof(big));
	snprintf(big, sizeof(big), "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"%0*d\"}",
	    LIMITS_AWS_SECRET_KEY + 10, 7);
	assert_int_equal(aws_credentials_parse_json(big, strlen(big), &c, &err), -EINVAL);
	assert_non_null(strstr(err.message, "too long"));
}

static const char sts_ok[] =
    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleWithWebIdentityResult>\n"
    "    <SubjectFromWebIdentityToken>system:serviceaccount:stratos-system:stratos</SubjectFromWebIdentityToken>\n"
    "    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/stratos/s</Arn>"
    "<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <SessionToken>FwoGZXIvYXdzEXAMPLE</SessionToken>\n"
    "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>\n"
    "      <Expiration>2026-11-28T08:00:00.5Z</Expiration>\n"
    "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
    "    </Credentials>\n"
    "  </AssumeRoleWithWebIdentityResult>\n"
    "  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>\n"
    "</AssumeRoleWithWebIdentityResponse>\n";

static void
test_parse_sts_xml(void **state)
{
	struct aws_credentials c = { 0 };
	struct aws_credentials_error err;
	int64_t want;
	const char *partial = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
	    "<Credentials><AccessKeyId>A</AccessKeyId></Credentials>"
	    "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";

	(void)state;
	assert_int_equal(aws_credentials_parse_sts_xml(sts_ok, strlen(sts_ok), &c, &err), 0);
	assert_string_equal(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
	assert_string_equal(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	assert_string_equal(c.session_token, "FwoGZXIvYXdzEXAMPLE");
	assert_int_equal(time_parse_rfc3339("2026-11-28T08:00:00Z", &want), 0);
	assert_int_equal(c.expiration_ms, want + 500);
	assert_int_equal(aws_credentials_parse_sts_xml(partial, strlen(partial), &c, &err), -EINVAL);
	assert_string_equal(c.access_key_id, "");
	assert_int_equal(aws_credentials_parse_sts_xml("<x", 2, &c, &err), -EINVAL);
}

static void
test_refresh_schedule(void **state)
{
	const int64_t min = 60 * 1000, now = 1800000000000LL;

	(void)state;
	/* Long-lived: refresh exactly `ahead` before expiry. */
	assert_int_equal(aws_credentials_refresh_at(now + 60 * min, now, 10 * min), now + 50 * min);
	/* Never expires: never. */
	assert_int_equal(aws_credentials_refresh_at(0, now, 10 * min), INT64_MAX);
	/* Already inside the window: half the remaining time, at least 5 s, at most 5 min. */
	assert_int_equal(aws_credentials_refresh_at(now + 4 * min, now, 10 * min), now + 2 * min);
	assert_int_equal(aws_credentials_refresh_at(now + 2000, now, 10 * min), now + 5000);
	assert_int_equal(aws_credentials_refresh_at(now - 1000, now, 10 * min), now + 5000);
	assert_int_equal(aws_credentials_refresh_at(now + 14 * min, now, 10 * min), now + 4 * min);
	/* Just outside the window: refresh when it opens, however soon. */
	assert_int_equal(aws_credentials_refresh_at(now + 10 * min + 2000, now, 10 * min), now + 2000);
}

/* ---- the chain ---------------------------------------------------------- */

static void
test_env_source_and_wipe(void **state)
{
	char *env[] = { "AWS_ACCESS_KEY_ID=AKIASTRATOSSIM000001",
	    "AWS_SECRET_ACCESS_KEY=stratosSimSecretKey00000000000000000000",
	    "AWS_ROLE_ARN=arn:aws:iam::1:role/ignored", "AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent",
	    NULL };
	struct aws_credentials_options opts = { .env = env };
	struct aws_credentials_provider *p;
	struct aws_credentials_error err;
	struct aws_credentials c;
	unsigned fetches;

	(void)state;
	/* Environment wins over everything after it in the chain. */
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), 0);
	assert_int_equal(aws_credentials_provider_source(p), AWS_CREDENTIALS_ENV);
	assert_int_equal(aws_credentials_get(p, &c), 0);
	assert_string_equal(c.access_key_id, "AKIASTRATOSSIM000001");
	assert_string_equal(c.session_token, "");
	assert_int_equal(c.expiration_ms, 0);
	aws_credentials_wipe(&c);
	for (size_t i = 0; i < sizeof(c); i++)
		assert_int_equal(((unsigned char *)&c)[i], 0);
	aws_credentials_provider_stats(p, &fetches, NULL);
	assert_int_equal(fetches, 1);
	aws_credentials_provider_free(p);
	aws_credentials_provider_free(NULL);
}

static void
test_no_source_is_a_clear_error(void **state)
{
	char *disabled[] = { "AWS_EC2_METADATA_DISABLED=true", "HOME=/root", NULL };
	char *half[] = { "AWS_ACCESS_KEY_ID=AKIA", NULL };
	char *no_imds[] = { "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1", NULL };
	struct aws_credentials_options opts = { .env = disabled };
	struct aws_credentials_provider *p = (void *)1;
	struct aws_credentials_error err;

	(void)state;
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), -ENOENT);
	assert_null(p);
	assert_non_null(strstr(err.message, "no AWS credentials"));
	assert_non_null(strstr(err.message, "AWS_WEB_IDENTITY_TOKEN_FILE"));
	opts.env = half;
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), -EINVAL);
	assert_non_null(strstr(err.message, "together"));
	/* IMDS tried last, and its failure is named. */
	opts.env = no_imds;
	int64_t t0 = time_mono_ms();
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), -ENOENT);
	assert_true(time_mono_ms() - t0 < 3000);
	assert_non_null(strstr(err.message, "IMDS failed"));
}

static void
test_region_resolution(void **state)
{
	char *env1[] = { "AWS_DEFAULT_REGION=eu-west-1", "AWS_REGION=eu-central-1", NULL };
	char *env2[] = { "AWS_DEFAULT_REGION=eu-west-1", NULL };
	char *env3[] = { "AWS_EC2_METADATA_DISABLED=true", NULL };
	char *env4[] = { "AWS_REGION=EU WEST", NULL };
	struct aws_credentials_options opts = { .env = env1 };
	struct aws_credentials_error err;
	const char *src;
	char r[64];

	(void)state;
	assert_int_equal(aws_region_resolve("ap-south-1", &opts, r, sizeof(r), &src, &err), 0);
	assert_string_equal(r, "ap-south-1");
	assert_string_equal(src, "flag");
	assert_int_equal(aws_region_resolve(NULL, &opts, r, sizeof(r), &src, &err), 0);
	assert_string_equal(r, "eu-central-1");
	assert_string_equal(src, "AWS_REGION");
	opts.env = env2;
	assert_int_equal(aws_region_resolve("", &opts, r, sizeof(r), &src, &err), 0);
	assert_string_equal(r, "eu-west-1");
	assert_string_equal(src, "AWS_DEFAULT_REGION");
	opts.env = env3;
	assert_int_equal(aws_region_resolve(NULL, &opts, r, sizeof(r), &src, &err), -ENOENT);
	assert_non_null(strstr(err.message, "--aws-region"));
	opts.env = env4;
	assert_int_equal(aws_region_resolve(NULL, &opts, r, sizeof(r), &src, &err), -EINVAL);
}

/* IRSA: the token file is re-read on every fetch; STS errors are reported with their code. */
static void
test_web_identity_rereads_token(void **state)
{
	char tokfile[] = "/tmp/stratos-test-token-XXXXXX";
	char sts_url[128], env_url[160], env_file[160];
	char *env[] = { "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/stratos",
	    env_file, env_url, "AWS_REGION=us-east-1", "AWS_ROLE_SESSION_NAME=unit", NULL };
	struct aws_credentials_options opts = { .env = env };
	struct aws_credentials_provider *p;
	struct aws_credentials_error err;
	struct aws_credentials c;
	unsigned fetches = 0;
	int fd;

	(void)state;
	fd = mkstemp(tokfile);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "jwt-one\n", 8), 8);
	close(fd);
	snprintf(sts_url, sizeof(sts_url), "http://127.0.0.1:%d/", server_port);
	snprintf(env_url, sizeof(env_url), "AWS_ENDPOINT_URL_STS=%s", sts_url);
	snprintf(env_file, sizeof(env_file), "AWS_WEB_IDENTITY_TOKEN_FILE=%s", tokfile);

	/* Expires in an hour, fractional seconds included. */
	char future[TIME_RFC3339_LEN], reply[sizeof(sts_ok) + 64];
	time_format_rfc3339(time_real_ms() + 3600 * 1000, future);
	future[strlen(future) - 1] = '\0';
	snprintf(reply, sizeof(reply), "%.*s%s.25Z%s", (int)(strstr(sts_ok, "2026-11-28T08") - sts_ok),
	    sts_ok, future, strstr(sts_ok, "</Expiration>"));
	serve(200, reply);
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), 0);
	assert_int_equal(aws_credentials_provider_source(p), AWS_CREDENTIALS_WEB_IDENTITY);
	pthread_mutex_lock(&server_lock);
	assert_non_null(strstr(last_request, "POST / HTTP/1.1"));
	assert_non_null(strstr(last_request, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"));
	assert_non_null(strstr(last_request,
	    "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fstratos"));
	assert_non_null(strstr(last_request, "RoleSessionName=unit"));
	assert_non_null(strstr(last_request, "WebIdentityToken=jwt-one"));
	/* Unsigned. */
	assert_null(strcasestr(last_request, "Authorization:"));
	pthread_mutex_unlock(&server_lock);

	/* Rotate the token; the forced refresh sends the new one. */
	fd = open(tokfile, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "jwt-two", 7), 7);
	close(fd);
	aws_credentials_provider_refresh_soon(p);
	for (int i = 0; i < 200 && fetches < 2; i++) {
		usleep(10000);
		aws_credentials_provider_stats(p, &fetches, NULL);
	}
	assert_int_equal(fetches, 2);
	pthread_mutex_lock(&server_lock);
	assert_non_null(strstr(last_request, "WebIdentityToken=jwt-two"));
	pthread_mutex_unlock(&server_lock);
	assert_int_equal(aws_credentials_get(p, &c), 0);
	assert_string_equal(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
	assert_string_equal(c.session_token, "FwoGZXIvYXdzEXAMPLE");
	assert_int_equal(c.expiration_ms % 1000, 250);
	assert_true(c.expiration_ms > time_real_ms() + 3500 * 1000);
	aws_credentials_wipe(&c);
	aws_credentials_provider_free(p);

	/* STS refusal: the code and message reach the operator. */
	serve(400, "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
	    "<Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token expired</Message>"
	    "</Error><RequestId>r-1</RequestId></ErrorResponse>");
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), -EACCES);
	assert_non_null(strstr(err.message, "web-identity"));
	assert_non_null(strstr(err.message, "InvalidIdentityToken"));
	assert_non_null(strstr(err.message, "Token expired"));
	assert_null(strstr(err.message, "jwt"));
	unlink(tokfile);

	/* Missing token file. */
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), -ENOENT);
	assert_non_null(strstr(err.message, tokfile));
}

/* Container endpoint: Authorization from the token file, and only safe URLs. */
static void
test_container_source(void **state)
{
	char tokfile[] = "/tmp/stratos-test-ctok-XXXXXX";
	char env_uri[160], env_file[160];
	char *env[] = { env_uri, env_file, NULL };
	char *remote[] = { "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://203.0.113.5/creds", NULL };
	struct aws_credentials_options opts = { .env = env };
	struct aws_credentials_provider *p;
	struct aws_credentials_error err;
	struct aws_credentials c;
	char body[512], exp[TIME_RFC3339_LEN];
	int fd;

	(void)state;
	fd = mkstemp(tokfile);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "pod-identity-token\n", 19), 19);
	close(fd);
	snprintf(env_uri, sizeof(env_uri),
	    "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/v1/credentials", server_port);
	snprintf(env_file, sizeof(env_file), "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s", tokfile);
	time_format_rfc3339(time_real_ms() + 3600 * 1000, exp);
	snprintf(body, sizeof(body), "{\"AccessKeyId\":\"ASIACONTAINER\",\"SecretAccessKey\":\"s\","
	    "\"Token\":\"t\",\"AccountId\":\"123456789012\",\"Expiration\":\"%s\"}", exp);
	serve(200, body);
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), 0);
	assert_int_equal(aws_credentials_provider_source(p), AWS_CREDENTIALS_CONTAINER);
	pthread_mutex_lock(&server_lock);
	assert_non_null(strstr(last_request, "GET /v1/credentials HTTP/1.1"));
	assert_non_null(strstr(last_request, "Authorization: pod-identity-token\r\n"));
	pthread_mutex_unlock(&server_lock);
	assert_int_equal(aws_credentials_get(p, &c), 0);
	assert_string_equal(c.access_key_id, "ASIACONTAINER");
	assert_true(c.expiration_ms > time_real_ms());
	aws_credentials_wipe(&c);
	aws_credentials_provider_free(p);
	unlink(tokfile);

	opts.env = remote;
	assert_int_equal(aws_credentials_provider_new(&opts, &p, &err), -EINVAL);
	assert_non_null(strstr(err.message, "plain http"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_json_fractional_expiration),
		cmocka_unit_test(test_parse_json_errors),
		cmocka_unit_test(test_parse_sts_xml),
		cmocka_unit_test(test_refresh_schedule),
		cmocka_unit_test(test_env_source_and_wipe),
		cmocka_unit_test(test_no_source_is_a_clear_error),
		cmocka_unit_test(test_region_resolution),
		cmocka_unit_test(test_web_identity_rereads_token),
		cmocka_unit_test(test_container_source),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
