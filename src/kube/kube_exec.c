/* Exec credential plugins: spawn, collect stdout/stderr under a deadline, parse the ExecCredential. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "stratos/buf.h"
#include "stratos/kube_exec.h"
#include "stratos/timeutil.h"

#define KUBE_EXEC_MAX_STDOUT (1024 * 1024)
#define KUBE_EXEC_MAX_STDERR 4096

extern char **environ;

static int
kube_exec__fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
kube_exec__fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static size_t
kube_exec__count(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/* A copy of a NULL-terminated string vector; NULL stays NULL. */
static char **
kube_exec__dup_vec(char *const *v, bool *failed)
{
	size_t n = kube_exec__count(v);
	char **out;

	if (v == NULL)
		return NULL;
	out = calloc(n + 1, sizeof(*out));
	if (out == NULL) {
		*failed = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if ((out[i] = strdup(v[i])) == NULL)
			*failed = true;
	return out;
}

static void
kube_exec__free_vec(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static char *
kube_exec__dup(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*failed = true;
	return d;
}

struct kube_exec *
kube_exec_dup(const struct kube_exec *x)
{
	struct kube_exec *d;
	bool failed = false;

	if (x == NULL || (d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->argv = kube_exec__dup_vec(x->argv, &failed);
	d->env = kube_exec__dup_vec(x->env, &failed);
	d->api_version = kube_exec__dup(x->api_version, &failed);
	d->exec_info = kube_exec__dup(x->exec_info, &failed);
	d->install_hint = kube_exec__dup(x->install_hint, &failed);
	if (failed) {
		kube_exec_free(d);
		return NULL;
	}
	return d;
}

void
kube_exec_free(struct kube_exec *x)
{
	if (x == NULL)
		return;
	kube_exec__free_vec(x->argv);
	kube_exec__free_vec(x->env);
	free(x->api_version);
	free(x->exec_info);
	free(x->install_hint);
	free(x);
}

void
kube_exec_credential_free(struct kube_exec_credential *cred)
{
	if (cred == NULL)
		return;
	if (cred->token != NULL) {
		explicit_bzero(cred->token, strlen(cred->token));
		free(cred->token);
	}
	memset(cred, 0, sizeof(*cred));
}

int
kube_exec_parse_output(const char *out, size_t len, const char *api_version,
    struct kube_exec_credential *cred, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc, *status;
	const char *kind, *version, *token, *expiry;
	int rc = 0;

	memset(cred, 0, sizeof(*cred));
	doc = json_loadb(out, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		return kube_exec__fail(err, errlen, -EINVAL, "output is not JSON: %s (line %d)",
		    jerr.text, jerr.line);
	kind = json_string_value(json_object_get(doc, "kind"));
	version = json_string_value(json_object_get(doc, "apiVersion"));
	status = json_object_get(doc, "status");
	token = json_string_value(json_object_get(status, "token"));
	expiry = json_string_value(json_object_get(status, "expirationTimestamp"));
	if (kind == NULL || strcmp(kind, "ExecCredential") != 0) {
		rc = kube_exec__fail(err, errlen, -EINVAL, "kind: \"%s\", want \"ExecCredential\"",
		    kind != NULL ? kind : "");
	} else if (version == NULL || strcmp(version, api_version) != 0) {
		rc = kube_exec__fail(err, errlen, -EINVAL, "apiVersion: \"%s\", want \"%s\" (the "
		    "kubeconfig's exec.apiVersion)", version != NULL ? version : "", api_version);
	} else if (!json_is_object(status)) {
		rc = kube_exec__fail(err, errlen, -EINVAL, "status: missing");
	} else if (token == NULL && json_object_get(status, "clientCertificateData") != NULL) {
		rc = kube_exec__fail(err, errlen, -EINVAL, "status.clientCertificateData: client "
		    "certificates from exec plugins are not supported; the plugin must return a token");
	} else if (token == NULL || token[0] == '\0') {
		rc = kube_exec__fail(err, errlen, -EINVAL, "status.token: missing");
	} else if (expiry != NULL && time_parse_rfc3339(expiry, &cred->expires_ms) < 0) {
		rc = kube_exec__fail(err, errlen, -EINVAL, "status.expirationTimestamp: \"%s\" is "
		    "not an RFC 3339 time", expiry);
	} else if ((cred->token = strdup(token)) == NULL) {
		rc = -ENOMEM;
	}
	/* The document holds the secret too. */
	if (token != NULL)
		explicit_bzero((char *)token, strlen(token));
	json_decref(doc);
	if (rc < 0)
		kube_exec_credential_free(cred);
	return rc;
}

/* stratosd's environment, then the plugin's variables (which win), then info (KUBERNETES_EXEC_INFO=...). */
static char **
kube_exec__environment(const struct kube_exec *x, char *info)
{
	size_t nenv = kube_exec__count(environ), nextra = kube_exec__count(x->env), n = 0, m = 0;
	char **envp = calloc(nenv + nextra + 2, sizeof(*envp));

	if (envp == NULL)
		return NULL;
	for (size_t i = 0; i < nenv; i++) {
		if (strncmp(environ[i], "KUBERNETES_EXEC_INFO=", 21) == 0)
			continue;
		envp[n++] = environ[i];
	}
	for (size_t i = 0; i < nextra; i++)
		envp[n++] = x->env[i];
	/* Later entries do not override earlier ones in getenv(): drop the parent's duplicates. */
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(envp[i], '=');
		size_t klen = eq != NULL ? (size_t)(eq - envp[i]) : strlen(envp[i]);
		for (size_t j = i + 1; j < n && envp[i] != NULL; j++)
			if (envp[j] != NULL && strncmp(envp[j], envp[i], klen) == 0 && envp[j][klen] == '=')
				envp[i] = NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (envp[i] != NULL)
			envp[m++] = envp[i];
	envp[m++] = info;
	while (m <= n + 1)
		envp[m++] = NULL;
	return envp;
}

/*
 * The command's path: as given when it has a '/', else the first executable
 * of that name in PATH. Looked up here rather than by posix_spawnp so that
 * "not found" is an error of its own everywhere (under valgrind, or a libc
 * that reports it as exit status 127). Returns 0 or -errno.
 */
static int
kube_exec__lookup(const char *cmd, char *out, size_t len)
{
	const char *path = getenv("PATH"), *p, *end;

	if (strchr(cmd, '/') != NULL) {
		snprintf(out, len, "%s", cmd);
		return access(out, X_OK) == 0 ? 0 : -errno;
	}
	for (p = path != NULL ? path : "/usr/local/bin:/usr/bin:/bin"; ; p = end + 1) {
		end = strchrnul(p, ':');
		if ((size_t)snprintf(out, len, "%.*s%s%s", (int)(end - p), p, end > p ? "/" : "./",
		    cmd) < len && access(out, X_OK) == 0)
			return 0;
		if (*end == '\0')
			return -ENOENT;
	}
}

/* Reads what is there into b (up to max; beyond it is read and dropped). 1 at EOF. */
static int
kube_exec__drain(int fd, struct buf *b, size_t max)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n == 0)
		return 1;
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (b->len < max)
		(void)buf_append(b, chunk, (size_t)n < max - b->len ? (size_t)n : max - b->len);
	explicit_bzero(chunk, sizeof(chunk));
	return 0;
}

/* The first line of stderr, for an error message. */
static void
kube_exec__first_line(const struct buf *b, char *out, size_t len)
{
	size_t n = 0;

	while (n < b->len && b->data[n] != '\n' && n + 1 < len)
		n++;
	memcpy(out, b->data != NULL ? b->data : "", n);
	out[n] = '\0';
}

int
kube_exec_run(const struct kube_exec *x, int timeout_ms, struct kube_exec_credential *cred,
    char *err, size_t errlen)
{
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, status = 0, rc = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t mask, deflt;
	struct buf out, errb;
	char **envp = NULL, *info = NULL, line[300], path[4096];
	const char *cmd = x->argv[0];
	int64_t deadline = time_mono_ms() + timeout_ms;
	bool out_open = true, err_open = true, timed_out = false;
	pid_t pid;

	memset(cred, 0, sizeof(*cred));
	if ((rc = kube_exec__lookup(cmd, path, sizeof(path))) < 0)
		return kube_exec__fail(err, errlen, rc, "exec plugin %s: %s%s%s", cmd, strerror(-rc),
		    x->install_hint != NULL ? "; " : "", x->install_hint != NULL ? x->install_hint : "");
	buf_init(&out, KUBE_EXEC_MAX_STDOUT + 1);
	buf_init(&errb, KUBE_EXEC_MAX_STDERR);
	if (asprintf(&info, "KUBERNETES_EXEC_INFO=%s", x->exec_info != NULL ? x->exec_info : "") < 0)
		return -ENOMEM;
	envp = kube_exec__environment(x, info);
	if (envp == NULL) {
		free(info);
		return -ENOMEM;
	}
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
		rc = kube_exec__fail(err, errlen, -errno, "exec plugin %s: pipe: %s", cmd,
		    strerror(errno));
		goto out;
	}
	/* The plugin starts with default signals, not stratosd's blocked SIGTERM and ignored SIGPIPE. */
	posix_spawnattr_init(&attr);
	sigemptyset(&mask);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &mask);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
	rc = posix_spawn(&pid, path, &fa, &attr, x->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(out_pipe[1]);
	close(err_pipe[1]);
	out_pipe[1] = err_pipe[1] = -1;
	if (rc != 0) {
		rc = kube_exec__fail(err, errlen, -rc, "exec plugin %s: %s", cmd, strerror(rc));
		goto out;
	}
	while (out_open || err_open) {
		struct pollfd p[2] = { { out_pipe[0], POLLIN, 0 }, { err_pipe[0], POLLIN, 0 } };
		int64_t left = deadline - time_mono_ms();

		if (left <= 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		p[0].fd = out_open ? out_pipe[0] : -1;
		p[1].fd = err_open ? err_pipe[0] : -1;
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			break;
		if (out_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
		    kube_exec__drain(out_pipe[0], &out, KUBE_EXEC_MAX_STDOUT + 1) == 1)
			out_open = false;
		if (err_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
		    kube_exec__drain(err_pipe[0], &errb, KUBE_EXEC_MAX_STDERR) == 1)
			err_open = false;
	}
	/* Both pipes closed: the plugin is exiting; a timeout killed it. Either way, reap it. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	kube_exec__first_line(&errb, line, sizeof(line));
	if (timed_out) {
		rc = kube_exec__fail(err, errlen, -ETIMEDOUT, "exec plugin %s: killed after %d ms",
		    cmd, timeout_ms);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		rc = kube_exec__fail(err, errlen, -EIO, "exec plugin %s: %s %d%s%s", cmd,
		    WIFEXITED(status) ? "exited with status" : "killed by signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		    line[0] != '\0' ? ": " : "", line);
	} else if (out.len > KUBE_EXEC_MAX_STDOUT) {
		rc = kube_exec__fail(err, errlen, -E2BIG, "exec plugin %s: more than %d bytes of "
		    "output", cmd, KUBE_EXEC_MAX_STDOUT);
	} else {
		char why[300];
		rc = kube_exec_parse_output(out.data != NULL ? out.data : "", out.len,
		    x->api_version, cred, why, sizeof(why));
		if (rc == -EINVAL)
			kube_exec__fail(err, errlen, rc, "exec plugin %s: %s", cmd, why);
	}
out:
	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
	}
	buf_free_secure(&out);
	buf_free(&errb);
	free(envp);
	free(info);
	return rc;
}
