/* Kubeconfig (YAML via yamljson) and in-cluster service-account configuration. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "stratos/buf.h"
#include "stratos/kubeconfig.h"
#include "stratos/limits.h"
#include "stratos/yamljson.h"

static int
kubeconfig__fail(struct kubeconfig_error *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
kubeconfig__fail(struct kubeconfig_error *err, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return rc;
}

static void
kubeconfig__free_secret(char **s)
{
	if (*s != NULL) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void
kube_config_free(struct kube_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->server);
	free(cfg->ca_file);
	free(cfg->ca_pem);
	free(cfg->cert_file);
	free(cfg->key_file);
	free(cfg->cert_pem);
	kubeconfig__free_secret(&cfg->key_pem);
	kubeconfig__free_secret(&cfg->token);
	free(cfg->token_file);
	free(cfg->namespace);
	free(cfg->source);
	kube_exec_free(cfg->exec);
	memset(cfg, 0, sizeof(*cfg));
}

/* Reads a whole small file into a NUL-terminated string. */
static int
kubeconfig__read_file(const char *path, size_t max, struct buf *out)
{
	char chunk[4096];
	ssize_t n;
	int fd, rc = 0;

	buf_init(out, max);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		rc = buf_append(out, chunk, (size_t)n);
		if (rc < 0)
			break;
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	if (rc < 0)
		buf_free_secure(out);
	return rc;
}

int
kubeconfig_read_token(const char *path, char **out)
{
	struct buf b;
	size_t start = 0, end;
	char *tok;
	int rc;

	*out = NULL;
	rc = kubeconfig__read_file(path, LIMITS_KUBE_TOKEN, &b);
	if (rc < 0)
		return rc;
	end = b.len;
	while (start < end && strchr(" \t\r\n", b.data[start]) != NULL)
		start++;
	while (end > start && strchr(" \t\r\n", b.data[end - 1]) != NULL)
		end--;
	if (end == start) {
		buf_free_secure(&b);
		return -EINVAL;
	}
	tok = strndup(b.data + start, end - start);
	buf_free_secure(&b);
	if (tok == NULL)
		return -ENOMEM;
	*out = tok;
	return 0;
}

/* Decodes standard base64 (whitespace ignored). Caller frees; NULL when invalid. */
static char *
kubeconfig__base64(const char *in, int *rc)
{
	size_t n = strlen(in), m = 0, pad = 0;
	char *clean = malloc(n + 1), *out = NULL;
	int len;

	*rc = -ENOMEM;
	if (clean == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strchr(" \t\r\n", in[i]) == NULL)
			clean[m++] = in[i];
	clean[m] = '\0';
	*rc = -EINVAL;
	if (m == 0 || m % 4 != 0)
		goto out;
	pad = (clean[m - 1] == '=') + (clean[m - 2] == '=');
	out = malloc(m / 4 * 3 + 1);
	if (out == NULL) {
		*rc = -ENOMEM;
		goto out;
	}
	len = EVP_DecodeBlock((unsigned char *)out, (unsigned char *)clean, (int)m);
	if (len < 0 || (size_t)len < pad) {
		free(out);
		out = NULL;
		goto out;
	}
	out[len - (int)pad] = '\0';
	*rc = 0;
out:
	explicit_bzero(clean, m);
	free(clean);
	return out;
}

/* Kubeconfig strings; YAML may have typed a plain scalar as a number or boolean. */
static const char *
kubeconfig__str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_string(v))
		return json_string_value(v)[0] != '\0' ? json_string_value(v) : NULL;
	return NULL;
}

static int
kubeconfig__check_str(json_t *obj, const char *key, const char *where,
    struct kubeconfig_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (v != NULL && !json_is_string(v) && !json_is_null(v))
		return kubeconfig__fail(err, -EINVAL, "%s.%s: must be a string", where, key);
	return 0;
}

static char *
kubeconfig__path(const char *dir, const char *p)
{
	char *out;

	if (p[0] == '/' || dir == NULL || dir[0] == '\0')
		return strdup(p);
	if (asprintf(&out, "%s/%s", dir, p) < 0)
		return NULL;
	return out;
}

/* A referenced file must be readable now; saying so at start-up beats a TLS error later. */
static int
kubeconfig__file_field(json_t *obj, const char *key, const char *dir, const char *where,
    char **out, struct kubeconfig_error *err)
{
	const char *v;
	int rc;

	if ((rc = kubeconfig__check_str(obj, key, where, err)) < 0)
		return rc;
	v = kubeconfig__str(obj, key);
	if (v == NULL)
		return 0;
	*out = kubeconfig__path(dir, v);
	if (*out == NULL)
		return -ENOMEM;
	if (access(*out, R_OK) < 0)
		return kubeconfig__fail(err, -errno, "%s.%s: %s: %s", where, key, *out,
		    strerror(errno));
	return 0;
}

static int
kubeconfig__data_field(json_t *obj, const char *key, const char *where, char **out,
    struct kubeconfig_error *err)
{
	const char *v;
	int rc;

	if ((rc = kubeconfig__check_str(obj, key, where, err)) < 0)
		return rc;
	v = kubeconfig__str(obj, key);
	if (v == NULL)
		return 0;
	if (strlen(v) > LIMITS_KUBE_PEM * 4 / 3 + 4)
		return kubeconfig__fail(err, -EINVAL, "%s.%s: larger than %u bytes", where, key,
		    LIMITS_KUBE_PEM);
	*out = kubeconfig__base64(v, &rc);
	if (*out == NULL)
		return rc == -ENOMEM ? rc :
		    kubeconfig__fail(err, rc, "%s.%s: not valid base64", where, key);
	if (strstr(*out, "-----BEGIN") == NULL)
		return kubeconfig__fail(err, -EINVAL, "%s.%s: not PEM data after base64 decoding",
		    where, key);
	return 0;
}

/*
 * Adds the named entries of one file's list (clusters, contexts, users) to
 * merged[list] as {name: {"v": entry, "dir": dir}}; the first file wins.
 */
static int
kubeconfig__merge_list(json_t *merged, json_t *doc, const char *list, const char *item,
    const char *file, const char *dir, struct kubeconfig_error *err)
{
	json_t *arr = json_object_get(doc, list), *dst = json_object_get(merged, list), *e;
	size_t i;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return kubeconfig__fail(err, -EINVAL, "%s: %s: must be a list", file, list);
	json_array_foreach(arr, i, e) {
		const char *name = kubeconfig__str(e, "name");
		json_t *body = json_object_get(e, item);

		if (name == NULL)
			return kubeconfig__fail(err, -EINVAL, "%s: %s[%zu].name: missing", file, list,
			    i);
		if (body != NULL && !json_is_object(body))
			return kubeconfig__fail(err, -EINVAL, "%s: %s[name=%s].%s: must be a mapping",
			    file, list, name, item);
		if (json_object_get(dst, name) != NULL)
			continue;
		if (json_object_set_new(dst, name, json_pack("{s:O?,s:s,s:s}", "v",
		    body != NULL ? body : json_null(), "dir", dir, "file", file)) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int
kubeconfig__merge_file(json_t *merged, const char *path, struct kubeconfig_error *err)
{
	struct yamljson_error yerr = { 0 };
	json_t *docs = NULL, *doc;
	char *dir = NULL, *slash;
	const char *cur;
	struct stat st;
	int rc;

	if (stat(path, &st) == 0 && st.st_size > (off_t)LIMITS_KUBECONFIG_FILE)
		return kubeconfig__fail(err, -EFBIG, "%s: larger than %u bytes", path,
		    LIMITS_KUBECONFIG_FILE);
	rc = yamljson_parse_file(path, &docs, &yerr);
	if (rc < 0) {
		if (rc == -ENOMEM)
			return rc;
		if (yerr.line > 0)
			return kubeconfig__fail(err, rc, "%s:%d:%d: %s", path, yerr.line,
			    yerr.column, yerr.message);
		return kubeconfig__fail(err, rc, "%s: %s", path,
		    yerr.message[0] ? yerr.message : strerror(-rc));
	}
	doc = json_array_get(docs, 0);
	if (json_array_size(docs) != 1 || !json_is_object(doc)) {
		json_decref(docs);
		return kubeconfig__fail(err, -EINVAL, "%s: not a kubeconfig (one YAML mapping)",
		    path);
	}
	dir = strdup(path);
	if (dir == NULL) {
		json_decref(docs);
		return -ENOMEM;
	}
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		dir[0] = '\0';
	rc = kubeconfig__merge_list(merged, doc, "clusters", "cluster", path, dir, err);
	if (rc == 0)
		rc = kubeconfig__merge_list(merged, doc, "contexts", "context", path, dir, err);
	if (rc == 0)
		rc = kubeconfig__merge_list(merged, doc, "users", "user", path, dir, err);
	cur = kubeconfig__str(doc, "current-context");
	if (rc == 0 && cur != NULL && json_object_get(merged, "current-context") == NULL)
		rc = json_object_set_new(merged, "current-context", json_string(cur)) < 0 ?
		    -ENOMEM : 0;
	free(dir);
	json_decref(docs);
	return rc;
}

static int
kubeconfig__cluster(json_t *entry, const char *name, struct kube_config *cfg,
    struct kubeconfig_error *err)
{
	json_t *c = json_object_get(entry, "v");
	const char *dir = kubeconfig__str(entry, "dir"), *server;
	char where[300];
	json_t *insecure;
	int rc;

	snprintf(where, sizeof(where), "%s: clusters[name=%s].cluster",
	    kubeconfig__str(entry, "file"), name);
	if (!json_is_object(c))
		return kubeconfig__fail(err, -EINVAL, "%s: missing", where);
	if ((rc = kubeconfig__check_str(c, "server", where, err)) < 0)
		return rc;
	server = kubeconfig__str(c, "server");
	if (server == NULL)
		return kubeconfig__fail(err, -EINVAL, "%s.server: missing", where);
	if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
		return kubeconfig__fail(err, -EINVAL, "%s.server: \"%.200s\" is not an http(s) URL",
		    where, server);
	cfg->server = strdup(server);
	if (cfg->server == NULL)
		return -ENOMEM;
	while (cfg->server[0] != '\0' && cfg->server[strlen(cfg->server) - 1] == '/')
		cfg->server[strlen(cfg->server) - 1] = '\0';
	insecure = json_object_get(c, "insecure-skip-tls-verify");
	if (insecure != NULL && !json_is_boolean(insecure))
		return kubeconfig__fail(err, -EINVAL,
		    "%s.insecure-skip-tls-verify: must be true or false", where);
	cfg->insecure_skip_verify = json_is_true(insecure);
	rc = kubeconfig__data_field(c, "certificate-authority-data", where, &cfg->ca_pem, err);
	if (rc == 0 && cfg->ca_pem == NULL)
		rc = kubeconfig__file_field(c, "certificate-authority", dir, where, &cfg->ca_file,
		    err);
	return rc;
}

/* A list of strings (args) as a vector after first (the command), NULL-terminated. */
static int
kubeconfig__exec_args(json_t *x, const char *command, const char *where, char ***out,
    struct kubeconfig_error *err)
{
	json_t *args = json_object_get(x, "args"), *a;
	size_t i, n = json_is_array(args) ? json_array_size(args) : 0;
	char **argv;

	if (args != NULL && !json_is_null(args) && !json_is_array(args))
		return kubeconfig__fail(err, -EINVAL, "%s.exec.args: must be a list of strings", where);
	if ((argv = calloc(n + 2, sizeof(*argv))) == NULL)
		return -ENOMEM;
	*out = argv;
	if ((argv[0] = strdup(command)) == NULL)
		return -ENOMEM;
	json_array_foreach(args, i, a) {
		if (!json_is_string(a))
			return kubeconfig__fail(err, -EINVAL, "%s.exec.args[%zu]: must be a string",
			    where, i);
		if ((argv[i + 1] = strdup(json_string_value(a))) == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* env: [{name, value}] as "NAME=value" strings, NULL-terminated. */
static int
kubeconfig__exec_env(json_t *x, const char *where, char ***out, struct kubeconfig_error *err)
{
	json_t *env = json_object_get(x, "env"), *e;
	size_t i, n = json_is_array(env) ? json_array_size(env) : 0;
	char **vec;

	if (env != NULL && !json_is_null(env) && !json_is_array(env))
		return kubeconfig__fail(err, -EINVAL, "%s.exec.env: must be a list of {name, value}",
		    where);
	if ((vec = calloc(n + 1, sizeof(*vec))) == NULL)
		return -ENOMEM;
	*out = vec;
	json_array_foreach(env, i, e) {
		const char *k = json_string_value(json_object_get(e, "name"));
		json_t *v = json_object_get(e, "value");

		if (k == NULL || k[0] == '\0' || strchr(k, '=') != NULL)
			return kubeconfig__fail(err, -EINVAL, "%s.exec.env[%zu].name: must be a "
			    "variable name", where, i);
		if (!json_is_string(v))
			return kubeconfig__fail(err, -EINVAL, "%s.exec.env[%zu].value: must be a string",
			    where, i);
		if (asprintf(&vec[i], "%s=%s", k, json_string_value(v)) < 0) {
			vec[i] = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

/*
 * users[].user.exec: a credential plugin (`aws eks get-token`). A command
 * with a '/' that is not absolute is relative to the kubeconfig's
 * directory, as in client-go; a bare name is looked up in PATH at run time.
 */
static int
kubeconfig__exec(json_t *x, const char *dir, const char *where, struct kube_config *cfg,
    struct kubeconfig_error *err)
{
	static const char *const versions[] = {
		"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1", NULL,
	};
	const char *command, *version, *mode;
	char *resolved;
	bool known = false;
	int rc;

	if (!json_is_object(x))
		return kubeconfig__fail(err, -EINVAL, "%s.exec: must be a mapping", where);
	if ((rc = kubeconfig__check_str(x, "command", where, err)) < 0 ||
	    (rc = kubeconfig__check_str(x, "apiVersion", where, err)) < 0 ||
	    (rc = kubeconfig__check_str(x, "interactiveMode", where, err)) < 0 ||
	    (rc = kubeconfig__check_str(x, "installHint", where, err)) < 0)
		return rc;
	command = kubeconfig__str(x, "command");
	version = kubeconfig__str(x, "apiVersion");
	mode = kubeconfig__str(x, "interactiveMode");
	if (command == NULL)
		return kubeconfig__fail(err, -EINVAL, "%s.exec.command: missing", where);
	for (size_t i = 0; version != NULL && versions[i] != NULL; i++)
		known |= strcmp(version, versions[i]) == 0;
	if (!known)
		return kubeconfig__fail(err, -EINVAL, "%s.exec.apiVersion: \"%s\" is not supported "
		    "(client.authentication.k8s.io/v1 or /v1beta1)", where, version != NULL ? version : "");
	if (mode != NULL && strcmp(mode, "Always") == 0)
		return kubeconfig__fail(err, -EINVAL, "%s.exec.interactiveMode: Always needs a "
		    "terminal and stratosd runs without one; use Never or IfAvailable", where);
	if (mode != NULL && strcmp(mode, "Never") != 0 && strcmp(mode, "IfAvailable") != 0)
		return kubeconfig__fail(err, -EINVAL, "%s.exec.interactiveMode: \"%s\" is not one of "
		    "Never, IfAvailable, Always", where, mode);
	if ((cfg->exec = calloc(1, sizeof(*cfg->exec))) == NULL)
		return -ENOMEM;
	resolved = strchr(command, '/') != NULL ? kubeconfig__path(dir, command) : strdup(command);
	if (resolved == NULL)
		return -ENOMEM;
	rc = kubeconfig__exec_args(x, resolved, where, &cfg->exec->argv, err);
	free(resolved);
	if (rc == 0)
		rc = kubeconfig__exec_env(x, where, &cfg->exec->env, err);
	if (rc < 0)
		return rc;
	if ((cfg->exec->api_version = strdup(version)) == NULL ||
	    (kubeconfig__str(x, "installHint") != NULL &&
	    (cfg->exec->install_hint = strdup(kubeconfig__str(x, "installHint"))) == NULL))
		return -ENOMEM;
	return 0;
}

/*
 * KUBERNETES_EXEC_INFO, once the cluster is known: the ExecCredential request
 * with spec.interactive false and, with provideClusterInfo, spec.cluster
 * (server, insecure-skip-tls-verify, certificate-authority-data when the CA is
 * inline in the kubeconfig).
 */
static int
kubeconfig__exec_info(json_t *x, struct kube_config *cfg)
{
	json_t *info, *spec, *cluster;
	int rc = 0;

	info = json_pack("{s:s, s:s, s:{s:b}}", "apiVersion", cfg->exec->api_version,
	    "kind", "ExecCredential", "spec", "interactive", 0);
	spec = json_object_get(info, "spec");
	if (info != NULL && json_is_true(json_object_get(x, "provideClusterInfo"))) {
		cluster = json_pack("{s:s, s:b}", "server", cfg->server,
		    "insecure-skip-tls-verify", cfg->insecure_skip_verify);
		if (cluster != NULL && cfg->ca_pem != NULL) {
			size_t n = strlen(cfg->ca_pem);
			char *b64 = malloc(4 * ((n + 2) / 3) + 1);
			if (b64 != NULL) {
				EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cfg->ca_pem,
				    (int)n);
				rc = json_object_set_new(cluster, "certificate-authority-data",
				    json_string(b64));
				free(b64);
			} else {
				rc = -1;
			}
		}
		if (cluster == NULL || rc < 0 || json_object_set_new(spec, "cluster", cluster) < 0)
			rc = -1;
	}
	cfg->exec->exec_info = rc == 0 && info != NULL ? json_dumps(info, JSON_COMPACT) : NULL;
	json_decref(info);
	return cfg->exec->exec_info != NULL ? 0 : -ENOMEM;
}

static int
kubeconfig__user(json_t *entry, const char *name, struct kube_config *cfg,
    struct kubeconfig_error *err)
{
	json_t *u = json_object_get(entry, "v");
	const char *dir = kubeconfig__str(entry, "dir");
	char where[300];
	int rc;

	snprintf(where, sizeof(where), "%s: users[name=%s].user", kubeconfig__str(entry, "file"),
	    name);
	if (u == NULL || json_is_null(u))
		return 0;               /* anonymous */
	if (json_object_get(u, "auth-provider") != NULL)
		return kubeconfig__fail(err, -EINVAL, "%s.auth-provider: auth providers are not "
		    "supported; use a token, token file or client certificate", where);
	if (json_object_get(u, "username") != NULL || json_object_get(u, "password") != NULL)
		return kubeconfig__fail(err, -EINVAL, "%s.username: basic authentication is not "
		    "supported; use a token, token file or client certificate", where);
	if ((rc = kubeconfig__check_str(u, "token", where, err)) < 0)
		return rc;
	if (kubeconfig__str(u, "token") != NULL) {
		cfg->token = strdup(kubeconfig__str(u, "token"));
		if (cfg->token == NULL)
			return -ENOMEM;
	} else if ((rc = kubeconfig__file_field(u, "tokenFile", dir, where, &cfg->token_file,
	    err)) < 0) {
		return rc;
	}
	rc = kubeconfig__data_field(u, "client-certificate-data", where, &cfg->cert_pem, err);
	if (rc == 0 && cfg->cert_pem == NULL)
		rc = kubeconfig__file_field(u, "client-certificate", dir, where, &cfg->cert_file,
		    err);
	if (rc == 0)
		rc = kubeconfig__data_field(u, "client-key-data", where, &cfg->key_pem, err);
	if (rc == 0 && cfg->key_pem == NULL)
		rc = kubeconfig__file_field(u, "client-key", dir, where, &cfg->key_file, err);
	if (rc < 0)
		return rc;
	if ((cfg->cert_pem != NULL || cfg->cert_file != NULL) !=
	    (cfg->key_pem != NULL || cfg->key_file != NULL))
		return kubeconfig__fail(err, -EINVAL, "%s.%s: missing (a client certificate needs "
		    "its key and the other way round)", where,
		    cfg->cert_pem != NULL || cfg->cert_file != NULL ?
		    "client-key(-data)" : "client-certificate(-data)");
	/* The cluster is parsed first, so the plugin's request can describe it. */
	if (json_object_get(u, "exec") != NULL && !json_is_null(json_object_get(u, "exec"))) {
		if ((rc = kubeconfig__exec(json_object_get(u, "exec"), dir, where, cfg, err)) < 0 ||
		    (rc = kubeconfig__exec_info(json_object_get(u, "exec"), cfg)) < 0)
			return rc;
	}
	return 0;
}

int
kubeconfig_load(const char *paths, const char *context, struct kube_config *cfg,
    struct kubeconfig_error *err)
{
	json_t *merged, *ctx_entry, *ctx, *entry;
	const char *cur, *cluster, *user, *ns, *file;
	char *list = NULL, *save = NULL, *p;
	char where[300];
	int rc = 0, nfiles = 0;

	memset(cfg, 0, sizeof(*cfg));
	err->message[0] = '\0';
	merged = json_pack("{s:{},s:{},s:{}}", "clusters", "contexts", "users");
	list = strdup(paths != NULL ? paths : "");
	if (merged == NULL || list == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (p = strtok_r(list, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
		/* KUBECONFIG may name files that do not exist; client-go skips them. */
		if (access(p, F_OK) < 0 && strchr(paths, ':') != NULL)
			continue;
		rc = kubeconfig__merge_file(merged, p, err);
		if (rc < 0)
			goto out;
		nfiles++;
	}
	if (nfiles == 0) {
		rc = kubeconfig__fail(err, -ENOENT, "kubeconfig %s: no such file", paths);
		goto out;
	}
	cur = context != NULL ? context : kubeconfig__str(merged, "current-context");
	if (cur == NULL) {
		rc = kubeconfig__fail(err, -EINVAL, "kubeconfig %s: current-context: missing "
		    "(and no context was chosen)", paths);
		goto out;
	}
	ctx_entry = json_object_get(json_object_get(merged, "contexts"), cur);
	if (ctx_entry == NULL) {
		rc = kubeconfig__fail(err, -EINVAL, "kubeconfig %s: contexts: no context named "
		    "\"%s\"", paths, cur);
		goto out;
	}
	file = kubeconfig__str(ctx_entry, "file");
	ctx = json_object_get(ctx_entry, "v");
	snprintf(where, sizeof(where), "%s: contexts[name=%s].context", file, cur);
	if (!json_is_object(ctx)) {
		rc = kubeconfig__fail(err, -EINVAL, "%s: missing", where);
		goto out;
	}
	if ((rc = kubeconfig__check_str(ctx, "cluster", where, err)) < 0 ||
	    (rc = kubeconfig__check_str(ctx, "user", where, err)) < 0 ||
	    (rc = kubeconfig__check_str(ctx, "namespace", where, err)) < 0)
		goto out;
	cluster = kubeconfig__str(ctx, "cluster");
	user = kubeconfig__str(ctx, "user");
	ns = kubeconfig__str(ctx, "namespace");
	if (cluster == NULL) {
		rc = kubeconfig__fail(err, -EINVAL, "%s.cluster: missing", where);
		goto out;
	}
	entry = json_object_get(json_object_get(merged, "clusters"), cluster);
	if (entry == NULL) {
		rc = kubeconfig__fail(err, -EINVAL, "%s.cluster: no cluster named \"%s\" in "
		    "clusters", where, cluster);
		goto out;
	}
	if ((rc = kubeconfig__cluster(entry, cluster, cfg, err)) < 0)
		goto out;
	if (user != NULL) {
		entry = json_object_get(json_object_get(merged, "users"), user);
		if (entry == NULL) {
			rc = kubeconfig__fail(err, -EINVAL, "%s.user: no user named \"%s\" in users",
			    where, user);
			goto out;
		}
		if ((rc = kubeconfig__user(entry, user, cfg, err)) < 0)
			goto out;
	}
	if (ns != NULL && (cfg->namespace = strdup(ns)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (asprintf(&cfg->source, "kubeconfig %s (context %s)", paths, cur) < 0) {
		cfg->source = NULL;
		rc = -ENOMEM;
	}
out:
	if (rc == -ENOMEM && err->message[0] == '\0')
		kubeconfig__fail(err, rc, "out of memory");
	free(list);
	json_decref(merged);
	return rc;
}

static const char *
kubeconfig__getenv(char **envp, const char *name)
{
	size_t n = strlen(name);

	for (char **e = envp; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

int
kubeconfig_in_cluster(const char *sa_dir, char **envp, struct kube_config *cfg,
    struct kubeconfig_error *err)
{
	const char *host = kubeconfig__getenv(envp, "KUBERNETES_SERVICE_HOST");
	const char *port = kubeconfig__getenv(envp, "KUBERNETES_SERVICE_PORT");
	char *token = NULL, *ns = NULL;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	err->message[0] = '\0';
	if (sa_dir == NULL)
		sa_dir = KUBECONFIG_SA_DIR;
	if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0')
		return kubeconfig__fail(err, -ENOENT, "in-cluster: KUBERNETES_SERVICE_HOST and "
		    "KUBERNETES_SERVICE_PORT must be set");
	/* IPv6 service addresses need brackets in a URL. */
	if (asprintf(&cfg->server, strchr(host, ':') != NULL ? "https://[%s]:%s" :
	    "https://%s:%s", host, port) < 0 ||
	    asprintf(&cfg->token_file, "%s/token", sa_dir) < 0 ||
	    asprintf(&cfg->ca_file, "%s/ca.crt", sa_dir) < 0 ||
	    (cfg->source = strdup("in-cluster")) == NULL) {
		kube_config_free(cfg);
		return -ENOMEM;
	}
	rc = kubeconfig_read_token(cfg->token_file, &token);
	if (rc < 0)
		return kubeconfig__fail(err, rc, "in-cluster: %s: %s", cfg->token_file,
		    rc == -EINVAL ? "empty token" : strerror(-rc));
	kubeconfig__free_secret(&token);
	if (access(cfg->ca_file, R_OK) < 0)
		return kubeconfig__fail(err, -errno, "in-cluster: %s: %s", cfg->ca_file,
		    strerror(errno));
	{
		char *nsfile;
		if (asprintf(&nsfile, "%s/namespace", sa_dir) < 0)
			return -ENOMEM;
		/* The namespace file is optional; --namespace or the default covers it. */
		if (kubeconfig_read_token(nsfile, &ns) == 0)
			cfg->namespace = ns;
		free(nsfile);
	}
	return 0;
}

int
kubeconfig_resolve(const char *flag_path, char **envp, struct kube_config *cfg,
    struct kubeconfig_error *err)
{
	const char *env = kubeconfig__getenv(envp, "KUBECONFIG");
	const char *home = kubeconfig__getenv(envp, "HOME");
	char *path = NULL;
	int rc;

	if (flag_path != NULL && flag_path[0] != '\0')
		return kubeconfig_load(flag_path, NULL, cfg, err);
	if (env != NULL && env[0] != '\0')
		return kubeconfig_load(env, NULL, cfg, err);
	if (kubeconfig__getenv(envp, "KUBERNETES_SERVICE_HOST") != NULL)
		return kubeconfig_in_cluster(NULL, envp, cfg, err);
	if (home != NULL && asprintf(&path, "%s/.kube/config", home) >= 0 &&
	    access(path, F_OK) == 0) {
		rc = kubeconfig_load(path, NULL, cfg, err);
		free(path);
		return rc;
	}
	free(path);
	memset(cfg, 0, sizeof(*cfg));
	return kubeconfig__fail(err, -ENOENT, "no Kubernetes configuration: pass --kubeconfig, "
	    "set KUBECONFIG, or run in a cluster (KUBERNETES_SERVICE_HOST)");
}

char *
kubeconfig_daemon_namespace(const char *flag)
{
	char *ns = NULL;

	if (flag != NULL && flag[0] != '\0')
		return strdup(flag);
	if (kubeconfig_read_token(KUBECONFIG_SA_DIR "/namespace", &ns) == 0)
		return ns;
	return strdup("stratos-system");
}
