"""Pool controller, fallback scale-up and bursts beyond the standby (DESIGN
§5.5): pool pods the scheduler could not place and that the inline path did
not serve get room on starting nodes and standby nodes started by the
controller (through the claim module the extender uses), as many as their
requests need packed first-fit-decreasing, with reservations for them; when
the standby cannot take them all, new instances are launched within
poolSize, and each new node whose warmup completes while they wait goes
straight to running (no stop and start), where the scheduler binds them.

Here no webhook is registered and the scheduler has no extender: pool pods
are created as a user writes them (a nodeSelector, no tolerations), so
nothing but the controller can ever start a node for them."""

import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402
import simclient  # noqa: E402


class NodeRecorder:
    """Every version of a pool's Nodes as a watch delivers it: the reservations each
    Node carried at any moment (they go again once their pods are bound)."""

    def __init__(self, c, pool):
        self.client = simclient.Client(c.sim.dir)
        st, body = self.client.request("GET", "/api/v1/nodes?labelSelector=stratos.sh%2Fpool%3D" + pool)
        assert st == 200, body
        self.path = ("/api/v1/nodes?watch=1&labelSelector=stratos.sh%%2Fpool%%3D%s&resourceVersion=%s"
                     % (pool, body["metadata"]["resourceVersion"]))
        self.lock = threading.Lock()
        self.reservations = {}      # node -> {uid: entry} ever promised there
        self.stop = threading.Event()
        self.watch = simclient.Watch(self.client, self.path, 120)
        assert self.watch.status == 200
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        c.test.addCleanup(self.close)

    def run(self):
        while not self.stop.is_set():
            try:
                ev = self.watch.next()
            except Exception:       # the watch closed under us at the end
                return
            if ev is None:
                return
            o = ev.get("object") or {}
            text = ((o.get("metadata") or {}).get("annotations") or {}).get("stratos.sh/reservations")
            if text:
                with self.lock:
                    got = self.reservations.setdefault(o["metadata"]["name"], {})
                    for e in json.loads(text):
                        got[e["uid"]] = e

    def promised(self):
        with self.lock:
            return {n: dict(v) for n, v in self.reservations.items()}

    def close(self):
        self.stop.set()
        self.watch.close()


def pod(name, cpu, pool="burst"):
    """A pool pod as a user writes it: a nodeSelector; no toleration, no annotation."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"nodeSelector": {"stratos.sh/pool": pool},
                     "containers": [{"name": "c", "image": "registry.example/job:1",
                                     "resources": {"requests": {"cpu": cpu}}}]}}


def state_tag(c, iid):
    tags = c.instance(iid)["tags"]
    if isinstance(tags, list):
        tags = {t["Key"]: t["Value"] for t in tags}
    return tags.get("stratos.sh/state")


def starts(c):
    """StartInstances requests per instance id (every request ec2sim saw, answered or not)."""
    out = {}
    for r in c.requests("StartInstances")["requests"]:
        for iid in r["instance_ids"]:
            out[iid] = out.get(iid, 0) + 1
    return out


class FallbackTest(unittest.TestCase):

    def test_webhook_bypassed_pods_get_the_standby_nodes_they_need(self):
        """No webhook, no extender: 4 pool pods of 900m (an m5.large has 1930m: two fit, not
        three) pack into two nodes. The controller starts exactly two of the three standby
        nodes, with a reservation for each pod; the default scheduler binds them once the
        startup taints go. Nothing is launched (the pool is at its poolSize). Any two pods
        fit a node, so the default scheduler, which knows nothing of the reservations,
        cannot spread them over a third."""
        c = ct.Cluster(self, sched=True)
        c.apply(ct.nodeclass("fb"))
        c.apply(ct.nodepool("fb", pool_size=3, min_standby=3, scale_down={"emptyNodeTTL": "1h"}))
        d = c.stratosd()

        def tagged_standby():
            nodes = c.by_state("fb", "standby")
            return len(nodes) == 3 and all(
                state_tag(c, n["metadata"]["labels"]["stratos.sh/instance-id"]) == "standby"
                for n in nodes)
        wait_for(tagged_standby, 90, "three standby, tagged so")
        c.assert_standby("fb", 3)
        self.assertEqual(starts(c), {})
        launched = len(c.run_requests())
        rec = NodeRecorder(c, "fb")
        pods = {}
        for i in range(4):
            pods["job-%d" % i] = c.create_pod("apps", pod("job-%d" % i, "900m", pool="fb"))

        def bound():
            return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in c.pods("apps")
                    if p["spec"].get("nodeName")}
        wait_for(lambda: len(bound()) == 4, 60, "the four pods bound")
        running = {n["metadata"]["name"]: n for n in c.by_state("fb", "running")}
        self.assertEqual(len(running), 2, sorted(running))
        self.assertEqual(set(bound().values()), set(running))
        for node in running:
            self.assertEqual(len([n for n, where in bound().items() if where == node]), 2, node)
        # Every pod was promised to one of the started nodes. (Which of the two a pod then
        # lands on is the default scheduler's own choice, which knows nothing of promises: a
        # pod whose room it gave to another is promised room on the other node.)
        promised = rec.promised()
        uids = {p["metadata"]["uid"]: name for name, p in pods.items()}
        seen = {}
        for node, entries in promised.items():
            self.assertIn(node, running)
            for uid, e in entries.items():
                self.assertIn(uid, uids)
                seen.setdefault(uid, set()).add(node)
                self.assertEqual(e["pod"], "apps/" + uids[uid])
        self.assertEqual(set(seen), set(uids))
        # EC2: one StartInstances for each started instance, none for the third; no launch.
        ids = {n["metadata"]["labels"]["stratos.sh/instance-id"] for n in running.values()}
        self.assertEqual(starts(c), {i: 1 for i in ids})
        for i in ids:
            self.assertEqual(c.instance(i)["state"], "running")
        standby = c.by_state("fb", "standby")
        self.assertEqual(len(standby), 1)
        self.assertEqual(c.instance(standby[0]["metadata"]["labels"]["stratos.sh/instance-id"])["state"],
                         "stopped")
        self.assertEqual(len(c.run_requests()), launched)
        self.assertEqual(len(c.instances("fb")), 3)
        for n in running.values():
            ann = n["metadata"]["annotations"]
            self.assertIn(ann.get("stratos.sh/started-for"), {"apps/" + x for x in pods})
        # Released once bound: on the pod's bind event, so a moment after the bind.
        wait_for(lambda: not any("stratos.sh/reservations" in (c.node(n)["metadata"].get("annotations") or {})
                                 for n in running), 10, "reservations released once the pods are bound")
        # The claim module's events, on the pod each node was started for and on the node.
        started = c.events("NodeStarted")
        self.assertEqual(sorted((e["regarding"]["kind"], e["regarding"]["name"]) for e in started
                                if e["regarding"]["kind"] == "Node"),
                         sorted(("Node", n) for n in running))
        self.assertEqual(len([e for e in started if e["regarding"]["kind"] == "Pod"]), 2)
        # The pool's own account (one event per pass that started nodes).
        self.assertEqual(sum(int(e["note"].split()[1]) for e in c.events("ScaledUp")), 2)
        m = c.metrics(d)
        self.assertEqual(m['stratos_scaleup_total{pool="fb",path="fallback"}'], 2)
        self.assertEqual(m.get('stratos_scaleup_total{pool="fb",path="inline"}', 0), 0)
        # Bind-after-ready: the pods bound on the node they were promised, each once.
        where = bound()
        on_promised = sum(1 for u, nodes in seen.items() if where[uids[u]] in nodes)
        wait_for(lambda: c.metrics(d).get('stratos_bind_after_ready_seconds_count{pool="fb"}', 0)
                 == on_promised, 15, "bind-after-ready of %d pods" % on_promised)
        c.check_logs(d)

    def test_burst_beyond_the_standby_launches_what_the_pods_need(self):
        """4 pods of 1200m (one per m5.large, 1930m), one standby node: the controller starts
        the standby node for one, launches three instances for the rest (each goes straight
        to running once warm) and, with the standby gone, one more to refill minStandby."""
        c = ct.Cluster(self, sched=True)
        c.apply(ct.nodeclass("burst"))
        c.apply(ct.nodepool("burst", pool_size=8, min_standby=1, scale_down={"emptyNodeTTL": "1h"}))
        d = c.stratosd()
        standby = wait_for(lambda: c.by_state("burst", "standby"), 60, "standby")[0]["metadata"]["name"]
        standby_id = c.node(standby)["metadata"]["labels"]["stratos.sh/instance-id"]
        for i in range(4):
            c.create_pod("apps", pod("big-%d" % i, "1200m"))

        def bound():
            return [p for p in c.pods("apps") if p["spec"].get("nodeName")]
        wait_for(lambda: len(bound()) == 4, 90, "the four pods bound")
        running = {n["metadata"]["name"]: n for n in c.by_state("burst", "running")}
        self.assertEqual(len(running), 4, sorted(running))
        self.assertIn(standby, running)
        self.assertEqual(sorted(p["spec"]["nodeName"] for p in bound()), sorted(running))
        self.assertEqual(starts(c), {standby_id: 1})
        for name, n in running.items():
            iid = n["metadata"]["labels"]["stratos.sh/instance-id"]
            # The launched ones never stopped and started; the standby one booted twice.
            self.assertEqual(c.machine(iid)["boots"], 2 if name == standby else 1)
            self.assertEqual(c.instance(iid)["state"], "running")
            self.assertIn("stratos.sh/started-at", n["metadata"]["annotations"])
        # minStandby refilled (the node launched for it went to standby, not running).
        wait_for(lambda: len(c.by_state("burst", "standby")) == 1, 60, "minStandby refilled")
        self.assertEqual(len(c.instances("burst")), 5)
        self.assertEqual(len(c.run_requests()), 5)
        self.assertEqual(starts(c), {standby_id: 1})
        m = c.metrics(d)
        # One standby start and three warm nodes made running, all for pending pods.
        self.assertEqual(m['stratos_scaleup_total{pool="burst",path="fallback"}'], 4)
        wait_for(lambda: c.condition("burst", "ScaledUp").get("status") == "True", 15, "ScaledUp")
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
