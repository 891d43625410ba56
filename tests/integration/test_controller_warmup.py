"""Pool controller, warmup (DESIGN §5.1): minStandby instances launched with
their ClientTokens recorded first, adopted by providerID, warmed (Ready,
DaemonSet pods Ready, images pulled by a pre-pull pod), stopped and turned
standby; the seed's self-poweroff user data; preWarm.timeout with both
timeoutActions; instances that never register."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402

IMAGE = "registry.example/model:7b"


class WarmupTest(unittest.TestCase):

    def test_min_standby_warm_to_standby_with_images_pulled(self):
        c = ct.Cluster(self, sched=True, kubelet_args=["--image-size", IMAGE + "=2Gi",
                                                        "--pull-bandwidth", "1Gi"])
        # A DaemonSet every pool node runs: warmup waits for its pod to be Ready.
        c.sim.create("/apis/apps/v1/namespaces/kube-system/daemonsets", {
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "a", "image": "registry.example/agent:1"}]}}}})
        c.apply(ct.nodeclass("gpu"))
        c.apply(ct.nodepool("gpu", pool_size=4, min_standby=2,
                            prewarm={"timeout": "2m", "imagesToPull": [IMAGE]}))
        d = c.stratosd()
        wait_for(lambda: len(c.by_state("gpu", "standby")) == 2, 60, "2 standby nodes")
        nodes = c.assert_standby("gpu", 2, images=[IMAGE, "registry.example/agent:1"])
        # Exactly minStandby instances, each launched once, with the token recorded first.
        insts = c.instances("gpu")
        self.assertEqual(len(insts), 2)
        tokens = [i["client_token"] for i in insts]
        self.assertTrue(all(t.startswith("gpu-") for t in tokens), tokens)
        runs = [r for r in c.requests("RunInstances")["requests"] if r.get("forwarded")]
        self.assertEqual(len(runs), 2, runs)
        for i in insts:
            self.assertEqual(i["tagmap"]["managed-by"], "stratos")
            self.assertEqual(i["tagmap"]["Name"], "stratos-gpu")
            self.assertEqual(i["subnet_id"], "subnet-12345678")
        # The pool's template labels and the node state contract on every Node.
        for n in nodes:
            labels = n["metadata"]["labels"]
            self.assertEqual(labels["stratos.sh/pool"], "gpu")
            self.assertIn(labels["stratos.sh/instance-id"], [i["instance_id"] for i in insts])
            self.assertTrue(n["spec"]["providerID"].endswith(labels["stratos.sh/instance-id"]))
            self.assertIn("stratos.sh/state-since", n["metadata"]["annotations"])
            self.assertNotIn("stratos.sh/warmup-done", n["metadata"]["annotations"])
        # The pre-pull pods are gone; the launch records too once EC2 listed the instances.
        wait_for(lambda: not [p for p in c.pods(ct.NS) if p["metadata"]["name"].startswith(
            "stratos-prepull-")], 10, "pre-pull pods deleted")
        wait_for(lambda: "stratos.sh/launches" not in
                 (c.pool("gpu")["metadata"].get("annotations") or {}), 10, "launch records cleared")
        # Status and its printer columns' sources.
        wait_for(lambda: c.counts("gpu").get("standby") == 2, 10, "status counts")
        st = c.status("gpu")
        self.assertEqual(st["nodes"], {"warmup": 0, "standby": 2, "running": 0, "stopping": 0,
                                       "total": 2})
        self.assertEqual(st["observedGeneration"], c.pool("gpu")["metadata"]["generation"])
        self.assertEqual(c.condition("gpu", "Ready")["status"], "True")
        self.assertEqual(c.condition("gpu", "Degraded")["status"], "False")
        self.assertIn(ct.CLUSTER and "stratos.sh/nodepool", c.pool("gpu")["metadata"]["finalizers"])
        self.assertTrue(c.events("WarmupCompleted"))
        m = c.metrics(d)
        self.assertEqual(m['stratos_nodepool_nodes{pool="gpu",state="standby"}'], 2)
        self.assertEqual(m['stratos_warmup_duration_seconds_count{pool="gpu"}'], 2)
        # Steady state: nothing more is launched.
        self.assertEqual(len(c.instances("gpu")), 2)
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
