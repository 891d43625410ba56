"""Fidelity tests of schedsim (tests/sim/schedsim.py), one case per rule of
kube-scheduler it imitates: the in-tree filters, the extender calls, the
queue's backoffs and requeueing, the bundled scheduler configuration used as
it ships.

Run from the repository root:  python3 -m unittest tests/sim/test_schedsim.py
(STRATOSD=build/stratosd adds the case with the real mutating webhook.)
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simproc  # noqa: E402
from simcluster import (REPO, FakeExtender, Sim, cond, gen_certs, mount_secret, pod, seed_user_data,  # noqa: E402
                        static_node, taint_set, wait_for)

SCALE = 0.2          # schedsim's queue timers x 0.2: backoff 1 s -> 0.2 s
BUNDLED = os.path.join(REPO, "manifests", "components", "second-scheduler", "scheduler-config.yaml")
MANAGED = os.path.join(REPO, "manifests", "components", "managed-resource", "kube-scheduler-extender.yaml")
AFFINITY_MISS = "node(s) didn't match Pod's node affinity/selector"


def extender_config(url, **kw):
    ext = {"urlPrefix": url, "filterVerb": "filter", "prioritizeVerb": "prioritize", "weight": 5,
           "nodeCacheCapable": True, "ignorable": False, "httpTimeout": "2s"}
    ext.update(kw)
    return {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
            "profiles": [{"schedulerName": "stratos-scheduler"}], "extenders": [ext]}


def histogram(msg):
    """{reason: count} of "0/N nodes are available: 1 a, 2 b. preemption: ..."."""
    head = msg.split(". preemption:")[0]
    body = head.split(": ", 1)[1].rstrip(".")
    out = {}
    for part in body.split(", "):
        n, reason = part.split(" ", 1)
        out[reason] = int(n)
    return out


class SchedCase(unittest.TestCase):
    """One API server for the class; each test runs its own schedsim and
    cleans up its nodes and namespace."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(components=("apiserver",))
        cls.api = cls.sim.api
        cls.cfgdir = os.path.join(cls.sim.tmp, "configs")
        os.makedirs(cls.cfgdir)

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()

    def setUp(self):
        self.ns = "t-%s" % self._testMethodName.replace("_", "-")[5:40].strip("-")
        self.sim.namespace(self.ns)
        self.extenders = []

    def tearDown(self):
        self.stop_schedsim()
        for e in self.extenders:
            e.stop()
        self.api.delete("/api/v1/nodes")
        self.api.delete("/api/v1/namespaces/%s/pods" % self.ns)

    def stop_schedsim(self):
        if "schedsim" in self.sim.procs:
            self.assertEqual(simproc.stop(self.sim.procs.pop("schedsim")), 0, self.sim.log("schedsim"))

    def schedsim(self, *configs, args=()):
        files = []
        for i, c in enumerate(configs):
            path = c if isinstance(c, str) else os.path.join(self.cfgdir, "%s-%d.yaml" % (self._testMethodName, i))
            if not isinstance(c, str):
                with open(path, "w") as f:
                    json.dump(c, f)
            files += ["--scheduler-config", path]
        self.sim.start("schedsim", ["--time-scale", str(SCALE)] + files + list(args))
        wait_for(lambda: set(self.sim.control("schedsim", "GET", "/_sim/health")[1]["synced"]) >= {"nodes", "pods"},
                 what="schedsim synced")

    def extender(self, **kw):
        e = FakeExtender(**kw)
        self.extenders.append(e)
        return e

    def node(self, name, **kw):
        """Creates a Node and, with a schedsim running, waits until its
        informer holds it: a pod created next is then scheduled against it,
        not first against an empty cache."""
        n = self.sim.create("/api/v1/nodes", static_node(name, **kw))
        if "schedsim" in self.sim.procs:
            want = len(self.api.get("/api/v1/nodes")[1]["items"])
            wait_for(lambda: self.sim.control("schedsim", "GET", "/_sim/stats")[1]["nodes"] >= want,
                     what="schedsim sees node %s" % name)
        return n

    def create_pod(self, p):
        return self.sim.create("/api/v1/namespaces/%s/pods" % self.ns, p)

    def get_pod(self, name):
        return self.sim.pod(self.ns, name)

    def wait_bound(self, name, timeout=15):
        return wait_for(lambda: (self.get_pod(name) or {}).get("spec", {}).get("nodeName"), timeout,
                        what="%s bound" % name)

    def wait_unschedulable(self, name, contains="", reason=None, timeout=15):
        def check():
            c = cond(self.get_pod(name), "PodScheduled")
            if c.get("status") == "False" and contains in (c.get("message") or "") and \
                    (reason is None or c.get("reason") == reason):
                return c
        return wait_for(check, timeout, what="%s PodScheduled=False with %r" % (name, contains))

    def attempts(self, name):
        st, doc = self.sim.control("schedsim", "GET", "/_sim/attempts?pod=%s/%s" % (self.ns, name))
        return doc["attempts"]


class FilterTest(SchedCase):
    """The in-tree filters: NodeUnschedulable, TaintToleration, NodeAffinity,
    NodeResourcesFit (pkg/scheduler/framework/plugins), one case per rule. Each
    case has a node of its own (label case=N) and a pod selecting it, so the
    other nodes fail NodeAffinity and the case's node gives the reason."""

    BOUND = "bound"
    TOL = lambda **kw: [dict(kw)]  # noqa: E731

    CASES = [
        # (name, node kwargs, pod spec (containers/initContainers/... overrides), expected reason or BOUND)
        ("unschedulable node", {"unschedulable": True}, {}, "node(s) were unschedulable"),
        ("unschedulable tolerated", {"unschedulable": True},
         {"tolerations": TOL(key="node.kubernetes.io/unschedulable", operator="Exists", effect="NoSchedule")}, BOUND),
        ("NoSchedule taint", {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}, {},
         "node(s) had untolerated taint {k: v}"),
        ("NoExecute taint, empty value", {"taints": [{"key": "k", "effect": "NoExecute"}]}, {},
         "node(s) had untolerated taint {k: }"),
        ("PreferNoSchedule does not filter", {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}, {}, BOUND),
        ("Equal toleration", {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
         {"tolerations": TOL(key="k", operator="Equal", value="v", effect="NoSchedule")}, BOUND),
        ("Equal toleration, other value", {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
         {"tolerations": TOL(key="k", operator="Equal", value="w", effect="NoSchedule")},
         "node(s) had untolerated taint {k: v}"),
        ("toleration of another effect", {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
         {"tolerations": TOL(key="k", operator="Exists", effect="NoExecute")}, "node(s) had untolerated taint {k: v}"),
        ("empty key Exists tolerates all", {"taints": [{"key": "a", "effect": "NoSchedule"},
                                                       {"key": "b", "value": "x", "effect": "NoExecute"}]},
         {"tolerations": TOL(operator="Exists")}, BOUND),
        ("empty effect tolerates every effect", {"taints": [{"key": "k", "effect": "NoExecute"}]},
         {"tolerations": TOL(key="k", operator="Exists")}, BOUND),
        ("first untolerated taint named", {"taints": [{"key": "a", "effect": "NoSchedule"},
                                                      {"key": "b", "effect": "NoSchedule"}]},
         {"tolerations": TOL(key="a", operator="Exists")}, "node(s) had untolerated taint {b: }"),
        ("nodeSelector mismatch", {"labels": {"disk": "hdd"}}, {"nodeSelector": {"disk": "ssd"}}, AFFINITY_MISS),
        ("nodeSelector match", {"labels": {"disk": "ssd"}}, {"nodeSelector": {"disk": "ssd"}}, BOUND),
        ("In", {"labels": {"zone": "a"}}, {"expr": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, BOUND),
        ("In, absent key", {}, {"expr": [{"key": "zone", "operator": "In", "values": ["a"]}]}, AFFINITY_MISS),
        ("NotIn", {"labels": {"zone": "a"}}, {"expr": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]},
         AFFINITY_MISS),
        ("NotIn, absent key", {}, {"expr": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, BOUND),
        ("Exists", {"labels": {"gpu": ""}}, {"expr": [{"key": "gpu", "operator": "Exists"}]}, BOUND),
        ("DoesNotExist", {"labels": {"gpu": ""}}, {"expr": [{"key": "gpu", "operator": "DoesNotExist"}]},
         AFFINITY_MISS),
        ("Gt", {"labels": {"cores": "16"}}, {"expr": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}, BOUND),
        ("Lt", {"labels": {"cores": "16"}}, {"expr": [{"key": "cores", "operator": "Lt", "values": ["8"]}]},
         AFFINITY_MISS),
        ("terms are ORed", {"labels": {"zone": "b"}},
         {"terms": [[{"key": "zone", "operator": "In", "values": ["a"]}],
                    [{"key": "zone", "operator": "In", "values": ["b"]}]]}, BOUND),
        ("Insufficient cpu", {"allocatable": {"cpu": "1"}}, {"requests": {"cpu": "1500m"}}, "Insufficient cpu"),
        ("Insufficient memory", {"allocatable": {"memory": "1Gi"}}, {"requests": {"memory": "2Gi"}},
         "Insufficient memory"),
        ("Insufficient ephemeral-storage", {"allocatable": {"ephemeral-storage": "1Gi"}},
         {"requests": {"ephemeral-storage": "2Gi"}}, "Insufficient ephemeral-storage"),
        ("Too many pods", {"allocatable": {"pods": "0"}}, {}, "Too many pods"),
        ("extended resource the node lacks", {}, {"requests": {"example.com/dongle": "1"}},
         "Insufficient example.com/dongle"),
        ("extended resource the node has", {"allocatable": {"example.com/dongle": "1"}},
         {"requests": {"example.com/dongle": "1"}}, BOUND),
        ("init container larger than the sum", {"allocatable": {"cpu": "1400m"}},
         {"requests": {"cpu": "1"}, "init": [{"cpu": "1500m"}]}, "Insufficient cpu"),
        ("init container within", {"allocatable": {"cpu": "1600m"}},
         {"requests": {"cpu": "1"}, "init": [{"cpu": "1500m"}]}, BOUND),
        ("sidecar adds to the sum", {"allocatable": {"cpu": "1400m"}},
         {"requests": {"cpu": "1"}, "sidecar": {"cpu": "500m"}}, "Insufficient cpu"),
        ("overhead adds", {"allocatable": {"cpu": "1400m"}},
         {"requests": {"cpu": "1"}, "overhead": {"cpu": "500m"}}, "Insufficient cpu"),
        ("overhead within", {"allocatable": {"cpu": "1600m"}},
         {"requests": {"cpu": "1"}, "overhead": {"cpu": "500m"}}, BOUND),
        ("bound pods count", {"allocatable": {"cpu": "2"}, "occupant": {"cpu": "1500m"}},
         {"requests": {"cpu": "1"}}, "Insufficient cpu"),
        ("several insufficient resources", {"allocatable": {"cpu": "1", "memory": "1Gi"}},
         {"requests": {"cpu": "2", "memory": "2Gi"}}, ("Insufficient cpu", "Insufficient memory")),
    ]

    def test_in_tree_filters(self):
        """Each case alone in the cluster: its node, its pod, the outcome."""
        self.schedsim()
        for i, (name, nkw, pspec, expected) in enumerate(self.CASES):
            with self.subTest(case=name):
                nkw = dict(nkw)
                occupant = nkw.pop("occupant", None)
                node = "case-%02d" % i
                self.node(node, **nkw)
                if occupant:
                    occ = pod("occupant-%d" % i, requests=occupant)
                    occ["spec"]["nodeName"] = node
                    self.create_pod(occ)
                p = pod("p%02d" % i, requests=pspec.get("requests"))
                spec = p["spec"]
                if pspec.get("nodeSelector"):
                    spec["nodeSelector"] = pspec["nodeSelector"]
                if pspec.get("expr") or pspec.get("terms"):
                    terms = pspec.get("terms") or [pspec["expr"]]
                    spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]}}}
                if pspec.get("tolerations"):
                    spec["tolerations"] = pspec["tolerations"]
                if pspec.get("init"):
                    spec["initContainers"] = [{"name": "i%d" % j, "image": "busybox", "resources": {"requests": r}}
                                              for j, r in enumerate(pspec["init"])]
                if pspec.get("sidecar"):
                    spec["initContainers"] = [{"name": "side", "image": "envoy", "restartPolicy": "Always",
                                               "resources": {"requests": pspec["sidecar"]}}]
                if pspec.get("overhead"):
                    spec["overhead"] = pspec["overhead"]
                self.create_pod(p)
                if expected == self.BOUND:
                    self.assertEqual(self.wait_bound("p%02d" % i), node)
                else:
                    c = self.wait_unschedulable("p%02d" % i)
                    self.assertEqual(c["reason"], "Unschedulable")
                    reasons = expected if isinstance(expected, tuple) else (expected,)
                    self.assertEqual(histogram(c["message"]), {r: 1 for r in reasons}, c["message"])
                    self.assertTrue(c["message"].startswith("0/1 nodes are available: "), c["message"])
                    victims = "No preemption victims found for incoming pod" if reasons[0].startswith(
                        ("Insufficient", "Too many")) else "Preemption is not helpful for scheduling"
                    self.assertTrue(c["message"].endswith(". preemption: 0/1 nodes are available: 1 %s." % victims),
                                    c["message"])
                self.api.delete("/api/v1/namespaces/%s/pods" % self.ns)
                self.api.delete("/api/v1/nodes/" + node)
                # "Alone in the cluster": the next case starts once schedsim's watch has seen
                # this node go, or its pod could be scheduled onto this case's node.
                wait_for(lambda: self.sim.control("schedsim", "GET", "/_sim/stats")[1]["nodes"] == 0,
                         what="schedsim saw case %s's node deleted" % node)

    def test_message_format_with_preemption(self):
        """FitError.Error and the DefaultPreemption PostFilter message, as a
        real cluster prints them."""
        self.schedsim()
        self.node("a", allocatable={"cpu": "1"})
        self.node("b", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
        self.node("c", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
        self.create_pod(pod("big", requests={"cpu": "2"}))
        c = self.wait_unschedulable("big")
        self.assertEqual(c["message"], "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
                                       "{dedicated: gpu}. preemption: 0/3 nodes are available: 1 No preemption victims "
                                       "found for incoming pod, 2 Preemption is not helpful for scheduling.")
        self.create_pod(pod("never", requests={"cpu": "2"}, preemptionPolicy="Never"))
        c = self.wait_unschedulable("never")
        self.assertTrue(c["message"].endswith(" {dedicated: gpu}. preemption: not eligible due to preemptionPolicy=Never."),
                        c["message"])

    def test_daemon_pod_prefilter(self):
        """A DaemonSet pod's matchFields metadata.name term: NodeAffinity's
        PreFilter restricts the nodes; the others are named in the message."""
        self.schedsim()
        self.node("x", taints=[{"key": "k", "effect": "NoSchedule"}])
        self.node("y")
        p = pod("ds-x")
        p["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}]}]}}}
        self.create_pod(p)
        c = self.wait_unschedulable("ds-x")
        self.assertEqual(histogram(c["message"]), {"node(s) had untolerated taint {k: }": 1,
                                                   "node(s) didn't satisfy plugin(s) [NodeAffinity]": 1})


class ExtenderTest(SchedCase):
    """The extender calls of pkg/scheduler/extender.go and schedule_one.go."""

    def test_not_called_when_no_node_passes_in_tree(self):
        e = self.extender()
        self.schedsim(extender_config(e.url))
        self.node("n1", taints=[{"key": "k", "effect": "NoSchedule"}])
        self.create_pod(pod("p", schedulerName="stratos-scheduler"))
        c = self.wait_unschedulable("p")
        self.assertIn("1 node(s) had untolerated taint {k: }", c["message"])
        self.assertEqual(e.calls, [])
        self.assertEqual(self.attempts("p")[0]["extenders"], [])

    def test_node_names_or_nodes_by_node_cache_capable(self):
        for capable in (True, False):
            with self.subTest(nodeCacheCapable=capable):
                e = self.extender()
                self.schedsim(extender_config(e.url, nodeCacheCapable=capable, prioritizeVerb=""))
                self.node("a-%s" % str(capable).lower())
                self.node("b-%s" % str(capable).lower())
                name = "p-%s" % str(capable).lower()
                self.create_pod(pod(name, schedulerName="stratos-scheduler"))
                self.wait_bound(name)
                (t, verb, args, headers), = e.filter_calls(name)
                self.assertEqual(set(args), {"Pod", "Nodes", "NodeNames"})
                self.assertEqual(headers["Content-Type"], "application/json")
                self.assertNotIn("kind", args["Pod"])
                self.assertEqual(args["Pod"]["metadata"]["name"], name)
                if capable:
                    self.assertIsNone(args["Nodes"])
                    self.assertEqual(sorted(args["NodeNames"]), ["a-true", "b-true"])
                else:
                    self.assertIsNone(args["NodeNames"])
                    self.assertEqual(args["Nodes"]["metadata"], {})
                    items = args["Nodes"]["items"]
                    self.assertEqual(sorted(n["metadata"]["name"] for n in items), ["a-false", "b-false"])
                    self.assertNotIn("kind", items[0])
                    self.assertIn("allocatable", items[0]["status"])
                self.stop_schedsim()
                self.api.delete("/api/v1/nodes")

    def test_reply_is_checked_against_what_was_sent(self):
        e = self.extender()
        e.filter = lambda args: {"NodeNames": ["n1", "elsewhere"], "Error": ""}
        self.schedsim(extender_config(e.url))
        self.node("n1")
        self.create_pod(pod("p", schedulerName="stratos-scheduler"))
        c = self.wait_unschedulable("p", reason="SchedulerError")
        self.assertEqual(c["message"], "extender '%s' claims a filtered node 'elsewhere' which is not found in the "
                                       "input node list" % e.url)

    def test_error_or_failure_ignorable_or_not(self):
        """A non-200 answer, a timeout or a non-empty Error is a scheduling
        error (reason SchedulerError) unless the extender is ignorable, in
        which case it is skipped."""
        cases = [("500", {"status": 500}, "failed filter with extender at URL {url}/filter, code 500"),
                 ("timeout", {"delay": 2.5}, 'Post "{url}/filter": context deadline exceeded'),
                 ("Error", {"filter": lambda a: {"Error": "stratos: kaput"}}, "stratos: kaput")]
        for label, setup, message in cases:
            for ignorable in (False, True):
                with self.subTest(case=label, ignorable=ignorable):
                    e = self.extender()
                    for k, v in setup.items():
                        setattr(e, k, v)
                    self.schedsim(extender_config(e.url, ignorable=ignorable, httpTimeout="1s"))
                    self.node("n1")
                    name = "p-%s-%s" % (label.lower(), str(ignorable).lower())
                    self.create_pod(pod(name, schedulerName="stratos-scheduler"))
                    if ignorable:
                        self.assertEqual(self.wait_bound(name), "n1")
                        # The attempt that bound it (an earlier one may have run
                        # before the informer saw n1, with no extender call).
                        bound = [a for a in self.attempts(name) if a["result"].startswith("assumed")]
                        self.assertTrue(bound[-1]["extenders"][0].get("ignored"))
                    else:
                        c = self.wait_unschedulable(name, reason="SchedulerError")
                        self.assertIn(message.format(url=e.url), c["message"])
                    self.stop_schedsim()
                    self.api.delete("/api/v1/nodes")

    def test_failed_nodes_in_the_message_and_requeue_on_any_event(self):
        """FailedNodes and FailedAndUnresolvableNodes reasons appear in the
        PodScheduled message; a node the extender dropped without a reason
        adds none. A pod an extender rejected is tried again on any cluster
        event (here a Node update), after its backoff, never without one."""
        e = self.extender()
        e.filter = lambda a: {"NodeNames": [], "FailedNodes": {"n1": "stratos: node is starting"},
                              "FailedAndUnresolvableNodes": {"n2": "stratos: node is standby"}, "Error": ""}
        self.schedsim(extender_config(e.url))
        for n in ("n1", "n2", "n3"):
            self.node(n)
        self.create_pod(pod("p", schedulerName="stratos-scheduler"))
        c = self.wait_unschedulable("p")
        self.assertEqual(c["message"], "0/3 nodes are available: 1 stratos: node is standby, 1 stratos: node is "
                                       "starting. preemption: 0/3 nodes are available: 1 No preemption victims found "
                                       "for incoming pod, 2 Preemption is not helpful for scheduling.")
        # Unschedulable, in the unschedulable pool: no retry without an event.
        time.sleep(SCALE * 3)
        self.assertEqual(len(e.filter_calls("p")), 1)
        # A node heartbeat (only lastHeartbeatTime changes) is no cluster event.
        n1 = self.sim.node("n1")
        n1["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
        self.assertEqual(self.api.put("/api/v1/nodes/n1/status", n1)[0], 200)
        time.sleep(SCALE * 3)
        self.assertEqual(len(e.filter_calls("p")), 1)
        # A label change is one.
        e.filter = lambda a: {"NodeNames": ["n3"], "Error": ""}
        t = time.time()
        self.assertEqual(self.api.patch("/api/v1/nodes/n3", {"metadata": {"labels": {"x": "y"}}})[0], 200)
        self.assertEqual(self.wait_bound("p"), "n3")
        self.assertGreaterEqual(len(e.filter_calls("p")), 2)
        self.assertGreater(e.filter_calls("p")[1][0], t)

    def test_invalid_configurations_are_refused(self):
        """Validation as kube-scheduler's (pkg/scheduler/apis/config/validation):
        the process does not start."""
        cases = [("weight", extender_config("http://127.0.0.1:1/x", weight=0), "positive weight"),
                 ("two binders", dict(extender_config("http://127.0.0.1:1/x", bindVerb="bind"),
                                      extenders=[{"urlPrefix": "http://a/x", "bindVerb": "b"},
                                                 {"urlPrefix": "http://b/x", "bindVerb": "b"}]),
                  "only one extender can implement bind"),
                 ("kind", {"apiVersion": "v1", "kind": "ConfigMap"}, "not a kubescheduler.config.k8s.io/v1"),
                 ("profiles", dict(extender_config("http://127.0.0.1:1/x"),
                                   profiles=[{"schedulerName": "a"}, {"schedulerName": "a"}]), "duplicate profile")]
        for label, cfg, message in cases:
            with self.subTest(case=label):
                path = os.path.join(self.cfgdir, "bad-%s.json" % label.replace(" ", "-"))
                with open(path, "w") as f:
                    json.dump(cfg, f)
                r = subprocess.run([sys.executable, os.path.join(REPO, "tests", "sim", "schedsim.py"), "--dir",
                                    self.sim.dir, "--scheduler-config", path, "--port", "0"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)

    def test_managed_resources_and_ignored_by_scheduler(self):
        """managedResources: the extender is called only for pods that request
        (or limit) one of them; ignoredByScheduler keeps the in-tree fit from
        failing nodes that do not advertise the resource."""
        e = self.extender()
        cfg = extender_config(e.url, managedResources=[{"name": "stratos.sh/pool-pod", "ignoredByScheduler": True}])
        cfg["profiles"] = [{"schedulerName": "default-scheduler"}]
        self.schedsim(cfg)
        self.node("n1")
        self.create_pod(pod("plain"))
        self.create_pod(pod("pool", requests={"stratos.sh/pool-pod": "1"}))
        self.assertEqual(self.wait_bound("plain"), "n1")
        self.assertEqual(self.wait_bound("pool"), "n1")
        self.assertEqual([c[2]["Pod"]["metadata"]["name"] for c in e.filter_calls()], ["pool"])

    def test_prioritize_weighted_and_only_with_several_nodes(self):
        e = self.extender()
        e.prioritize = lambda a: [{"Host": n, "Score": 10 if n == "b" else 0} for n in a["NodeNames"]]
        self.schedsim(extender_config(e.url, weight=5))
        self.node("a", allocatable={"cpu": "64", "memory": "256Gi"})   # in-tree scores prefer a
        self.node("b")
        for i in range(3):
            self.create_pod(pod("p%d" % i, schedulerName="stratos-scheduler", requests={"cpu": "100m"}))
        for i in range(3):
            self.assertEqual(self.wait_bound("p%d" % i), "b")
        a = self.attempts("p0")[-1]
        self.assertEqual([c["verb"] for c in a["extenders"]], ["filter", "prioritize"])
        # One feasible node: no Prioritize call.
        e.clear()
        self.create_pod(pod("only", schedulerName="stratos-scheduler", nodeSelector={"kubernetes.io/hostname": "a"}))
        self.assertEqual(self.wait_bound("only"), "a")
        self.assertEqual([c[1] for c in e.calls], ["filter"])


class QueueTest(SchedCase):
    """The scheduling queue: backoff initial x 2^(attempts-1) capped at max,
    flushed every second (all x SCALE here)."""

    def retry_intervals(self, e, name, n):
        calls = wait_for(lambda: len(e.filter_calls(name)) >= n and e.filter_calls(name), 30,
                         what="%d filter calls" % n)
        times = [c[0] for c in calls[:n]]
        return [b - a for a, b in zip(times, times[1:])]

    def check_sequence(self, got, want):
        tick = SCALE          # flushBackoffQCompleted runs every second
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertGreaterEqual(g, w * SCALE * 0.9, "retry %d: %.3fs < %gs (all %s)" % (i + 1, g, w * SCALE, got))
            self.assertLessEqual(g, w * SCALE + tick + 1.0, "retry %d: %.3fs > %gs+tick (all %s)"
                                 % (i + 1, g, w * SCALE, got))

    def test_backoff_sequence_with_the_defaults(self):
        """podInitialBackoffSeconds 1, podMaxBackoffSeconds 10: an extender
        error is retried after 1, 2, 4, 8, 10, 10 s."""
        e = self.extender()
        e.status = 500
        cfg = extender_config(e.url)
        self.schedsim(cfg)
        self.node("n1")
        self.create_pod(pod("p", schedulerName="stratos-scheduler"))
        got = self.retry_intervals(e, "p", 7)
        self.check_sequence(got, [1, 2, 4, 8, 10, 10])

    def test_backoff_sequence_with_the_bundled_configuration(self):
        """manifests/components/second-scheduler/scheduler-config.yaml sets
        both to 1 s: retries every second."""
        e = self.extender()
        e.status = 500
        cfg = extender_config(e.url)
        cfg["podInitialBackoffSeconds"] = cfg["podMaxBackoffSeconds"] = 1
        self.schedsim(cfg)
        self.node("n1")
        self.create_pod(pod("p", schedulerName="stratos-scheduler"))
        got = self.retry_intervals(e, "p", 6)
        self.check_sequence(got, [1, 1, 1, 1, 1])

    def test_requeue_on_node_update_after_backoff(self):
        """An unschedulable pod (an untolerated taint) waits in the
        unschedulable pool; the taint's removal requeues it (TaintToleration's
        queueing hint) and it binds."""
        self.schedsim()
        self.node("n1", taints=[{"key": "k", "effect": "NoSchedule"}])
        self.create_pod(pod("p"))
        self.wait_unschedulable("p")
        time.sleep(SCALE * 3)
        self.assertEqual(len(self.attempts("p")), 1)
        # A change that cannot help (a label) does not requeue it.
        self.api.patch("/api/v1/nodes/n1", {"metadata": {"labels": {"a": "b"}}})
        time.sleep(SCALE * 3)
        self.assertEqual(len(self.attempts("p")), 1)
        self.api.patch("/api/v1/nodes/n1", {"spec": {"taints": None}})
        self.assertEqual(self.wait_bound("p"), "n1")
        self.assertEqual(len(self.attempts("p")), 2)

    def test_priority_then_queue_time(self):
        """PrioritySort: higher spec.priority first, then the earlier arrival."""
        e = self.extender()
        gate = threading.Event()

        def slow(args):
            gate.wait(5)
            return {"NodeNames": args["NodeNames"], "Error": ""}
        e.filter = slow
        self.schedsim(extender_config(e.url, prioritizeVerb=""))
        self.node("n1", allocatable={"cpu": "100"})
        st, body = self.api.post("/apis/scheduling.k8s.io/v1/priorityclasses", {
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"},
            "value": 1000})
        self.assertIn(st, (201, 409), body)
        self.create_pod(pod("first", schedulerName="stratos-scheduler"))
        wait_for(lambda: e.filter_calls("first"), what="first in its cycle")
        self.create_pod(pod("low", schedulerName="stratos-scheduler", priority=0))
        self.create_pod(pod("high", schedulerName="stratos-scheduler", priority=1000, priorityClassName="high"))
        self.create_pod(pod("low2", schedulerName="stratos-scheduler", priority=0))

        def queued():
            doc = self.sim.control("schedsim", "GET", "/_sim/queue")[1]
            return {p["pod"] for s in doc["schedulers"] for p in s["pods"]}
        # The three wait in the active queue while "first" holds the cycle.
        wait_for(lambda: {"%s/%s" % (self.ns, n) for n in ("low", "high", "low2")} <= queued(),
                 what="three pods queued")
        gate.set()
        for n in ("first", "high", "low", "low2"):
            self.wait_bound(n)
        self.assertEqual([c[2]["Pod"]["metadata"]["name"] for c in e.filter_calls()], ["first", "high", "low", "low2"])


class BundledConfigurationTest(SchedCase):
    """The configurations shipped in manifests/, used as they are: only the
    extender's address and the certificate paths are substituted
    (--extender-host-map, --path-map)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certs = os.path.join(cls.sim.tmp, "certs")
        gen_certs(cls.certs)
        # The Secret stratos-scheduler-client-tls as the scheduler's pod mounts it.
        cls.tls = mount_secret(os.path.join(cls.certs, "secrets.yaml"), "stratos-scheduler-client-tls",
                               os.path.join(cls.sim.tmp, "scheduler-tls"))

    def tls_extender(self):
        return self.extender(tls={"cert": os.path.join(self.certs, "tls.crt"),
                                  "key": os.path.join(self.certs, "tls.key"),
                                  "client_ca": os.path.join(self.certs, "client-ca.crt")})

    def test_second_scheduler_configuration(self):
        e = self.tls_extender()
        self.schedsim(BUNDLED, args=["--extender-host-map", "stratos-webhook.stratos-system.svc:443=127.0.0.1:%d" % e.port,
                                     "--path-map", "/etc/stratos-scheduler/tls=" + self.tls])
        st, health = self.sim.control("schedsim", "GET", "/_sim/health")
        self.assertEqual([s["profiles"] for s in health["schedulers"]], [["stratos-scheduler"], ["default-scheduler"]])
        self.node("n1")
        self.node("n2")
        self.create_pod(pod("p", schedulerName="stratos-scheduler"))
        self.create_pod(pod("other"))               # the built-in default-scheduler: no extender
        self.assertIn(self.wait_bound("p"), ("n1", "n2"))
        self.wait_bound("other")
        self.assertEqual([c[2]["Pod"]["metadata"]["name"] for c in e.filter_calls()], ["p"])
        self.assertEqual([c[1] for c in e.calls], ["filter", "prioritize"])
        self.assertIsNone(e.calls[0][2]["Nodes"])             # nodeCacheCapable: true
        self.assertEqual(e.calls[0][3]["Host"], "stratos-webhook.stratos-system.svc:443")
        self.assertIn("stratos-webhook.stratos-system.svc", e.sni)
        subject = dict(x[0] for x in e.peer_certs[0]["subject"])
        self.assertEqual(subject["commonName"], "stratos-scheduler")   # the client certificate was presented
        # ignorable: false and the 1 s backoffs: a failing extender keeps the pod retried every second.
        e.status = 503
        self.create_pod(pod("q", schedulerName="stratos-scheduler"))
        c = self.wait_unschedulable("q", reason="SchedulerError")
        self.assertIn("code 503", c["message"])
        wait_for(lambda: len(e.filter_calls("q")) >= 3, 10, what="retries")
        times = [x[0] for x in e.filter_calls("q")[:3]]
        self.assertGreaterEqual(times[2] - times[1], SCALE * 0.9)
        self.assertLess(times[2] - times[1], SCALE * 1 + SCALE + 1.0)

    def test_managed_resource_snippet(self):
        """The managed-resource snippet (tlsConfig.serverName, managedResources
        with ignoredByScheduler) merged into a configuration: pool pods only."""
        import yaml
        with open(MANAGED) as f:
            snippet = yaml.safe_load(f)
        path = os.path.join(self.cfgdir, "managed.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(snippet, f)
        tls_dir = os.path.join(self.sim.tmp, "kubernetes-stratos")
        os.makedirs(tls_dir, exist_ok=True)
        for src, dst in (("ca.crt", "ca.crt"), ("client.crt", "client.crt"), ("client.key", "client.key")):
            shutil.copy(os.path.join(self.certs, src), os.path.join(tls_dir, dst))
        e = self.tls_extender()
        self.schedsim(path, args=["--extender-host-map", "CLUSTER-IP-OF-stratos-webhook:443=127.0.0.1:%d" % e.port,
                                  "--path-map", "/etc/kubernetes/stratos=" + tls_dir])
        self.node("n1")
        self.create_pod(pod("web"))
        self.create_pod(pod("pool", requests={"stratos.sh/pool-pod": "1"}))
        self.wait_bound("web")
        self.wait_bound("pool")
        self.assertEqual([c[2]["Pod"]["metadata"]["name"] for c in e.filter_calls()], ["pool"])
        self.assertIn("stratos-webhook.stratos-system.svc", e.sni)       # tlsConfig.serverName


class WebhookPremiseTest(unittest.TestCase):
    """DESIGN §6.1 in the simulation: with stratosd's mutating webhook
    registered, a pool pod tolerates a stopped pool node's taints, so the node
    passes the in-tree filters and the extender sees it; a pod of no pool
    does not get past them."""

    @classmethod
    def setUpClass(cls):
        cls.stratosd = os.environ.get("STRATOSD") or os.path.join(REPO, "build", "stratosd")
        if not os.access(cls.stratosd, os.X_OK):
            raise unittest.SkipTest("no stratosd binary (set STRATOSD or build build/stratosd)")

    def test_pool_pod_feasible_on_a_stopped_pool_node(self):
        import yaml
        sim = Sim(components=("ec2sim", "apiserver", "kubeletsim"), scale=0.05)
        self.addCleanup(sim.close)
        certs = os.path.join(sim.tmp, "certs")
        gen_certs(certs)
        seed = os.path.join(REPO, "tests", "fixtures", "seed-examples.yaml")
        proc = subprocess.Popen([self.stratosd, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                 "--tls-cert", os.path.join(certs, "tls.crt"), "--tls-key", os.path.join(certs, "tls.key"),
                                 "--pools-file", seed, "--scheduler-name", "stratos-scheduler"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={k: v for k, v in os.environ.items() if not k.startswith("STRATOS_")})
        lines = []

        def reader():
            for raw in iter(proc.stderr.readline, b""):
                lines.append(raw.decode(errors="replace"))
        threading.Thread(target=reader, daemon=True).start()

        def stop():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        self.addCleanup(stop)
        line = wait_for(lambda: next((ln for ln in lines if "stratosd serving" in ln), None), 20,
                        what="stratosd serving")
        port = int(json.loads(line)["listen"].rsplit(":", 1)[1])
        # The webhook configuration of manifests/ (kubectl kustomize), the Service mapped to this stratosd.
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl not installed")
        out = subprocess.run([kubectl, "kustomize", os.path.join(REPO, "manifests")], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        with open(os.path.join(certs, "ca.crt"), "rb") as f:
            bundle = base64.b64encode(f.read()).decode()
        for d in yaml.safe_load_all(out):
            if d and d["kind"] == "MutatingWebhookConfiguration":
                for wh in d["webhooks"]:
                    wh["clientConfig"]["caBundle"] = bundle
                self.assertEqual(sim.api.post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                                              d)[0], 201)
        self.assertEqual(sim.api.post("/_sim/webhook-services", {"services": {
            "stratos-system/stratos-webhook": "127.0.0.1:%d" % port}})[0], 200)
        # A pool node of the seed's ci-runners pool, warmed up and stopped (its
        # user data registers the startup taint; here it powers itself off).
        (iid, node), = sim.launch("m5.2xlarge", user_data=seed_user_data(
            sleep=1, labels={"stratos.sh/pool": "ci-runners", "node-role.kubernetes.io/ci": ""}))
        wait_for(lambda: sim.instance_state(iid) == "stopped", 30, what="instance stopped by its user data")
        wait_for(lambda: ("node.cloudprovider.kubernetes.io/shutdown", "NoSchedule") in taint_set(sim.node(node))
                 and ("node.kubernetes.io/unreachable", "NoSchedule") in taint_set(sim.node(node)), 30,
                 what="stopped node's taints")
        # The pool controller's standby taint (DESIGN §4).
        sim.api.patch("/api/v1/nodes/" + node, {"spec": {"taints": (sim.node(node)["spec"]["taints"] or []) + [
            {"key": "stratos.sh/standby", "value": "true", "effect": "NoExecute"}]}})
        e = FakeExtender()
        self.addCleanup(e.stop)
        e.filter = lambda a: {"NodeNames": [], "FailedAndUnresolvableNodes": {n: "stratos: node is standby"
                                                                              for n in a["NodeNames"]}, "Error": ""}
        cfgdir = os.path.join(sim.tmp, "configs")
        os.makedirs(cfgdir)
        with open(os.path.join(cfgdir, "s.json"), "w") as f:
            json.dump(extender_config(e.url), f)
        sim.start("schedsim", ["--time-scale", "0.2", "--scheduler-config", os.path.join(cfgdir, "s.json")])
        sim.namespace("team-a")
        sim.create("/api/v1/namespaces/team-a/pods", pod("runner", node_selector={"stratos.sh/pool": "ci-runners"}))
        p = sim.pod("team-a", "runner")
        self.assertEqual(p["spec"]["schedulerName"], "stratos-scheduler")       # mutated into a pool pod
        # The pool pod reached the extender with the stopped node: feasible in-tree.
        call = wait_for(lambda: e.filter_calls("runner"), 15, what="extender called for the pool pod")
        self.assertEqual(call[0][2]["NodeNames"], [node])
        c = wait_for(lambda: cond(sim.pod("team-a", "runner"), "PodScheduled").get("message"), 10)
        self.assertIn("1 stratos: node is standby", c)
        # A pod of no pool (its selector is in no pool's template labels) is left
        # alone by the webhook, and the stopped node's taints stop it in-tree.
        sim.create("/api/v1/namespaces/team-a/pods", pod("plain", schedulerName="stratos-scheduler",
                                                         node_selector={"kubernetes.io/hostname": node}))
        self.assertNotIn("annotations", sim.pod("team-a", "plain")["metadata"])
        msg = wait_for(lambda: cond(sim.pod("team-a", "plain"), "PodScheduled").get("message"), 15)
        self.assertTrue(msg.startswith("0/1 nodes are available: 1 node(s) had untolerated taint"), msg)
        self.assertEqual(e.filter_calls("plain"), [])


if __name__ == "__main__":
    unittest.main()
