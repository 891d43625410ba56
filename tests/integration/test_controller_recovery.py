"""Pool controller, recovery and garbage collection (DESIGN §5.6): a claimed
node whose instance never runs releases its reservations and is standby
again well within 60 s; labels converge to instance states changed by hand;
a Node whose instance does not exist is deleted; an instance of a pool that
no longer exists is terminated."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402

RESERVATION = [{"uid": "0b0e7b4c-5d2a-4e0b-9a37-0f1c2d3e4f50", "pod": "apps/waiting",
                "requests": {"cpu": "500m"}, "since": "2026-12-06T00:00:00Z"}]


def standby_pool(c, name, n=1):
    c.apply(ct.nodeclass(name))
    c.apply(ct.nodepool(name, pool_size=n + 1, min_standby=n, scale_down={"emptyNodeTTL": "1h"}))


class RecoveryTest(unittest.TestCase):

    def test_failed_start_releases_and_returns_to_standby_within_60s(self):
        c = ct.Cluster(self)
        standby_pool(c, "ci")
        d = c.stratosd()
        node = wait_for(lambda: c.by_state("ci", "standby"), 60, "standby")[0]["metadata"]["name"]
        iid = c.node(node)["metadata"]["labels"]["stratos.sh/instance-id"]
        # EC2 accepts the start, but the capacity is gone: back to stopped after pending.
        st, _ = c.ec2control("POST", "faults", {"action": "StartInstances", "instance_id": iid,
                                                "lose_capacity": True, "count": 1})
        self.assertEqual(st, 200)
        t0 = time.time()
        c.claim(node, pod="apps/waiting", reservations=RESERVATION)
        wait_for(lambda: c.instance(iid)["state"] == "stopped" and
                 c.instance(iid)["state_reason"]["code"] == "Server.InsufficientInstanceCapacity", 20,
                 "start lost its capacity")
        wait_for(lambda: c.node(node)["metadata"]["labels"]["stratos.sh/state"] == "standby", 60,
                 "back to standby")
        self.assertLess(time.time() - t0, 60)
        n = c.node(node)
        self.assertNotIn("stratos.sh/reservations", n["metadata"]["annotations"])
        self.assertNotIn("stratos.sh/started-for", n["metadata"]["annotations"])
        ev = wait_for(lambda: c.events("StartFailed", node), 10, "StartFailed event")[0]
        self.assertEqual(ev["type"], "Warning")
        # While it was claimed the pool replenished its one standby (poolSize 2): both are
        # standby now, and nothing beyond poolSize was launched.
        wait_for(lambda: len(c.by_state("ci", "standby")) == 2, 60, "both standby")
        c.assert_standby("ci", 2)
        self.assertEqual(len(c.instances("ci")), 2)
        c.check_logs(d)

    def test_reservations_of_pods_gone_or_bound_are_dropped(self):
        c = ct.Cluster(self)
        standby_pool(c, "ci")
        d = c.stratosd()
        node = wait_for(lambda: c.by_state("ci", "standby"), 60, "standby")[0]["metadata"]["name"]
        c.create_pod("apps", {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "waiting", "annotations": {"stratos.sh/pool": "ci"}},
            "spec": {"schedulerName": "nobody", "nodeSelector": {"stratos.sh/pool": "ci"},
                     "containers": [{"name": "c", "image": "registry.example/app:1"}]}})
        uid = c.sim.pod("apps", "waiting")["metadata"]["uid"]
        res = [{"uid": uid, "pod": "apps/waiting", "requests": {"cpu": "500m"},
                "since": "2026-12-06T00:00:00Z"},
               {"uid": "11111111-2222-3333-4444-555555555555", "pod": "apps/never-existed",
                "requests": {}, "since": "2026-12-06T00:00:00Z"}]
        c.claim(node, pod="apps/waiting", reservations=res)

        def pods():
            txt = c.node(node)["metadata"]["annotations"].get("stratos.sh/reservations")
            return [x["pod"] for x in ct.json.loads(txt)] if txt else []
        # The pod that does not exist: dropped at once; the waiting one kept.
        wait_for(lambda: pods() == ["apps/waiting"], 20, "reservation of a missing pod dropped")
        # The waiting pod goes away: its promise goes with it (a pod event, not the tick).
        st, _ = c.api.delete("/api/v1/namespaces/apps/pods/waiting")
        self.assertEqual(st, 200)
        t0 = ct.time.time()
        wait_for(lambda: pods() == [], 5, "reservation of a deleted pod dropped")
        self.assertLess(ct.time.time() - t0, 5)
        self.assertNotIn("stratos.sh/reservations", c.node(node)["metadata"]["annotations"])
        c.check_logs(d)

    def test_labels_converge_to_instances_changed_by_hand(self):
        c = ct.Cluster(self)
        standby_pool(c, "ci", n=2)
        d = c.stratosd()
        wait_for(lambda: len(c.by_state("ci", "standby")) == 2, 60, "2 standby")
        a, b = [n["metadata"]["name"] for n in c.by_state("ci", "standby")]
        ia = c.node(a)["metadata"]["labels"]["stratos.sh/instance-id"]
        ib = c.node(b)["metadata"]["labels"]["stratos.sh/instance-id"]
        # Someone starts a standby instance in the console: the node is running, usable.
        c.sim.ec2.start_instances(InstanceIds=[ia])
        wait_for(lambda: c.node(a)["metadata"]["labels"]["stratos.sh/state"] == "running", 30,
                 "label converged to running")
        wait_for(lambda: c.usable(a), 30, "usable")
        self.assertEqual(c.instance(ia)["tags"]["stratos.sh/state"], "running")
        # Someone stops it again: standby, with its taints and tag.
        c.sim.ec2.stop_instances(InstanceIds=[ia])
        wait_for(lambda: c.node(a)["metadata"]["labels"]["stratos.sh/state"] == "standby", 30,
                 "label converged to standby")
        self.assertTrue(c.events("StateConverged", a))
        # The other standby node's instance is terminated by hand: its Node goes.
        c.sim.ec2.terminate_instances(InstanceIds=[ib])
        wait_for(lambda: c.node(b) is None, 30, "Node of the terminated instance deleted")
        # ... and the pool is replenished (minStandby 2).
        wait_for(lambda: len(c.by_state("ci", "standby")) == 2, 60, "replenished")
        c.assert_standby("ci", 2)
        c.check_logs(d)

    def test_orphan_node_and_instance_of_a_deleted_pool(self):
        c = ct.Cluster(self)
        standby_pool(c, "ci")
        d = c.stratosd("--ec2-resync", "3s")
        wait_for(lambda: len(c.by_state("ci", "standby")) == 1, 60, "standby")
        # A Node labelled for the pool whose instance never existed.
        fake = "i-0f0f0f0f0f0f0f0f0"
        c.sim.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "ghost-node", "labels": {"stratos.sh/pool": "ci", "stratos.sh/state": "standby",
                                             "stratos.sh/instance-id": fake}},
            "spec": {"providerID": "aws:///us-east-1a/" + fake}})
        # An instance of this cluster tagged for a pool that does not exist.
        (orphan, _), = c.sim.launch(tags={"stratos.sh/cluster": ct.CLUSTER, "stratos.sh/pool": "deleted",
                                          "stratos.sh/state": "standby", "managed-by": "stratos"})
        wait_for(lambda: c.node("ghost-node") is None, 40, "orphan Node deleted")
        wait_for(lambda: c.instance(orphan)["state"] in ("shutting-down", "terminated"), 30,
                 "instance of a deleted pool terminated")
        m = c.metrics(d)
        self.assertEqual(m['stratos_gc_total{pool="deleted",reason="pool-deleted"}'], 1)
        self.assertEqual(m['stratos_gc_total{pool="ci",reason="node-without-instance"}'], 1)
        # The pool itself is untouched.
        c.assert_standby("ci", 1)
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
