"""Helpers for the Kubernetes-client integration tests: a fake API server
started with scripts/sim, the stratos CRDs applied, stratosd processes
pointed at it, and comparisons between stratosd's caches (/debug/caches)
and the server's own LISTs."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))
sys.path.insert(0, HERE)

import simclient  # noqa: E402
import stratos_testlib as tl  # noqa: E402
import yaml  # noqa: E402

# The list path of each cache, as /debug/caches names it.
PATHS = {
    "nodes": "/api/v1/nodes",
    "pods": "/api/v1/pods",
    "nodepools": "/apis/stratos.sh/v1alpha1/nodepools",
    "awsnodeclasses": "/apis/stratos.sh/v1alpha1/awsnodeclasses",
}


class Sim:
    """`scripts/sim up --components apiserver` in a fresh directory, with the CRDs."""

    def __init__(self, test=None, apiserver_opts=(), crds=True):
        # With a test, the directory goes when the test ends; else down() removes it.
        self.own_dir = test is None
        self.dir = tl.tempdir(test) if test is not None else \
            tempfile.mkdtemp(prefix="stratos-kube-")
        cmd = [os.path.join(REPO, "scripts", "sim"), "up", "--dir", self.dir,
               "--components", "apiserver"]
        cmd += ["--apiserver-opt=%s" % o for o in apiserver_opts]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.api = simclient.Client(self.dir)
        if crds:
            self.apply_crds()

    def down(self):
        self.api.close()
        subprocess.run([os.path.join(REPO, "scripts", "sim"), "down", "--dir", self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def apply_crds(self):
        crd_dir = os.path.join(REPO, "manifests", "crds")
        for name in sorted(os.listdir(crd_dir)):
            if not name.startswith("stratos.sh_"):
                continue
            with open(os.path.join(crd_dir, name)) as f:
                for doc in yaml.safe_load_all(f):
                    st, body = self.api.post(
                        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc)
                    assert st in (201, 409), (st, body)

    # ---- control API ----

    def requests(self):
        st, body = self.api.get("/_sim/requests")
        assert st == 200, body
        return body["counts"]

    def reset_requests(self):
        st, body = self.api.post("/_sim/requests/reset", {})
        assert st == 200, body

    def drop_watches(self, resource, mode="clean"):
        st, body = self.api.post("/_sim/drop-watches", {"resource": resource, "mode": mode})
        assert st == 200, body
        return body["dropped"]

    def compact(self, resource, mode):
        st, body = self.api.post("/_sim/compact", {"resource": resource, "mode": mode})
        assert st == 200, body

    def watches(self):
        st, body = self.api.get("/_sim/watches")
        assert st == 200, body
        return body

    def wait_watch_open(self, resource, timeout=10):
        """Waits until the server holds at least one open watch of resource: a cache has
        synced once its LIST is applied, and its WATCH request follows a moment later, so
        a test that drops or expires the watch must wait for it first."""
        tl.wait_for(lambda: self.watches().get(resource, 0) >= 1, timeout, interval=0.05,
                    what="a %s watch open on the server" % resource)

    def bulk(self, objs):
        st, body = self.api.post("/_sim/bulk", {"items": objs})
        assert st == 200 and body["failed"] == 0, body
        return body

    # ---- API ----

    def server_state(self, resource):
        """{key: resourceVersion} as the server lists it (key as in the caches)."""
        items, _ = self.api.list_all(PATHS[resource])
        out = {}
        for o in items:
            m = o["metadata"]
            key = (m["namespace"] + "/" + m["name"]) if m.get("namespace") else m["name"]
            out[key] = m["resourceVersion"]
        return out


def node(name, pool=None, state=None, rv_labels=None, taints=None, images=0):
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "topology.kubernetes.io/zone": "us-east-1a",
              "node.kubernetes.io/instance-type": "m5.2xlarge"}
    if pool:
        labels["stratos.sh/pool"] = pool
    if state:
        labels["stratos.sh/state"] = state
    labels.update(rv_labels or {})
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": "aws:///us-east-1a/i-%s" % name[-8:].rjust(8, "0"),
                 "taints": taints or []},
        "status": {
            "allocatable": {"cpu": "7910m", "memory": "31369588Ki", "pods": "58",
                            "ephemeral-storage": "192188443124"},
            "capacity": {"cpu": "8", "memory": "32386420Ki", "pods": "58"},
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": "2026-11-28T07:00:00Z",
                            "lastHeartbeatTime": "2026-11-28T07:00:00Z",
                            "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "images": [{"names": ["registry.example.com/team/image-%d@sha256:%064x" % (i, i),
                                  "registry.example.com/team/image-%d:v%d" % (i, i)],
                        "sizeBytes": 100000000 + i} for i in range(images)],
        },
    }


def pod(ns, name, node_name=None, owner=("ReplicaSet", "web-5d8f7c9b4"), cpu="250m",
        memory="256Mi", containers=1, pool=None):
    spec = {"containers": [{"name": "c%d" % i, "image": "nginx:1.27",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}}}
                           for i in range(containers)]}
    if node_name:
        spec["nodeName"] = node_name
    if pool:
        spec["nodeSelector"] = {"stratos.sh/pool": pool}
    meta = {"name": name, "namespace": ns}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                    "uid": "00000000-0000-4000-8000-000000000001",
                                    "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


class Daemon(tl.Stratosd):
    """`stratosd serve` on loopback ports (plain HTTP) against a Sim."""

    def __init__(self, sim, *extra, env=None):
        args = ["--insecure-http", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                "--kubeconfig", sim.kubeconfig] + list(extra)
        super().__init__(args, env=env)

    def get(self, path):
        r = tl.http_request(self.metrics_port, "GET", path)
        return r.status, r.body

    def debug(self, resource=None):
        st, body = self.get("/debug/caches" + ("/" + resource if resource else ""))
        assert st == 200, body
        return json.loads(body)

    def cache_state(self, resource):
        d = self.debug(resource)
        assert not d.get("truncated"), "debug list truncated"
        return {o["key"]: o["rv"] for o in d["objects"]}

    def metric(self, name, **labels):
        """Value of one series from /metrics, None when absent."""
        st, body = self.get("/metrics")
        assert st == 200
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in body.decode().splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r'^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$', line)
            if not m or m.group(1) != name:
                continue
            got = ",".join(sorted((m.group(2) or "{}")[1:-1].split(","))) if m.group(2) else ""
            if got == want:
                return float(m.group(3))
        return None

    def wait_synced(self, timeout=20):
        def synced():
            st, body = self.get("/readyz")
            return st == 200 and json.loads(body).get("ready")
        tl.wait_for(synced, timeout, what="caches synced (/readyz)")

    def identity(self):
        line = self.wait_log(lambda o: o.get("msg") == "Kubernetes API", 10)
        return line["identity"]


def wait_converged(test, daemon, sim, resource, timeout=15):
    """Waits until the daemon's cache holds exactly the server's objects and versions."""
    last = {}

    def same():
        last["server"] = sim.server_state(resource)
        last["cache"] = daemon.cache_state(resource)
        return last["server"] == last["cache"]
    try:
        tl.wait_for(same, timeout, interval=0.1, what="%s cache == server" % resource)
    except AssertionError:
        s, c = last.get("server", {}), last.get("cache", {})
        diff = {k: (s.get(k), c.get(k)) for k in set(s) | set(c) if s.get(k) != c.get(k)}
        test.fail("%s cache differs from the server (server, cache): %s" % (resource, diff))


def wait_cache_has(daemon, resource, want, timeout=15):
    """Waits until the cache holds every key of want at that resourceVersion (None =
    absent), reading only stratosd's debug view, so the server's request counters
    see nothing of the test itself."""
    def ok():
        state = daemon.cache_state(resource)
        return all(state.get(k) == v for k, v in want.items())
    tl.wait_for(ok, timeout, interval=0.05, what="%s cache to hold %s" % (resource, want))
