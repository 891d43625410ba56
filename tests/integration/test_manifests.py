"""test_manifests: the deployment in manifests/ renders and meets DESIGN §9-§10,
the CRD schemas accept the seed examples and reject what DESIGN §3 forbids,
certs/gen.sh makes certificates that verify, and the Dockerfile has the shape
§10 asks for.

Run from the repository root:
    python3 -m unittest tests/integration/test_manifests.py

Needs openssl on PATH and the jsonschema and PyYAML packages; the rendering
checks need kubectl (with its built-in kustomize) and skip without it. No cluster: the API server's part (structural
schema rules, defaulting, CEL) is emulated here as closely as the tests need,
with cel_subset.py for the CEL rules.
"""

import base64
import copy
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

import jsonschema
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cel_subset  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
GEN = REPO / "certs" / "gen.sh"
SEED = REPO / "tests" / "fixtures" / "seed-examples.yaml"
INVALID_NODEPOOL_REVIEW = REPO / "tests" / "fixtures" / "admission" / "nodepool-create-invalid.json"

NAMESPACE = "stratos-system"
SERVICE = "stratos-webhook"

# The stratosd serve flags of the common brief (the contract with the
# manifests); a typo in the Deployment's args must fail here, not in a cluster.
STRATOSD_SERVE_FLAGS = {
    "--listen", "--metrics-listen", "--tls-cert", "--tls-key", "--client-ca",
    "--max-body-bytes", "--max-connections", "--idle-timeout", "--threads",
    "--config", "--pools-file", "--kubeconfig", "--namespace",
    "--cluster-name", "--scheduler-name", "--managed-resource",
    "--leader-elect", "--aws-region", "--aws-endpoint-url", "--log-level",
}

CLUSTER_SCOPED = {
    "Namespace", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleBinding", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}


def _need(tool):
    path = shutil.which(tool)
    if not path:
        raise AssertionError("%s is required on PATH for these tests" % tool)
    return path


def kustomize(path):
    # As scripts/install-deps announces: without kubectl these checks skip.
    if not shutil.which("kubectl"):
        raise unittest.SkipTest("kubectl not found: rendering checks skipped")
    res = subprocess.run(["kubectl", "kustomize", str(path)],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise AssertionError("kubectl kustomize %s failed:\n%s" % (path, res.stderr))
    return [d for d in yaml.safe_load_all(res.stdout) if d is not None]


def find(objs, kind, name=None, namespace=None):
    hits = [o for o in objs if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name
                 or o["metadata"]["name"].startswith(name + "-") and kind == "ConfigMap")
            and (namespace is None or o["metadata"].get("namespace") == namespace)]
    if len(hits) != 1:
        raise AssertionError("expected one %s %s, found %d" % (kind, name, len(hits)))
    return hits[0]


def container(deploy, name=None):
    cs = deploy["spec"]["template"]["spec"]["containers"]
    if name is None:
        return cs[0]
    return next(c for c in cs if c["name"] == name)


def flag_values(args):
    """{'--flag': value or True} from ['--flag=value', '--bool', ...]."""
    out = {}
    for a in args:
        if not a.startswith("--"):
            continue
        k, sep, v = a.partition("=")
        out[k] = v if sep else True
    return out


# ---------------------------------------------------------------- rendering

class RenderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.default = kustomize(MANIFESTS)
        cls.managed = kustomize(MANIFESTS / "overlays" / "managed-resource")
        cls.base = kustomize(MANIFESTS / "base")

    def test_every_object_is_well_formed(self):
        for objs in (self.default, self.managed, self.base):
            seen = set()
            for o in objs:
                for key in ("apiVersion", "kind", "metadata"):
                    self.assertIn(key, o)
                self.assertTrue(o["metadata"].get("name"), o)
                ns = o["metadata"].get("namespace")
                if o["kind"] in CLUSTER_SCOPED:
                    self.assertIsNone(ns, "%s is cluster-scoped" % o["kind"])
                else:
                    self.assertIsNotNone(ns, "%s %s has no namespace" % (o["kind"], o["metadata"]["name"]))
                    # Everything lives in stratos-system, except the binding the
                    # scheduler needs to a kube-system Role.
                    if ns != NAMESPACE:
                        self.assertEqual(
                            (o["kind"], ns, o["metadata"]["name"]),
                            ("RoleBinding", "kube-system",
                             "stratos-scheduler-extension-apiserver-authentication-reader"))
                ident = (o["apiVersion"], o["kind"], ns, o["metadata"]["name"])
                self.assertNotIn(ident, seen)
                seen.add(ident)

    def test_default_is_second_scheduler_deployment(self):
        kinds = {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0]
                  if o["kind"] == "ConfigMap" else o["metadata"]["name"])
                 for o in self.default}
        for want in [("Namespace", NAMESPACE),
                     ("CustomResourceDefinition", "nodepools.stratos.sh"),
                     ("CustomResourceDefinition", "awsnodeclasses.stratos.sh"),
                     ("ServiceAccount", "stratos"), ("ClusterRole", "stratos"),
                     ("ClusterRoleBinding", "stratos"), ("Role", "stratos"),
                     ("RoleBinding", "stratos"), ("Deployment", "stratos"),
                     ("Service", SERVICE), ("PodDisruptionBudget", "stratos"),
                     ("MutatingWebhookConfiguration", "stratos"),
                     ("ValidatingWebhookConfiguration", "stratos"),
                     ("NetworkPolicy", "stratos"),
                     ("ConfigMap", "stratos-config"),
                     ("Deployment", "stratos-scheduler"),
                     ("ServiceAccount", "stratos-scheduler"),
                     ("ConfigMap", "stratos-scheduler-config"),
                     ("PodDisruptionBudget", "stratos-scheduler")]:
            self.assertIn(want, kinds)
        args = flag_values(container(find(self.default, "Deployment", "stratos"))["args"])
        self.assertEqual(args.get("--scheduler-name"), "stratos-scheduler")
        self.assertNotIn("--managed-resource", args)

    def test_managed_resource_overlay(self):
        args = flag_values(container(find(self.managed, "Deployment", "stratos"))["args"])
        self.assertIs(args.get("--managed-resource"), True)
        self.assertNotIn("--scheduler-name", args)
        self.assertFalse([o for o in self.managed if "scheduler" in o["metadata"]["name"]])

    def test_base_has_no_scheduler_integration(self):
        args = flag_values(container(find(self.base, "Deployment", "stratos"))["args"])
        self.assertNotIn("--scheduler-name", args)
        self.assertNotIn("--managed-resource", args)


# ---------------------------------------------------------- the Deployment

class DeploymentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = kustomize(MANIFESTS)
        cls.deploy = find(cls.objs, "Deployment", "stratos", NAMESPACE)
        cls.pod = cls.deploy["spec"]["template"]["spec"]
        cls.c = container(cls.deploy, "stratosd")

    def test_replicas_and_scheduling(self):
        self.assertEqual(self.deploy["spec"]["replicas"], 2)
        self.assertEqual(self.pod["serviceAccountName"], "stratos")
        self.assertEqual(self.pod["priorityClassName"], "system-cluster-critical")
        self.assertGreaterEqual(self.pod["terminationGracePeriodSeconds"], 15)
        spread = {t["topologyKey"]: t for t in self.pod["topologySpreadConstraints"]}
        self.assertEqual(spread["kubernetes.io/hostname"]["whenUnsatisfiable"], "DoNotSchedule")
        self.assertEqual(spread["kubernetes.io/hostname"]["labelSelector"]["matchLabels"],
                         self.deploy["spec"]["selector"]["matchLabels"])
        # Never on a pool node: Stratos stops those.
        terms = self.pod["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        self.assertIn({"key": "stratos.sh/pool", "operator": "DoesNotExist"},
                      terms[0]["matchExpressions"])

    def test_security_context(self):
        psc = self.pod["securityContext"]
        self.assertIs(psc["runAsNonRoot"], True)
        self.assertEqual(psc["runAsUser"], 65532)
        self.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
        csc = self.c["securityContext"]
        self.assertIs(csc["allowPrivilegeEscalation"], False)
        self.assertIs(csc["readOnlyRootFilesystem"], True)
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        self.assertNotIn("add", csc["capabilities"])
        self.assertFalse(csc.get("privileged", False))

    def test_command_line(self):
        self.assertEqual(self.c["args"][0], "serve")
        flags = flag_values(self.c["args"])
        unknown = set(flags) - STRATOSD_SERVE_FLAGS
        self.assertFalse(unknown, "flags stratosd does not have: %s" % unknown)
        self.assertEqual(flags["--tls-cert"], "/etc/stratos/tls/tls.crt")
        self.assertEqual(flags["--tls-key"], "/etc/stratos/tls/tls.key")
        self.assertEqual(flags["--client-ca"], "/etc/stratos/client-ca/ca.crt")
        self.assertIs(flags["--leader-elect"], True)
        self.assertEqual(flags["--listen"], ":8443")
        self.assertEqual(flags["--metrics-listen"], ":8080")
        self.assertEqual(flags["--cluster-name"], "$(CLUSTER_NAME)")
        self.assertEqual(flags["--namespace"], "$(POD_NAMESPACE)")

    def test_env_comes_from_downward_api_and_config(self):
        env = {e["name"]: e for e in self.c["env"]}
        self.assertEqual(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
                         "metadata.namespace")
        ref = env["CLUSTER_NAME"]["valueFrom"]["configMapKeyRef"]
        cm = next(o for o in self.objs if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"] == ref["name"])
        self.assertIn(ref["key"], cm["data"])
        self.assertTrue(ref["name"].startswith("stratos-config-"), "hash suffix rolls pods on change")
        # Every $(VAR) in args is defined before use.
        names = [e["name"] for e in self.c["env"]]
        for a in self.c["args"]:
            for var in re.findall(r"\$\((\w+)\)", a):
                self.assertIn(var, names)

    def test_probes_and_ports(self):
        ports = {p["name"]: p["containerPort"] for p in self.c["ports"]}
        self.assertEqual(ports, {"https": 8443, "metrics": 8080})
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = self.c[probe]["httpGet"]
            self.assertEqual(get["path"], path)
            self.assertIn(get["port"], ("metrics", 8080))
            self.assertNotIn("scheme", get)   # plain HTTP on the metrics port

    def test_resources(self):
        r = self.c["resources"]
        self.assertEqual(r["requests"]["cpu"], "100m")
        self.assertEqual(r["requests"]["memory"], "128Mi")
        self.assertEqual(r["limits"]["memory"], "512Mi")

    def test_tls_files_are_mounted_from_the_secrets(self):
        vols = {v["name"]: v for v in self.pod["volumes"]}
        mounts = {m["mountPath"]: m for m in self.c["volumeMounts"]}
        flags = flag_values(self.c["args"])
        for flag, secret, key in (("--tls-cert", "stratos-webhook-tls", "tls.crt"),
                                  ("--tls-key", "stratos-webhook-tls", "tls.key"),
                                  ("--client-ca", "stratos-client-ca", "ca.crt")):
            d, f = os.path.split(flags[flag])
            self.assertIn(d, mounts, flag)
            m = mounts[d]
            self.assertNotIn("subPath", m, "subPath mounts never see Secret rotation")
            self.assertTrue(m["readOnly"])
            self.assertEqual(vols[m["name"]]["secret"]["secretName"], secret)
            self.assertEqual(f, key)

    def test_service_and_pdb(self):
        svc = find(self.objs, "Service", SERVICE, NAMESPACE)
        labels = self.deploy["spec"]["template"]["metadata"]["labels"]
        for k, v in svc["spec"]["selector"].items():
            self.assertEqual(labels.get(k), v)
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        self.assertEqual((ports["https"]["port"], ports["https"]["targetPort"]), (443, "https"))
        self.assertEqual((ports["metrics"]["port"], ports["metrics"]["targetPort"]), (8080, "metrics"))
        pdb = find(self.objs, "PodDisruptionBudget", "stratos", NAMESPACE)
        self.assertEqual(pdb["spec"]["minAvailable"], 1)
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"],
                         self.deploy["spec"]["selector"]["matchLabels"])


# ------------------------------------------------------------------- RBAC

def _rules(role):
    out = {}
    for r in role["rules"]:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                key = (g, res, tuple(r.get("resourceNames", ())))
                out.setdefault(key, set()).update(r["verbs"])
    return out


class RBACTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = kustomize(MANIFESTS)

    def test_cluster_role_is_exactly_what_stratosd_needs(self):
        got = _rules(find(self.objs, "ClusterRole", "stratos"))
        want = {
            ("", "nodes", ()): {"get", "list", "watch", "patch", "delete"},
            ("", "pods", ()): {"get", "list", "watch"},
            ("", "pods/eviction", ()): {"create"},
            ("stratos.sh", "nodepools", ()): {"get", "list", "watch", "patch"},
            ("stratos.sh", "awsnodeclasses", ()): {"get", "list", "watch"},
            ("stratos.sh", "nodepools/status", ()): {"patch"},
            ("events.k8s.io", "events", ()): {"create"},
        }
        self.assertEqual(got, want)

    def test_namespaced_role(self):
        role = find(self.objs, "Role", "stratos", NAMESPACE)
        got = _rules(role)
        self.assertEqual(got, {
            ("coordination.k8s.io", "leases", ()): {"create"},
            ("coordination.k8s.io", "leases", ("stratos-controller",)): {"get", "update"},
            ("", "pods", ()): {"create", "delete"},
        })

    def test_no_wildcards_anywhere(self):
        for o in self.objs:
            if o["kind"] in ("Role", "ClusterRole"):
                for r in o["rules"]:
                    for field in ("apiGroups", "resources", "verbs"):
                        self.assertNotIn("*", r.get(field, []), o["metadata"]["name"])

    def test_bindings_point_at_the_service_accounts(self):
        for kind, name, ns in (("ClusterRoleBinding", "stratos", None),
                               ("RoleBinding", "stratos", NAMESPACE)):
            b = find(self.objs, kind, name, ns)
            self.assertEqual(b["subjects"], [{"kind": "ServiceAccount", "name": "stratos",
                                              "namespace": NAMESPACE}])
            self.assertEqual(b["roleRef"]["name"], "stratos")
        sched = {(o["kind"], o["roleRef"]["name"]) for o in self.objs
                 if o["kind"].endswith("Binding")
                 and o["subjects"][0]["name"] == "stratos-scheduler"}
        self.assertEqual(sched, {
            ("ClusterRoleBinding", "system:kube-scheduler"),
            ("ClusterRoleBinding", "system:volume-scheduler"),
            ("RoleBinding", "extension-apiserver-authentication-reader"),
            ("RoleBinding", "stratos-scheduler-leader-election"),
        })
        lease = _rules(find(self.objs, "Role", "stratos-scheduler-leader-election", NAMESPACE))
        self.assertEqual(lease[("coordination.k8s.io", "leases", ("stratos-scheduler",))],
                         {"get", "update"})


# --------------------------------------------------------------- webhooks

class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = kustomize(MANIFESTS)

    def _service(self, hook, path):
        svc = hook["clientConfig"]["service"]
        self.assertEqual((svc["name"], svc["namespace"], svc["path"], svc.get("port", 443)),
                         (SERVICE, NAMESPACE, path, 443))
        self.assertIn("caBundle", hook["clientConfig"])

    def test_mutating_pod_webhook(self):
        mwc = find(self.objs, "MutatingWebhookConfiguration", "stratos")
        self.assertEqual(len(mwc["webhooks"]), 1)
        h = mwc["webhooks"][0]
        self._service(h, "/admission/mutate-pod")
        self.assertEqual(h["rules"], [{"apiGroups": [""], "apiVersions": ["v1"],
                                       "operations": ["CREATE"], "resources": ["pods"],
                                       "scope": "Namespaced"}])
        self.assertEqual(h["failurePolicy"], "Ignore")
        self.assertEqual(h["sideEffects"], "None")
        self.assertEqual(h["timeoutSeconds"], 5)
        self.assertEqual(h["admissionReviewVersions"], ["v1"])
        self.assertIn(h["reinvocationPolicy"], ("IfNeeded", "Never"))
        self.assertEqual(h["namespaceSelector"]["matchExpressions"], [{
            "key": "kubernetes.io/metadata.name", "operator": "NotIn",
            "values": ["kube-system", "stratos-system"]}])

    def test_mutating_match_condition_lets_every_pool_pod_through(self):
        h = find(self.objs, "MutatingWebhookConfiguration", "stratos")["webhooks"][0]
        expr = h["matchConditions"][0]["expression"]
        pool_pods = [
            {"spec": {"nodeSelector": {"stratos.sh/pool": "ci-runners"}}},
            {"spec": {"nodeSelector": {"node-role.kubernetes.io/ci": ""}}},
            {"spec": {"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "stratos.sh/pool", "operator": "In",
                                           "values": ["a", "b"]}]}]}}}}},
        ]
        for pod in pool_pods:
            self.assertIs(cel_subset.evaluate(expr, object=pod), True, pod)
        for pod in ({"spec": {}}, {"spec": {"affinity": {"podAntiAffinity": {}}}}):
            self.assertIs(cel_subset.evaluate(expr, object=pod), False, pod)

    def test_validating_webhooks(self):
        vwc = find(self.objs, "ValidatingWebhookConfiguration", "stratos")
        hooks = {h["name"]: h for h in vwc["webhooks"]}
        for name, res, path in (("nodepools.stratos.sh", "nodepools", "/admission/validate-nodepool"),
                                ("awsnodeclasses.stratos.sh", "awsnodeclasses",
                                 "/admission/validate-awsnodeclass")):
            h = hooks[name]
            self._service(h, path)
            self.assertEqual(h["rules"], [{"apiGroups": ["stratos.sh"], "apiVersions": ["v1alpha1"],
                                           "operations": ["CREATE", "UPDATE"],
                                           "resources": [res], "scope": "Cluster"}])
            self.assertEqual(h["failurePolicy"], "Fail")
            self.assertEqual(h["sideEffects"], "None")
            self.assertEqual(h["admissionReviewVersions"], ["v1"])
            expr = h["matchConditions"][0]["expression"]
            self.assertIs(cel_subset.evaluate(expr, object={"metadata": {"name": "x"}}), True)
            self.assertIs(cel_subset.evaluate(
                expr, object={"metadata": {"name": "x", "deletionTimestamp": "2024-01-01T00:00:00Z"}}),
                False)
        # Deletes are seen for their warning only: never denied, never blocked by an outage.
        h = hooks["nodepool-deletes.stratos.sh"]
        self._service(h, "/admission/validate-nodepool")
        self.assertEqual(h["rules"], [{"apiGroups": ["stratos.sh"], "apiVersions": ["v1alpha1"],
                                       "operations": ["DELETE"], "resources": ["nodepools"],
                                       "scope": "Cluster"}])
        self.assertEqual(h["failurePolicy"], "Ignore")
        self.assertEqual(h["sideEffects"], "None")
        self.assertNotIn("matchConditions", h)
        self.assertEqual(len(hooks), 3)


# ------------------------------------------------------- second scheduler

class SchedulerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = kustomize(MANIFESTS)
        cls.deploy = find(cls.objs, "Deployment", "stratos-scheduler", NAMESPACE)
        cls.cm = find(cls.objs, "ConfigMap", "stratos-scheduler-config", NAMESPACE)
        cls.cfg = yaml.safe_load(cls.cm["data"]["config.yaml"])

    def test_configuration(self):
        cfg = self.cfg
        self.assertEqual(cfg["apiVersion"], "kubescheduler.config.k8s.io/v1")
        self.assertEqual(cfg["kind"], "KubeSchedulerConfiguration")
        self.assertEqual(cfg["podInitialBackoffSeconds"], 1)
        self.assertEqual(cfg["podMaxBackoffSeconds"], 1)
        self.assertEqual([p["schedulerName"] for p in cfg["profiles"]], ["stratos-scheduler"])
        le = cfg["leaderElection"]
        self.assertIs(le["leaderElect"], True)
        self.assertEqual((le["resourceName"], le["resourceNamespace"]),
                         ("stratos-scheduler", NAMESPACE))
        self.assertEqual(len(cfg["extenders"]), 1)
        ext = cfg["extenders"][0]
        self.assertEqual(ext["urlPrefix"], "https://%s.%s.svc:443/scheduler" % (SERVICE, NAMESPACE))
        self.assertEqual((ext["filterVerb"], ext["prioritizeVerb"]), ("filter", "prioritize"))
        self.assertGreater(ext["weight"], 0)
        self.assertIs(ext["nodeCacheCapable"], True)
        self.assertIs(ext["ignorable"], False)
        self.assertIs(ext["enableHTTPS"], True)
        self.assertEqual(ext["httpTimeout"], "10s")
        self.assertNotIn("managedResources", ext)
        self.assertFalse(ext["tlsConfig"].get("insecure", False))

    def test_files_in_the_configuration_are_mounted(self):
        pod = self.deploy["spec"]["template"]["spec"]
        c = container(self.deploy, "kube-scheduler")
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: vols[m["name"]] for m in c["volumeMounts"]}
        config = flag_values(c["command"])["--config"]
        d, f = os.path.split(config)
        self.assertEqual(mounts[d]["configMap"]["name"], self.cm["metadata"]["name"])
        self.assertIn(f, self.cm["data"])
        tls = self.cfg["extenders"][0]["tlsConfig"]
        for key, fname in (("caFile", "ca.crt"), ("certFile", "tls.crt"), ("keyFile", "tls.key")):
            d, f = os.path.split(tls[key])
            self.assertEqual(mounts[d]["secret"]["secretName"], "stratos-scheduler-client-tls")
            self.assertEqual(f, fname)

    def test_deployment(self):
        self.assertEqual(self.deploy["spec"]["replicas"], 2)
        pod = self.deploy["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], "stratos-scheduler")
        c = container(self.deploy, "kube-scheduler")
        self.assertRegex(c["image"], r"^registry\.k8s\.io/kube-scheduler:v1\.\d+\.\d+$")
        self.assertIs(c["securityContext"]["readOnlyRootFilesystem"], True)
        self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
        labels = self.deploy["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(labels["app.kubernetes.io/name"], "stratos-scheduler")

    def test_managed_resource_snippet(self):
        path = MANIFESTS / "components" / "managed-resource" / "kube-scheduler-extender.yaml"
        cfg = yaml.safe_load(path.read_text())
        self.assertEqual(cfg["kind"], "KubeSchedulerConfiguration")
        ext = cfg["extenders"][0]
        self.assertEqual(ext["managedResources"],
                         [{"name": "stratos.sh/pool-pod", "ignoredByScheduler": True}])
        self.assertIs(ext["ignorable"], False)
        self.assertIs(ext["nodeCacheCapable"], True)
        self.assertEqual((ext["filterVerb"], ext["prioritizeVerb"]), ("filter", "prioritize"))
        self.assertEqual(ext["tlsConfig"]["serverName"], "%s.%s.svc" % (SERVICE, NAMESPACE))
        # The extender needs these to serve pool pods as in the second scheduler (§6.3, §10).
        self.assertEqual(ext["httpTimeout"], "10s")
        self.assertIs(ext["enableHTTPS"], True)
        self.assertEqual(sorted(ext["tlsConfig"]), ["caFile", "certFile", "keyFile", "serverName"])
        self.assertEqual((cfg["podInitialBackoffSeconds"], cfg["podMaxBackoffSeconds"]), (1, 1))


class NetworkPolicyTest(unittest.TestCase):
    def test_ingress(self):
        objs = kustomize(MANIFESTS)
        np = find(objs, "NetworkPolicy", "stratos", NAMESPACE)
        deploy = find(objs, "Deployment", "stratos", NAMESPACE)
        sched = find(objs, "Deployment", "stratos-scheduler", NAMESPACE)
        self.assertEqual(np["spec"]["podSelector"]["matchLabels"],
                         deploy["spec"]["selector"]["matchLabels"])
        self.assertEqual(np["spec"]["policyTypes"], ["Ingress"])
        by_port = {}
        for rule in np["spec"]["ingress"]:
            for p in rule["ports"]:
                by_port.setdefault(p["port"], []).extend(rule["from"])
        self.assertEqual(set(by_port), {8443, 8080})
        sched_labels = sched["spec"]["template"]["metadata"]["labels"]
        peers = [p["podSelector"]["matchLabels"] for p in by_port[8443]
                 if "podSelector" in p and "namespaceSelector" not in p]
        self.assertTrue(any(all(sched_labels.get(k) == v for k, v in sel.items())
                            for sel in peers), "scheduler pods admitted to 8443")
        self.assertTrue(any("ipBlock" in p for p in by_port[8443]), "API server admitted by ipBlock")
        self.assertFalse(any("ipBlock" in p for p in by_port[8080]))


# --------------------------------------------------------------- CRD schemas

def load_crds():
    out = {}
    for f in sorted((MANIFESTS / "crds").glob("stratos.sh_*.yaml")):
        crd = yaml.safe_load(f.read_text())
        out[crd["spec"]["names"]["kind"]] = crd
    return out


def crd_schema(crd):
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def to_jsonschema(node, root=True):
    """A Kubernetes structural schema as JSON Schema (draft 4 subset).

    Objects with `properties` refuse unknown fields, which models kubectl's
    strict field validation (a typo must fail, not be pruned away).
    x-kubernetes-list-type: set becomes uniqueItems; list-map key uniqueness
    is checked separately (list_map_errors)."""
    out = {}
    for k, v in node.items():
        if k == "properties":
            out[k] = {p: to_jsonschema(s, False) for p, s in v.items()}
        elif k == "items":
            out[k] = to_jsonschema(v, False)
        elif k == "additionalProperties":
            out[k] = v if isinstance(v, bool) else to_jsonschema(v, False)
        elif k in ("type", "enum", "required", "minimum", "maximum", "minLength",
                   "maxLength", "pattern", "minItems", "maxItems", "minProperties",
                   "maxProperties", "format", "exclusiveMinimum", "exclusiveMaximum",
                   "multipleOf", "uniqueItems"):
            out[k] = copy.deepcopy(v)
        elif k in ("description", "default", "nullable", "example", "title") \
                or k.startswith("x-kubernetes-"):
            continue
        else:
            raise AssertionError("schema keyword %r not handled" % k)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else out["type"] + ["null"]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def apply_defaults(obj, node):
    """Structural defaulting as the API server does it: a null that is not
    nullable is dropped, missing fields get a copy of their default, and the
    walk goes on into defaulted values (so `default: {}` fills nested ones)."""
    if isinstance(obj, dict) and node.get("type") == "object":
        props = node.get("properties", {})
        for k, s in props.items():
            if k in obj and obj[k] is None and not s.get("nullable"):
                del obj[k]
            if k not in obj and "default" in s:
                obj[k] = copy.deepcopy(s["default"])
        extra = node.get("additionalProperties")
        for k, v in obj.items():
            if k in props:
                apply_defaults(v, props[k])
            elif isinstance(extra, dict):
                apply_defaults(v, extra)
    elif isinstance(obj, list) and "items" in node:
        for v in obj:
            apply_defaults(v, node["items"])
    return obj


def walk_schema(node, path=()):
    yield path, node
    for k, s in node.get("properties", {}).items():
        yield from walk_schema(s, path + (k,))
    if "items" in node:
        yield from walk_schema(node["items"], path + ("[]",))
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk_schema(node["additionalProperties"], path + ("{}",))


def walk_values(obj, node, path=()):
    """(path, value, schema) for every value of obj that has a schema."""
    yield path, obj, node
    if isinstance(obj, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for k, v in obj.items():
            if k in props:
                yield from walk_values(v, props[k], path + (k,))
            elif isinstance(extra, dict):
                yield from walk_values(v, extra, path + (k,))
    elif isinstance(obj, list) and "items" in node:
        for i, v in enumerate(obj):
            yield from walk_values(v, node["items"], path + (i,))


def list_map_errors(obj, schema):
    errs = []
    for path, value, node in walk_values(obj, schema):
        if node.get("x-kubernetes-list-type") == "map" and isinstance(value, list):
            keys = [tuple(json.dumps(item.get(k)) for k in node["x-kubernetes-list-map-keys"])
                    for item in value]
            for i, key in enumerate(keys):
                if key in keys[:i]:
                    errs.append((path + (i,), "duplicate entry %s" % (key,)))
    return errs


def cel_errors(obj, schema):
    """Evaluate every x-kubernetes-validations rule where obj has a value.
    Returns [(path, message)] for rules that are false or fail to evaluate."""
    errs = []
    for path, value, node in walk_values(obj, schema):
        for rule in node.get("x-kubernetes-validations", []):
            try:
                ok = cel_subset.evaluate(rule["rule"], self=value)
            except cel_subset.CelError as e:
                errs.append((path, "evaluation error in %r: %s" % (rule["rule"], e)))
                continue
            if ok is not True:
                fp = rule.get("fieldPath", "")
                errs.append((path + tuple(p for p in fp.split(".") if p), rule["message"]))
    return errs


# Schema violations after which the API server does not run the CEL rules
# (apiextensions-apiserver hasBlockingErr: wrong type, required, enum, too
# long, too many); pattern and range violations do not block them.
BLOCKING = {"type", "required", "enum", "maxLength", "maxItems", "maxProperties"}


def schema_errors(obj, schema):
    v = jsonschema.Draft4Validator(to_jsonschema(schema),
                                   format_checker=jsonschema.FormatChecker())
    return [(tuple(e.absolute_path), e.message, e.validator) for e in v.iter_errors(obj)]


def admit(kind, obj, crds):
    """Default obj like the API server and return every violation:
    [(source, path, message)] with source schema, list-map or cel."""
    schema = crd_schema(crds[kind])
    obj = apply_defaults(copy.deepcopy(obj), schema)
    errs = schema_errors(obj, schema)
    out = [("schema", path, msg) for path, msg, _ in errs]
    out += [("list-map",) + e for e in list_map_errors(obj, schema)]
    if any(validator in BLOCKING for _, _, validator in errs):
        out.append(("cel-skipped", (), "some validation rules were not checked"))
    else:
        out += [("cel",) + e for e in cel_errors(obj, schema)]
    return obj, out


def seed_objects():
    return [d for d in yaml.safe_load_all(SEED.read_text()) if d]


def seed(kind, name):
    return next(copy.deepcopy(d) for d in seed_objects()
                if d["kind"] == kind and d["metadata"]["name"] == name)


class CRDStructureTest(unittest.TestCase):
    """What the API server checks when the CRD itself is created."""

    @classmethod
    def setUpClass(cls):
        cls.crds = load_crds()

    def test_names_scope_versions(self):
        self.assertEqual(set(self.crds), {"NodePool", "AWSNodeClass"})
        for kind, plural, short in (("NodePool", "nodepools", "np"),
                                    ("AWSNodeClass", "awsnodeclasses", "awsnc")):
            crd = self.crds[kind]
            self.assertEqual(crd["apiVersion"], "apiextensions.k8s.io/v1")
            self.assertEqual(crd["metadata"]["name"], plural + ".stratos.sh")
            spec = crd["spec"]
            self.assertEqual((spec["group"], spec["scope"]), ("stratos.sh", "Cluster"))
            self.assertEqual(spec["names"]["plural"], plural)
            self.assertIn(short, spec["names"]["shortNames"])
            (v,) = spec["versions"]
            self.assertEqual((v["name"], v["served"], v["storage"]), ("v1alpha1", True, True))
            self.assertEqual(v["subresources"], {"status": {}})

    def test_printer_columns(self):
        cols = {k: {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
                for k, crd in self.crds.items()}
        np = cols["NodePool"]
        self.assertEqual(np["Size"], ".spec.poolSize")
        self.assertEqual(np["Standby"], ".status.nodes.standby")
        self.assertEqual(np["Running"], ".status.nodes.running")
        self.assertEqual(np["Ready"], '.status.conditions[?(@.type=="Ready")].status')
        anc = cols["AWSNodeClass"]
        self.assertEqual(anc["Instance-Type"], ".spec.instanceType")
        self.assertEqual(anc["AMI"], ".spec.ami")
        for crd in self.crds.values():
            schema = crd_schema(crd)
            for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
                m = re.match(r"^\.(spec|status)((\.\w+)+)", c["jsonPath"])
                if not m:
                    continue
                node = schema["properties"][m.group(1)]
                for part in m.group(2).strip(".").split("."):
                    node = node["properties"][part]   # the column names a real field

    def test_structural(self):
        for kind, crd in self.crds.items():
            schema = crd_schema(crd)
            self.assertEqual(schema["properties"]["metadata"], {"type": "object"})
            for path, node in walk_schema(schema):
                where = "%s %s" % (kind, ".".join(path) or "<root>")
                self.assertIn(node.get("type"), ("object", "array", "string", "integer", "boolean", "number"),
                              where)
                if node["type"] == "array":
                    self.assertIn("items", node, where)
                if node["type"] == "object":
                    self.assertFalse("properties" in node and "additionalProperties" in node, where)
                for enum in node.get("enum", []):
                    self.assertIsInstance(enum, str if node["type"] == "string" else object, where)
                if node.get("x-kubernetes-list-type") == "map":
                    keys = node["x-kubernetes-list-map-keys"]
                    item = node["items"]
                    for k in keys:
                        self.assertTrue(k in item.get("required", []) or "default" in item["properties"][k],
                                        where)
                for r in node.get("required", []):
                    self.assertIn(r, node["properties"], where)

    def test_everything_is_bounded(self):
        """Bounded lists, maps and strings: a rule of the project, and what
        keeps the API server's CEL cost estimate within its budget."""
        for kind, crd in self.crds.items():
            for path, node in walk_schema(crd_schema(crd)):
                where = "%s %s" % (kind, ".".join(path))
                if path in (("apiVersion",), ("kind",)):
                    continue
                if node["type"] == "array":
                    self.assertIn("maxItems", node, where)
                if node["type"] == "object" and isinstance(node.get("additionalProperties"), dict):
                    self.assertIn("maxProperties", node, where)
                if node["type"] == "string":
                    self.assertTrue("maxLength" in node or "enum" in node
                                    or node.get("format") == "date-time", where)

    def test_defaults_are_valid_and_match_design(self):
        want = {
            ("AWSNodeClass", "spec.blockDeviceMappings.[].volumeType"): "gp3",
            ("AWSNodeClass", "spec.blockDeviceMappings.[].encrypted"): False,
            ("AWSNodeClass", "spec.blockDeviceMappings.[].deleteOnTermination"): True,
            ("AWSNodeClass", "spec.metadataOptions"): {},
            ("AWSNodeClass", "spec.metadataOptions.httpTokens"): "required",
            ("AWSNodeClass", "spec.metadataOptions.httpPutResponseHopLimit"): 2,
            ("NodePool", "spec.template.nodeClassRef.kind"): "AWSNodeClass",
            ("NodePool", "spec.template.startupTaintRemoval"): "WhenNetworkReady",
            ("NodePool", "spec.preWarm"): {},
            ("NodePool", "spec.preWarm.timeout"): "10m",
            ("NodePool", "spec.preWarm.timeoutAction"): "stop",
            ("NodePool", "spec.scaleDown"): {},
            ("NodePool", "spec.scaleDown.enabled"): True,
            ("NodePool", "spec.scaleDown.emptyNodeTTL"): "5m",
            ("NodePool", "spec.scaleDown.drainTimeout"): "5m",
        }
        got = {}
        for kind, crd in self.crds.items():
            for path, node in walk_schema(crd_schema(crd)):
                if "default" not in node:
                    continue
                self.assertNotIn("metadata", path)
                got[(kind, ".".join(path))] = node["default"]
                # The API server requires a default to be valid once defaulted.
                value = apply_defaults(copy.deepcopy(node["default"]), node)
                jsonschema.validate(value, to_jsonschema(node))
                self.assertFalse(cel_errors(value, node), path)
        self.assertEqual(got, want)

    def test_cel_rules_parse_and_carry_messages(self):
        count = 0
        for kind, crd in self.crds.items():
            for path, node in walk_schema(crd_schema(crd)):
                for rule in node.get("x-kubernetes-validations", []):
                    cel_subset.compile_rule(rule["rule"])
                    self.assertTrue(rule.get("message"), rule)
                    if "fieldPath" in rule:
                        target = node
                        for part in rule["fieldPath"].strip(".").split("."):
                            target = target["properties"][part]
                    count += 1
        self.assertGreaterEqual(count, 10)


class CRDSeedTest(unittest.TestCase):
    """Every seed example is admitted, and defaulted as DESIGN §3 says."""

    @classmethod
    def setUpClass(cls):
        cls.crds = load_crds()

    def test_seed_examples_validate(self):
        objs = seed_objects()
        self.assertEqual(len(objs), 6)
        for obj in objs:
            self.assertEqual(obj["apiVersion"], "stratos.sh/v1alpha1")
            _, errs = admit(obj["kind"], obj, self.crds)
            self.assertEqual(errs, [], "%s %s" % (obj["kind"], obj["metadata"]["name"]))

    def test_seed_defaults(self):
        pool, _ = admit("NodePool", seed("NodePool", "on-demand"), self.crds)
        self.assertEqual(pool["spec"]["preWarm"], {"timeout": "10m", "timeoutAction": "stop"})
        self.assertEqual(pool["spec"]["scaleDown"],
                         {"enabled": True, "emptyNodeTTL": "2m", "drainTimeout": "30s"})
        ci, _ = admit("NodePool", seed("NodePool", "ci-runners"), self.crds)
        self.assertEqual(ci["spec"]["preWarm"], {"timeout": "15m", "timeoutAction": "terminate"})
        cls, _ = admit("AWSNodeClass", seed("AWSNodeClass", "ci-runners"), self.crds)
        self.assertEqual(cls["spec"]["metadataOptions"],
                         {"httpTokens": "required", "httpPutResponseHopLimit": 2})
        self.assertEqual(cls["spec"]["blockDeviceMappings"][0],
                         {"deviceName": "/dev/xvda", "volumeSize": 200, "volumeType": "gp3",
                          "encrypted": True, "deleteOnTermination": True})
        minimal = {"apiVersion": "stratos.sh/v1alpha1", "kind": "NodePool",
                   "metadata": {"name": "p"},
                   "spec": {"poolSize": 1, "minStandby": 0,
                            "template": {"nodeClassRef": {"name": "c"}}}}
        got, errs = admit("NodePool", minimal, self.crds)
        self.assertEqual(errs, [])
        self.assertEqual(got["spec"]["template"],
                         {"nodeClassRef": {"name": "c", "kind": "AWSNodeClass"},
                          "startupTaintRemoval": "WhenNetworkReady"})
        self.assertEqual(got["spec"]["scaleDown"],
                         {"enabled": True, "emptyNodeTTL": "5m", "drainTimeout": "5m"})

    def test_nulls_are_defaulted_not_rejected(self):
        pool = seed("NodePool", "ci-runners")
        pool["spec"]["preWarm"]["timeoutAction"] = None
        got, errs = admit("NodePool", pool, self.crds)
        self.assertEqual(errs, [])
        self.assertEqual(got["spec"]["preWarm"]["timeoutAction"], "stop")


def _set(path, value):
    def mutate(obj):
        node = obj
        for p in path[:-1]:
            node = node.setdefault(p, {}) if isinstance(p, str) else node[p]
        node[path[-1]] = value
    return mutate


def _del(path):
    def mutate(obj):
        node = obj
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
    return mutate


def _bdm(**fields):
    m = {"deviceName": "/dev/xvda", "volumeSize": 100}
    m.update(fields)
    return _set(("spec", "blockDeviceMappings"), [m])


# (name, kind, seed name, mutation, expected source, expected path prefix)
INVALID = [
    ("instanceType missing", "AWSNodeClass", _del(("spec", "instanceType")), "schema", ("spec",)),
    ("instanceType without size", "AWSNodeClass", _set(("spec", "instanceType"), "m5"), "schema", ("spec", "instanceType")),
    ("instanceType upper case", "AWSNodeClass", _set(("spec", "instanceType"), "M5.large"), "schema", ("spec", "instanceType")),
    ("ami short", "AWSNodeClass", _set(("spec", "ami"), "ami-1234567"), "schema", ("spec", "ami")),
    ("ami 16 hex", "AWSNodeClass", _set(("spec", "ami"), "ami-0123456789abcdef"), "schema", ("spec", "ami")),
    ("ami upper hex", "AWSNodeClass", _set(("spec", "ami"), "ami-0123456789ABCDEF0"), "schema", ("spec", "ami")),
    ("ami wrong prefix", "AWSNodeClass", _set(("spec", "ami"), "aki-12345678"), "schema", ("spec", "ami")),
    ("region malformed", "AWSNodeClass", _set(("spec", "region"), "US-EAST-1"), "schema", ("spec", "region")),
    ("no subnets", "AWSNodeClass", _set(("spec", "subnetIds"), []), "schema", ("spec", "subnetIds")),
    ("bad subnet id", "AWSNodeClass", _set(("spec", "subnetIds"), ["subnet-1234567"]), "schema", ("spec", "subnetIds", 0)),
    ("17 subnets", "AWSNodeClass", _set(("spec", "subnetIds"), ["subnet-%08x" % i for i in range(17)]), "schema", ("spec", "subnetIds")),
    ("duplicate subnets", "AWSNodeClass", _set(("spec", "subnetIds"), ["subnet-12345678"] * 2), "schema", ("spec", "subnetIds")),
    ("security groups missing", "AWSNodeClass", _del(("spec", "securityGroupIds")), "schema", ("spec",)),
    ("bad sg id", "AWSNodeClass", _set(("spec", "securityGroupIds"), ["sg-zzzzzzzz"]), "schema", ("spec", "securityGroupIds", 0)),
    ("subnet id as sg", "AWSNodeClass", _set(("spec", "securityGroupIds"), ["subnet-12345678"]), "schema", ("spec", "securityGroupIds", 0)),
    ("profile short account", "AWSNodeClass", _set(("spec", "iamInstanceProfile"), "arn:aws:iam::12345:instance-profile/x"), "schema", ("spec", "iamInstanceProfile")),
    ("profile is a role ARN", "AWSNodeClass", _set(("spec", "iamInstanceProfile"), "arn:aws:iam::123456789012:role/x"), "schema", ("spec", "iamInstanceProfile")),
    ("profile name with space", "AWSNodeClass", _set(("spec", "iamInstanceProfile"), "my profile"), "schema", ("spec", "iamInstanceProfile")),
    ("device name not /dev", "AWSNodeClass", _bdm(deviceName="xvda"), "schema", ("spec", "blockDeviceMappings", 0, "deviceName")),
    ("volume size 0", "AWSNodeClass", _bdm(volumeSize=0), "schema", ("spec", "blockDeviceMappings", 0, "volumeSize")),
    ("volume size 65537", "AWSNodeClass", _bdm(volumeSize=65537), "schema", ("spec", "blockDeviceMappings", 0, "volumeSize")),
    ("volume size missing", "AWSNodeClass", _set(("spec", "blockDeviceMappings"), [{"deviceName": "/dev/xvda"}]), "schema", ("spec", "blockDeviceMappings", 0)),
    ("volume type gp4", "AWSNodeClass", _bdm(volumeType="gp4"), "schema", ("spec", "blockDeviceMappings", 0, "volumeType")),
    ("iops on gp2", "AWSNodeClass", _bdm(volumeType="gp2", iops=3000), "cel", ("spec", "blockDeviceMappings", 0, "iops")),
    ("iops on st1", "AWSNodeClass", _bdm(volumeType="st1", iops=500), "cel", ("spec", "blockDeviceMappings", 0, "iops")),
    ("iops gp3 too low", "AWSNodeClass", _bdm(volumeType="gp3", iops=2999), "cel", ("spec", "blockDeviceMappings", 0, "iops")),
    ("iops gp3 by default too high", "AWSNodeClass", _bdm(iops=80001), "cel", ("spec", "blockDeviceMappings", 0, "iops")),
    ("iops io1 too high", "AWSNodeClass", _bdm(volumeType="io1", iops=64001), "cel", ("spec", "blockDeviceMappings", 0, "iops")),
    ("iops io2 too high", "AWSNodeClass", _bdm(volumeType="io2", iops=256001), "schema", ("spec", "blockDeviceMappings", 0, "iops")),
    ("iops io2 too low", "AWSNodeClass", _bdm(volumeType="io2", iops=99), "schema", ("spec", "blockDeviceMappings", 0, "iops")),
    ("throughput on io1", "AWSNodeClass", _bdm(volumeType="io1", iops=1000, throughput=500), "cel", ("spec", "blockDeviceMappings", 0, "throughput")),
    ("throughput too low", "AWSNodeClass", _bdm(throughput=124), "schema", ("spec", "blockDeviceMappings", 0, "throughput")),
    ("throughput too high", "AWSNodeClass", _bdm(throughput=2001), "schema", ("spec", "blockDeviceMappings", 0, "throughput")),
    ("kms key unencrypted", "AWSNodeClass", _bdm(kmsKeyId="alias/ebs"), "cel", ("spec", "blockDeviceMappings", 0, "kmsKeyId")),
    ("kms key encrypted false", "AWSNodeClass", _bdm(kmsKeyId="alias/ebs", encrypted=False), "cel", ("spec", "blockDeviceMappings", 0, "kmsKeyId")),
    ("duplicate device", "AWSNodeClass", _set(("spec", "blockDeviceMappings"), [{"deviceName": "/dev/xvda", "volumeSize": 1}] * 2), "list-map", ("spec", "blockDeviceMappings", 1)),
    ("17 volumes", "AWSNodeClass", _set(("spec", "blockDeviceMappings"), [{"deviceName": "/dev/sd" + chr(97 + i), "volumeSize": 1} for i in range(17)]), "schema", ("spec", "blockDeviceMappings")),
    ("user data 16385 chars", "AWSNodeClass", _set(("spec", "userData"), "x" * 16385), "schema", ("spec", "userData")),
    ("user data 16400 bytes", "AWSNodeClass", _set(("spec", "userData"), "é" * 8200), "cel", ("spec", "userData")),
    ("http tokens disabled", "AWSNodeClass", _set(("spec", "metadataOptions"), {"httpTokens": "disabled"}), "schema", ("spec", "metadataOptions", "httpTokens")),
    ("hop limit 0", "AWSNodeClass", _set(("spec", "metadataOptions"), {"httpPutResponseHopLimit": 0}), "schema", ("spec", "metadataOptions", "httpPutResponseHopLimit")),
    ("hop limit 65", "AWSNodeClass", _set(("spec", "metadataOptions"), {"httpPutResponseHopLimit": 65}), "schema", ("spec", "metadataOptions", "httpPutResponseHopLimit")),
    ("tag stratos.sh/", "AWSNodeClass", _set(("spec", "tags"), {"stratos.sh/pool": "x"}), "cel", ("spec", "tags")),
    ("tag aws:", "AWSNodeClass", _set(("spec", "tags"), {"team": "a", "aws:cloudformation:stack-name": "x"}), "cel", ("spec", "tags")),
    ("tag key too long", "AWSNodeClass", _set(("spec", "tags"), {"k" * 129: "x"}), "cel", ("spec", "tags")),
    ("tag key empty", "AWSNodeClass", _set(("spec", "tags"), {"": "x"}), "cel", ("spec", "tags")),
    ("tag value too long", "AWSNodeClass", _set(("spec", "tags"), {"k": "v" * 257}), "schema", ("spec", "tags", "k")),
    ("46 tags", "AWSNodeClass", _set(("spec", "tags"), {"k%d" % i: "v" for i in range(46)}), "schema", ("spec", "tags")),
    ("unknown field", "AWSNodeClass", _set(("spec", "instanceTypes"), ["m5.large"]), "schema", ("spec",)),
    ("pool size 0", "NodePool", _set(("spec", "poolSize"), 0), "schema", ("spec", "poolSize")),
    ("pool size 1001", "NodePool", _set(("spec", "poolSize"), 1001), "schema", ("spec", "poolSize")),
    ("pool size string", "NodePool", _set(("spec", "poolSize"), "20"), "schema", ("spec", "poolSize")),
    ("pool size missing", "NodePool", _del(("spec", "poolSize")), "schema", ("spec",)),
    ("min standby negative", "NodePool", _set(("spec", "minStandby"), -1), "schema", ("spec", "minStandby")),
    ("min standby above pool size", "NodePool", _set(("spec", "minStandby"), 21), "cel", ("spec", "minStandby")),
    ("min standby missing", "NodePool", _del(("spec", "minStandby")), "schema", ("spec",)),
    ("node class kind", "NodePool", _set(("spec", "template", "nodeClassRef", "kind"), "EC2NodeClass"), "schema", ("spec", "template", "nodeClassRef", "kind")),
    ("node class name", "NodePool", _set(("spec", "template", "nodeClassRef", "name"), "CI_Runners"), "schema", ("spec", "template", "nodeClassRef", "name")),
    ("node class name missing", "NodePool", _del(("spec", "template", "nodeClassRef", "name")), "schema", ("spec", "template", "nodeClassRef")),
    ("template missing", "NodePool", _del(("spec", "template")), "schema", ("spec",)),
    ("pool label mismatch", "NodePool", _set(("spec", "template", "labels", "stratos.sh/pool"), "other"), "cel", ("spec", "template", "labels")),
    ("label value syntax", "NodePool", _set(("spec", "template", "labels", "team"), "-ci"), "schema", ("spec", "template", "labels", "team")),
    ("label value too long", "NodePool", _set(("spec", "template", "labels", "team"), "a" * 64), "schema", ("spec", "template", "labels", "team")),
    ("65 labels", "NodePool", _set(("spec", "template", "labels"), {"l%d" % i: "" for i in range(65)}), "schema", ("spec", "template", "labels")),
    ("taint effect typo", "NodePool", _set(("spec", "template", "startupTaints", 0, "effect"), "NoSchedul"), "schema", ("spec", "template", "startupTaints", 0, "effect")),
    ("taint effect missing", "NodePool", _del(("spec", "template", "startupTaints", 0, "effect")), "schema", ("spec", "template", "startupTaints", 0)),
    ("taint key syntax", "NodePool", _set(("spec", "template", "startupTaints", 0, "key"), "not ready"), "schema", ("spec", "template", "startupTaints", 0, "key")),
    ("taint key two slashes", "NodePool", _set(("spec", "template", "startupTaints", 0, "key"), "a/b/c"), "schema", ("spec", "template", "startupTaints", 0, "key")),
    ("taint value syntax", "NodePool", _set(("spec", "template", "startupTaints", 0, "value"), "not ready"), "schema", ("spec", "template", "startupTaints", 0, "value")),
    ("duplicate taint", "NodePool", _set(("spec", "template", "startupTaints"), [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "value": "x", "effect": "NoSchedule"}]), "list-map", ("spec", "template", "startupTaints", 1)),
    ("17 taints", "NodePool", _set(("spec", "template", "startupTaints"), [{"key": "t%d" % i, "effect": "NoSchedule"} for i in range(17)]), "schema", ("spec", "template", "startupTaints")),
    ("taint removal", "NodePool", _set(("spec", "template", "startupTaintRemoval"), "Always"), "schema", ("spec", "template", "startupTaintRemoval")),
    ("timeout prose", "NodePool", _set(("spec", "preWarm", "timeout"), "15 minutes"), "schema", ("spec", "preWarm", "timeout")),
    ("timeout unitless", "NodePool", _set(("spec", "preWarm", "timeout"), "900"), "schema", ("spec", "preWarm", "timeout")),
    ("timeout below 1m", "NodePool", _set(("spec", "preWarm", "timeout"), "59s"), "cel", ("spec", "preWarm", "timeout")),
    ("timeout above 2h", "NodePool", _set(("spec", "preWarm", "timeout"), "2h0m1s"), "cel", ("spec", "preWarm", "timeout")),
    ("timeout action", "NodePool", _set(("spec", "preWarm", "timeoutAction"), "delete"), "schema", ("spec", "preWarm", "timeoutAction")),
    ("65 images", "NodePool", _set(("spec", "preWarm", "imagesToPull"), ["img%d:1" % i for i in range(65)]), "schema", ("spec", "preWarm", "imagesToPull")),
    ("empty image", "NodePool", _set(("spec", "preWarm", "imagesToPull"), [""]), "schema", ("spec", "preWarm", "imagesToPull", 0)),
    ("duplicate image", "NodePool", _set(("spec", "preWarm", "imagesToPull"), ["a:1", "a:1"]), "schema", ("spec", "preWarm", "imagesToPull")),
    ("scale down enabled string", "NodePool", _set(("spec", "scaleDown", "enabled"), "yes"), "schema", ("spec", "scaleDown", "enabled")),
    ("negative TTL", "NodePool", _set(("spec", "scaleDown", "emptyNodeTTL"), "-5m"), "schema", ("spec", "scaleDown", "emptyNodeTTL")),
    ("drain timeout days", "NodePool", _set(("spec", "scaleDown", "drainTimeout"), "1d"), "schema", ("spec", "scaleDown", "drainTimeout")),
    ("pool name 64 chars", "NodePool", _set(("metadata", "name"), "p" * 64), "cel", ()),
]

VALID = [
    ("bare profile name", "AWSNodeClass", _set(("spec", "iamInstanceProfile"), "node-role")),
    ("profile with path, aws-cn", "AWSNodeClass", _set(("spec", "iamInstanceProfile"), "arn:aws-cn:iam::123456789012:instance-profile/team/a/node")),
    ("profile aws-us-gov", "AWSNodeClass", _set(("spec", "iamInstanceProfile"), "arn:aws-us-gov:iam::123456789012:instance-profile/node")),
    ("ami 8 hex", "AWSNodeClass", _set(("spec", "ami"), "ami-12345678")),
    ("subnet and sg 17 hex", "AWSNodeClass", lambda o: (_set(("spec", "subnetIds"), ["subnet-0123456789abcdef0", "subnet-12345678"])(o),
                                                         _set(("spec", "securityGroupIds"), ["sg-0123456789abcdef0"])(o))),
    ("instance types", "AWSNodeClass", _set(("spec", "instanceType"), "u-6tb1.metal")),
    ("instance type flex", "AWSNodeClass", _set(("spec", "instanceType"), "m7i-flex.large")),
    ("instance type metal-48xl", "AWSNodeClass", _set(("spec", "instanceType"), "c7a.metal-48xl")),
    ("region", "AWSNodeClass", _set(("spec", "region"), "us-gov-west-1")),
    ("io2 max iops", "AWSNodeClass", _bdm(volumeType="io2", iops=256000)),
    ("io1 max iops", "AWSNodeClass", _bdm(volumeType="io1", iops=64000)),
    ("io1 min iops", "AWSNodeClass", _bdm(volumeType="io1", iops=100)),
    ("gp3 max", "AWSNodeClass", _bdm(volumeType="gp3", iops=80000, throughput=2000)),
    ("gp3 default with iops", "AWSNodeClass", _bdm(iops=3000, throughput=125)),
    ("st1 no iops", "AWSNodeClass", _bdm(volumeType="st1", volumeSize=65536)),
    ("kms encrypted", "AWSNodeClass", _bdm(encrypted=True, kmsKeyId="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")),
    ("several volumes", "AWSNodeClass", _set(("spec", "blockDeviceMappings"), [{"deviceName": "/dev/xvda", "volumeSize": 50}, {"deviceName": "/dev/sdf", "volumeSize": 500, "volumeType": "io2", "iops": 10000}])),
    ("no user data", "AWSNodeClass", _del(("spec", "userData"))),
    ("user data 16384 bytes", "AWSNodeClass", _set(("spec", "userData"), "x" * 16384)),
    ("user data 8192 two-byte chars", "AWSNodeClass", _set(("spec", "userData"), "é" * 8192)),
    ("metadata options", "AWSNodeClass", _set(("spec", "metadataOptions"), {"httpTokens": "optional", "httpPutResponseHopLimit": 64})),
    ("tags", "AWSNodeClass", _set(("spec", "tags"), {"team": "ci", "cost-center": "42", "Stratos.sh-like": "ok", "k" * 128: "v" * 256})),
    ("45 tags", "AWSNodeClass", _set(("spec", "tags"), {"k%d" % i: "v" for i in range(45)})),
    ("pool size bounds", "NodePool", lambda o: (_set(("spec", "poolSize"), 1000)(o), _set(("spec", "minStandby"), 1000)(o))),
    ("min standby 0", "NodePool", _set(("spec", "minStandby"), 0)),
    ("no labels", "NodePool", _del(("spec", "template", "labels"))),
    ("labels without pool", "NodePool", _set(("spec", "template", "labels"), {"team": "ci"})),
    ("no startup taints", "NodePool", _del(("spec", "template", "startupTaints"))),
    ("taint without value", "NodePool", _set(("spec", "template", "startupTaints"), [{"key": "example.com/booting", "effect": "NoExecute"}])),
    ("same key two effects", "NodePool", _set(("spec", "template", "startupTaints"), [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}])),
    ("removal Never", "NodePool", _set(("spec", "template", "startupTaintRemoval"), "Never")),
    ("timeout 1m", "NodePool", _set(("spec", "preWarm", "timeout"), "1m")),
    ("timeout 2h", "NodePool", _set(("spec", "preWarm", "timeout"), "2h")),
    ("timeout 1h30m", "NodePool", _set(("spec", "preWarm", "timeout"), "1h30m")),
    ("timeout 1.5h", "NodePool", _set(("spec", "preWarm", "timeout"), "1.5h")),
    ("timeout 7200s", "NodePool", _set(("spec", "preWarm", "timeout"), "7200s")),
    ("64 images", "NodePool", _set(("spec", "preWarm", "imagesToPull"), ["registry.example.com/img%d@sha256:%s" % (i, "a" * 64) for i in range(64)])),
    ("TTL 0", "NodePool", _set(("spec", "scaleDown", "emptyNodeTTL"), "0")),
    ("scale down disabled", "NodePool", _set(("spec", "scaleDown"), {"enabled": False})),
    ("pool name 63 chars", "NodePool", lambda o: (_set(("metadata", "name"), "p" * 63)(o), _del(("spec", "template", "labels", "stratos.sh/pool"))(o))),
]


class CRDValidationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.crds = load_crds()

    def _case(self, kind, mutate):
        obj = seed(kind, "ci-runners")
        mutate(obj)
        return admit(kind, obj, self.crds)[1]

    def test_invalid_objects_are_rejected(self):
        for name, kind, mutate, source, path in INVALID:
            with self.subTest(name):
                errs = self._case(kind, mutate)
                self.assertTrue(errs, "accepted")
                self.assertTrue(any(e[0] == source and tuple(e[1][:len(path)]) == path for e in errs),
                                "want a %s error at %s, got %s" % (source, path, errs))
                # One rule, one violation: no collateral errors.
                self.assertFalse([e for e in errs if e[0] == "cel" and "evaluation error" in e[2]], errs)

    def test_valid_variants_are_admitted(self):
        for name, kind, mutate in VALID:
            with self.subTest(name):
                self.assertEqual(self._case(kind, mutate), [])

    def test_admission_fixture_reports_every_violation(self):
        review = json.loads(INVALID_NODEPOOL_REVIEW.read_text())
        obj = review["request"]["object"]
        _, errs = admit("NodePool", obj, self.crds)
        self.assertEqual({(e[0], e[1]) for e in errs}, {
            ("schema", ("spec", "template", "startupTaints", 0, "effect")),
            ("schema", ("spec", "preWarm", "timeout")),
            # As in the API server, an enum violation holds the CEL rules back.
            ("cel-skipped", ())})
        obj["spec"]["template"]["startupTaints"][0]["effect"] = "NoSchedule"
        _, errs = admit("NodePool", obj, self.crds)
        self.assertEqual({(e[0], e[1]) for e in errs}, {
            ("cel", ("spec", "minStandby")),
            ("schema", ("spec", "preWarm", "timeout"))})


class CelSubsetTest(unittest.TestCase):
    """The interpreter the CRD tests rely on follows CEL where it matters."""

    def test_semantics(self):
        ev = cel_subset.evaluate
        self.assertIs(ev("self.a", self={"a": True}), True)
        with self.assertRaises(cel_subset.CelError):
            ev("self.b", self={"a": 1})
        # Error absorption by the deciding side, both orders.
        self.assertIs(ev("self.b == 1 || true", self={}), True)
        self.assertIs(ev("false && self.b == 1", self={}), False)
        self.assertIs(ev("self.b == 1 && false", self={}), False)
        with self.assertRaises(cel_subset.CelError):
            ev("self.b == 1 || false", self={})
        with self.assertRaises(cel_subset.CelError):
            ev("1 == true", self={})
        self.assertEqual(ev("has(self.a) ? self.a : 'x'", self={}), "x")
        self.assertIs(ev("'k' in self", self={"k": 1}), True)
        self.assertIs(ev("self.all(k, k.startsWith('a'))", self={"ab": 1, "ac": 2}), True)
        self.assertIs(ev("self.exists(x, x > 2)", self=[1, 3]), True)
        self.assertIs(ev("size(self) == 2 && size(bytes(self)) == 4", self="éé"), True)
        self.assertIs(ev("duration(self) == duration('90m')", self="1h30m"), True)
        self.assertIs(ev("duration('1.5h') > duration('89m')", self=None), True)
        self.assertIs(ev("self.matches('^a+$')", self="aaa"), True)
        self.assertIs(ev("!(self in ['gp3', 'io1'])", self="gp2"), True)
        for bad in ("self.map(x, x)", "self + 1", "self.foo()", "size(self, 1)"):
            with self.assertRaises(cel_subset.CelSyntaxError, msg=bad):
                cel_subset.compile_rule(bad)


# -------------------------------------------------------------- IAM policy

class IAMPolicyTest(unittest.TestCase):
    def test_policy(self):
        doc = json.loads((MANIFESTS / "iam-policy.json").read_text())
        self.assertEqual(doc["Version"], "2012-10-17")
        actions = {}
        for st in doc["Statement"]:
            self.assertEqual(st["Effect"], "Allow")
            for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"]):
                self.assertNotIn("*", a)
                actions.setdefault(a, []).append(st)
        self.assertEqual(set(actions), {
            "ec2:RunInstances", "ec2:StartInstances", "ec2:StopInstances",
            "ec2:TerminateInstances", "ec2:DescribeInstances", "ec2:CreateTags",
            "ec2:DeleteTags", "iam:PassRole"})
        for a in ("ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances", "ec2:DeleteTags"):
            for st in actions[a]:
                self.assertEqual(st["Condition"]["StringEquals"]["aws:ResourceTag/managed-by"], "stratos", a)
        # The instance itself may only be launched carrying the Stratos tags.
        inst = [st for st in actions["ec2:RunInstances"] if "instance/" in json.dumps(st["Resource"])]
        self.assertEqual(len(inst), 1)
        self.assertEqual(inst[0]["Condition"]["StringEquals"]["aws:RequestTag/managed-by"], "stratos")
        # CreateTags: at launch, or on instances already Stratos'.
        for st in actions["ec2:CreateTags"]:
            cond = st["Condition"]["StringEquals"]
            self.assertTrue(cond.get("ec2:CreateAction") == "RunInstances"
                            or cond.get("aws:ResourceTag/managed-by") == "stratos", st)
        (pr,) = actions["iam:PassRole"]
        self.assertEqual(pr["Condition"]["StringEquals"]["iam:PassedToService"], "ec2.amazonaws.com")
        self.assertNotEqual(pr["Resource"], "*")


# -------------------------------------------------------------- Dockerfile

class DockerfileTest(unittest.TestCase):
    """No Docker engine here: the image cannot be built, so check its shape."""

    def test_shape(self):
        text = (REPO / "Dockerfile").read_text()
        logical = re.sub(r"\\\n", " ", text)
        stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", logical, re.M)
        self.assertEqual(stages, [("debian:bookworm", "build"), ("debian:bookworm-slim", "")])
        build, runtime = re.split(r"^FROM\s+debian:bookworm-slim.*$", logical, flags=re.M)
        for pkg in ("libmicrohttpd-dev", "libjansson-dev", "libcurl4-openssl-dev", "libyaml-dev",
                    "libxml2-dev", "libssl-dev", "libgnutls28-dev", "cmake", "gcc"):
            self.assertRegex(build, r"\b%s\b" % re.escape(pkg))
        self.assertIn("cmake -S . -B build -DCMAKE_BUILD_TYPE=Release", build)
        for pkg in ("libmicrohttpd12", "libjansson4", "libcurl4", "libyaml-0-2", "libxml2",
                    "libssl3", "libgnutls30", "ca-certificates"):
            self.assertRegex(runtime, r"\s%s\s" % re.escape(pkg))
        self.assertNotRegex(runtime, r"-dev\b|\bgcc\b|\bcmake\b")
        self.assertRegex(runtime, r"(?m)^USER 65532(:65532)?$")
        self.assertIn('ENTRYPOINT ["/usr/local/bin/stratosd"]', runtime)
        self.assertIn('CMD ["serve"]', runtime)
        ignore = (REPO / ".dockerignore").read_text().split()
        for pat in ("**/*.key", "**/*.pem", ".git"):
            self.assertIn(pat, ignore)


# ------------------------------------------------------------ certs/gen.sh

def gen(outdir, *args, check=True):
    res = subprocess.run(["bash", str(GEN), *args, str(outdir)], capture_output=True,
                         text=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError("gen.sh failed (%d):\n%s" % (res.returncode, res.stderr))
    return res


def openssl_verify(*args):
    return subprocess.run(["openssl", "verify", *args], capture_output=True, text=True)


class CertsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        _need("openssl")
        cls.tmp = tempfile.TemporaryDirectory(prefix="stratos-certs-test-")
        cls.out = Path(cls.tmp.name) / "tls"
        cls.res = gen(cls.out, "--secrets", "--san", "10.96.0.12", "--san", "stratos.example.com")
        cls.bundle = cls.res.stdout.strip().splitlines()[-1]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def f(self, name):
        return str(self.out / name)

    def test_serving_certificate_verifies_for_the_service_and_loopback(self):
        for opt, value in (("-verify_hostname", "stratos-webhook.stratos-system.svc"),
                           ("-verify_hostname", "stratos-webhook.stratos-system.svc.cluster.local"),
                           ("-verify_hostname", "stratos-webhook"),
                           ("-verify_hostname", "localhost"),
                           ("-verify_hostname", "stratos.example.com"),
                           ("-verify_ip", "127.0.0.1"),
                           ("-verify_ip", "::1"),
                           ("-verify_ip", "10.96.0.12")):
            r = openssl_verify("-CAfile", self.f("ca.crt"), "-purpose", "sslserver",
                               opt, value, self.f("tls.crt"))
            self.assertEqual(r.returncode, 0, "%s %s: %s" % (opt, value, r.stdout + r.stderr))
        r = openssl_verify("-CAfile", self.f("ca.crt"), "-verify_hostname",
                           "evil.stratos-system.svc", self.f("tls.crt"))
        self.assertNotEqual(r.returncode, 0)

    def test_client_certificate(self):
        r = openssl_verify("-CAfile", self.f("client-ca.crt"), "-purpose", "sslclient",
                           self.f("client.crt"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        subj = subprocess.run(["openssl", "x509", "-in", self.f("client.crt"), "-noout",
                               "-subject", "-nameopt", "RFC2253"],
                              capture_output=True, text=True, check=True).stdout
        self.assertIn("CN=stratos-scheduler", subj)
        # Separate CAs: the serving certificate can never act as a client,
        # nor the client certificate as a server.
        self.assertNotEqual(openssl_verify("-CAfile", self.f("client-ca.crt"),
                                           self.f("tls.crt")).returncode, 0)
        self.assertNotEqual(openssl_verify("-CAfile", self.f("ca.crt"), "-purpose", "sslclient",
                                           self.f("tls.crt")).returncode, 0)
        self.assertNotEqual(openssl_verify("-CAfile", self.f("client-ca.crt"), "-purpose",
                                           "sslserver", self.f("client.crt")).returncode, 0)

    def test_ca_bundle_is_the_last_line_and_decodes_to_the_ca(self):
        self.assertEqual(base64.b64decode(self.bundle, validate=True),
                         (self.out / "ca.crt").read_bytes())

    def test_keys_are_private(self):
        for name in ("ca.key", "tls.key", "client-ca.key", "client.key", "secrets.yaml"):
            self.assertEqual((self.out / name).stat().st_mode & 0o077, 0, name)

    def test_idempotent_unless_forced(self):
        out = Path(self.tmp.name) / "idem"
        first = gen(out).stdout.splitlines()[-1]
        ca_key = (out / "ca.key").read_bytes()
        client_ca = (out / "client-ca.crt").read_bytes()
        again = gen(out).stdout.splitlines()[-1]
        self.assertEqual(first, again)
        self.assertEqual((out / "ca.key").read_bytes(), ca_key)
        self.assertEqual((out / "client-ca.crt").read_bytes(), client_ca)
        self.assertEqual(openssl_verify("-CAfile", str(out / "ca.crt"), str(out / "tls.crt")).returncode, 0)
        forced = gen(out, "--force").stdout.splitlines()[-1]
        self.assertNotEqual(forced, first)
        self.assertNotEqual((out / "client-ca.crt").read_bytes(), client_ca)

    def test_refuses_a_broken_ca_and_bad_options(self):
        out = Path(self.tmp.name) / "broken"
        gen(out)
        (out / "ca.key").unlink()
        self.assertNotEqual(gen(out, check=False).returncode, 0)
        for args in (("--days", "0"), ("--key-type", "dsa"), ("--san", "bad name"), ("--nope",)):
            self.assertNotEqual(gen(Path(self.tmp.name) / "x", *args, check=False).returncode, 0, args)
        r = subprocess.run(["bash", str(GEN), str(REPO / "manifests" / "certs-here")],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse((REPO / "manifests" / "certs-here").exists())

    def test_rsa(self):
        out = Path(self.tmp.name) / "rsa"
        gen(out, "--key-type", "rsa", "--days", "30")
        text = subprocess.run(["openssl", "x509", "-in", str(out / "tls.crt"), "-noout", "-text"],
                              capture_output=True, text=True, check=True).stdout
        self.assertIn("rsaEncryption", text)
        self.assertIn("Key Encipherment", text)
        self.assertEqual(openssl_verify("-CAfile", str(out / "ca.crt"), "-verify_ip", "127.0.0.1",
                                        str(out / "tls.crt")).returncode, 0)

    def test_secret_manifest(self):
        docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all((self.out / "secrets.yaml").read_text())}
        self.assertEqual(set(docs), {"stratos-webhook-tls", "stratos-client-ca", "stratos-scheduler-client-tls"})
        for d in docs.values():
            self.assertEqual((d["apiVersion"], d["kind"], d["metadata"]["namespace"]), ("v1", "Secret", NAMESPACE))
        dec = {n: {k: base64.b64decode(v) for k, v in d["data"].items()} for n, d in docs.items()}
        read = lambda n: (self.out / n).read_bytes()  # noqa: E731
        self.assertEqual(dec["stratos-webhook-tls"], {"tls.crt": read("tls.crt"), "tls.key": read("tls.key"),
                                                      "ca.crt": read("ca.crt")})
        self.assertEqual(dec["stratos-client-ca"], {"ca.crt": read("client-ca.crt")})
        self.assertEqual(dec["stratos-scheduler-client-tls"], {"tls.crt": read("client.crt"),
                                                               "tls.key": read("client.key"),
                                                               "ca.crt": read("ca.crt")})
        self.assertEqual(docs["stratos-webhook-tls"]["type"], "kubernetes.io/tls")

    def test_overlay_injects_the_ca_bundle(self):
        out = Path(self.tmp.name) / "overlay"
        bundle = gen(out, "--overlay", str(MANIFESTS)).stdout.splitlines()[-1]
        objs = kustomize(out)
        hooks = [h for o in objs if o["kind"].endswith("WebhookConfiguration") for h in o["webhooks"]]
        self.assertEqual(len(hooks), 4)
        for h in hooks:
            self.assertEqual(h["clientConfig"]["caBundle"], bundle)
        names = {o["metadata"]["name"] for o in objs if o["kind"] == "Secret"}
        self.assertEqual(names, {"stratos-webhook-tls", "stratos-client-ca", "stratos-scheduler-client-tls"})
        # The other deployment works the same way.
        out2 = Path(self.tmp.name) / "overlay2"
        gen(out2, "--overlay", str(MANIFESTS / "overlays" / "managed-resource"))
        self.assertTrue(any("--managed-resource" in container(o)["args"]
                            for o in kustomize(out2) if o["kind"] == "Deployment"))

    def test_mutual_tls_handshake(self):
        """A real TLS 1.2+ handshake with these files: server requires a client
        certificate from the client CA, client checks the service name."""
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.minimum_version = ssl.TLSVersion.TLSv1_2
        srv.load_cert_chain(self.f("tls.crt"), self.f("tls.key"))
        srv.load_verify_locations(self.f("client-ca.crt"))
        srv.verify_mode = ssl.CERT_REQUIRED
        srv.verify_flags |= ssl.VERIFY_X509_STRICT

        def client_ctx(cert=True):
            ctx = ssl.create_default_context(cafile=self.f("ca.crt"))
            ctx.verify_flags |= ssl.VERIFY_X509_STRICT
            if cert:
                ctx.load_cert_chain(self.f("client.crt"), self.f("client.key"))
            return ctx

        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        port = lsock.getsockname()[1]
        peers = []

        def serve(n):
            for _ in range(n):
                conn, _ = lsock.accept()
                conn.settimeout(10)
                try:
                    with srv.wrap_socket(conn, server_side=True) as s:
                        peers.append(s.getpeercert()["subject"])
                        s.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    peers.append(None)

        t = threading.Thread(target=serve, args=(2,), daemon=True)
        t.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with client_ctx().wrap_socket(raw, server_hostname="stratos-webhook.stratos-system.svc") as s:
                    self.assertEqual(s.recv(2), b"ok")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with self.assertRaises((ssl.SSLError, ConnectionError)):
                    with client_ctx(cert=False).wrap_socket(
                            raw, server_hostname="stratos-webhook.stratos-system.svc") as s:
                        s.recv(2)   # TLS 1.3 reports the refusal on first read
            t.join(10)
        finally:
            lsock.close()
        self.assertEqual(peers[0], ((("organizationName", "stratos"),), (("commonName", "stratos-scheduler"),)))
        self.assertIsNone(peers[1])


if __name__ == "__main__":
    unittest.main()
