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
        # From the launch: the instance's pending, boot, Ready and the pull (not ~0).
        self.assertGreater(m['stratos_warmup_duration_seconds_sum{pool="gpu"}'], 2 * 0.5)
        # Steady state: nothing more is launched.
        self.assertEqual(len(c.instances("gpu")), 2)
        c.check_logs(d)

    def test_pools_created_while_running_are_served_at_once(self):
        """A NodePool and its class applied to a running stratosd are acted on from
        their watch events, not at the next 10 s tick (the cache tells the controller
        before it feeds the pools registry: the controller waits for the registry)."""
        c = ct.Cluster(self, scale=1.0)
        d = c.stratosd()
        import time
        for i in range(4):
            c.apply(ct.nodeclass("p%d" % i))
            c.apply(ct.nodepool("p%d" % i, pool_size=2, min_standby=1))
        t0 = time.time()
        wait_for(lambda: all(c.instances("p%d" % i) for i in range(4)) and
                 all(c.counts("p%d" % i).get("total") == 1 for i in range(4)), 5,
                 "every pool launched and counted")
        self.assertLess(time.time() - t0, 5)
        c.check_logs(d)

    def test_self_poweroff_after_warmup_goes_standby(self):
        """The seed's user data powers the instance off 30 s (simulated) after
        the kubelet is healthy. With StopInstances failing, the only way to
        standby is that poweroff, accepted because warmup had completed."""
        c = ct.Cluster(self)
        st, _ = c.ec2control("POST", "faults", {"action": "StopInstances", "error": "InternalError"})
        self.assertEqual(st, 200)
        c.apply(ct.nodeclass("ci", user_data=ct.SEED_USER_DATA))
        c.apply(ct.nodepool("ci", pool_size=2, min_standby=1))
        d = c.stratosd()
        wait_for(lambda: len(c.by_state("ci", "standby")) == 1, 60, "standby after self-poweroff")
        node = c.assert_standby("ci", 1)[0]
        inst = c.instance(node["metadata"]["labels"]["stratos.sh/instance-id"])
        self.assertEqual(inst["state_reason"]["code"], "Client.InstanceInitiatedShutdown")
        self.assertTrue(c.machine(inst["instance_id"])["user_data_ran"])
        self.assertEqual(inst["client_token"][:3], "ci-")
        self.assertFalse(c.events("WarmupRestarted"))
        c.check_logs(d)

    def test_poweroff_before_warmup_complete_is_started_again(self):
        """An image still pulling when the user data powers the machine off:
        the instance is started again (user data runs on the first boot
        only), with an Event, and finishes warmup; then Stratos stops it."""
        big = "registry.example/llama:70b"
        c = ct.Cluster(self, kubelet_args=["--image-size", big + "=6Gi", "--pull-bandwidth", "100Mi"])
        c.apply(ct.nodeclass("llm", user_data=ct.SEED_USER_DATA))
        c.apply(ct.nodepool("llm", pool_size=2, min_standby=1,
                            prewarm={"timeout": "5m", "imagesToPull": [big]}))
        d = c.stratosd()
        ev = wait_for(lambda: c.events("WarmupRestarted"), 60, "WarmupRestarted event")
        self.assertEqual(ev[0]["type"], "Warning")
        self.assertIn("stopped before warmup was complete", ev[0]["note"])
        wait_for(lambda: len(c.by_state("llm", "standby")) == 1, 90, "standby after the restart")
        node = c.assert_standby("llm", 1, images=[big])[0]
        iid = node["metadata"]["labels"]["stratos.sh/instance-id"]
        self.assertGreaterEqual(c.machine(iid)["boots"], 2)
        self.assertEqual(len(c.instances("llm")), 1)
        c.check_logs(d)


class WarmupTimeoutTest(unittest.TestCase):
    """preWarm.timeout (1m, its minimum) with both timeoutActions, and an
    instance that never registers a Node, in one cluster (one wait)."""

    def test_timeout_terminate_stop_and_never_registered(self):
        huge = "registry.example/huge:1"
        c = ct.Cluster(self, kubelet_args=["--image-size", huge + "=500Gi", "--pull-bandwidth", "10Mi"])
        c.apply(ct.nodeclass("term"))
        c.apply(ct.nodepool("term", pool_size=2, min_standby=1,
                            prewarm={"timeout": "1m", "timeoutAction": "terminate", "imagesToPull": [huge]}))
        c.apply(ct.nodeclass("stop"))
        c.apply(ct.nodepool("stop", pool_size=1, min_standby=1,
                            prewarm={"timeout": "1m", "timeoutAction": "stop", "imagesToPull": [huge]}))
        c.apply(ct.nodeclass("never", user_data="#!/bin/bash\nexit 1\n"))
        c.apply(ct.nodepool("never", pool_size=1, min_standby=1, prewarm={"timeout": "1m"}))
        d = c.stratosd()
        first_term = wait_for(lambda: c.instances("term"), 20, "term launched")[0]["instance_id"]
        first_stop = wait_for(lambda: c.instances("stop"), 20, "stop launched")[0]["instance_id"]
        first_never = wait_for(lambda: c.instances("never"), 20, "never launched")[0]["instance_id"]
        wait_for(lambda: len(c.by_state("term", "warmup")) == 1 and len(c.by_state("stop", "warmup")) == 1,
                 30, "both warming")
        self.assertEqual(c.nodes("never"), [])
        # terminate: the instance terminated, its Node deleted, a replacement launched.
        wait_for(lambda: c.instance(first_term)["state"] in ("shutting-down", "terminated"), 90,
                 "timed-out instance terminated")
        wait_for(lambda: not [n for n in c.nodes("term")
                              if n["metadata"]["labels"]["stratos.sh/instance-id"] == first_term],
                 30, "its Node deleted")
        wait_for(lambda: [i for i in c.instances("term") if i["instance_id"] != first_term], 30,
                 "a replacement launched")
        ev = [e for e in c.events("WarmupTimeout") if "terminating" in e["note"]]
        self.assertTrue(ev)
        # stop: stopped, tainted warmup-failed, kept (poolSize 1: no replacement).
        wait_for(lambda: c.instance(first_stop)["state"] == "stopped", 30, "timed-out instance stopped")
        n = wait_for(lambda: [n for n in c.nodes("stop") if any(
            t["key"] == "stratos.sh/warmup-failed" for t in n["spec"].get("taints") or [])], 30,
            "warmup-failed taint")[0]
        self.assertEqual(n["metadata"]["labels"]["stratos.sh/state"], "warmup")
        self.assertEqual([i["instance_id"] for i in c.instances("stop")], [first_stop])
        # never registered: terminated after the timeout, counted.
        wait_for(lambda: c.instance(first_never)["state"] in ("shutting-down", "terminated"), 30,
                 "never-registered instance terminated")
        m = c.metrics(d)
        self.assertGreaterEqual(m['stratos_warmup_failures_total{pool="term",reason="timeout"}'], 1)
        self.assertGreaterEqual(m['stratos_warmup_failures_total{pool="stop",reason="timeout"}'], 1)
        self.assertGreaterEqual(m['stratos_warmup_failures_total{pool="never",reason="never-registered"}'], 1)
        self.assertEqual(c.condition("stop", "Ready")["status"], "False")
        wait_for(lambda: c.condition("stop", "Degraded").get("reason") == "WarmupTimeout", 15,
                 "Degraded: WarmupTimeout")
        # The failed node is re-warmed later; with the image now small it completes.
        st, _ = c.sim.control("kubeletsim", "POST", "/_sim/images", {"sizes": {huge: "10Mi"}})
        self.assertEqual(st, 200)
        wait_for(lambda: len(c.by_state("stop", "standby")) == 1, 90, "re-warmed to standby")
        c.assert_standby("stop", 1)
        # ... and Degraded clears with the cause.
        wait_for(lambda: c.condition("stop", "Degraded").get("status") == "False", 15,
                 "Degraded cleared")
        self.assertEqual(c.condition("stop", "Degraded")["reason"], "AsExpected")
        self.assertEqual([i["instance_id"] for i in c.instances("stop")], [first_stop])
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
