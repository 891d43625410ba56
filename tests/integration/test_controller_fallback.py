"""Pool controller, bursts beyond the standby (DESIGN §5.5): pool pods the
scheduler could not place, more than the standby can take, get new
instances launched within poolSize — as many as their requests need,
packed first-fit-decreasing — and each new node whose warmup completes
while they wait goes straight to running (no stop and start), where the
scheduler binds them.

The standby node itself is left to the extender (its inline claim): here
there is none, so it stays standby and no instance is launched for the pod
it would take."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402


def pod(name, cpu):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": {"stratos.sh/pool": "burst"}},
            "spec": {"nodeSelector": {"stratos.sh/pool": "burst"},
                     "containers": [{"name": "c", "image": "registry.example/job:1",
                                     "resources": {"requests": {"cpu": cpu}}}]}}


class FallbackTest(unittest.TestCase):

    def test_burst_beyond_the_standby_launches_what_the_pods_need(self):
        c = ct.Cluster(self, sched=True)
        c.apply(ct.nodeclass("burst"))
        c.apply(ct.nodepool("burst", pool_size=8, min_standby=1, scale_down={"emptyNodeTTL": "1h"}))
        d = c.stratosd()
        standby = wait_for(lambda: c.by_state("burst", "standby"), 60, "standby")[0]["metadata"]["name"]
        # 6 pods: four of 1200m (one per m5.large, 1930m) and two of 600m that pack beside
        # them: four nodes. The standby node takes one of those (the extender's), three to launch.
        for i in range(4):
            c.create_pod("apps", pod("big-%d" % i, "1200m"))
        for i in range(2):
            c.create_pod("apps", pod("small-%d" % i, "600m"))
        wait_for(lambda: len(c.by_state("burst", "running")) == 3, 60, "three nodes running")

        def bound():
            return [p for p in c.pods("apps") if p["spec"].get("nodeName")]
        wait_for(lambda: len(bound()) >= 5, 30, "pods bound on the new nodes")
        running = {n["metadata"]["name"] for n in c.by_state("burst", "running")}
        self.assertTrue(all(p["spec"]["nodeName"] in running for p in bound()))
        # Launched exactly what the pods need beyond the standby, within poolSize.
        self.assertEqual(len(c.instances("burst")), 4)
        for n in c.by_state("burst", "running"):
            iid = n["metadata"]["labels"]["stratos.sh/instance-id"]
            self.assertEqual(c.machine(iid)["boots"], 1)        # never stopped and started
            self.assertEqual(c.instance(iid)["state"], "running")
            self.assertIn("stratos.sh/started-at", n["metadata"]["annotations"])
        self.assertEqual(c.states("burst")[standby], "standby")
        self.assertEqual(c.instance(c.node(standby)["metadata"]["labels"]["stratos.sh/instance-id"])
                         ["state"], "stopped")
        m = c.metrics(d)
        self.assertEqual(m['stratos_scaleup_total{pool="burst",path="fallback"}'], 3)
        wait_for(lambda: c.condition("burst", "ScaledUp").get("status") == "True", 15, "ScaledUp")
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
