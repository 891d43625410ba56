"""Two replicas race to claim one standby Node with the guarded JSON Patch
(the real code path: node cache, node_cache_patch, write-through): exactly one
wins, the other gets a conflict, and the winner's own cache shows its write at
once. The fake answers as kube-apiserver does: the loser's patch sets a stale
metadata.resourceVersion and gets the store's 409 Conflict (store.go Update,
OptimisticLockErrorMsg); a patch that no longer applies gets the cause-less
422 of handlers/patch.go, which the client must still read as a lost race."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubesim as ks  # noqa: E402
import stratos_testlib as tl  # noqa: E402


class ClaimRace(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.driver = tl.driver_path("kube_driver")
        cls.sim = ks.Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.down()

    def race(self, node_name, replicas):
        go = os.path.join(self.sim.dir, "go-" + node_name)
        procs = [subprocess.Popen([self.driver, "claim", "--kubeconfig", self.sim.kubeconfig,
                                   "--node", node_name, "--identity", "replica-%d" % i,
                                   "--go", go],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(replicas)]
        try:
            # Every replica has read the same resourceVersion before any writes.
            ready = [json.loads(p.stdout.readline()) for p in procs]
            self.assertEqual(len({r["rv"] for r in ready}), 1, ready)
            open(go, "w").close()
            results = []
            for p in procs:
                out, err = p.communicate(timeout=30)
                self.assertEqual(p.returncode, 0, err)
                results.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        return results

    def check(self, node_name, results):
        winners = [r for r in results if r["won"]]
        losers = [r for r in results if not r["won"]]
        self.assertEqual(len(winners), 1, results)
        for r in losers:
            # The claim's operations apply to any version of the node, so the
            # server's answer is the 409 of the resourceVersion precondition.
            self.assertEqual(r["class"], "conflict", r)
            self.assertEqual(r["code"], 409, r)
            self.assertIn("the object has been modified", r["message"])
            self.assertIsNone(r["cacheState"], r)       # a failed write hands back no node
        st, node = self.sim.api.get("/api/v1/nodes/" + node_name)
        self.assertEqual(st, 200)
        w = winners[0]
        self.assertEqual(node["metadata"]["labels"]["stratos.sh/state"], "running")
        self.assertEqual(node["metadata"]["annotations"]["stratos.sh/started-for"], w["identity"])
        self.assertNotIn("stratos.sh/standby", [t["key"] for t in node["spec"].get("taints", [])])
        self.assertIn("node.kubernetes.io/unreachable",
                      [t["key"] for t in node["spec"].get("taints", [])])
        # Write-through: the winner's cache held the new version right after its PATCH.
        self.assertEqual(w["cacheState"], "running")
        self.assertEqual(str(w["cacheRv"]), node["metadata"]["resourceVersion"])

    def standby(self, name):
        n = ks.node(name, pool="ci-runners", state="standby", taints=[
            {"key": "stratos.sh/standby", "value": "true", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}])
        st, body = self.sim.api.post("/api/v1/nodes", n)
        self.assertEqual(st, 201, body)

    def test_two_replicas_one_winner(self):
        # Fifty rounds: both replicas read the same version, then PATCH together.
        for i in range(50):
            name = "race-%d" % i
            self.standby(name)
            self.check(name, self.race(name, 2))

    def test_four_replicas_one_winner(self):
        self.standby("race-four")
        self.check("race-four", self.race("race-four", 4))

    def guarded(self, node, rv, ops):
        r = subprocess.run([self.driver, "patch-guarded", "--kubeconfig", self.sim.kubeconfig, node, rv,
                            json.dumps(ops)], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def test_patch_built_for_an_older_node_is_a_conflict(self):
        # Another writer removed the annotation this replica's patch removes:
        # the patch fails to apply (422, before the version check), and only
        # the node's moved version tells the lost race from a bad patch.
        n = ks.node("moved", pool="ci-runners", state="running")
        n["metadata"]["annotations"] = {"stratos.sh/empty-since": "2024-01-01T00:00:00Z"}
        st, body = self.sim.api.post("/api/v1/nodes", n)
        self.assertEqual(st, 201, body)
        rv0 = body["metadata"]["resourceVersion"]
        st, body = self.sim.api.patch("/api/v1/nodes/moved",
                                      {"metadata": {"annotations": {"stratos.sh/empty-since": None}}})
        self.assertEqual(st, 200, body)
        rv1 = body["metadata"]["resourceVersion"]
        drop = [{"op": "remove", "path": "/metadata/annotations/stratos.sh~1empty-since"}]
        r = self.guarded("moved", rv0, drop)
        self.assertEqual((r["ok"], r["class"], r["code"]), (False, "conflict", 422), r)
        self.assertIn("expected %s" % rv0, r["message"])
        # The same patch against the current version is simply invalid.
        r = self.guarded("moved", rv1, drop)
        self.assertEqual((r["ok"], r["class"], r["code"]), (False, "invalid", 422), r)
        # A stale version with operations that apply: the 409.
        label = [{"op": "add", "path": "/metadata/labels/stratos.sh~1state", "value": "stopping"}]
        r = self.guarded("moved", rv0, label)
        self.assertEqual((r["ok"], r["class"], r["code"]), (False, "conflict", 409), r)
        r = self.guarded("moved", rv1, label)
        self.assertTrue(r["ok"], r)
        self.assertGreater(int(r["rv"]), int(rv1))


if __name__ == "__main__":
    unittest.main()
