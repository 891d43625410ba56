"""Tests of the fake Kubernetes API server (tests/sim/apiserver.py): the real
kubectl against it, and raw HTTP for the semantics stratosd relies on.

Run from the repository root:  python3 -m unittest tests/sim/test_apiserver.py
"""

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import REPO, Client, Server  # noqa: E402

FIXTURES = os.path.join(REPO, "tests", "sim", "fixtures")
SEED = os.path.join(REPO, "tests", "fixtures", "seed-examples.yaml")
KUBECTL = shutil.which("kubectl")


def q(s):
    return urllib.parse.quote(s, safe="")


def cm(name, ns="default", labels=None, data=None, finalizers=None):
    o = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
         "data": data or {"k": "v"}}
    if labels:
        o["metadata"]["labels"] = labels
    if finalizers:
        o["metadata"]["finalizers"] = finalizers
    return o


def pod(name, ns="default", labels=None, node=None, phase=None, ready=False):
    o = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
         "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]}}
    if node:
        o["spec"]["nodeName"] = node
    if phase:
        o["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return o


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
             "versions": [{
                 "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                 "additionalPrinterColumns": [
                     {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                     {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                     {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}],
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                     "spec": {"type": "object", "required": ["size"], "x-kubernetes-validations": [
                         {"rule": "self.size <= 5 || self.color == 'red'", "message": "big widgets must be red"},
                         {"rule": "!has(self.tags) || self.tags.all(k, !k.startsWith('x-'))",
                          "message": "tag keys must not start with x-", "fieldPath": ".tags"}], "properties": {
                         "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                         "size": {"type": "integer", "minimum": 1, "maximum": 10},
                         "color": {"type": "string", "default": "blue", "enum": ["blue", "red"]},
                         "opts": {"type": "object", "default": {}, "properties": {
                             "retries": {"type": "integer", "default": 3}}}}},
                     "status": {"type": "object", "properties": {
                         "phase": {"type": "string"},
                         "conditions": {"type": "array", "items": {
                             "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}}}}]}}


class ServerCase(unittest.TestCase):
    """One fake API server for the whole class."""
    server_args = ("--bookmark-interval", "0.5")

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="apiserver-test-")
        cls.dir = os.path.join(cls.tmp, "sim")
        cls.server = Server(cls.dir, *cls.server_args)
        cls.c = Client(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ok(self, resp, code=200):
        st, body = resp
        self.assertEqual(st, code, body)
        return body

    def ensure_ns(self, ns):
        st, _ = self.c.get("/api/v1/namespaces/" + ns)
        if st == 404:
            self.ok(self.c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": ns}}), 201)

    def ensure_widget_crd(self):
        st, _ = self.c.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        if st == 404:
            self.ok(self.c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD), 201)


# ---------------------------------------------------------------------------
@unittest.skipIf(KUBECTL is None, "kubectl not installed")
class KubectlTest(ServerCase):
    """The real kubectl v1.32 against the fake server (no --validate=false)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)
        cls.mdir = os.path.join(cls.tmp, "manifests")
        os.makedirs(cls.mdir)

    def kubectl(self, *args, check=True, kubeconfig="kubeconfig", stdin=None):
        env = dict(os.environ, HOME=self.home)
        env.pop("KUBECONFIG", None)
        r = subprocess.run([KUBECTL, "--kubeconfig", os.path.join(self.dir, kubeconfig)] + list(args),
                           capture_output=True, text=True, env=env, timeout=60, input=stdin)
        if check:
            self.assertEqual(r.returncode, 0, "kubectl %s\nstdout: %s\nstderr: %s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def manifest(self, name, text):
        p = os.path.join(self.mdir, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_get_nodes_apply_node_and_pods(self):
        r = self.kubectl("get", "nodes", "-l", "kubernetes.io/hostname=kube-node-1")
        self.assertIn("No resources found", r.stderr)
        node = self.manifest("node.yaml", """
apiVersion: v1
kind: Node
metadata:
  name: kube-node-1
  labels: {kubernetes.io/hostname: kube-node-1, node-role.kubernetes.io/worker: ""}
spec:
  providerID: aws:///us-east-1a/i-0123456789abcdef0
status:
  conditions: [{type: Ready, status: "True"}]
  nodeInfo: {kubeletVersion: v1.32.4}
""")
        self.assertIn("node/kube-node-1 created", self.kubectl("apply", "-f", node).stdout)
        out = self.kubectl("get", "nodes").stdout
        self.assertRegex(out, r"kube-node-1\s+Ready\s+worker\s+\S+\s+v1.32.4")
        self.assertIn("unchanged", self.kubectl("apply", "-f", node).stdout)
        pods = self.manifest("pods.yaml", """
apiVersion: v1
kind: Pod
metadata: {name: kpod-1, labels: {app: kweb}}
spec:
  containers: [{name: c, image: "nginx:1.27"}]
---
apiVersion: v1
kind: Pod
metadata: {name: kpod-2, labels: {app: kweb}}
spec:
  nodeName: kube-node-1
  containers: [{name: c, image: nginx}]
""")
        out = self.kubectl("apply", "-f", pods).stdout
        self.assertIn("pod/kpod-1 created", out)
        self.assertIn("pod/kpod-2 created", out)
        got = json.loads(self.kubectl("get", "pods", "-l", "app=kweb", "-o", "json").stdout)
        self.assertEqual(sorted(p["metadata"]["name"] for p in got["items"]), ["kpod-1", "kpod-2"])
        p1 = next(p for p in got["items"] if p["metadata"]["name"] == "kpod-1")
        self.assertEqual(p1["status"]["phase"], "Pending")
        self.assertEqual(p1["spec"]["schedulerName"], "default-scheduler")
        self.assertEqual(p1["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent")
        keys = {t["key"] for t in p1["spec"]["tolerations"]}
        self.assertEqual(keys, {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
        wide = self.kubectl("get", "pods", "-o", "wide").stdout
        self.assertRegex(wide, r"kpod-2\s+0/1\s+Pending\s+0\s+\S+\s+<none>\s+kube-node-1")
        # Re-apply with a change: strategic merge patch through the whole path.
        with open(pods) as f:
            self.kubectl("apply", "-f", self.manifest("pods2.yaml", f.read().replace("nginx:1.27", "nginx:1.28")))
        img = self.kubectl("get", "pod", "kpod-1", "-o", "jsonpath={.spec.containers[0].image}").stdout
        self.assertEqual(img, "nginx:1.28")

    def test_crd_then_custom_resources(self):
        crd = self.manifest("crd.json", json.dumps(WIDGET_CRD))
        self.kubectl("apply", "-f", crd)
        self.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s")
        w = self.manifest("w.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: kw1}\nspec: {size: 3}\n")
        self.assertIn("widget.example.com/kw1 created", self.kubectl("apply", "-f", w).stdout)
        out = self.kubectl("get", "widgets").stdout
        self.assertRegex(out, r"NAME\s+SIZE\s+COLOR\s+READY")
        self.assertRegex(out, r"kw1\s+3\s+blue")
        self.assertIn("kw1", self.kubectl("get", "wd").stdout)
        got = json.loads(self.kubectl("get", "widget", "kw1", "-o", "json").stdout)
        self.assertEqual(got["spec"], {"size": 3, "color": "blue", "opts": {"retries": 3}})
        self.assertEqual(got["metadata"]["generation"], 1)
        # Schema violations and unknown fields are refused like the real server.
        bad = self.manifest("bad.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: kw2}\nspec: {size: 30}\n")
        r = self.kubectl("apply", "-f", bad, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("spec.size in body should be less than or equal to 10", r.stderr)
        unk = self.manifest("unk.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: kw3}\nspec: {size: 1, bogus: 1}\n")
        r = self.kubectl("apply", "-f", unk, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('unknown field "spec.bogus"', r.stderr)
        # Re-apply a change: kubectl uses a JSON merge patch for custom resources.
        with open(w) as f:
            self.kubectl("apply", "-f", self.manifest("w2.yaml", f.read().replace("size: 3", "size: 4")))
        got = json.loads(self.kubectl("get", "widget", "kw1", "-o", "json").stdout)
        self.assertEqual((got["spec"]["size"], got["metadata"]["generation"]), (4, 2))
        r = self.kubectl("patch", "widget", "kw1", "-p", '{"spec":{"size":5}}', check=False)
        self.assertNotEqual(r.returncode, 0, "strategic merge patch must be refused for custom resources")
        self.assertIn("is not supported", r.stderr)

    def test_label_taint_cordon_uncordon(self):
        self.ok(self.c.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kube-node-2"}}), 201)
        self.kubectl("label", "node", "kube-node-2", "stratos.sh/pool=ci")
        self.kubectl("taint", "node", "kube-node-2", "stratos.sh/standby=true:NoExecute")
        self.kubectl("taint", "node", "kube-node-2", "other=x:NoSchedule")
        self.kubectl("cordon", "kube-node-2")
        n = self.ok(self.c.get("/api/v1/nodes/kube-node-2"))
        self.assertEqual(n["metadata"]["labels"]["stratos.sh/pool"], "ci")
        self.assertEqual(sorted((t["key"], t["effect"]) for t in n["spec"]["taints"]),
                         [("other", "NoSchedule"), ("stratos.sh/standby", "NoExecute")])
        self.assertTrue(n["spec"]["unschedulable"])
        self.assertIn("SchedulingDisabled", self.kubectl("get", "node", "kube-node-2").stdout)
        self.kubectl("uncordon", "kube-node-2")
        self.kubectl("taint", "node", "kube-node-2", "stratos.sh/standby-")
        self.kubectl("label", "node", "kube-node-2", "stratos.sh/pool-")
        n = self.ok(self.c.get("/api/v1/nodes/kube-node-2"))
        self.assertNotIn("unschedulable", n["spec"])
        self.assertEqual([t["key"] for t in n["spec"]["taints"]], ["other"])
        self.assertNotIn("stratos.sh/pool", n["metadata"].get("labels") or {})
        r = self.kubectl("taint", "node", "kube-node-2", "bad=x:Sometimes", check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_patch_json_and_merge_then_delete(self):
        self.ok(self.c.post("/api/v1/namespaces/default/configmaps", cm("kcm1")), 201)
        self.kubectl("patch", "configmap", "kcm1", "--type=merge", "-p", '{"data":{"a":"1","k":null}}')
        self.kubectl("patch", "configmap", "kcm1", "--type=json",
                     "-p", '[{"op":"test","path":"/data/a","value":"1"},{"op":"add","path":"/data/b","value":"2"}]')
        got = self.ok(self.c.get("/api/v1/namespaces/default/configmaps/kcm1"))
        self.assertEqual(got["data"], {"a": "1", "b": "2"})
        r = self.kubectl("patch", "configmap", "kcm1", "--type=json",
                         "-p", '[{"op":"test","path":"/data/a","value":"9"},{"op":"add","path":"/data/c","value":"3"}]',
                         check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("c", self.ok(self.c.get("/api/v1/namespaces/default/configmaps/kcm1"))["data"])
        self.assertIn('configmap "kcm1" deleted', self.kubectl("delete", "configmap", "kcm1").stdout)
        self.assertEqual(self.c.get("/api/v1/namespaces/default/configmaps/kcm1")[0], 404)

    def test_get_watch_prints_changes(self):
        self.ensure_ns("kwatch")
        env = dict(os.environ, HOME=self.home)
        p = subprocess.Popen([KUBECTL, "--kubeconfig", os.path.join(self.dir, "kubeconfig"), "get", "configmaps",
                              "-n", "kwatch", "-w", "--output-watch-events"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in p.stdout], daemon=True).start()
        try:
            deadline = time.time() + 15
            # kubectl lists first, then watches: wait for the watch to be open.
            while time.time() < deadline:
                if self.ok(self.c.get("/_sim/watches")).get("configmaps", 0) > 0:
                    break
                time.sleep(0.1)
            self.ok(self.c.post("/api/v1/namespaces/kwatch/configmaps", cm("kw-a", "kwatch")), 201)
            self.ok(self.c.patch("/api/v1/namespaces/kwatch/configmaps/kw-a", {"data": {"x": "y"}}))
            self.ok(self.c.delete("/api/v1/namespaces/kwatch/configmaps/kw-a"))
            seen = []
            while time.time() < deadline and len(seen) < 3:
                try:
                    l = lines.get(timeout=0.5)
                except queue.Empty:
                    continue
                if "kw-a" in l:
                    seen.append(l.split()[0])
            self.assertEqual(seen, ["ADDED", "MODIFIED", "DELETED"])
        finally:
            p.terminate()
            p.wait(10)
            p.stdout.close()
            p.stderr.close()

    def test_api_resources_and_discovery(self):
        self.ensure_widget_crd()
        out = self.kubectl("api-resources").stdout
        for pat in (r"pods\s+po\s+v1\s+true\s+Pod", r"nodes\s+no\s+v1\s+false\s+Node",
                    r"leases\s+coordination.k8s.io/v1\s+true\s+Lease",
                    r"poddisruptionbudgets\s+pdb\s+policy/v1\s+true",
                    r"widgets\s+wd\s+example.com/v1\s+true\s+Widget"):
            self.assertRegex(out, pat)
        self.assertIn("example.com/v1", self.kubectl("api-versions").stdout)
        r = self.kubectl("auth", "can-i", "patch", "nodes")
        self.assertEqual(r.stdout.strip(), "yes")

    def test_seed_examples_apply(self):
        crd_dir = os.path.join(REPO, "manifests", "crds")
        if os.path.exists(os.path.join(crd_dir, "kustomization.yaml")):
            self.kubectl("apply", "-k", crd_dir)
        elif os.path.isdir(crd_dir) and any(f.endswith((".yaml", ".yml")) for f in os.listdir(crd_dir)):
            self.kubectl("apply", "-f", crd_dir)
        else:
            self.kubectl("apply", "-f", os.path.join(FIXTURES, "stratos-crds-minimal.yaml"))
        out = self.kubectl("apply", "-f", SEED).stdout
        for kind in ("nodepool", "awsnodeclass"):
            for n in ("ci-runners", "inference", "on-demand"):
                self.assertIn("%s.stratos.sh/%s created" % (kind, n), out)
        names = self.kubectl("get", "nodepools", "-o", "name").stdout.split()
        self.assertEqual(sorted(names), ["nodepool.stratos.sh/ci-runners", "nodepool.stratos.sh/inference",
                                         "nodepool.stratos.sh/on-demand"])
        if os.path.isdir(crd_dir):
            # The real CRDs carry CEL rules; the fake evaluates them as the real server does.
            bad = self.manifest("badpool.yaml", """
apiVersion: stratos.sh/v1alpha1
kind: NodePool
metadata: {name: badpool}
spec:
  poolSize: 2
  minStandby: 3
  template:
    nodeClassRef: {kind: AWSNodeClass, name: ci-runners}
""")
            r = self.kubectl("apply", "-f", bad, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("minStandby", r.stderr)
        def rvs():
            out = {}
            for plural in ("nodepools", "awsnodeclasses"):
                for o in self.ok(self.c.get("/apis/stratos.sh/v1alpha1/" + plural))["items"]:
                    out[(plural, o["metadata"]["name"])] = o["metadata"]["resourceVersion"]
            return out
        before = rvs()
        # A second apply changes nothing on the server.  (kubectl may still
        # print "configured": its merge patch for custom resources replaces
        # lists whose items carry schema defaults, as against a real server.)
        self.kubectl("apply", "-f", SEED)
        self.assertEqual(rvs(), before)
        np = json.loads(self.kubectl("get", "nodepool", "inference", "-o", "json").stdout)
        self.assertEqual(np["spec"]["preWarm"]["imagesToPull"], ["my-registry.com/llama-3:70b"])

    def test_drain_uses_eviction_and_honours_pdb(self):
        self.ensure_ns("kdrain")
        self.ok(self.c.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "drain-node"}}), 201)
        self.ok(self.c.post("/_sim/bulk", [pod("dp-%d" % i, "kdrain", labels={"app": "dp"}, node="drain-node",
                                               phase="Running", ready=True) for i in range(2)]))
        self.ok(self.c.post("/apis/policy/v1/namespaces/kdrain/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "dp"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "dp"}}}}), 201)
        self.ok(self.c.post("/_sim/requests/reset", {}))
        r = self.kubectl("drain", "drain-node", "--force", "--timeout=3s", check=False)
        self.assertNotEqual(r.returncode, 0, "one pod must stay: the budget allows a single disruption")
        left = self.ok(self.c.get("/api/v1/namespaces/kdrain/pods"))["items"]
        self.assertEqual(len(left), 1)
        counts = self.ok(self.c.get("/_sim/requests"))["counts"]
        # One eviction per pod; the refused one is not retried within 3 s: a
        # PDB's 429 carries no Retry-After (eviction.go: NewTooManyRequests(...,
        # 0)), so client-go does not retry it and kubectl drain waits its own 5 s.
        self.assertEqual(counts.get("create pods/eviction", 0), 2, counts)
        self.assertTrue(self.ok(self.c.get("/api/v1/nodes/drain-node"))["spec"]["unschedulable"])
        self.ok(self.c.delete("/apis/policy/v1/namespaces/kdrain/poddisruptionbudgets/dp"))
        self.kubectl("drain", "drain-node", "--force", "--timeout=10s")
        self.assertEqual(self.ok(self.c.get("/api/v1/namespaces/kdrain/pods"))["items"], [])

    def test_client_certificate_kubeconfig(self):
        out = self.kubectl("get", "namespaces", kubeconfig="kubeconfig-clientcert").stdout
        self.assertIn("stratos-system", out)


# ---------------------------------------------------------------------------
class AuthTest(ServerCase):
    def test_unauthenticated_and_bad_token_get_401_status(self):
        anon = Client(self.dir, token="")
        anon.token = None
        st, body = anon.get("/api/v1/namespaces")
        self.assertEqual(st, 401)
        self.assertEqual((body["kind"], body["reason"], body["code"]), ("Status", "Unauthorized", 401))
        self.assertEqual(anon.get("/version")[0], 200)
        bad = Client(self.dir, token="not-the-token")
        self.assertEqual(bad.get("/version")[0], 401)
        self.assertEqual(bad.get("/_sim/health")[0], 401)
        anon.close()
        bad.close()

    def test_client_certificate(self):
        c = Client(self.dir, cert=(os.path.join(self.dir, "client.crt"), os.path.join(self.dir, "client.key")))
        c.token = None
        self.assertEqual(c.get("/api/v1/namespaces/default")[0], 200)
        c.close()


class TokenFileTest(unittest.TestCase):
    def test_token_file_is_reread(self):
        tmp = tempfile.mkdtemp(prefix="apiserver-token-")
        try:
            tf = os.path.join(tmp, "token")
            srv = Server(os.path.join(tmp, "sim"), "--token-file", tf)
            try:
                with open(tf) as f:
                    first = f.read().strip()
                c = Client(os.path.join(tmp, "sim"))
                self.assertEqual(c.token, first)
                self.assertEqual(c.get("/api/v1/namespaces")[0], 200)
                with open(tf + ".new", "w") as f:
                    f.write("rotated-token-2\n")
                os.replace(tf + ".new", tf)
                self.assertEqual(c.get("/api/v1/namespaces")[0], 401)
                c2 = Client(os.path.join(tmp, "sim"), token="rotated-token-2")
                self.assertEqual(c2.get("/api/v1/namespaces")[0], 200)
                c.close()
                c2.close()
            finally:
                srv.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
class CrudTest(ServerCase):
    def test_put_conflict_on_stale_resource_version(self):
        base = "/api/v1/namespaces/default/configmaps"
        created = self.ok(self.c.post(base, cm("conf1")), 201)
        rv1 = created["metadata"]["resourceVersion"]
        self.assertTrue(rv1.isdigit())
        created["data"] = {"k": "v2"}
        upd = self.ok(self.c.put(base + "/conf1", created))
        self.assertGreater(int(upd["metadata"]["resourceVersion"]), int(rv1))
        created["data"] = {"k": "v3"}   # still carries rv1
        st, body = self.c.put(base + "/conf1", created)
        self.assertEqual(st, 409)
        self.assertEqual((body["kind"], body["status"], body["reason"], body["code"]), ("Status", "Failure", "Conflict", 409))
        self.assertIn('Operation cannot be fulfilled on configmaps "conf1": the object has been modified', body["message"])
        # A no-op update does not bump the resourceVersion (etcd skips the write).
        same = self.ok(self.c.put(base + "/conf1", upd))
        self.assertEqual(same["metadata"]["resourceVersion"], upd["metadata"]["resourceVersion"])
        st, body = self.c.post(base, cm("conf1"))
        self.assertEqual((st, body["reason"]), (409, "AlreadyExists"))
        self.assertEqual(body["message"], 'configmaps "conf1" already exists')
        st, body = self.c.get(base + "/nope")
        self.assertEqual((st, body["reason"], body["message"]), (404, "NotFound", 'configmaps "nope" not found'))

    def test_leases_for_leader_election(self):
        base = "/apis/coordination.k8s.io/v1/namespaces/stratos-system/leases"
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "stratos-controller"},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                          "acquireTime": "2024-01-01T00:00:00.000000Z", "renewTime": "2024-01-01T00:00:00.000000Z",
                          "leaseTransitions": 0}}
        got = self.ok(self.c.post(base, lease), 201)
        st, _ = self.c.post(base, lease)
        self.assertEqual(st, 409)
        mine = json.loads(json.dumps(got))
        mine["spec"]["renewTime"] = "2024-01-01T00:00:02.000000Z"
        renewed = self.ok(self.c.put(base + "/stratos-controller", mine))
        other = json.loads(json.dumps(got))          # stale: someone else's view
        other["spec"]["holderIdentity"] = "b"
        self.assertEqual(self.c.put(base + "/stratos-controller", other)[0], 409)
        self.assertEqual(self.ok(self.c.get(base + "/stratos-controller"))["spec"]["holderIdentity"], "a")
        self.assertEqual(renewed["spec"]["renewTime"], "2024-01-01T00:00:02.000000Z")

    def test_generate_name_and_missing_namespace(self):
        o = cm("")
        del o["metadata"]["name"]
        o["metadata"]["generateName"] = "gen-"
        got = self.ok(self.c.post("/api/v1/namespaces/default/configmaps", o), 201)
        self.assertRegex(got["metadata"]["name"], r"^gen-[a-z0-9]{5}$")
        st, body = self.c.post("/api/v1/namespaces/nowhere/configmaps", cm("x", "nowhere"))
        self.assertEqual((st, body["message"]), (404, 'namespaces "nowhere" not found'))
        o = cm("Bad_Name")
        st, body = self.c.post("/api/v1/namespaces/default/configmaps", o)
        self.assertEqual((st, body["reason"]), (422, "Invalid"))
        self.assertIn('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"', body["message"])

    def test_finalizers_hold_deletion(self):
        base = "/api/v1/namespaces/default/configmaps"
        self.ok(self.c.post(base, cm("fin1", finalizers=["example.com/hold"])), 201)
        w = self.c.watch(base + "?watch=1&fieldSelector=" + q("metadata.name=fin1"))
        self.assertEqual(w.next()["type"], "ADDED")
        deleted = self.ok(self.c.delete(base + "/fin1"))
        self.assertIn("deletionTimestamp", deleted["metadata"])
        self.assertEqual(w.next()["type"], "MODIFIED")
        still = self.ok(self.c.get(base + "/fin1"))
        self.assertEqual(still["metadata"]["finalizers"], ["example.com/hold"])
        st, body = self.c.patch(base + "/fin1", {"metadata": {"finalizers": ["example.com/hold", "x.io/new"]}})
        self.assertEqual(st, 422)
        self.assertIn("no new finalizers can be added if the object is being deleted", body["message"])
        self.ok(self.c.patch(base + "/fin1", [{"op": "remove", "path": "/metadata/finalizers"}],
                             ctype="application/json-patch+json"))
        self.assertEqual(self.c.get(base + "/fin1")[0], 404)
        ev = w.next()
        self.assertEqual(ev["type"], "DELETED")
        w.close()

    def test_delete_preconditions_and_owner_gc(self):
        base = "/apis/apps/v1/namespaces/default/replicasets"
        rs = self.ok(self.c.post(base, {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs1"},
                                        "spec": {"selector": {"matchLabels": {"a": "b"}},
                                                 "template": {"metadata": {"labels": {"a": "b"}},
                                                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}}), 201)
        p = pod("rs1-abcde", labels={"a": "b"})
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs1",
                                             "uid": rs["metadata"]["uid"], "controller": True}]
        self.ok(self.c.post("/api/v1/namespaces/default/pods", p), 201)
        st, body = self.c.delete(base + "/rs1", {"preconditions": {"uid": "wrong"}})
        self.assertEqual(st, 409)
        self.assertIn("Precondition failed: UID in precondition", body["message"])
        self.ok(self.c.delete(base + "/rs1", {"propagationPolicy": "Background"}))
        self.assertEqual(self.c.get("/api/v1/namespaces/default/pods/rs1-abcde")[0], 404)

    def test_namespace_deletion_removes_content(self):
        self.ensure_ns("doomed")
        self.ok(self.c.post("/api/v1/namespaces/doomed/configmaps", cm("c1", "doomed")), 201)
        self.ok(self.c.delete("/api/v1/namespaces/doomed"))
        self.assertEqual(self.c.get("/api/v1/namespaces/doomed/configmaps/c1")[0], 404)
        self.assertEqual(self.c.get("/api/v1/namespaces/doomed")[0], 404)

    def test_table_output(self):
        self.ok(self.c.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "tbl-node"},
                                              "status": {"conditions": [{"type": "Ready", "status": "False"}]}}), 201)
        t = self.ok(self.c.get("/api/v1/nodes/tbl-node", headers={
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}))
        self.assertEqual(t["kind"], "Table")
        self.assertEqual([c["name"] for c in t["columnDefinitions"]][:5], ["Name", "Status", "Roles", "Age", "Version"])
        self.assertEqual(t["rows"][0]["cells"][:3], ["tbl-node", "NotReady", "<none>"])
        self.assertEqual(t["rows"][0]["object"]["kind"], "PartialObjectMetadata")


# ---------------------------------------------------------------------------
class PatchTest(ServerCase):
    def test_json_patch_failed_test_is_422(self):
        base = "/api/v1/nodes"
        n = self.ok(self.c.post(base, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "jp-node", "labels": {"a": "1"}}}), 201)
        rv = n["metadata"]["resourceVersion"]
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
               {"op": "replace", "path": "/metadata/labels/a", "value": "2"}]
        got = self.ok(self.c.patch(base + "/jp-node", ops, ctype="application/json-patch+json"))
        self.assertEqual(got["metadata"]["labels"]["a"], "2")
        # Same claim again with the now-stale resourceVersion: refused, nothing changes.
        ops[1]["value"] = "3"
        st, body = self.c.patch(base + "/jp-node", ops, ctype="application/json-patch+json")
        self.assertEqual(st, 422)
        self.assertEqual((body["kind"], body["reason"], body["code"]), ("Status", "Invalid", 422))
        self.assertEqual(self.ok(self.c.get(base + "/jp-node"))["metadata"]["labels"]["a"], "2")

    def test_patch_with_stale_resource_version_is_409(self):
        base = "/api/v1/nodes"
        n = self.ok(self.c.post(base, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "mp-node"}}), 201)
        old_rv = n["metadata"]["resourceVersion"]
        self.ok(self.c.patch(base + "/mp-node", {"metadata": {"labels": {"x": "1"}}}))
        st, body = self.c.patch(base + "/mp-node", {"metadata": {"resourceVersion": old_rv, "labels": {"x": "2"}}})
        self.assertEqual((st, body["reason"]), (409, "Conflict"))

    def test_merge_and_strategic_merge(self):
        base = "/api/v1/namespaces/default/pods"
        p = pod("smp1")
        p["spec"]["containers"].append({"name": "side", "image": "side:1"})
        self.ok(self.c.post(base, p), 201)
        got = self.ok(self.c.patch(base + "/smp1", {"spec": {"containers": [{"name": "side", "image": "side:2"}]}},
                                   ctype="application/strategic-merge-patch+json"))
        self.assertEqual([(c["name"], c["image"]) for c in got["spec"]["containers"]],
                         [("c", "registry.example/app:1"), ("side", "side:2")])
        # Pod status conditions merge by type through the status subresource.
        self.ok(self.c.patch(base + "/smp1/status", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                             ctype="application/strategic-merge-patch+json"))
        got = self.ok(self.c.patch(base + "/smp1/status", {"status": {"phase": "Running", "conditions": [
            {"type": "Initialized", "status": "True"}]}}, ctype="application/strategic-merge-patch+json"))
        self.assertEqual(sorted(c["type"] for c in got["status"]["conditions"]), ["Initialized", "Ready"])
        self.assertEqual(got["status"]["phase"], "Running")
        # Merge patch replaces lists; null deletes.
        got = self.ok(self.c.patch(base + "/smp1", {"metadata": {"labels": {"k": "v"}, "annotations": {"a": "b"}}}))
        got = self.ok(self.c.patch(base + "/smp1", {"metadata": {"annotations": {"a": None}}}))
        self.assertNotIn("a", got["metadata"].get("annotations") or {})
        # Changing an immutable pod field is refused like the real server.
        st, body = self.c.patch(base + "/smp1", {"spec": {"nodeName": "somewhere"}})
        self.assertEqual(st, 422)
        self.assertIn("pod updates may not change fields", body["message"])
        # Node taints are atomic (as upstream): a patch replaces the whole list.
        self.ok(self.c.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "smp-node"},
                                              "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}), 201)
        got = self.ok(self.c.patch("/api/v1/nodes/smp-node", {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}},
                                   ctype="application/strategic-merge-patch+json"))
        self.assertEqual([t["key"] for t in got["spec"]["taints"]], ["b"])
        st, body = self.c.patch("/api/v1/nodes/smp-node", {"spec": {"taints": [
            {"key": "b", "effect": "NoExecute"}, {"key": "b", "effect": "NoExecute"}]}})
        self.assertEqual(st, 422)
        self.assertIn("taints must be unique by key and effect pair", body["message"])

    def test_strategic_merge_directives(self):
        base = "/apis/apps/v1/namespaces/default/deployments"
        d = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "smp2", "finalizers": ["a.io/one", "a.io/two"]},
             "spec": {"selector": {"matchLabels": {"app": "smp2"}},
                      "template": {"metadata": {"labels": {"app": "smp2"}}, "spec": {"containers": [
                          {"name": "c", "image": "c:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                          {"name": "x", "image": "x:1"}]}}}}
        created = self.ok(self.c.post(base, d), 201)
        self.assertEqual(created["metadata"]["generation"], 1)
        got = self.ok(self.c.patch(base + "/smp2", {
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/one"]},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "x"}, {"name": "c"}],
                "containers": [{"name": "x", "image": "x:2"},
                               {"name": "c", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]}]}}}},
            ctype="application/strategic-merge-patch+json"))
        self.assertEqual(got["metadata"]["finalizers"], ["a.io/two"])
        cs = got["spec"]["template"]["spec"]["containers"]
        self.assertEqual([(c["name"], c["image"]) for c in cs], [("x", "x:2"), ("c", "c:1")])
        self.assertEqual([e["name"] for e in cs[1]["env"]], ["B", "C"])
        self.assertEqual(got["metadata"]["generation"], 2)
        got = self.ok(self.c.patch(base + "/smp2", {"spec": {"template": {"spec": {
            "containers": [{"name": "only", "image": "o:1"}, {"$patch": "replace"}]}}}},
            ctype="application/strategic-merge-patch+json"))
        self.assertEqual([c["name"] for c in got["spec"]["template"]["spec"]["containers"]], ["only"])
        self.ok(self.c.patch(base + "/smp2", {"metadata": {"finalizers": None}}))


# ---------------------------------------------------------------------------
class ListTest(ServerCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pages"}})
        objs = [cm("cm-%04d" % i, "pages", labels={"mod": str(i % 3)}) for i in range(1234)]
        st, body = cls.c.post("/_sim/bulk", objs)
        assert st == 200 and body["created"] == 1234, body

    def test_pagination_returns_every_object_once(self):
        items, pages = self.c.list_all("/api/v1/namespaces/pages/configmaps", limit=100)
        names = [i["metadata"]["name"] for i in items]
        self.assertEqual(len(names), 1234)
        self.assertEqual(len(set(names)), 1234)
        self.assertEqual(pages, 13)
        st, first = self.c.get("/api/v1/namespaces/pages/configmaps?limit=100")
        self.assertEqual(first["metadata"]["remainingItemCount"], 1134)
        self.assertEqual(first["kind"], "ConfigMapList")
        # With a label selector, and with an object created between pages: the
        # pages are read at the first page's snapshot, so it is not listed.
        seen, cont, rvs = [], None, set()
        while True:
            p = "/api/v1/namespaces/pages/configmaps?limit=50&labelSelector=" + q("mod=1")
            if cont:
                p += "&continue=" + cont
            body = self.ok(self.c.get(p))
            seen += [i["metadata"]["name"] for i in body["items"]]
            rvs.add(body["metadata"]["resourceVersion"])
            if cont is None:
                self.ok(self.c.post("/api/v1/namespaces/pages/configmaps", cm("zz-late", "pages", labels={"mod": "1"})), 201)
            cont = body["metadata"].get("continue")
            if not cont:
                break
        expect = ["cm-%04d" % i for i in range(1234) if i % 3 == 1]
        self.assertEqual(seen, expect)
        self.assertEqual(len(rvs), 1, rvs)

    def test_continue_token_expires_after_compaction(self):
        self.ensure_ns("pages2")
        self.ok(self.c.post("/_sim/bulk", [cm("p2-%d" % i, "pages2") for i in range(30)]))
        body = self.ok(self.c.get("/api/v1/namespaces/pages2/configmaps?limit=10"))
        self.ok(self.c.post("/api/v1/namespaces/pages2/configmaps", cm("after-list", "pages2")), 201)
        self.ok(self.c.post("/_sim/compact", {"resource": "configmaps", "mode": "http"}))
        st, err = self.c.get("/api/v1/namespaces/pages2/configmaps?limit=10&continue=" + body["metadata"]["continue"])
        self.assertEqual((st, err["reason"], err["code"]), (410, "Expired", 410))
        self.assertEqual(self.c.get("/api/v1/namespaces/pages2/configmaps?limit=10")[0], 200)

    def test_label_selectors(self):
        ns = "sel"
        self.ensure_ns(ns)
        for name, labels in (("s1", {"env": "prod", "tier": "web"}), ("s2", {"env": "dev", "tier": "web"}),
                             ("s3", {"env": "prod"}), ("s4", {})):
            self.ok(self.c.post("/api/v1/namespaces/%s/configmaps" % ns, cm(name, ns, labels=labels)), 201)

        def names(sel):
            body = self.ok(self.c.get("/api/v1/namespaces/%s/configmaps?labelSelector=%s" % (ns, q(sel))))
            return sorted(i["metadata"]["name"] for i in body["items"])
        self.assertEqual(names("env=prod"), ["s1", "s3"])
        self.assertEqual(names("env==prod,tier=web"), ["s1"])
        self.assertEqual(names("env!=prod"), ["s2", "s4"])
        self.assertEqual(names("env in (dev, prod)"), ["s1", "s2", "s3"])
        self.assertEqual(names("env notin (prod)"), ["s2", "s4"])
        self.assertEqual(names("tier"), ["s1", "s2"])
        self.assertEqual(names("!tier"), ["s3", "s4"])
        self.assertEqual(names("env=prod,!tier"), ["s3"])
        st, body = self.c.get("/api/v1/namespaces/%s/configmaps?labelSelector=%s" % (ns, q("env in prod")))
        self.assertEqual((st, body["reason"]), (400, "BadRequest"))

    def test_field_selectors(self):
        ns = "fsel"
        self.ensure_ns(ns)
        base = "/api/v1/namespaces/%s/pods" % ns
        self.ok(self.c.post("/_sim/bulk", [pod("f1", ns, node="n1", phase="Running"), pod("f2", ns, node="n2", phase="Running"),
                                           pod("f3", ns, phase="Pending"), pod("f4", ns, node="n1", phase="Succeeded")]))

        def names(sel, path=base):
            body = self.ok(self.c.get("%s?fieldSelector=%s" % (path, q(sel))))
            return sorted(i["metadata"]["name"] for i in body["items"])
        self.assertEqual(names("spec.nodeName=n1"), ["f1", "f4"])
        self.assertEqual(names("spec.nodeName="), ["f3"])
        self.assertEqual(names("spec.nodeName!=n1"), ["f2", "f3"])
        self.assertEqual(names("spec.nodeName=n1,status.phase!=Succeeded"), ["f1"])
        self.assertEqual(names("status.phase=Running"), ["f1", "f2"])
        self.assertEqual(names("metadata.name=f2"), ["f2"])
        self.assertEqual(names("metadata.namespace=%s,spec.nodeName=n2" % ns, "/api/v1/pods"), ["f2"])
        # The nodeName index follows binding and deletion.
        self.ok(self.c.post(base + "/f3/binding", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "f3"},
                                                  "target": {"kind": "Node", "name": "n2"}}), 201)
        self.ok(self.c.delete(base + "/f2"))
        self.assertEqual(names("spec.nodeName=n2"), ["f3"])
        self.assertEqual(names("spec.nodeName="), [])
        body = self.ok(self.c.get(base + "?limit=1&fieldSelector=" + q("spec.nodeName=n1")))
        self.assertEqual([i["metadata"]["name"] for i in body["items"]], ["f1"])
        body = self.ok(self.c.get(base + "?limit=1&fieldSelector=%s&continue=%s" % (q("spec.nodeName=n1"), body["metadata"]["continue"])))
        self.assertEqual([i["metadata"]["name"] for i in body["items"]], ["f4"])
        st, body = self.c.get(base + "?fieldSelector=" + q("spec.bogus=1"))
        self.assertEqual((st, body["reason"]), (400, "BadRequest"))


# ---------------------------------------------------------------------------
class WatchTest(ServerCase):
    def setUp(self):
        self.ensure_ns("w")

    def test_resume_from_resource_version_without_loss(self):
        base = "/api/v1/namespaces/w/configmaps"
        rv = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
        for i in range(20):
            self.ok(self.c.post(base, cm("r%02d" % i, "w")), 201)
        w = self.c.watch(base + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv)
        got, last = [], rv
        while len(got) < 20:
            ev = w.next()
            if ev["type"] == "ADDED":
                got.append(ev["object"]["metadata"]["name"])
            last = ev["object"]["metadata"]["resourceVersion"]
        w.close()
        self.assertEqual(got, ["r%02d" % i for i in range(20)])
        # Changes while nobody watches are replayed from the last RV seen.
        self.ok(self.c.patch(base + "/r03", {"data": {"n": "1"}}))
        self.ok(self.c.delete(base + "/r04"))
        w = self.c.watch(base + "?watch=1&resourceVersion=" + last)
        e1, e2 = w.next(), w.next()
        w.close()
        self.assertEqual((e1["type"], e1["object"]["metadata"]["name"]), ("MODIFIED", "r03"))
        self.assertEqual((e2["type"], e2["object"]["metadata"]["name"]), ("DELETED", "r04"))
        self.assertGreater(int(e2["object"]["metadata"]["resourceVersion"]), int(e1["object"]["metadata"]["resourceVersion"]))

    def test_initial_events_without_resource_version(self):
        base = "/api/v1/namespaces/w/configmaps"
        self.ok(self.c.post(base, cm("init1", "w")), 201)
        w = self.c.watch(base + "?watch=1&fieldSelector=" + q("metadata.name=init1"))
        ev = w.next()
        w.close()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "init1"))

    def test_bookmarks_on_idle_stream(self):
        rv = self.ok(self.c.get("/api/v1/namespaces/w/secrets"))["metadata"]["resourceVersion"]
        w = self.c.watch("/api/v1/namespaces/w/secrets?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv)
        t0 = time.time()
        ev = w.next()
        w.close()
        self.assertEqual(ev["type"], "BOOKMARK")
        self.assertLess(time.time() - t0, 3)
        self.assertEqual(set(ev["object"]["metadata"]), {"resourceVersion", "creationTimestamp"})
        self.assertGreaterEqual(int(ev["object"]["metadata"]["resourceVersion"]), int(rv))
        w = self.c.watch("/api/v1/namespaces/w/secrets?watch=1&resourceVersion=" + rv + "&timeoutSeconds=1")
        self.assertIsNone(w.next(), "no bookmark unless asked for; stream ends at timeoutSeconds")
        w.close()

    def test_forced_410_in_stream_and_http(self):
        base = "/api/v1/namespaces/w/serviceaccounts"
        rv = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
        self.ok(self.c.post(base, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa410"}}), 201)
        self.ok(self.c.post("/_sim/compact", {"resource": "serviceaccounts", "mode": "event"}))
        w = self.c.watch(base + "?watch=1&resourceVersion=" + rv)
        self.assertEqual(w.status, 200)
        ev = w.next()
        self.assertEqual(ev["type"], "ERROR")
        self.assertEqual((ev["object"]["kind"], ev["object"]["code"], ev["object"]["reason"]), ("Status", 410, "Expired"))
        self.assertIsNone(w.next())
        w.close()
        self.ok(self.c.post("/_sim/compact", {"resource": "serviceaccounts", "mode": "http"}))
        w = self.c.watch(base + "?watch=1&resourceVersion=" + rv)
        self.assertEqual(w.status, 410)
        body = json.loads(w.resp.read())
        self.assertEqual((body["kind"], body["code"], body["reason"]), ("Status", 410, "Expired"))
        w.close()
        # A relist gives a fresh RV that works again.
        rv2 = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
        w = self.c.watch(base + "?watch=1&timeoutSeconds=1&resourceVersion=" + rv2)
        self.assertEqual(w.status, 200)
        w.close()

    def test_history_window_expiry(self):
        tmp = tempfile.mkdtemp(prefix="apiserver-hist-")
        srv = Server(os.path.join(tmp, "sim"), "--history", "20", "--quiet")
        try:
            c = Client(os.path.join(tmp, "sim"))
            rv = self.ok(c.get("/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
            self.ok(c.post("/_sim/bulk", [cm("h%03d" % i) for i in range(100)]))
            w = c.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + rv)
            ev = w.next()
            w.close()
            self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
            recent = int(c.get("/_sim/health")[1]["resourceVersion"]) - 5
            w = c.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=%d" % recent)
            self.assertEqual(w.next()["type"], "ADDED")
            w.close()
            c.close()
        finally:
            srv.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_dropped_streams(self):
        base = "/api/v1/namespaces/w/endpoints"
        for mode in ("clean", "abort"):
            rv = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
            w = self.c.watch(base + "?watch=1&resourceVersion=" + rv)
            deadline = time.time() + 5
            while self.ok(self.c.get("/_sim/watches")).get("endpoints", 0) < 1 and time.time() < deadline:
                time.sleep(0.05)
            dropped = self.ok(self.c.post("/_sim/drop-watches", {"resource": "endpoints", "mode": mode}))["dropped"]
            self.assertEqual(dropped, 1)
            t0 = time.time()
            try:
                ev = w.next()
            except (OSError, Exception) as e:  # abort: the connection is cut mid-stream
                ev = e
            self.assertTrue(ev is None or isinstance(ev, Exception), ev)
            if mode == "clean":
                self.assertIsNone(ev)
            self.assertLess(time.time() - t0, 3)
            w.close()

    def test_selector_transitions(self):
        base = "/api/v1/namespaces/w/configmaps"
        self.ok(self.c.post(base, cm("tr1", "w", labels={"role": "a"})), 201)
        rv = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
        w = self.c.watch(base + "?watch=1&labelSelector=" + q("role=a") + "&resourceVersion=" + rv)
        self.ok(self.c.patch(base + "/tr1", {"metadata": {"labels": {"role": "b"}}}))
        self.ok(self.c.patch(base + "/tr1", {"metadata": {"labels": {"role": "a"}}}))
        self.ok(self.c.patch(base + "/tr1", {"data": {"z": "1"}}))
        types = [w.next()["type"] for _ in range(3)]
        w.close()
        self.assertEqual(types, ["DELETED", "ADDED", "MODIFIED"])

    def test_concurrent_writers_and_watchers_lose_nothing(self):
        self.ensure_ns("conc")
        base = "/api/v1/namespaces/conc/configmaps"
        rv = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
        watches = [self.c.watch(base + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv) for _ in range(3)]
        writers, per = 4, 60
        errors = []

        def write(n):
            c = Client(self.dir)
            try:
                for i in range(per):
                    name = "w%d-%03d" % (n, i)
                    if c.post(base, cm(name, "conc"))[0] != 201 or c.patch(base + "/" + name, {"data": {"i": str(i)}})[0] != 200:
                        errors.append(name)
            finally:
                c.close()
        ts = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        want = writers * per * 2
        for w in watches:
            seen, last = [], 0
            while len(seen) < want:
                ev = w.next()
                self.assertIsNotNone(ev, "stream ended early")
                r = int(ev["object"]["metadata"]["resourceVersion"])
                self.assertGreaterEqual(r, last)
                last = r
                if ev["type"] != "BOOKMARK":
                    self.assertGreater(r, int(rv))
                    seen.append((ev["type"], ev["object"]["metadata"]["name"], r))
            w.close()
            self.assertEqual(len({x[2] for x in seen}), want, "each event exactly once")
            self.assertEqual(sum(1 for x in seen if x[0] == "ADDED"), writers * per)

    def test_watch_of_custom_resources_and_field_selector(self):
        self.ensure_widget_crd()
        base = "/apis/example.com/v1/namespaces/w/widgets"
        rv = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
        w = self.c.watch(base + "?watch=1&resourceVersion=%s&fieldSelector=%s" % (rv, q("metadata.name=wa")))
        for name in ("wb", "wa"):
            self.ok(self.c.post(base, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name},
                                       "spec": {"size": 1}}), 201)
        ev = w.next()
        w.close()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"], ev["object"]["spec"]["color"]),
                         ("ADDED", "wa", "blue"))


# ---------------------------------------------------------------------------
class SubresourceTest(ServerCase):
    def setUp(self):
        self.ensure_ns("sub")

    def running_pod(self, name, labels):
        p = pod(name, "sub", labels=labels, node="n1", phase="Running", ready=True)
        self.ok(self.c.post("/_sim/bulk", [p]))

    def evict(self, name):
        return self.c.post("/api/v1/namespaces/sub/pods/%s/eviction" % name, {
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "sub"}})

    def test_eviction_honours_pdb(self):
        for i in range(2):
            self.running_pod("db-%d" % i, {"app": "db"})
        self.ok(self.c.post("/apis/policy/v1/namespaces/sub/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}}), 201)
        st, body = self.evict("db-0")
        self.assertEqual(st, 429)
        self.assertEqual((body["kind"], body["reason"], body["code"]), ("Status", "TooManyRequests", 429))
        self.assertEqual(body["message"], "Cannot evict pod as it would violate the pod's disruption budget.")
        self.assertIn("The disruption budget db needs 2 healthy pods and has 2 currently",
                      body["details"]["causes"][0]["message"])
        self.assertEqual(self.c.get("/api/v1/namespaces/sub/pods/db-0")[0], 200)
        self.running_pod("db-2", {"app": "db"})
        st, body = self.evict("db-0")
        self.assertEqual((st, body["status"]), (201, "Success"))
        self.assertEqual(self.c.get("/api/v1/namespaces/sub/pods/db-0")[0], 404)
        pdb = self.ok(self.c.get("/apis/policy/v1/namespaces/sub/poddisruptionbudgets/db"))
        self.assertEqual((pdb["status"]["currentHealthy"], pdb["status"]["disruptionsAllowed"]), (2, 0))
        self.assertEqual(self.evict("db-1")[0], 429)
        # A pod that is not Ready does not count, and may go while the budget holds.
        self.ok(self.c.post("/_sim/bulk", [pod("db-3", "sub", labels={"app": "db"}, node="n1", phase="Running")]))
        self.assertEqual(self.evict("db-3")[0], 201)

    def test_eviction_percent_max_unavailable(self):
        rs = self.ok(self.c.post("/apis/apps/v1/namespaces/sub/replicasets", {
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}), 201)
        for i in range(4):
            p = pod("web-%d" % i, "sub", labels={"app": "web"}, node="n1", phase="Running", ready=True)
            p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                 "uid": rs["metadata"]["uid"], "controller": True}]
            self.ok(self.c.post("/_sim/bulk", [p]))
        self.ok(self.c.post("/apis/policy/v1/namespaces/sub/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
            "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "web"}}}}), 201)
        self.assertEqual(self.evict("web-0")[0], 201)
        # The ReplicaSet still wants 4: with 3 healthy, 25% (1) is already unavailable.
        self.assertEqual(self.evict("web-1")[0], 429)

    def test_eviction_without_pdb_and_missing_pod(self):
        self.running_pod("free", {"app": "free"})
        st, body = self.evict("free")
        self.assertEqual((st, body["kind"], body["status"]), (201, "Status", "Success"))
        self.assertEqual(self.c.get("/api/v1/namespaces/sub/pods/free")[0], 404)
        st, body = self.evict("free")
        self.assertEqual((st, body["reason"]), (404, "NotFound"))

    def test_binding(self):
        self.ok(self.c.post("/api/v1/namespaces/sub/pods", pod("tobind", "sub")), 201)
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "tobind", "namespace": "sub"},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": "node-9"}}
        st, body = self.c.post("/api/v1/namespaces/sub/pods/tobind/binding", binding)
        self.assertEqual((st, body["status"]), (201, "Success"))
        got = self.ok(self.c.get("/api/v1/namespaces/sub/pods/tobind"))
        self.assertEqual(got["spec"]["nodeName"], "node-9")
        self.assertIn({"type": "PodScheduled", "status": "True"},
                      [{"type": c["type"], "status": c["status"]} for c in got["status"]["conditions"]])
        st, body = self.c.post("/api/v1/namespaces/sub/pods/tobind/binding", binding)
        self.assertEqual((st, body["reason"]), (409, "Conflict"))
        self.assertIn('is already assigned to node "node-9"', body["message"])
        self.assertEqual(self.c.post("/api/v1/namespaces/sub/pods/ghost/binding", binding)[0], 404)

    def test_status_subresource_isolation_and_generation(self):
        self.ensure_widget_crd()
        base = "/apis/example.com/v1/namespaces/sub/widgets"
        w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "iso"},
             "spec": {"size": 2}, "status": {"phase": "Ignored"}}
        got = self.ok(self.c.post(base, w), 201)
        self.assertNotIn("status", got, "status is dropped on create when the status subresource is on")
        self.assertEqual(got["metadata"]["generation"], 1)
        got["status"] = {"phase": "FromMain"}
        got["spec"]["size"] = 3
        got = self.ok(self.c.put(base + "/iso", got))
        self.assertNotIn("status", got)
        self.assertEqual((got["spec"]["size"], got["metadata"]["generation"]), (3, 2))
        got["status"] = {"phase": "Ready"}
        got["spec"]["size"] = 9
        got = self.ok(self.c.put(base + "/iso/status", got))
        self.assertEqual((got["status"]["phase"], got["spec"]["size"], got["metadata"]["generation"]), ("Ready", 3, 2))
        got = self.ok(self.c.patch(base + "/iso/status", {"status": {"phase": "Degraded"}, "spec": {"size": 8}}))
        self.assertEqual((got["status"]["phase"], got["spec"]["size"]), ("Degraded", 3))
        got = self.ok(self.c.patch(base + "/iso", {"metadata": {"labels": {"x": "y"}}}))
        self.assertEqual(got["metadata"]["generation"], 2, "metadata changes do not bump generation")
        st, body = self.c.put(base + "/iso", dict(got, metadata=dict(got["metadata"], resourceVersion="")))
        self.assertEqual(st, 422, "custom resources need a resourceVersion on update")
        st, body = self.c.put(base + "/iso/status", dict(got, metadata=dict(got["metadata"], resourceVersion="")))
        self.assertEqual(st, 422, "... and on status updates")
        self.assertIn("metadata.resourceVersion: Invalid value: 0x0: must be specified for an update", body["message"])
        # Built-in status subresource: node status writes ignore spec, main writes ignore status.
        self.ok(self.c.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "iso-node"}}), 201)
        n = self.ok(self.c.patch("/api/v1/nodes/iso-node/status", {"status": {"conditions": [
            {"type": "Ready", "status": "True"}]}, "spec": {"unschedulable": True}},
            ctype="application/strategic-merge-patch+json"))
        self.assertEqual((n["status"]["conditions"][0]["status"], n.get("spec", {}).get("unschedulable")), ("True", None))
        n = self.ok(self.c.patch("/api/v1/nodes/iso-node", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}))
        self.assertEqual(n["status"]["conditions"][0]["status"], "True")

    def test_crd_defaults_applied_on_create_and_update(self):
        self.ensure_widget_crd()
        base = "/apis/example.com/v1/namespaces/sub/widgets"
        got = self.ok(self.c.post(base, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "dft"},
                                         "spec": {"size": 1, "opts": {}}}), 201)
        self.assertEqual(got["spec"], {"size": 1, "color": "blue", "opts": {"retries": 3}})
        got = self.ok(self.c.patch(base + "/dft", [{"op": "remove", "path": "/spec/color"}],
                                   ctype="application/json-patch+json"))
        self.assertEqual(got["spec"]["color"], "blue")
        st, body = self.c.post(base, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "dft2"},
                                      "spec": {"color": "green"}})
        self.assertEqual(st, 422)
        self.assertIn("spec.size: Required value", body["message"])
        self.assertIn('spec.color: Unsupported value: "green"', body["message"])
        st, body = self.c.post(base + "?fieldValidation=Strict", {"apiVersion": "example.com/v1", "kind": "Widget",
                                                                   "metadata": {"name": "dft3"}, "spec": {"size": 1, "x": 1}})
        self.assertEqual((st, body["message"]), (400, 'strict decoding error: unknown field "spec.x"'))
        got = self.ok(self.c.post(base, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "dft4"},
                                         "spec": {"size": 1, "x": 1}}), 201)
        self.assertNotIn("x", got["spec"], "unknown fields are pruned")

    def test_crd_cel_validation_rules(self):
        self.ensure_widget_crd()
        base = "/apis/example.com/v1/namespaces/sub/widgets"
        w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "cel1"},
             "spec": {"size": 7, "tags": {"x-bad": "1", "ok": "2"}}}
        st, body = self.c.post(base, w)
        self.assertEqual(st, 422)
        self.assertIn('spec: Invalid value: "object": big widgets must be red', body["message"])
        self.assertIn('spec.tags: Invalid value: "object": tag keys must not start with x-', body["message"])
        w["spec"] = {"size": 7, "color": "red", "tags": {"ok": "1"}}
        got = self.ok(self.c.post(base, w), 201)
        st, body = self.c.patch(base + "/cel1", {"spec": {"color": "blue"}})
        self.assertEqual(st, 422)
        self.assertIn("big widgets must be red", body["message"])

    def test_events_in_both_groups(self):
        ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "np.1", "namespace": "default"},
              "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "stratos.sh/stratosd",
              "reportingInstance": "stratosd-0", "action": "ScaleUp", "reason": "Started", "type": "Normal",
              "note": "started node x", "regarding": {"apiVersion": "stratos.sh/v1alpha1", "kind": "NodePool", "name": "ci"}}
        got = self.ok(self.c.post("/apis/events.k8s.io/v1/namespaces/default/events", ev), 201)
        self.assertEqual((got["apiVersion"], got["note"], got["regarding"]["name"]), ("events.k8s.io/v1", "started node x", "ci"))
        core = self.ok(self.c.get("/api/v1/namespaces/default/events/np.1"))
        self.assertEqual((core["message"], core["involvedObject"]["kind"], core["reportingComponent"]),
                         ("started node x", "NodePool", "stratos.sh/stratosd"))
        bad = dict(ev, metadata={"name": "np.2", "namespace": "sub"}, note="x" * 1025)
        del bad["reportingController"]
        st, body = self.c.post("/apis/events.k8s.io/v1/namespaces/sub/events", bad)
        self.assertEqual(st, 422)
        for frag in ("reportingController: Required value", "note: Invalid value", "involvedObject.namespace"):
            self.assertIn(frag, body["message"])


# ---------------------------------------------------------------------------
class ControlTest(ServerCase):
    def test_request_counts(self):
        self.ok(self.c.post("/_sim/requests/reset", {}))
        self.ok(self.c.get("/api/v1/nodes?limit=500"))
        self.ok(self.c.get("/api/v1/nodes?limit=500"))
        w = self.c.watch("/api/v1/nodes?watch=1&timeoutSeconds=1&resourceVersion=" +
                         self.ok(self.c.get("/_sim/health"))["resourceVersion"])
        w.close()
        self.ok(self.c.patch("/api/v1/namespaces/default", {"metadata": {"labels": {"t": "1"}}}))
        counts = self.ok(self.c.get("/_sim/requests"))["counts"]
        self.assertEqual(counts.get("list nodes"), 2)
        self.assertEqual(counts.get("watch nodes"), 1)
        self.assertEqual(counts.get("patch namespaces"), 1)

    def test_latency(self):
        self.ok(self.c.post("/_sim/latency", {"seconds": 0.3}))
        try:
            t0 = time.time()
            self.ok(self.c.get("/api/v1/namespaces/default"))
            self.assertGreaterEqual(time.time() - t0, 0.3)
        finally:
            self.ok(self.c.post("/_sim/latency", {"seconds": 0}))
        t0 = time.time()
        self.ok(self.c.get("/api/v1/namespaces/default"))
        self.assertLess(time.time() - t0, 0.25)

    def test_ssar_deny(self):
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"verb": "patch", "resource": "nodes"}}}
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        self.assertTrue(self.ok(self.c.post(path, review), 201)["status"]["allowed"])
        self.ok(self.c.post("/_sim/ssar", {"deny": [{"verb": "patch", "resource": "nodes"}]}))
        try:
            self.assertFalse(self.ok(self.c.post(path, review), 201)["status"]["allowed"])
            review["spec"]["resourceAttributes"]["verb"] = "get"
            self.assertTrue(self.ok(self.c.post(path, review), 201)["status"]["allowed"])
        finally:
            self.ok(self.c.post("/_sim/ssar", {"deny": []}))

    def test_failure_injection(self):
        self.ok(self.c.post("/_sim/fail", {"verb": "create", "resource": "configmaps", "code": 500, "count": 1}))
        st, body = self.c.post("/api/v1/namespaces/default/configmaps", cm("inj"))
        self.assertEqual((st, body["reason"]), (500, "InternalError"))
        self.ok(self.c.post("/api/v1/namespaces/default/configmaps", cm("inj")), 201)

    def test_graceful_pod_termination(self):
        self.ok(self.c.post("/_sim/config", {"podTerminationSeconds": 0.5}))
        try:
            self.ok(self.c.post("/_sim/bulk", [pod("term", node="n1", phase="Running", ready=True)]))
            got = self.ok(self.c.delete("/api/v1/namespaces/default/pods/term"))
            self.assertIn("deletionTimestamp", got["metadata"])
            self.assertEqual(got["metadata"]["deletionGracePeriodSeconds"], 30)
            self.assertEqual(self.c.get("/api/v1/namespaces/default/pods/term")[0], 200)
            deadline = time.time() + 5
            while self.c.get("/api/v1/namespaces/default/pods/term")[0] == 200 and time.time() < deadline:
                time.sleep(0.1)
            self.assertEqual(self.c.get("/api/v1/namespaces/default/pods/term")[0], 404)
        finally:
            self.ok(self.c.post("/_sim/config", {"podTerminationSeconds": 0}))



# ---------------------------------------------------------------------------
class UpstreamAnswersTest(ServerCase):
    """Answers that must be kube-apiserver's exactly, because clients (stratosd
    among them) decide by them. Each test names the upstream code it copies."""

    GENERIC_422 = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "the server rejected our request due to an error in our request",
                   "reason": "Invalid", "details": {}, "code": 422}

    def node(self, name, **meta):
        m = dict({"name": name}, **meta)
        return self.ok(self.c.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": m}), 201)

    def test_json_patch_that_does_not_apply_is_a_causeless_422(self):
        # handlers/patch.go applyJSPatch: patchObj.Apply's error goes to
        # errors.NewGenericServerResponse(422, "", GroupResource{}, "", err, 0,
        # isUnexpectedResponse=false): generic message, empty details, no cause.
        n = self.node("gen422-node", labels={"a": "1"})
        path = "/api/v1/nodes/gen422-node"
        for ops in ([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}],
                    [{"op": "test", "path": "/metadata/labels/a", "value": "2"}],
                    [{"op": "remove", "path": "/metadata/annotations/missing"}]):
            st, body = self.c.patch(path, ops, ctype="application/json-patch+json")
            self.assertEqual((st, body), (422, self.GENERIC_422), ops)
        self.assertEqual(self.ok(self.c.get(path))["metadata"]["resourceVersion"], n["metadata"]["resourceVersion"])

    def test_json_patch_setting_a_stale_resource_version_is_409(self):
        # registry/generic/registry/store.go Update: the patched object's
        # resourceVersion differs from the stored one -> apierrors.NewConflict(
        # qualifiedResource, name, OptimisticLockErrorMsg).
        n = self.node("rv409-node")
        path = "/api/v1/nodes/rv409-node"
        rv = n["metadata"]["resourceVersion"]
        claim = [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
                 {"op": "add", "path": "/metadata/labels", "value": {"stratos.sh/state": "running"}}]
        won = self.ok(self.c.patch(path, claim, ctype="application/json-patch+json"))
        self.assertGreater(int(won["metadata"]["resourceVersion"]), int(rv))
        st, body = self.c.patch(path, claim, ctype="application/json-patch+json")
        self.assertEqual((st, body), (409, {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'Operation cannot be fulfilled on nodes "rv409-node": the object has been modified; '
                       "please apply your changes to the latest version and try again",
            "reason": "Conflict", "details": {"name": "rv409-node", "kind": "nodes"}, "code": 409}))
        # The patch is applied before the versions are compared: an operation
        # that no longer applies fails first, with the generic 422.
        stale = [claim[0], {"op": "remove", "path": "/metadata/annotations/gone"}]
        self.assertEqual(self.c.patch(path, stale, ctype="application/json-patch+json"), (422, self.GENERIC_422))

    def test_list_pages_are_served_from_the_first_pages_snapshot(self):
        # storage/etcd3/store.go GetList: the continue token carries the first
        # page's revision (storage/continue.go EncodeContinue) and later pages
        # are read at it: same resourceVersion, objects as of that revision.
        self.ensure_ns("snap")
        base = "/api/v1/namespaces/snap/configmaps"
        self.ok(self.c.post("/_sim/bulk", [cm("s-%02d" % i, "snap") for i in range(30)]))
        first = self.ok(self.c.get(base + "?limit=10"))
        rv = first["metadata"]["resourceVersion"]
        self.ok(self.c.delete(base + "/s-03"))       # on the page already read
        self.ok(self.c.delete(base + "/s-25"))       # on a page still to come
        self.ok(self.c.patch(base + "/s-15", {"data": {"k": "changed"}}))
        self.ok(self.c.post(base, cm("s-27a", "snap")), 201)
        names, cont, pages = [i["metadata"]["name"] for i in first["items"]], first["metadata"]["continue"], [first]
        while cont:
            page = self.ok(self.c.get(base + "?limit=10&continue=" + cont))
            self.assertEqual(page["metadata"]["resourceVersion"], rv)
            pages.append(page)
            names += [i["metadata"]["name"] for i in page["items"]]
            cont = page["metadata"].get("continue")
        self.assertEqual(names, ["s-%02d" % i for i in range(30)])
        s15 = [i for p in pages for i in p["items"] if i["metadata"]["name"] == "s-15"][0]
        self.assertEqual(s15["data"], {"k": "v"})
        self.assertLessEqual(int(s15["metadata"]["resourceVersion"]), int(rv))
        self.assertEqual(pages[0]["metadata"]["remainingItemCount"], 20)
        # A watch from the list's version brings every change since: nothing is lost.
        w = self.c.watch(base + "?watch=1&resourceVersion=" + rv)
        got = [w.next() for _ in range(4)]
        w.close()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got],
                         [("DELETED", "s-03"), ("DELETED", "s-25"), ("MODIFIED", "s-15"), ("ADDED", "s-27a")])
        # A new list sees the present.
        now = [i["metadata"]["name"] for i in self.c.list_all(base, limit=10)[0]]
        self.assertEqual(len(now), 29)
        self.assertNotIn("s-25", now)
        # continue with a resourceVersion: storage.ValidateListOptions refuses it.
        st, body = self.c.get(base + "?limit=10&resourceVersion=" + rv + "&continue=" + first["metadata"]["continue"])
        self.assertEqual((st, body["reason"], body["message"]),
                         (400, "BadRequest", "specifying resource version is not allowed when using continue"))

    def test_expired_continue_token_is_410_with_a_token_for_the_rest(self):
        # etcd3 handleCompactedErrorForPaging: NewResourceExpired(inconsistentContinue)
        # with ListMeta.Continue = a token of resourceVersion -1 (the latest).
        self.ensure_ns("exp")
        base = "/api/v1/namespaces/exp/configmaps"
        self.ok(self.c.post("/_sim/bulk", [cm("e-%02d" % i, "exp") for i in range(20)]))
        first = self.ok(self.c.get(base + "?limit=10"))
        self.ok(self.c.post(base, cm("e-19z", "exp")), 201)
        self.ok(self.c.post("/_sim/compact", {"resource": "configmaps"}))
        st, body = self.c.get(base + "?limit=10&continue=" + first["metadata"]["continue"])
        self.assertEqual((st, body["reason"], body["code"]), (410, "Expired", 410))
        self.assertEqual(body["message"], (
            "The provided continue parameter is too old to display a consistent list result. You can start a new "
            "list without the continue parameter, or use the continue token in this response to retrieve the "
            "remainder of the results. Continuing with the provided token results in an inconsistent list - "
            "objects that were created, modified, or deleted between the time the first chunk was returned and "
            "now may show up in the list."))
        tok = json.loads(base64.urlsafe_b64decode(body["metadata"]["continue"] + "=="))
        self.assertEqual(tok["rv"], -1)
        rest = self.ok(self.c.get(base + "?limit=100&continue=" + body["metadata"]["continue"]))
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["e-%02d" % i for i in range(10, 20)] + ["e-19z"])
        self.assertGreater(int(rest["metadata"]["resourceVersion"]), int(first["metadata"]["resourceVersion"]))

    def test_list_at_an_exact_resource_version(self):
        # resourceVersionMatch=Exact is read at that revision, or 410 "The
        # resourceVersion for the provided list is too old." once compacted.
        self.ensure_ns("exact")
        base = "/api/v1/namespaces/exact/configmaps"
        self.ok(self.c.post(base, cm("x1", "exact")), 201)
        rv = self.ok(self.c.get(base))["metadata"]["resourceVersion"]
        self.ok(self.c.post(base, cm("x2", "exact")), 201)
        got = self.ok(self.c.get(base + "?resourceVersionMatch=Exact&resourceVersion=" + rv))
        self.assertEqual(([i["metadata"]["name"] for i in got["items"]], got["metadata"]["resourceVersion"]), (["x1"], rv))
        self.ok(self.c.post("/_sim/compact", {"resource": "configmaps"}))
        st, body = self.c.get(base + "?resourceVersionMatch=Exact&resourceVersion=" + rv)
        self.assertEqual((st, body["reason"], body["message"]),
                         (410, "Expired", "The resourceVersion for the provided list is too old."))

    def test_list_options_validation(self):
        # ValidateListOptions (meta/internalversion/validation/validation.go),
        # wrapped by the list handler in errors.NewInvalid(ListOptions.meta.k8s.io, "").
        base = "/api/v1/namespaces/default/configmaps"

        def invalid(query, message, fields):
            st, body = self.c.get(base + "?" + query)
            self.assertEqual((st, body["reason"], body["message"]), (422, "Invalid", message), query)
            self.assertEqual(body["details"]["kind"], "ListOptions")
            self.assertEqual(body["details"]["group"], "meta.k8s.io")
            self.assertNotIn("name", body["details"])
            self.assertEqual([c["field"] for c in body["details"]["causes"]], fields)
        invalid("resourceVersionMatch=NotOlderThan",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is '
                "forbidden unless resourceVersion is provided", ["resourceVersionMatch"])
        invalid("sendInitialEvents=true",
                'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is '
                "forbidden for list", ["sendInitialEvents"])
        invalid("resourceVersion=1&resourceVersionMatch=Newest",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported value: "Newest": '
                'supported values: "Exact", "NotOlderThan", ""', ["resourceVersionMatch"])
        invalid("watch=1&sendInitialEvents=true",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents '
                "requires setting resourceVersionMatch to NotOlderThan", ["resourceVersionMatch"])
        invalid("watch=1&resourceVersionMatch=NotOlderThan",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is '
                "forbidden for watch unless sendInitialEvents is provided", ["resourceVersionMatch"])
        w = self.c.watch(base + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                "&allowWatchBookmarks=true")
        self.assertEqual(w.status, 200)
        w.close()

    def test_lease_times_are_micro_time_and_updates_need_a_resource_version(self):
        base = "/apis/coordination.k8s.io/v1/namespaces/stratos-system/leases"
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "micro"},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                          "acquireTime": "2024-01-01T00:00:00.000000Z", "renewTime": "2024-01-01T00:00:00.123Z"}}
        # metav1.MicroTime.UnmarshalJSON is time.Parse(RFC3339Micro, ...): exactly
        # six digits; the decode error is handlers/rest.go transformDecodeError's 400.
        st, body = self.c.post(base, lease)
        self.assertEqual((st, body["reason"], body["message"]), (400, "BadRequest", (
            'Lease in version "v1" cannot be handled as a Lease: parsing time "2024-01-01T00:00:00.123Z" as '
            '"2006-01-02T15:04:05.000000Z07:00": cannot parse ".123Z" as ".000000"')))
        lease["spec"]["renewTime"] = "2024-01-01T00:00:00Z"
        st, body = self.c.post(base, lease)
        self.assertEqual(st, 400)
        self.assertTrue(body["message"].endswith('cannot parse "Z" as ".000000"'), body["message"])
        # Any offset is accepted and stored in UTC (MicroTime.MarshalJSON).
        lease["spec"]["renewTime"] = "2024-01-01T02:00:00.000001+02:00"
        got = self.ok(self.c.post(base, lease), 201)
        self.assertEqual(got["spec"]["renewTime"], "2024-01-01T00:00:00.000001Z")
        # leaseStrategy.AllowUnconditionalUpdate() is false: store.go Update wants
        # a resourceVersion, qualifiedKind being the resource ("leases").
        del got["metadata"]["resourceVersion"]
        st, body = self.c.put(base + "/micro", got)
        self.assertEqual((st, body["reason"], body["message"]), (422, "Invalid", (
            'leases.coordination.k8s.io "micro" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
            "must be specified for an update")))
        self.assertEqual(body["details"]["kind"], "leases")
        # A patch whose result does not decode: applyPatchToCurrentObject's Invalid "patch".
        st, body = self.c.patch(base + "/micro", {"spec": {"renewTime": "2024-01-01T00:00:00.5Z"}})
        self.assertEqual((st, body["reason"]), (422, "Invalid"))
        self.assertTrue(body["message"].startswith(' "" is invalid: patch: Invalid value: "{'), body["message"])
        self.assertTrue(body["message"].endswith('cannot parse ".5Z" as ".000000"'), body["message"])

    def test_pod_requests_default_to_limits_and_quantities_are_canonical(self):
        # core/v1 SetDefaults_Pod copies limits into missing requests; every
        # Quantity is written back in canonical form (resource/quantity.go
        # CanonicalizeBytes): suffix as large as possible without fractions.
        base = "/api/v1/namespaces/default/pods"
        p = pod("quant")
        p["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "0.5", "memory": "1024Mi"},
                                                   "requests": {"memory": "512000Ki"}}
        p["spec"]["initContainers"] = [{"name": "init", "image": "i:1",
                                        "resources": {"limits": {"cpu": 2, "memory": "1.5Gi"}}}]
        got = self.ok(self.c.post(base, p), 201)
        res = got["spec"]["containers"][0]["resources"]
        self.assertEqual(res["limits"], {"cpu": "500m", "memory": "1Gi"})
        self.assertEqual(res["requests"], {"cpu": "500m", "memory": "500Mi"})
        init = got["spec"]["initContainers"][0]["resources"]
        self.assertEqual(init["requests"], {"cpu": "2", "memory": "1536Mi"})
        self.assertEqual(got["status"]["qosClass"], "Burstable")
        for given, canonical in (("1000", "1k"), ("1500m", "1500m"), ("0.1m", "100u"), ("12e6", "12e6"),
                                 ("1.5e3", "1500"), ("0.5Ki", "512"), ("2048Ki", "2Mi"), ("1000Mi", "1000Mi"),
                                 (".5", "500m"), ("1e-3", "1e-3")):
            q = pod("quant-x")
            q["spec"]["containers"][0]["resources"] = {"requests": {"cpu": given}}
            body = self.ok(self.c.post(base + "?dryRun=All", q), 201)
            self.assertEqual(body["spec"]["containers"][0]["resources"]["requests"]["cpu"], canonical, given)
        bad = pod("quant-bad")
        bad["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "one"}}
        st, body = self.c.post(base, bad)
        self.assertEqual((st, body["message"]), (400, (
            'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")))

    def test_eviction_answers(self):
        # registry/core/pod/storage/eviction.go: success is &metav1.Status{Status:
        # Success} (201 from the create handler); a budget at zero is
        # NewTooManyRequests(msg, 0) with a DisruptionBudget cause, so no Retry-After.
        self.ensure_ns("evx")
        base = "/api/v1/namespaces/evx/pods/"

        def evict(name):
            return self.c.post(base + name + "/eviction", {
                "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "evx"}})
        self.ok(self.c.post("/_sim/bulk", [pod("ok", "evx", node="n1", phase="Running", ready=True)]))
        self.assertEqual(evict("ok"), (201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                             "status": "Success", "code": 201}))
        self.ok(self.c.post("/_sim/bulk", [pod("held", "evx", labels={"app": "held"}, node="n1", phase="Running",
                                               ready=True)]))
        self.ok(self.c.post("/apis/policy/v1/namespaces/evx/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "held"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "held"}}}}), 201)
        conn = self.c.connect()
        conn.request("POST", base + "held/eviction", body=json.dumps({
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "held"}}),
            headers=self.c.headers({"Content-Type": "application/json"}))
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        self.assertEqual(resp.status, 429)
        self.assertIsNone(resp.getheader("Retry-After"))
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                                "reason": "TooManyRequests", "details": {"causes": [{
                                    "reason": "DisruptionBudget",
                                    "message": "The disruption budget held needs 1 healthy pods and has 1 currently"}]},
                                "code": 429})
        # An unready pod skips the budget only while it is met and non-zero;
        # with minAvailable 0 and nothing healthy it falls to checkAndDecrement
        # (0 disruptions allowed): 429. AlwaysAllow lets it go.
        self.ok(self.c.post("/_sim/bulk", [pod("sick", "evx", labels={"app": "sick"}, node="n1", phase="Running")]))
        self.ok(self.c.post("/apis/policy/v1/namespaces/evx/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "sick"},
            "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "sick"}}}}), 201)
        self.assertEqual(evict("sick")[0], 429)
        self.ok(self.c.patch("/apis/policy/v1/namespaces/evx/poddisruptionbudgets/sick",
                             {"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}}))
        self.assertEqual(evict("sick")[0], 201)
        st, body = self.c.post(base + "held/eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                        "metadata": {"name": "other"}})
        self.assertEqual((st, body["message"]), (400, "name in URL does not match name in Eviction object"))

if __name__ == "__main__":
    unittest.main()
