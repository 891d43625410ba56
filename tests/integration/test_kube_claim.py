"""Two replicas race to claim one standby Node with the guarded JSON Patch:
exactly one wins, the other gets a conflict, and the winner's own cache
shows its write at once (write-through)."""

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
            # The server answers 422 (failed test) or 409; both are a lost race.
            self.assertEqual(r["class"], "conflict", r)
            self.assertIn(r["code"], (409, 422), r)
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
        for i in range(5):
            name = "race-%d" % i
            self.standby(name)
            self.check(name, self.race(name, 2))

    def test_four_replicas_one_winner(self):
        self.standby("race-four")
        self.check("race-four", self.race("race-four", 4))


if __name__ == "__main__":
    unittest.main()
