"""Pool controller, pool size (DESIGN §5.2): standby replenished after a
scale-up, within poolSize; a lowered poolSize retires standby nodes least
recently used first and never a running one; a deleted NodePool drains its
running nodes, terminates every instance (one with no Node yet included),
deletes its Nodes and only then lets its finalizer go."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402


class PoolSizeTest(unittest.TestCase):

    def test_replenish_after_scale_up_within_pool_size(self):
        c = ct.Cluster(self)
        c.apply(ct.nodeclass("ci"))
        c.apply(ct.nodepool("ci", pool_size=3, min_standby=2, scale_down={"emptyNodeTTL": "1h"}))
        d = c.stratosd()
        wait_for(lambda: len(c.by_state("ci", "standby")) == 2, 60, "2 standby")
        first = c.by_state("ci", "standby")[0]["metadata"]["name"]
        c.claim(first, pod="ci/job-1")
        # One standby left of minStandby 2: one more launched, to poolSize 3.
        wait_for(lambda: len(c.by_state("ci", "standby")) == 2 and len(c.by_state("ci", "running")) == 1,
                 60, "standby replenished")
        self.assertEqual(len(c.instances("ci")), 3)
        self.assertTrue(c.events("Replenishing"))
        # Another scale-up: poolSize is reached, nothing more is launched.
        second = c.by_state("ci", "standby")[0]["metadata"]["name"]
        c.claim(second, pod="ci/job-2")
        wait_for(lambda: c.counts("ci").get("running") == 2 and c.counts("ci").get("standby") == 1, 30,
                 "status after the second scale-up")
        self.assertEqual(c.condition("ci", "Ready")["status"], "False")
        self.assertEqual(c.condition("ci", "Ready")["reason"], "Replenishing")
        self.assertEqual(c.condition("ci", "ScaledUp")["status"], "True")
        self.assertIn("lastScaleUpTime", c.status("ci"))
        self.assertEqual(len(c.instances("ci")), 3)
        runs = [r for r in c.requests("RunInstances")["requests"] if r.get("forwarded")]
        self.assertEqual(len(runs), 3)
        st = c.status("ci")["nodes"]
        self.assertEqual(st, {"warmup": 0, "standby": 1, "running": 2, "stopping": 0, "total": 3})
        # EC2 agrees with the labels.
        for node in c.nodes("ci"):
            iid = node["metadata"]["labels"]["stratos.sh/instance-id"]
            want = {"running": "running", "standby": "stopped"}[node["metadata"]["labels"]["stratos.sh/state"]]
            wait_for(lambda: c.instance(iid)["state"] == want, 10, "%s %s" % (iid, want))
        c.check_logs(d)

    def test_shrink_retires_standby_least_recently_used_never_running(self):
        c = ct.Cluster(self)
        c.apply(ct.nodeclass("ci"))
        c.apply(ct.nodepool("ci", pool_size=4, min_standby=3, scale_down={"emptyNodeTTL": "1h"}))
        d = c.stratosd()
        wait_for(lambda: len(c.by_state("ci", "standby")) == 3, 60, "3 standby")
        running = c.by_state("ci", "standby")[0]["metadata"]["name"]
        c.claim(running, pod="ci/job")
        wait_for(lambda: c.usable(running), 30, "claimed node running")
        wait_for(lambda: len(c.by_state("ci", "standby")) == 3, 60, "replenished to 3 standby")
        by_since = sorted(c.by_state("ci", "standby"),
                          key=lambda n: n["metadata"]["annotations"]["stratos.sh/state-since"])
        newest = by_since[-1]["metadata"]["name"]
        # The first guarded delete of a standby Node loses to a concurrent write
        # (409, as registry/generic/registry/store.go answers a failed
        # resourceVersion precondition): the pool decides again and still shrinks.
        st, _ = c.api.post("/_sim/fail", {"verb": "delete", "resource": "nodes", "code": 409, "count": 1})
        self.assertEqual(st, 200)
        c.patch_pool("ci", {"poolSize": 2, "minStandby": 1})
        # total 4 > 2: two standby nodes go, the least recently used first; the running one stays.
        wait_for(lambda: len(c.nodes("ci")) == 2, 30, "two nodes retired")
        self.assertEqual(set(c.states("ci")), {running, newest})
        self.assertEqual(c.states("ci")[running], "running")
        wait_for(lambda: len(c.instances("ci")) == 2, 30, "two instances left")
        alive = {i["instance_id"] for i in c.instances("ci")}
        for n in by_since[:-1]:
            iid = n["metadata"]["labels"]["stratos.sh/instance-id"]
            self.assertNotIn(iid, alive)
            self.assertIn(c.instance(iid)["state"], ("shutting-down", "terminated"))
        wait_for(lambda: c.counts("ci").get("total") == 2, 10, "status total")
        self.assertTrue(c.events("PoolShrunk"))
        c.check_logs(d)

    def test_pool_deletion_leaves_no_instance_and_no_node(self):
        c = ct.Cluster(self, ec2_args=["--pending-seconds", "40"])
        c.apply(ct.nodeclass("gone"))
        c.apply(ct.nodepool("gone", pool_size=4, min_standby=2, scale_down={"emptyNodeTTL": "1h",
                                                                              "drainTimeout": "20s"}))
        d = c.stratosd()
        wait_for(lambda: len(c.by_state("gone", "standby")) == 2, 60, "2 standby")
        running = c.by_state("gone", "standby")[0]["metadata"]["name"]
        c.claim(running, pod="apps/job")
        wait_for(lambda: c.usable(running), 30, "running")
        c.create_pod("apps", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job"},
                              "spec": {"nodeName": running, "terminationGracePeriodSeconds": 0,
                                       "tolerations": [{"operator": "Exists"}],
                                       "containers": [{"name": "c", "image": "registry.example/job:1"}]}})
        wait_for(lambda: (c.sim.pod("apps", "job") or {}).get("status", {}).get("phase") == "Running",
                 15, "pod running")
        # A replacement is being launched (pending 40 s x 0.05 = 2 s): no Node yet when deleted.
        wait_for(lambda: len(c.instances("gone")) == 3, 30, "replacement launched")
        c.delete_pool("gone")
        self.assertIsNotNone(c.pool("gone"))       # held by the finalizer
        wait_for(lambda: c.pool("gone") is None, 60, "NodePool gone once the cloud is clean")
        self.assertEqual(c.instances("gone"), [])
        self.assertEqual(c.nodes("gone"), [])
        self.assertIsNone(c.sim.pod("apps", "job"))            # evicted by the drain
        st = c.sim.api.get("/_sim/requests")[1]["counts"]
        self.assertGreaterEqual(st.get("create pods/eviction", 0), 1)
        for i in c.instances("gone", alive=False):
            self.assertIn(i["state"], ("shutting-down", "terminated"))
        self.assertEqual(len(c.instances("gone", alive=False)), 3)
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
