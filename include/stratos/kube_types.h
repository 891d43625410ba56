/* Kubernetes shapes shared by the caches, the webhooks, the extender and the controller: taints, tolerations, selectors, conditions. */
#ifndef STRATOS_KUBE_TYPES_H
#define STRATOS_KUBE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Well-known taints and labels (k8s.io/api/core/v1 well_known_taints.go, well_known_labels.go). */
#define KUBE_TAINT_NOT_READY          "node.kubernetes.io/not-ready"
#define KUBE_TAINT_UNREACHABLE        "node.kubernetes.io/unreachable"
#define KUBE_TAINT_UNSCHEDULABLE      "node.kubernetes.io/unschedulable"
/* Set by a cloud controller manager on a stopped instance (cloud-provider node_lifecycle_controller.go). */
#define KUBE_TAINT_SHUTDOWN           "node.cloudprovider.kubernetes.io/shutdown"
#define KUBE_LABEL_HOSTNAME           "kubernetes.io/hostname"
#define KUBE_LABEL_ZONE               "topology.kubernetes.io/zone"
#define KUBE_LABEL_REGION             "topology.kubernetes.io/region"
#define KUBE_LABEL_INSTANCE_TYPE      "node.kubernetes.io/instance-type"

/* A condition's status; ABSENT when the object does not report it. */
enum kube_cond {
	KUBE_COND_ABSENT,
	KUBE_COND_TRUE,
	KUBE_COND_FALSE,
	KUBE_COND_UNKNOWN,
};

/* A condition's status text: "True", "False", NULL (absent) or anything else (unknown). */
enum kube_cond kube_cond_parse(const char *status);

enum kube_taint_effect {
	KUBE_EFFECT_ANY,             /* tolerations only: an empty effect matches all */
	KUBE_EFFECT_NO_SCHEDULE,
	KUBE_EFFECT_PREFER_NO_SCHEDULE,
	KUBE_EFFECT_NO_EXECUTE,
};

/*
 * A taint or toleration effect by name ("NoSchedule", "PreferNoSchedule",
 * "NoExecute"); NULL or "" is KUBE_EFFECT_ANY, which only a toleration may
 * have. Returns 0, or -EINVAL for any other name.
 */
int kube_effect_parse(const char *name, uint8_t *out);

/* "NoSchedule", ...; "" for KUBE_EFFECT_ANY. */
const char *kube_effect_name(enum kube_taint_effect effect);

/* A Node taint. Strings are interned in the caches, borrowed elsewhere. */
struct kube_taint {
	const char *key;
	const char *value;           /* NULL = "" */
	uint8_t effect;              /* enum kube_taint_effect, never ANY */
	int64_t added_ms;            /* timeAdded, 0 when absent */
};

/* A Pod toleration. Strings are interned in the pod cache, borrowed elsewhere. */
struct kube_toleration {
	const char *key;             /* NULL = "" (every key, with Exists) */
	const char *value;           /* NULL = "" */
	bool exists;                 /* operator Exists (else Equal) */
	uint8_t effect;              /* enum kube_taint_effect */
	int64_t seconds;             /* tolerationSeconds, -1 when unset */
};

/* An immutable list, interned and shared by every cached pod with the same tolerations. */
struct kube_tolerations {
	uint32_t n;
	struct kube_toleration items[];
};

/*
 * Reads one element of a Pod's spec.tolerations, borrowing its strings from
 * tol (which must outlive out). Returns 0, or -EINVAL for an unknown effect
 * or operator (the API server's validation refuses both).
 */
int kube_toleration_read(const json_t *tol, struct kube_toleration *out);

/*
 * Kubernetes' Toleration.ToleratesTaint (k8s.io/api/core/v1/toleration.go):
 * an empty effect matches every effect, an empty key every key; Exists
 * matches any value, Equal (or no operator) the same value. The single
 * rule the webhook, the extender and the controller all use.
 */
bool kube_toleration_tolerates(const struct kube_toleration *t, const char *key,
    const char *value, enum kube_taint_effect effect);

/* Whether one of n tolerations tolerates the taint (TolerationsTolerateTaint). */
bool kube_tolerations_tolerate(const struct kube_toleration *t, size_t n, const char *key,
    const char *value, enum kube_taint_effect effect);

/*
 * The same over a Pod's spec.tolerations array as JSON (may be NULL; an
 * element kube_toleration_read refuses tolerates nothing), for callers that
 * hold the pod as JSON (admission requests, extender arguments).
 */
bool kube_tolerations_json_tolerate(const json_t *tolerations, const char *key,
    const char *value, enum kube_taint_effect effect);

/* The operators of a node selector requirement (matchExpressions). */
enum kube_selector_op {
	KUBE_SEL_IN,
	KUBE_SEL_NOT_IN,
	KUBE_SEL_EXISTS,
	KUBE_SEL_DOES_NOT_EXIST,
	KUBE_SEL_GT,
	KUBE_SEL_LT,
};

/* "In", "NotIn", ... by name. Returns 0 or -EINVAL. */
int kube_selector_op_parse(const char *name, enum kube_selector_op *out);

/*
 * Whether a node label value (have, NULL when the node lacks the label)
 * satisfies one requirement with values[0..n) — nodeSelectorRequirement
 * matching as k8s.io/component-helpers/scheduling/corev1/nodeaffinity does:
 * Gt/Lt compare integers and need exactly one value.
 */
bool kube_selector_matches(enum kube_selector_op op, const char *have,
    const char *const *values, size_t n);

/* One matchExpressions requirement of a compact selection; its values are values[first .. first+n). */
struct kube_selector_req {
	const char *key;             /* interned */
	uint16_t op;                 /* enum kube_selector_op */
	uint16_t first;
	uint16_t n;
};

#endif
