/* Where the Kubernetes API is and how to authenticate: kubeconfig files and in-cluster config. */
#ifndef STRATOS_KUBECONFIG_H
#define STRATOS_KUBECONFIG_H

#include <stdbool.h>

#include "stratos/kube_exec.h"

/* The default in-cluster service-account directory. */
#define KUBECONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/*
 * A resolved connection: every string is owned (NULL = unset). PEM data is
 * already base64-decoded. token_file is re-read by the client (rotation);
 * a static token wins over it, as in client-go.
 */
struct kube_config {
	char *server;                /* "https://host:port", no trailing slash */
	char *ca_file;
	char *ca_pem;
	char *cert_file;
	char *key_file;
	char *cert_pem;
	char *key_pem;               /* wiped on free */
	bool insecure_skip_verify;
	char *token;                 /* wiped on free */
	char *token_file;
	struct kube_exec *exec;      /* users[].user.exec plugin; a token or token file wins over it */
	char *namespace;             /* context namespace or in-cluster namespace file */
	char *source;                /* "kubeconfig PATH (context NAME)" or "in-cluster", for logs */
};

/* Why a configuration could not be loaded, naming the file and field. */
struct kubeconfig_error {
	char message[512];
};

/*
 * Loads a kubeconfig. paths is one file or several separated by ':' (as in
 * KUBECONFIG; maps are merged, the first file to set a name wins). context
 * overrides current-context when non-NULL. Relative file references resolve
 * against the directory of the file that holds them; so does an exec
 * plugin's command when it contains a '/'. Auth-providers and basic auth
 * are refused with an error naming the field.
 * Returns 0, -EINVAL / -ENOENT / -errno (err filled) or -ENOMEM. cfg must be
 * freed with kube_config_free() even on error. Thread-safe.
 */
int kubeconfig_load(const char *paths, const char *context, struct kube_config *cfg,
    struct kubeconfig_error *err);

/*
 * In-cluster configuration from KUBERNETES_SERVICE_HOST/PORT in envp and
 * sa_dir (token, ca.crt, namespace; NULL = KUBECONFIG_SA_DIR). The token is
 * referenced as a file so the client re-reads it. Errors as kubeconfig_load.
 */
int kubeconfig_in_cluster(const char *sa_dir, char **envp, struct kube_config *cfg,
    struct kubeconfig_error *err);

/*
 * The daemon's order: flag_path (--kubeconfig) if set, else $KUBECONFIG, else
 * in-cluster when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
 * Errors as kubeconfig_load; -ENOENT with a message when nothing is found.
 */
int kubeconfig_resolve(const char *flag_path, char **envp, struct kube_config *cfg,
    struct kubeconfig_error *err);

/*
 * Reads a bearer token file (at most LIMITS_KUBE_TOKEN bytes), trimming
 * surrounding whitespace. *out is the caller's (wipe it). Returns 0, -errno,
 * -E2BIG or -EINVAL (empty).
 */
int kubeconfig_read_token(const char *path, char **out);

/*
 * The daemon's own namespace (its Lease, its pre-pull pods): flag (--namespace)
 * when set, else the service-account namespace file, else "stratos-system".
 * Returns a string the caller frees, NULL on ENOMEM.
 */
char *kubeconfig_daemon_namespace(const char *flag);

/* Frees and wipes the strings; leaves cfg zeroed. NULL-safe. */
void kube_config_free(struct kube_config *cfg);

#endif
