/* Exec credential plugins (a kubeconfig's users[].user.exec, e.g. `aws eks get-token`): run one, read its ExecCredential. */
#ifndef STRATOS_KUBE_EXEC_H
#define STRATOS_KUBE_EXEC_H

#include <stddef.h>
#include <stdint.h>

/* How long a plugin may run before it is killed. */
#define KUBE_EXEC_TIMEOUT_MS 30000

/* A plugin as the kubeconfig describes it; every string owned. */
struct kube_exec {
	char **argv;          /* command (resolved), args..., NULL */
	char **env;           /* "NAME=value" added to stratosd's environment, NULL-terminated */
	char *api_version;    /* client.authentication.k8s.io/v1 or /v1beta1 */
	char *exec_info;      /* KUBERNETES_EXEC_INFO: the ExecCredential request, as JSON */
	char *install_hint;   /* shown when the command cannot be run; may be NULL */
};

/* What a run gave: a bearer token and when it expires. */
struct kube_exec_credential {
	char *token;          /* wiped on free */
	int64_t expires_ms;   /* Unix ms; 0 = no expirationTimestamp (valid until a 401) */
};

/* A deep copy, or NULL on ENOMEM. NULL-safe. */
struct kube_exec *kube_exec_dup(const struct kube_exec *x);
void kube_exec_free(struct kube_exec *x);

/*
 * Parses a plugin's stdout: an ExecCredential of api_version with a
 * status.token (client certificates are refused) and an optional RFC 3339
 * status.expirationTimestamp. Returns 0 or -EINVAL with err saying what is
 * wrong; -ENOMEM.
 */
int kube_exec_parse_output(const char *out, size_t len, const char *api_version,
    struct kube_exec_credential *cred, char *err, size_t errlen);

/*
 * Runs the plugin (stdin /dev/null, its environment stratosd's plus x->env
 * and KUBERNETES_EXEC_INFO), killed after timeout_ms, and parses its output.
 * A failure names the command and carries the first line of its stderr, or
 * the install hint when the command is not found. Returns 0 or -errno with
 * err filled. Thread-safe.
 */
int kube_exec_run(const struct kube_exec *x, int timeout_ms, struct kube_exec_credential *cred,
    char *err, size_t errlen);

/* Wipes and frees the token; leaves cred zeroed. NULL-safe. */
void kube_exec_credential_free(struct kube_exec_credential *cred);

#endif
