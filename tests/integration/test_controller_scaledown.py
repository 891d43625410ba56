"""Pool controller, scale-down (DESIGN §5.4): a running node empty for
emptyNodeTTL is cordoned and labelled stopping, its pods evicted through
the Eviction API (a PodDisruptionBudget's 429 retried until drainTimeout),
its instance stopped, and it is standby again; a drain that times out puts
the node back to running, uncordoned, with a Warning event, nothing
force-deleted.

The pod that the drain must evict is bound to the node right after the
cordon: the one way a pod reaches a node that was empty for its whole TTL
(the scheduler's last binding racing the cordon), which the drain's settle
time exists for."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402


def web_pod(node):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "c", "image": "registry.example/web:1"}]}}


def pdb():
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}


def setup_running(test, ttl, drain):
    """A pool with one standby node, claimed and started: running and usable."""
    c = ct.Cluster(test)
    c.apply(ct.nodeclass("web"))
    c.apply(ct.nodepool("web", pool_size=2, min_standby=1,
                        scale_down={"enabled": True, "emptyNodeTTL": ttl, "drainTimeout": drain}))
    d = c.stratosd()
    node = wait_for(lambda: c.by_state("web", "standby"), 60, "standby")[0]["metadata"]["name"]
    c.claim(node, pod="apps/claimer")
    wait_for(lambda: c.usable(node), 30, "claimed node usable")
    return c, d, node


class ScaleDownTest(unittest.TestCase):

    def test_empty_node_stopped_after_ttl_with_a_pdb_blocking_for_a_while(self):
        c, d, node = setup_running(self, "3s", "60s")
        iid = c.node(node)["metadata"]["labels"]["stratos.sh/instance-id"]
        since = wait_for(lambda: c.node(node)["metadata"]["annotations"].get("stratos.sh/empty-since"),
                         10, "empty-since")
        wait_for(lambda: c.node(node)["metadata"]["labels"]["stratos.sh/state"] == "stopping", 15,
                 "stopping after the TTL")
        n = c.node(node)
        self.assertTrue(n["spec"]["unschedulable"])
        self.assertNotIn("stratos.sh/empty-since", n["metadata"]["annotations"])
        stopping_at = n["metadata"]["annotations"]["stratos.sh/state-since"]
        self.assertGreaterEqual(ct.parse_time(stopping_at) - ct.parse_time(since), 3)
        # A pod lands in the race with the cordon, guarded by a budget that allows no disruption.
        c.sim.namespace("apps")
        c.sim.create("/apis/policy/v1/namespaces/apps/poddisruptionbudgets", pdb())
        c.create_pod("apps", web_pod(node))
        wait_for(lambda: (c.sim.pod("apps", "web") or {}).get("status", {}).get("phase") == "Running",
                 15, "pod running")
        # The budget holds it: evictions are refused and retried; nothing stops, nothing is deleted.
        wait_for(lambda: c.sim.api.get("/_sim/requests")[1]["counts"].get("create pods/eviction", 0) >= 3,
                 20, "evictions retried")
        self.assertEqual(c.instance(iid)["state"], "running")
        self.assertEqual(c.node(node)["metadata"]["labels"]["stratos.sh/state"], "stopping")
        self.assertIsNotNone(c.sim.pod("apps", "web"))
        # The budget lets go: the pod is evicted, the instance stopped, the node standby.
        st, body = c.api.delete("/apis/policy/v1/namespaces/apps/poddisruptionbudgets/web")
        self.assertEqual(st, 200, body)
        wait_for(lambda: c.sim.pod("apps", "web") is None, 20, "pod evicted")
        wait_for(lambda: c.node(node)["metadata"]["labels"]["stratos.sh/state"] == "standby", 20, "standby")
        c.assert_standby("web", 2)
        self.assertEqual(c.instance(iid)["state"], "stopped")
        self.assertTrue([e for e in c.events("ScaleDown", node) if "standby" in e["note"]])
        m = c.metrics(d)
        self.assertEqual(m['stratos_scaledown_total{pool="web"}'], 1)
        self.assertEqual(m['stratos_drain_duration_seconds_count{pool="web"}'], 1)
        c.check_logs(d)

    def test_drain_timeout_returns_the_node_to_running(self):
        c, d, node = setup_running(self, "2s", "4s")
        iid = c.node(node)["metadata"]["labels"]["stratos.sh/instance-id"]
        wait_for(lambda: c.node(node)["metadata"]["labels"]["stratos.sh/state"] == "stopping", 15,
                 "stopping after the TTL")
        c.sim.namespace("apps")
        c.sim.create("/apis/policy/v1/namespaces/apps/poddisruptionbudgets", pdb())
        c.create_pod("apps", web_pod(node))
        ev = wait_for(lambda: c.events("DrainTimeout", node), 20, "DrainTimeout event")[0]
        self.assertEqual(ev["type"], "Warning")
        self.assertIn("apps/web", ev["note"])
        n = c.node(node)
        self.assertEqual(n["metadata"]["labels"]["stratos.sh/state"], "running")
        self.assertFalse(n["spec"].get("unschedulable", False))
        self.assertIsNotNone(c.sim.pod("apps", "web"))         # never force-deleted
        self.assertEqual(c.instance(iid)["state"], "running")
        self.assertTrue(c.usable(node))
        # Busy again, so no new empty-since while the pod is there.
        self.assertNotIn("stratos.sh/empty-since", n["metadata"]["annotations"])
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
