/* The AWS region: flag, environment, or the instance's metadata. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "aws_credentials_internal.h"
#include "stratos/aws_xml.h"
#include "stratos/log.h"
#include "stratos/sigv4.h"
#include "stratos/timeutil.h"

static bool
aws_creds__valid_region(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > 32)
		return false;
	for (; *r != '\0'; r++)
		if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) && *r != '-')
			return false;
	return true;
}

int
aws_region_resolve(const char *configured, const struct aws_credentials_options *opts,
    char *out, size_t len, const char **source, struct aws_credentials_error *err)
{
	struct aws_credentials_provider tmp;
	struct httpc_response resp;
	char **env = opts != NULL && opts->env != NULL ? opts->env : environ;
	const char *v, *src = NULL;
	int rc;

	if (err != NULL)
		err->message[0] = '\0';
	if (configured != NULL && configured[0] != '\0') {
		v = configured;
		src = "flag";
	} else if ((v = aws_creds__env(env, "AWS_REGION")) != NULL) {
		src = "AWS_REGION";
	} else if ((v = aws_creds__env(env, "AWS_DEFAULT_REGION")) != NULL) {
		src = "AWS_DEFAULT_REGION";
	}
	if (v != NULL) {
		if (!aws_creds__valid_region(v) || strlen(v) >= len) {
			aws_creds__error(err, "%s: \"%.64s\" is not a region name", src, v);
			return -EINVAL;
		}
		snprintf(out, len, "%s", v);
		if (source != NULL)
			*source = src;
		return 0;
	}
	/* IMDS, with a throwaway provider state for its token. */
	memset(&tmp, 0, sizeof(tmp));
	pthread_mutex_init(&tmp.fetch_lock, NULL);
	rc = aws_creds__settings_load(&tmp.set, env, NULL);
	if (rc == 0 && tmp.set.imds_disabled) {
		aws_creds__error(err, "no region: set --aws-region or AWS_REGION "
		    "(IMDS is disabled by AWS_EC2_METADATA_DISABLED)");
		rc = -ENOENT;
	}
	if (rc == 0) {
		tmp.http = httpc_new(NULL);
		rc = tmp.http != NULL ? 0 : -ENOMEM;
	}
	httpc_response_init(&resp);
	if (rc == 0) {
		rc = aws_creds__imds_get(&tmp, "/latest/meta-data/placement/region", &resp, err);
		if (rc < 0) {
			char inner[sizeof(err->message)];
			snprintf(inner, sizeof(inner), "%s", err != NULL ? err->message : "");
			aws_creds__error(err, "no region: set --aws-region or AWS_REGION (IMDS: %s)",
			    inner);
			rc = -ENOENT;
		} else {
			while (resp.body.len > 0 &&
			    isspace((unsigned char)resp.body.data[resp.body.len - 1]))
				resp.body.data[--resp.body.len] = '\0';
			if (!aws_creds__valid_region(resp.body.data) || resp.body.len >= len) {
				aws_creds__error(err, "IMDS placement/region is not a region name");
				rc = -EINVAL;
			} else {
				snprintf(out, len, "%s", resp.body.data);
				if (source != NULL)
					*source = "imds";
			}
		}
	}
	httpc_response_free(&resp);
	httpc_free(tmp.http);
	aws_creds__settings_free(&tmp.set);
	explicit_bzero(tmp.imds_token, sizeof(tmp.imds_token));
	pthread_mutex_destroy(&tmp.fetch_lock);
	return rc;
}
