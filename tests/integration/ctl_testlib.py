"""Helpers of the pool controller's integration tests: a simulated cluster
(ec2sim, the fake API server, kubeletsim, optionally schedsim) with the
CRDs applied, stratosd serving against it with --cluster-name, and readers
for both sides of the truth: the cluster (Nodes, NodePool status, Events,
pods) and EC2 (ec2sim's /_sim/instances).

Every wait is on a condition with a deadline (wait_for), never a guessed
sleep. Durations in the NodePools are set short, and the simulators run
with --time-scale, so a test takes seconds.
"""

import json
import os
import re
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))
sys.path.insert(0, HERE)

import simcluster  # noqa: E402
import simproc  # noqa: E402
import stratos_testlib as tl  # noqa: E402
import yaml  # noqa: E402

CLUSTER = "sim-cluster"
NS = "stratos-system"
SEED = os.path.join(REPO, "tests", "fixtures", "seed-examples.yaml")

# The seed's user data (seed/examples.yaml): registers the startup taint,
# waits for the kubelet, sleeps, powers the machine off.
SEED_USER_DATA = simcluster.seed_user_data(sleep=30)
# A bootstrap that registers the taint and stays up: the controller stops it.
PLAIN_USER_DATA = simcluster.seed_user_data(poweroff=False)
STARTUP_TAINT = {"key": "node.eks.amazonaws.com/not-ready", "value": "true", "effect": "NoSchedule"}


def parse_time(s):
    """RFC 3339 (seconds, UTC) → epoch seconds."""
    import calendar
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def parse_ms(ts):
    """A log line's "ts" (2026-12-06T13:22:54.174Z) → epoch seconds with milliseconds."""
    import calendar
    base, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def test_failed(test):
    """Whether test (a unittest.TestCase, asked from its cleanups) has failed
    so far, also in a subTest."""
    r = getattr(getattr(test, "_outcome", None), "result", None)
    bad = (getattr(r, "failures", None) or []) + (getattr(r, "errors", None) or [])
    return any(t is test or getattr(t, "test_case", None) is test for t, _ in bad)


def wait_for(fn, timeout, what="condition", interval=0.05):
    return simcluster.wait_for(fn, timeout=timeout, interval=interval, what=what)


def nodeclass(name, user_data=PLAIN_USER_DATA, itype="m5.large", subnets=("subnet-12345678",),
              **extra):
    spec = {"instanceType": itype, "ami": "ami-0123456789abcdef0", "subnetIds": list(subnets),
            "securityGroupIds": ["sg-12345678"],
            "iamInstanceProfile": "arn:aws:iam::123456789012:instance-profile/node-role"}
    if user_data is not None:
        spec["userData"] = user_data
    spec.update(extra)
    return {"apiVersion": "stratos.sh/v1alpha1", "kind": "AWSNodeClass", "metadata": {"name": name},
            "spec": spec}


def nodepool(name, pool_size=4, min_standby=2, cls=None, taints=(STARTUP_TAINT,),
             removal="WhenNetworkReady", prewarm=None, scale_down=None, labels=None):
    tmpl = {"nodeClassRef": {"kind": "AWSNodeClass", "name": cls or name},
            "labels": dict({"stratos.sh/pool": name}, **(labels or {})),
            "startupTaints": list(taints), "startupTaintRemoval": removal}
    spec = {"poolSize": pool_size, "minStandby": min_standby, "template": tmpl}
    if prewarm:
        spec["preWarm"] = prewarm
    if scale_down:
        spec["scaleDown"] = scale_down
    return {"apiVersion": "stratos.sh/v1alpha1", "kind": "NodePool", "metadata": {"name": name},
            "spec": spec}


class Cluster:
    """The simulated cluster of one test, and stratosd processes against it."""

    def __init__(self, test, scale=0.05, sched=False, kubelet_args=(), ec2_args=(),
                 sched_args=()):
        comps = ("ec2sim", "apiserver", "kubeletsim") + (("schedsim",) if sched else ())
        self.test = test
        self.sim = simcluster.Sim(components=comps, scale=scale, kubelet_args=kubelet_args,
                                  ec2_args=ec2_args, sched_args=sched_args)
        test.addCleanup(self.close)
        self.api = self.sim.api
        self.env = simproc.read_env(os.path.join(self.sim.dir, "ec2sim.env"))
        self.daemons = []
        self._apply_crds()

    def close(self):
        # A failed test shows what stratosd said (its last 80 lines above
        # debug); STRATOS_TEST_LOGS=1 shows it all, also for passing tests.
        failed = test_failed(self.test)
        if os.environ.get("STRATOS_TEST_LOGS") or failed:
            for d in self.daemons:
                lines = [ln for ln in d.raw if '"level":"debug"' not in ln]
                sys.stderr.write("--- stratosd log%s\n" % ("" if not failed else " (last 80 lines)"))
                sys.stderr.write("\n".join(lines if not failed else lines[-80:]) + "\n")
        for d in self.daemons:
            if d.alive():
                d.proc.kill()
                d.proc.wait()
        self.sim.close()

    def _apply_crds(self):
        d = os.path.join(REPO, "manifests", "crds")
        for name in sorted(os.listdir(d)):
            if name.startswith("stratos.sh_"):
                with open(os.path.join(d, name)) as f:
                    for doc in yaml.safe_load_all(f):
                        st, body = self.api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                                 doc)
                        assert st in (201, 409), (st, body)

    # ---- stratosd

    def stratosd(self, *extra, env=None, wrapper=None):
        """Starts `stratosd serve` against the simulation (plain HTTP, ports chosen by the kernel)."""
        e = {k: self.env[k] for k in ("AWS_ENDPOINT_URL_EC2", "AWS_ACCESS_KEY_ID",
                                      "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_CA_BUNDLE")}
        e.update(env or {})
        args = ["--insecure-http", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                "--kubeconfig", os.path.join(self.sim.dir, "kubeconfig"), "--cluster-name", CLUSTER,
                "--namespace", NS, "--ec2-poll", "200ms"] + list(extra)
        d = tl.Stratosd(args, env=e, wrapper=wrapper, ready_timeout=30 * tl.wrapper_slowdown())
        self.daemons.append(d)
        return d

    def metrics(self, d):
        r = tl.http_request(d.metrics_port, "GET", "/metrics")
        out = {}
        for line in r.body.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def check_logs(self, d, stop=True):
        """Stops d with SIGTERM (stop=True): it exits 0 (under ASan: no leak, no error
        report at exit); and its log has no sanitizer report."""
        if stop and d.alive():
            rc, _ = d.stop()
            self.test.assertEqual(rc, 0, "stratosd exit status %s:\n%s" % (rc, "\n".join(
                ln for ln in d.raw[-80:] if not ln.startswith("{"))))
        text = "\n".join(d.raw)
        self.test.assertNotIn("Sanitizer", text)
        self.test.assertNotIn("runtime error:", text)

    # ---- Kubernetes

    def apply(self, obj):
        kind = obj["kind"]
        plural = {"NodePool": "nodepools", "AWSNodeClass": "awsnodeclasses"}[kind]
        path = "/apis/stratos.sh/v1alpha1/" + plural
        st, body = self.api.post(path, obj)
        if st == 409:
            st, cur = self.api.get(path + "/" + obj["metadata"]["name"])
            obj = dict(obj, metadata=dict(obj["metadata"],
                                          resourceVersion=cur["metadata"]["resourceVersion"]))
            st, body = self.api.put(path + "/" + obj["metadata"]["name"], obj)
            assert st == 200, (st, body)
        else:
            assert st == 201, (st, body)
        return body

    def patch_pool(self, name, spec):
        st, body = self.api.patch("/apis/stratos.sh/v1alpha1/nodepools/" + name, {"spec": spec})
        assert st == 200, (st, body)
        return body

    def delete_pool(self, name):
        st, body = self.api.delete("/apis/stratos.sh/v1alpha1/nodepools/" + name)
        assert st in (200, 202), (st, body)

    def pool(self, name):
        st, body = self.api.get("/apis/stratos.sh/v1alpha1/nodepools/" + name)
        return body if st == 200 else None

    def status(self, name):
        p = self.pool(name)
        return (p or {}).get("status") or {}

    def counts(self, name):
        return self.status(name).get("nodes") or {}

    def condition(self, name, ctype):
        for c in self.status(name).get("conditions") or []:
            if c["type"] == ctype:
                return c
        return {}

    def nodes(self, pool=None):
        sel = "?labelSelector=stratos.sh%2Fpool%3D" + pool if pool else ""
        st, body = self.api.get("/api/v1/nodes" + sel)
        assert st == 200, body
        return body["items"]

    def node(self, name):
        return self.sim.node(name)

    def states(self, pool):
        """{node name: state label} of the pool's Nodes."""
        return {n["metadata"]["name"]: n["metadata"]["labels"].get("stratos.sh/state")
                for n in self.nodes(pool)}

    def by_state(self, pool, state):
        return [n for n in self.nodes(pool) if n["metadata"]["labels"].get("stratos.sh/state") == state]

    def events(self, reason=None, name=None):
        st, body = self.api.get("/apis/events.k8s.io/v1/events")
        assert st == 200, body
        out = []
        for e in body["items"]:
            if reason and e.get("reason") != reason:
                continue
            if name and (e.get("regarding") or {}).get("name") != name:
                continue
            out.append(e)
        return out

    def pods(self, ns=None, node=None):
        path = "/api/v1/pods" if ns is None else "/api/v1/namespaces/%s/pods" % ns
        if node:
            path += "?fieldSelector=spec.nodeName%3D" + node
        st, body = self.api.get(path)
        assert st == 200, body
        return body["items"]

    def create_pod(self, ns, obj):
        self.sim.namespace(ns)
        return self.sim.create("/api/v1/namespaces/%s/pods" % ns, obj)

    def claim(self, node, pod=None, reservations=None):
        """What the extender's claim does (DESIGN §6.3): one PATCH of the standby Node to
        running (started-at, started-for, the standby taint removed), then StartInstances."""
        # As the extender: a 409 (the kubelet's status write came between the
        # read and the patch) means read again; the node must still be standby.
        for _ in range(20):
            n = self.node(node)
            assert n["metadata"]["labels"].get("stratos.sh/state") == "standby", n["metadata"]["labels"]
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            taints = [t for t in n["spec"].get("taints") or [] if t["key"] != "stratos.sh/standby"]
            ann = {"stratos.sh/state-since": now, "stratos.sh/started-at": now}
            if pod:
                ann["stratos.sh/started-for"] = pod
            if reservations is not None:
                ann["stratos.sh/reservations"] = json.dumps(reservations)
            st, body = self.api.patch("/api/v1/nodes/" + node, {
                "metadata": {"resourceVersion": n["metadata"]["resourceVersion"],
                             "labels": {"stratos.sh/state": "running"}, "annotations": ann},
                "spec": {"taints": taints}})
            if st != 409:
                break
        assert st == 200, (st, body)
        self.sim.ec2.start_instances(InstanceIds=[n["metadata"]["labels"]["stratos.sh/instance-id"]])
        return body

    def usable(self, node):
        """Running, Ready, network ready, no startup taint (what the extender offers)."""
        n = self.node(node)
        if n is None or n["metadata"]["labels"].get("stratos.sh/state") != "running":
            return False
        conds = {c["type"]: c["status"] for c in n["status"].get("conditions") or []}
        ready = [c for c in n["status"].get("conditions") or [] if c["type"] == "Ready"]
        started = (n["metadata"].get("annotations") or {}).get("stratos.sh/started-at")
        if started and ready and ready[0].get("lastTransitionTime", started) < started:
            return False        # a Ready from before the stop
        keys = {t["key"] for t in n["spec"].get("taints") or []}
        return conds.get("Ready") == "True" and conds.get("NetworkUnavailable", "False") == "False" \
            and STARTUP_TAINT["key"] not in keys and "stratos.sh/standby" not in keys \
            and "node.kubernetes.io/unreachable" not in keys

    # ---- EC2

    def ec2control(self, method, path, body=None):
        return simproc.control(self.env["STRATOS_SIM_EC2_CONTROL"], method, path, body,
                               ca=self.env.get("AWS_CA_BUNDLE"))

    def instances(self, pool=None, alive=True):
        """ec2sim's instances of this cluster (and pool), as /_sim/instances shows them."""
        st, body = self.ec2control("GET", "instances")
        assert st == 200, body
        out = []
        for i in body["instances"]:
            tags = {t["Key"]: t["Value"] for t in i.get("tags") or []} \
                if isinstance(i.get("tags"), list) else (i.get("tags") or {})
            if tags.get("stratos.sh/cluster") != CLUSTER:
                continue
            if pool and tags.get("stratos.sh/pool") != pool:
                continue
            if alive and i["state"] in ("terminated", "shutting-down"):
                continue
            i["tagmap"] = tags
            out.append(i)
        return out

    def instance(self, iid):
        st, body = self.ec2control("GET", "instances/" + iid)
        assert st == 200, body
        return body

    def run_requests(self):
        st, body = self.ec2control("GET", "requests?action=RunInstances")
        assert st == 200, body
        return [r for r in body["requests"] if r.get("outcome") == "response" or r.get("forwarded")]

    def requests(self, action=None, since=0):
        q = "requests?since=%d" % since + ("&action=" + action if action else "")
        st, body = self.ec2control("GET", q)
        assert st == 200, body
        return body

    # ---- both sides

    def assert_standby(self, pool, n, images=()):
        """n standby Nodes, each with its instance stopped and tagged standby, the standby
        taint and the startup taints on, and each image on the instance's disk."""
        nodes = self.by_state(pool, "standby")
        self.test.assertEqual(len(nodes), n, [x["metadata"]["name"] for x in nodes])
        for node in nodes:
            iid = node["metadata"]["labels"]["stratos.sh/instance-id"]
            inst = self.instance(iid)
            self.test.assertEqual(inst["state"], "stopped", iid)
            tags = inst["tags"] if isinstance(inst["tags"], dict) else \
                {t["Key"]: t["Value"] for t in inst["tags"]}
            self.test.assertEqual(tags.get("stratos.sh/state"), "standby", iid)
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
            self.test.assertIn(("stratos.sh/standby", "NoExecute"), taints)
            self.test.assertIn((STARTUP_TAINT["key"], STARTUP_TAINT["effect"]), taints)
            self.test.assertFalse(node["spec"].get("unschedulable", False))
            if images:
                m = self.machine(iid)
                for img in images:
                    self.test.assertTrue(any(img in x for x in m["images"]), (img, m["images"]))
        return nodes

    def machine(self, iid):
        st, body = self.sim.control("kubeletsim", "GET", "/_sim/machines/" + iid)
        assert st == 200, body
        return body
